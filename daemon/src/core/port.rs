//! Binding the main port, and saying who holds it when it is busy.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_proto::procfs::{port_holders, PortHolder};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::{TcpListener, TcpSocket};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("another gateway instance is already listening on {addr}{}: stop it with `gatewayctl stop` (add --profile if it runs one), or start with --force to replace it", holder_note(.holder))]
    OurInstance { addr: SocketAddr, holder: Option<PortHolder> },
    #[error("{addr} is already in use by another program{}: stop it, or set another gateway.port", holder_note(.holder))]
    OtherProgram { addr: SocketAddr, holder: Option<PortHolder> },
    #[error("cannot listen on {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
}

impl ListenError {
    pub fn is_busy(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

/// `bind` + `listen(backlog)`, with `SO_REUSEADDR` as the standard library sets it.
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

fn holder_note(holder: &Option<PortHolder>) -> String {
    match holder {
        Some(h) => match &h.exe {
            Some(exe) => format!(" (pid {}, {})", h.pid, exe.display()),
            None => format!(" (pid {})", h.pid),
        },
        None => String::new(),
    }
}

/// Binds `addr` with a listen queue of `backlog`. With `force`, a gatewayd holding the port is
/// asked to stop (SIGTERM) and we wait for the port; any other program is left alone.
pub async fn bind(addr: SocketAddr, backlog: u32, force: bool) -> Result<TcpListener, ListenError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut asked_to_stop = false;
    loop {
        match listen(addr, backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let holder = port_holders(addr.port()).into_iter().next();
                let ours = holder.as_ref().is_some_and(PortHolder::is_gatewayd);
                if !ours {
                    return Err(ListenError::OtherProgram { addr, holder });
                }
                if !force || Instant::now() > deadline {
                    return Err(ListenError::OurInstance { addr, holder });
                }
                if !asked_to_stop {
                    let pid = holder.as_ref().map_or(0, |h| h.pid);
                    tracing::info!(pid, %addr, "--force: asking the gatewayd on the port to stop");
                    stop_gatewayd(pid);
                    asked_to_stop = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(source) => return Err(ListenError::Io { addr, source }),
        }
    }
}

/// Sends SIGTERM to `pid` if, and only if, it is a gatewayd. Returns whether it was one.
pub fn stop_gatewayd(pid: u32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let holder = PortHolder { pid, exe };
    if !holder.is_gatewayd() || pid == std::process::id() {
        return false;
    }
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    true
}
