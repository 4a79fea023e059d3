//! `devices list|approve|reject|revoke`: paired devices and pairing requests.

use std::fmt::Write as _;

use anyhow::Result;
use gateway_proto::api::{ApproveBody, DevicesReport};
use gateway_proto::{exit, Profile};

use super::Ctx;
use crate::output::{ago, now_ms, print_json};

/// Devices are shown by the start of their id; `revoke` accepts any prefix of 8 or more.
const SHORT_ID: usize = 12;

pub fn list(ctx: &Ctx, json: bool) -> Result<i32> {
    let report = ctx.client()?.devices()?;
    if json {
        print_json(&report)?;
    } else {
        print!("{}", render(&report, &ctl_prefix(&ctx.profile), now_ms()));
    }
    Ok(exit::OK)
}

pub fn approve(ctx: &Ctx, id: &str, scopes: Vec<String>) -> Result<i32> {
    let body = ApproveBody { scopes: (!scopes.is_empty()).then_some(scopes) };
    let record = ctx.client()?.approve_device(id, &body)?;
    println!(
        "approved device {} ({}) as {} with scopes: {}; it gets its device token when it connects again",
        short(&record.device_id),
        describe(record.display_name.as_deref(), &record.client_id, &record.platform),
        record.role,
        scope_list(&record.scopes),
    );
    Ok(exit::OK)
}

pub fn reject(ctx: &Ctx, id: &str) -> Result<i32> {
    let request = ctx.client()?.reject_device(id)?;
    println!(
        "rejected pairing request {} of device {} ({}); it may ask again when it reconnects",
        request.request_id,
        short(&request.device_id),
        describe(request.display_name.as_deref(), &request.client_id, &request.platform),
    );
    Ok(exit::OK)
}

pub fn revoke(ctx: &Ctx, id: &str) -> Result<i32> {
    let report = ctx.client()?.revoke_device(id)?;
    let closed = match report.closed_connections {
        0 => String::new(),
        1 => "; closed its open connection".to_owned(),
        n => format!("; closed its {n} open connections"),
    };
    println!(
        "revoked device {}: its device token no longer works and it must pair again{closed}",
        report.device_id
    );
    Ok(exit::OK)
}

/// `gatewayctl`, with the flag that names this instance, for commands we suggest.
fn ctl_prefix(profile: &Profile) -> String {
    match profile.name() {
        None => "gatewayctl".to_owned(),
        Some(gateway_proto::paths::DEV_PROFILE) => "gatewayctl --dev".to_owned(),
        Some(name) => format!("gatewayctl --profile {name}"),
    }
}

fn short(device_id: &str) -> &str {
    &device_id[..device_id.len().min(SHORT_ID)]
}

/// `laptop (gatewayctl, linux)`, or `gatewayctl (linux)` without a display name.
fn describe(name: Option<&str>, client: &str, platform: &str) -> String {
    let platform = if platform.is_empty() { "?" } else { platform };
    match name {
        Some(name) => format!("{name}: {client}, {platform}"),
        None => format!("{client}, {platform}"),
    }
}

fn scope_list(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "none".to_owned()
    } else {
        scopes.join(", ")
    }
}

