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
