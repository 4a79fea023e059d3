//! A small filesystem to fill: a tmpfs mounted on a temp dir (root only), and a filler.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// A tmpfs of `size` mounted on a temp dir, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it; needs root.
    pub fn mount(size: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .context("run mount")?;
        ensure!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the filesystem holding `dir` until a write fails; returns the file that did it.
pub fn fill(dir: &Path) -> Result<PathBuf> {
    let file = dir.join("filler");
    let mut f = std::fs::File::create(&file)?;
    let chunk = vec![7u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    Ok(file)
}
