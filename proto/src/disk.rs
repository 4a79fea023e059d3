//! How full the filesystem holding a path is, for health checks, `status --deep`, `doctor`
//! and the start-up error of a full disk.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Below this much free space a filesystem counts as full: SQLite needs room for its WAL and
/// a commit of a few pages.
pub const FULL_BELOW_BYTES: u64 = 1024 * 1024;

/// The filesystem that holds a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    /// Where that filesystem is mounted.
    pub mount: PathBuf,
    /// Bytes an unprivileged process may still write.
    pub free_bytes: u64,
}

impl Space {
    pub fn of(path: &Path) -> io::Result<Self> {
        let stat = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let free_bytes = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        Ok(Self { mount: mount_point(path)?, free_bytes })
    }

    pub fn full(&self) -> bool {
        self.free_bytes < FULL_BELOW_BYTES
    }

    /// `disk full on /var (12 KB free)`.
    pub fn describe(&self) -> String {
        format!("disk full on {} ({} free)", self.mount.display(), human_bytes(self.free_bytes))
    }
}

/// The mount point of `path`: the highest ancestor on the same device.
fn mount_point(path: &Path) -> io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    let dev = std::fs::metadata(&path)?.dev();
    let mut mount = path.clone();
    for parent in path.ancestors().skip(1) {
        match std::fs::metadata(parent) {
            Ok(m) if m.dev() == dev => mount = parent.to_path_buf(),
            _ => break,
        }
    }
    Ok(mount)
}

/// Whether a write failed because the disk (or the user's quota) is full.
pub fn is_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT)
}

/// Bytes for people: `512 B`, `12 KB`, `3.4 MB`, `1.2 GB` (powers of 1000).
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{} KB", bytes / 1_000),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.1} GB", bytes as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_on_a_mounted_filesystem_with_some_space() {
        let dir = std::env::temp_dir();
        let space = Space::of(&dir).unwrap();
        assert!(dir.starts_with(&space.mount), "{space:?}");
        assert!(space.mount.is_absolute());
        assert!(is_full(&io::Error::from_raw_os_error(nix::libc::ENOSPC)));
        assert!(!is_full(&io::Error::from_raw_os_error(nix::libc::EACCES)));
        assert_eq!(human_bytes(12_345), "12 KB");
        assert_eq!(
            Space { mount: "/var".into(), free_bytes: 4096 }.describe(),
            "disk full on /var (4 KB free)"
        );
    }
}
