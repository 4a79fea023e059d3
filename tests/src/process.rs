//! Running helper programs from tests (npm, node, shell scripts, packaging tools) with captured
//! output and a deadline, so a hung tool fails the test instead of hanging it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped, so a failing assertion never leaves it.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished program left: its exit code (None if killed by a signal) and its output.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Panics with the program's output unless it exited 0.
    pub fn expect_ok(self, what: &str) -> Self {
        assert_eq!(self.code, Some(0), "{what} failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `cmd` with stdout and stderr captured; kills it and panics after `timeout`. A program that
/// is not installed panics with its name.
pub fn run(mut cmd: Command, what: &str, timeout: Duration) -> Finished {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => Reaped(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{what}: `{}` is not installed (.ci/run installs what the tests need)",
                cmd.get_program().to_string_lossy()
            )
        }
        Err(e) => panic!("{what}: cannot start {:?}: {e}", cmd.get_program()),
    };
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.0.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.0.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            drop(child);
            panic!(
                "{what}: still running after {timeout:?}, killed; its stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `path`, a program from Debian's `package`: installed with apt-get when it is missing and this
/// runs as root (as `.ci/run` does, which installs them beforehand); otherwise the test fails
/// saying what to install. One install at a time.
pub fn debian_program(path: &std::path::Path, package: &str) -> std::path::PathBuf {
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return path.to_owned();
    }
    assert!(
        crate::node::running_as_root(),
        "{} is missing: install Debian's {package} (`sudo apt-get install {package}`)",
        path.display()
    );
    eprintln!("installing Debian's {package} for the tests");
    for args in [&["update", "-qq"][..], &["install", "-y", "-qq", package][..]] {
        let mut apt = Command::new("apt-get");
        apt.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(apt, &format!("apt-get install {package}"), Duration::from_secs(900)).expect_ok("apt-get");
    }
    assert!(path.exists(), "{} after apt-get install {package}", path.display());
    path.to_owned()
}
