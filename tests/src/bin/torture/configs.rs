//! R5: mutated, truncated, half-written config files, each reloaded.

use anyhow::{ensure, Context, Result};
use gateway_tests::benchutil::{Row, Target};
use gateway_tests::{try_http, Home};

use crate::{row, Rng};

const R5_BASE: &str = "[gateway.reload]\nmode = \"off\"\n\n[gateway.heartbeat]\ninterval_ms = 20000\n\n\
[logging]\nlevel = \"info\"\n\n[gateway.http]\nmax_body_bytes = 2097152\nheader_read_timeout_ms = 9000\n";

/// The `i`th mutation of the base config.
fn mutate(rng: &mut Rng, i: usize) -> Vec<u8> {
    let base = R5_BASE.as_bytes();
    match i % 9 {
        0 => {
            let mut b = base.to_vec();
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
            b
        }
        1 => base[..rng.below(base.len())].to_vec(),
        2 => R5_BASE.replace("20000", "\"twenty\"").into_bytes(),
        3 => format!("{R5_BASE}bogus_key = 1\n").into_bytes(),
        4 => R5_BASE.replace("\"info\"", &format!("\"{}\"", "A".repeat(1_000_000))).into_bytes(),
        5 => format!("{R5_BASE}\n[logging]\nlevel = \"debug\"\n").into_bytes(),
        6 => {
            let mut b = base.to_vec();
            b.insert(rng.below(b.len()), 0xFF);
            b
        }
        7 => [b"\xEF\xBB\xBF".as_slice(), base].concat(),
        _ => Vec::new(),
    }
}

/// R5: `count` mutated configs, each written in place and reloaded, then the base put back.
pub fn run(count: usize, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let home = Home::new();
    let d = home.start_with(R5_BASE);
    let bearer = format!("Bearer {}", home.token());
    let socket = home.socket(None);
    let file = home.config_file(None);
    let reload = || -> Result<serde_json::Value> {
        let (code, body) = gateway_tests::unix_http(&socket, "POST", "/v1/reload", &[])?;
        ensure!(code == 200, "reload answered {code}: {body}");
        Ok(serde_json::from_str(&body)?)
    };
    let pid = || -> Result<u64> {
        let (_, body) = gateway_tests::unix_http(&socket, "GET", "/v1/status", &[])?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        v["pid"].as_u64().context("a pid")
    };
    let first_pid = pid()?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut rejected, mut located, mut applied, mut named, mut serving) = (0, 0, 0, 0, 0);
    let (mut other, mut longest) = (0, 0usize);
    for i in 0..count {
        let text = mutate(&mut rng, i);
        std::fs::write(&file, &text)?;
        let report = reload()?;
        longest = longest.max(report.to_string().len());
        match report["outcome"].as_str() {
            Some("rejected") => {
                rejected += 1;
                let e = &report["errors"][0];
                if e["line"].is_u64() || e["key"].is_string() {
                    located += 1;
                }
            }
            Some("applied") => {
                applied += 1;
                // Every changed key whose name the file no longer holds went back to its
                // default: the report must name it as such.
                let text = String::from_utf8_lossy(&text);
                let names = |field: &str| -> Vec<String> {
                    report[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                };
                let defaulted = names("defaulted_keys");
                let vanished = names("changed_keys").into_iter().filter(|k| {
                    let leaf = k.rsplit('.').next().unwrap_or(k);
                    !text.contains(leaf)
                });
                if vanished.into_iter().all(|k| defaulted.contains(&k)) {
                    named += 1;
                }
            }
            Some("unchanged") => {}
            _ => other += 1,
        }
        if try_http(d.port, "GET", "/gateway/status", &[("Authorization", &bearer)])?.0 == 200
            && pid()? == first_pid
        {
            serving += 1;
        }
        std::fs::write(&file, R5_BASE)?;
        reload()?;
    }
    let pct = |n: usize, of: usize| if of == 0 { 100.0 } else { 100.0 * n as f64 / of as f64 };
    rows.push(row(
        "R5-located",
        format!("rejected configs whose error names a line or key ({rejected} of {count})"),
        "%",
        pct(located, rejected),
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R5-defaults",
        format!("applied configs that name every key gone back to its default ({applied} of {count})"),
        "%",
        pct(named, applied),
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R5-serving",
        format!("{count} reloads after which the token works and the pid is the same"),
        "%",
        pct(serving, count),
        Target::AtLeast(100.0),
    ));
    rows.push(row(
        "R5-restarts",
        "reloads that restarted the gateway or ended otherwise".into(),
        "",
        other as f64,
        Target::AtMost(0.0),
    ));
    rows.push(row(
        "R5-report",
        "the largest reload report (a 1 MB value among the inputs)".into(),
        "bytes",
        longest as f64,
        Target::AtMost(2_000.0),
    ));
    notes.push(format!(
        "R5: of {count} mutated files, {rejected} were rejected, {applied} applied ({named} naming every key that went back to its default), the rest unchanged"
    ));
    Ok(())
}
