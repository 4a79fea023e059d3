//! Who holds a TCP port, read from Linux's /proc: used to name the process behind a busy port
//! and to make sure `--force` only ever stops a gatewayd.

use std::fs;
use std::path::PathBuf;

/// A process that holds a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    pub pid: u32,
    pub exe: Option<PathBuf>,
}

impl PortHolder {
    /// True when the process is a gatewayd (possibly replaced on disk since it started).
    pub fn is_gatewayd(&self) -> bool {
        self.exe
            .as_ref()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "gatewayd" || n.starts_with("gatewayd "))
    }
}

/// The processes listening on `port` (TCP, IPv4 or IPv6). Processes of other users whose fds
/// we may not read are not found; an empty result means "unknown", not "free".
pub fn port_holders(port: u16) -> Vec<PortHolder> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().and_then(socket_inode))
                .is_some_and(|ino| inodes.contains(&ino))
        });
        if holds {
            let exe = fs::read_link(entry.path().join("exe")).ok();
            holders.push(PortHolder { pid, exe });
        }
    }
    holders
}

fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Inodes of sockets in state LISTEN (0A) on `port`.
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let local_port = cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Ok(ino) = cols[9].parse() {
                    inodes.push(ino);
                }
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_listening() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holders = port_holders(port);
        assert!(holders.iter().any(|h| h.pid == std::process::id()), "{holders:?}");
        assert!(!holders[0].is_gatewayd());
    }
}
