//! A size-bounded, rotated, private file of lines.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

/// An append-only file of lines, private (0600), rotated to `<name>.1` when it would grow past
/// `max_bytes`: the JSONL log, the OpenTelemetry JSONL export, the runtime events.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: AtomicU64,
    state: Mutex<(File, u64)>,
    appended: Notify,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            crate::core::fsutil::ensure_private_dir(dir)?;
        }
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes: AtomicU64::new(max_bytes),
            state: Mutex::new((file, size)),
            appended: Notify::new(),
        })
    }

    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let max = self.max_bytes.load(Ordering::Relaxed);
        if state.1 > 0 && state.1 + line.len() as u64 > max {
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            fs::rename(&self.path, rotated)?;
            *state = (open_append(&self.path)?, 0);
        }
        state.0.write_all(line)?;
        state.1 += line.len() as u64;
        drop(state);
        self.appended.notify_waiters();
        Ok(())
    }

    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// Woken after each line written.
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    crate::core::fsutil::make_private(path)?;
    Ok(file)
}