fn render(report: &DevicesReport, ctl: &str, now: u64) -> String {
    let mut out = String::new();
    if report.devices.is_empty() {
        out.push_str("No paired devices.\n");
    } else {
        out.push_str("Paired devices:\n");
        let mut rows =
            vec![["DEVICE", "NAME", "CLIENT", "PLATFORM", "ROLE", "SCOPES", "PAIRED", "LAST SEEN"]
                .map(str::to_owned)];
        for d in &report.devices {
            let seen = match (d.revoked_at_ms, d.last_seen_ms) {
                (Some(at), _) => format!("revoked {}", ago(at, now)),
                (None, Some(at)) => ago(at, now),
                (None, None) => "never".to_owned(),
            };
            rows.push([
                short(&d.device_id).to_owned(),
                d.display_name.clone().unwrap_or_else(|| "-".into()),
                format!("{} ({})", d.client_id, d.mode),
                or_dash(&d.platform),
                d.role.clone(),
                if d.scopes.is_empty() { "-".to_owned() } else { d.scopes.join(",") },
                ago(d.paired_at_ms, now),
                seen,
            ]);
        }
        table(&mut out, &rows);
    }
    if report.pending.is_empty() {
        out.push_str("\nNo pending pairing requests.\n");
    } else {
        let _ = writeln!(out, "\nPending pairing requests ({}):", report.pending.len());
        for r in &report.pending {
            let _ = writeln!(
                out,
                "  {}  {} wants {} as {}; device {}, asked {}, last tried {}",
                r.request_id,
                describe(r.display_name.as_deref(), &r.client_id, &r.platform),
                scope_list(&r.scopes),
                r.role,
                short(&r.device_id),
                ago(r.created_at_ms, now),
                ago(r.last_seen_ms, now),
            );
            let _ = writeln!(
                out,
                "      approve: {ctl} devices approve {}   (or --scope S ... to grant fewer)",
                r.request_id
            );
            let _ = writeln!(out, "      reject:  {ctl} devices reject {}", r.request_id);
        }
    }
    out
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// Left-aligned columns two spaces apart; the last one is not padded.
fn table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < N {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use gateway_proto::api::{route, DeviceRecord, PairingRequest};

    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn report() -> DevicesReport {
        DevicesReport {
            devices: vec![
                DeviceRecord {
                    device_id: "ab".repeat(32),
                    display_name: Some("laptop".into()),
                    client_id: "gatewayctl".into(),
                    mode: "cli".into(),
                    platform: "linux".into(),
                    role: "operator".into(),
                    scopes: vec!["operator.read".into(), "operator.write".into()],
                    paired_at_ms: NOW - 7_500_000,
                    last_seen_ms: Some(NOW - 12_000),
                    revoked: false,
                    revoked_at_ms: None,
                },
                DeviceRecord {
                    device_id: "cd".repeat(32),
                    display_name: None,
                    client_id: "ios-app".into(),
                    mode: "ui".into(),
                    platform: "ios".into(),
                    role: "operator".into(),
                    scopes: vec![],
                    paired_at_ms: NOW - 3 * 86_400_000,
                    last_seen_ms: None,
                    revoked: true,
                    revoked_at_ms: Some(NOW - 3_600_000),
                },
            ],
            pending: vec![PairingRequest {
                request_id: "a1b2c3d4".into(),
                device_id: "ef".repeat(32),
                display_name: Some("phone".into()),
                client_id: "ios-app".into(),
                mode: "ui".into(),
                platform: "ios".into(),
                role: "operator".into(),
                scopes: vec!["operator.read".into()],
                created_at_ms: NOW - 192_000,
                last_seen_ms: NOW - 5_000,
            }],
        }
    }

    #[test]
    fn the_listing_shows_devices_and_how_to_approve() {
        let text = render(&report(), "gatewayctl --profile work", NOW);
        let expected = "\
Paired devices:
DEVICE        NAME    CLIENT            PLATFORM  ROLE      SCOPES                        PAIRED     LAST SEEN
abababababab  laptop  gatewayctl (cli)  linux     operator  operator.read,operator.write  2h05m ago  12s ago
cdcdcdcdcdcd  -       ios-app (ui)      ios       operator  -                             3d0h ago   revoked 1h00m ago

Pending pairing requests (1):
  a1b2c3d4  phone: ios-app, ios wants operator.read as operator; device efefefefefef, asked 3m12s ago, last tried 5s ago
      approve: gatewayctl --profile work devices approve a1b2c3d4   (or --scope S ... to grant fewer)
      reject:  gatewayctl --profile work devices reject a1b2c3d4
";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_listing_says_so() {
        let empty = DevicesReport { devices: vec![], pending: vec![] };
        assert_eq!(render(&empty, "gatewayctl", NOW), "No paired devices.\n\nNo pending pairing requests.\n");
    }

    #[test]
    fn ids_cannot_escape_the_route() {
        assert_eq!(route::device_action("a1b2c3d4", "approve"), "/v1/devices/a1b2c3d4/approve");
        assert_eq!(route::device_action("../../stop", "revoke"), "/v1/devices/%2E%2E%2F%2E%2E%2Fstop/revoke");
    }
}
