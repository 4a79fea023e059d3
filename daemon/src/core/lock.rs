//! One gatewayd per state dir: an exclusive `flock` on `gatewayd.lock`, which holds the PID.
//! The kernel drops the lock when the process dies, so a crash never leaves it stale.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::core::port::stop_gatewayd;

pub struct InstanceLock {
    _file: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another gatewayd{} is already using the state dir {dir}: stop it with `gatewayctl stop`, run this one with --force to replace it, or give it another --profile", pid_note(*.pid))]
    Held { dir: String, pid: Option<u32> },
    #[error(
        "the state dir {dir} is locked by pid {pid}, which is not a gatewayd: --force only stops a gatewayd"
    )]
    HeldByOther { dir: String, pid: u32 },
    #[error("cannot use the lock file {0}: {1}")]
    Io(String, io::Error),
}

fn pid_note(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

pub fn acquire(path: &Path, force: bool) -> Result<InstanceLock, LockError> {
    let io_err = |e| LockError::Io(path.display().to_string(), e);
    let dir = path.parent().unwrap_or(Path::new(".")).display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut asked_to_stop = false;
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                locked.set_len(0).map_err(io_err)?;
                locked.rewind().map_err(io_err)?;
                writeln!(locked, "{}", std::process::id()).map_err(io_err)?;
                return Ok(InstanceLock { _file: locked });
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse::<u32>().ok();
                if !force || Instant::now() > deadline {
                    return Err(LockError::Held { dir, pid });
                }
                let Some(pid) = pid else {
                    return Err(LockError::Held { dir, pid });
                };
                if !asked_to_stop {
                    if !stop_gatewayd(pid) {
                        return Err(LockError::HeldByOther { dir, pid });
                    }
                    asked_to_stop = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, errno)) => return Err(io_err(errno.into())),
        }
    }
}
