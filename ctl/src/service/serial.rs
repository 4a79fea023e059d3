//! One lifecycle command at a time per profile: `start`, `stop`, `restart` and the repairs of
//! `doctor --fix` take an exclusive lock (`flock`) on `RUNTIME_DIR/lifecycle.lock`, so two of
//! them at once never make a restart loop. The holder writes its pid and command into the file,
//! so that a command that has to wait can say for whom.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

use crate::commands::Ctx;

/// Longer than any one lifecycle command takes (a restart waits up to 60 s for readiness).
const WAIT_AT_MOST: Duration = Duration::from_secs(150);
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Held until dropped.
pub struct Serial {
    _lock: Flock<File>,
    /// Who held the lock while this command waited, and for how long.
    pub waited_for: Option<(String, Duration)>,
}

impl Serial {
    /// Takes the profile's lifecycle lock for `command`, waiting (and saying so) while another
    /// gatewayctl holds it.
    pub fn acquire(ctx: &Ctx, command: &str) -> Result<Self> {
        let dir = ctx.paths()?.runtime_dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("lifecycle.lock");
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot open the lock file {}", path.display()))
        };
        let started = Instant::now();
        let mut holder: Option<String> = None;
        let mut lock = loop {
            match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                    if holder.is_none() {
                        let mut who = String::new();
                        let _ = file.read_to_string(&mut who);
                        let who = who.trim().to_owned();
                        let who = if who.is_empty() { "another gatewayctl".to_owned() } else { who };
                        eprintln!("waiting for {who} to finish...");
                        holder = Some(who);
                    }
                    if started.elapsed() >= WAIT_AT_MOST {
                        bail!(
                            "{} has held {} for {} s; if it is stuck, end it, then run this again",
                            holder.unwrap_or_default(),
                            path.display(),
                            WAIT_AT_MOST.as_secs()
                        );
                    }
                    sleep(POLL_EVERY);
                }
                Err((_, errno)) => bail!("cannot lock {}: {errno}", path.display()),
            }
        };
        // Who holds it now, for a command that comes next and has to wait.
        let me = format!("gatewayctl {command} (pid {})", std::process::id());
        let _ = lock.set_len(0).and_then(|()| lock.rewind()).and_then(|()| lock.write_all(me.as_bytes()));
        let waited_for = holder.map(|who| (who, started.elapsed()));
        if let Some((who, waited)) = &waited_for {
            eprintln!("waited {:.1} s for {who}", waited.as_secs_f64());
        }
        Ok(Self { _lock: lock, waited_for })
    }
}
