//! Probes shared by `status --deep` and `doctor`: the TCP port, who holds it, and the other
//! gateways on this host (other profiles, other units, other listeners).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_proto::paths::non_empty_env;
use gateway_proto::Profile;
use serde::Serialize;

use crate::client::Client;
use crate::http;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /healthz` on the gateway's port, as a client would reach it: the HTTP status, or why not.
pub fn rpc_probe(addr: &str) -> Result<u16, String> {
    let target: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad address {addr}"))?;
    // A wildcard listener is reached on loopback.
    let target = match target {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], a.port()))
        }
        t => t,
    };
    let mut stream =
        TcpStream::connect_timeout(&target, PROBE_TIMEOUT).map_err(|e| format!("connect {target}: {e}"))?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    stream
        .write_all(http::request("GET", "/healthz").as_bytes())
        .map_err(|e| format!("write to {target}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).map_err(|e| format!("read from {target}: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        match http::parse(&buf, n == 0) {
            Ok(Some(r)) => return Ok(r.status),
            Ok(None) if buf.len() < 1 << 20 => {}
            Ok(None) => return Err(format!("{target} sent an endless answer")),
            Err(e) => return Err(format!("{target} does not speak HTTP: {e}")),
        }
    }
}

/// A process listening on the port.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub exe: Option<String>,
    pub gatewayd: bool,
}

pub fn holders(port: u16) -> Vec<Holder> {
    gateway_proto::procfs::port_holders(port)
        .into_iter()
        .map(|h| Holder {
            pid: h.pid,
            gatewayd: h.is_gatewayd(),
            exe: h.exe.map(|e| e.display().to_string()),
        })
        .collect()
}

/// The port this instance's config asks for (flag and environment as gatewayd would see them).
pub fn configured_port(profile: &Profile, config: &Path) -> u16 {
    let from_env = non_empty_env(gateway_proto::paths::env_var::PORT).and_then(|p| p.parse().ok());
    let from_file =
        gateway_config::load_file(config).ok().and_then(|l| l.config.gateway.port.map(|p| p.port()));
    from_env.or(from_file).unwrap_or_else(|| profile.default_port())
}

/// Another gateway found on this host.
#[derive(Debug, Clone, Serialize)]
pub struct OtherGateway {
    /// `profile` (answers on its control socket), `user-unit`, `system-unit`.
    pub kind: &'static str,
    pub name: String,
    pub detail: String,
    /// The port it listens on, when it answers.
    pub port: Option<u16>,
    /// Its pid, when it answers.
    pub pid: Option<u32>,
    pub state_dir: Option<String>,
}

/// Other running profiles (their sockets in the runtime dir answer) and other gatewayd units.
pub fn other_gateways(profile: &Profile, own_runtime_dir: &Path) -> Vec<OtherGateway> {
    let mut found = Vec::new();
    if let Some(base) = own_runtime_dir.parent() {
        for (name, dir) in gateway_dirs(base) {
            if dir == own_runtime_dir {
                continue;
            }
            let other = profile_of(&name);
            let client = Client::new(dir.join("gatewayd.sock"), other.clone());
            if let Ok(s) = client.status_within(Duration::from_secs(2)) {
                found.push(OtherGateway {
                    kind: "profile",
                    name: other.name().unwrap_or("default").to_owned(),
                    detail: format!("pid {}, listening on {}", s.pid, s.listen.addr),
                    port: Some(s.listen.port),
                    pid: Some(s.pid),
                    state_dir: Some(s.paths.state_dir),
                });
            }
        }
    }
    let own_unit = super::unit_name(profile);
    let user_dir = super::user_unit_dir().ok();
    for (kind, dir) in [("user-unit", user_dir), ("system-unit", Some(PathBuf::from("/etc/systemd/system")))]
    {
        let Some(dir) = dir else { continue };
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = kind == "user-unit" && name == own_unit;
            if name.starts_with("gatewayd") && name.ends_with(".service") && !ours {
                found.push(OtherGateway {
                    kind,
                    name,
                    detail: entry.path().display().to_string(),
                    port: None,
                    pid: None,
                    state_dir: None,
                });
            }
        }
    }
    found
}

/// `gateway` and `gateway-NAME` dirs under `base`.
fn gateway_dirs(base: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(base) else { return Vec::new() };
    let mut dirs: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            (name == "gateway" || name.starts_with("gateway-")).then(|| (name, e.path()))
        })
        .collect();
    dirs.sort();
    dirs
}

fn profile_of(dir_name: &str) -> Profile {
    let name = dir_name.strip_prefix("gateway-");
    Profile::new(name, false).unwrap_or_default()
}
