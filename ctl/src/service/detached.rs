//! Starting gatewayd without a service manager: detached in a new session, its output appended
//! to a file in the state dir, and waited for until its control socket answers.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use gateway_proto::api::LaunchRecord;
use gateway_proto::Profile;

/// Where a detached gatewayd's stdout and stderr go (its structured log is `logs/gatewayd.jsonl`).
pub fn output_file(state_dir: &Path) -> PathBuf {
    state_dir.join("logs").join("gatewayd.out")
}

/// The arguments that start this profile's gatewayd: those its last run recorded in the state
/// dir (its flags; see [`LaunchRecord`]), else `run [--profile NAME]`. The record, if used, is
/// returned too, to say so.
pub fn launch_args(profile: &Profile, state_dir: &Path) -> (Vec<String>, Option<LaunchRecord>) {
    let record = std::fs::read(state_dir.join(LaunchRecord::FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<LaunchRecord>(&bytes).ok())
        .filter(|r| r.args.first().map(String::as_str) == Some("run"));
    match record {
        Some(r) => (r.args.clone(), Some(r)),
        None => {
            let mut args = vec!["run".to_owned()];
            if let Some(name) = profile.name() {
                args.extend(["--profile".to_owned(), name.to_owned()]);
            }
            (args, None)
        }
    }
}

/// Spawns `gatewayd ARGS` in its own session; returns its pid.
pub fn spawn(gatewayd: &Path, args: &[String], output: &Path) -> Result<u32> {
    if let Some(dir) = output.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(output)
        .with_context(|| format!("cannot open {}", output.display()))?;
    let mut cmd = Command::new(gatewayd);
    cmd.args(args);
    cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
    // SAFETY: setsid is async-signal-safe; it detaches from our terminal and process group so a
    // Ctrl-C or hangup of this shell does not reach gatewayd.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let child = cmd.spawn().with_context(|| format!("cannot start {}", gatewayd.display()))?;
    Ok(child.id())
}

/// The exit status of `pid` if it has exited (a child of ours, reaped here), else None.
pub fn exited(pid: u32) -> Option<i32> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        _ => None,
    }
}
