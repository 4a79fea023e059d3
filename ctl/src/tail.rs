//! Reading gatewayd's JSONL log file directly, for when the daemon cannot serve it: the last lines,
//! and following it across rotations (`tail -F`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const BLOCK: u64 = 64 * 1024;

/// The last `n` complete lines of `path`, and the offset just after them. A trailing line without
/// its newline is still being written: it is left for a follower to pick up.
pub fn last_lines(path: &Path, n: usize) -> io::Result<(Vec<String>, u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // Read backwards until the buffer holds n + 1 newlines (n lines and the end of the one
    // before them) or the start of the file.
    let mut start = len;
    let mut buf = Vec::new();
    while start > 0 && buf.iter().filter(|&&b| b == b'\n').count() <= n {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
        start = from;
    }
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let end = start + complete as u64;
    let mut lines: Vec<String> = split_lines(&buf[..complete]);
    if start > 0 && !lines.is_empty() {
        // The first piece began mid-line.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok((lines.split_off(skip), end))
}

fn split_lines(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// New lines of a log file since the last poll.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub lines: Vec<String>,
    /// The file was rotated or truncated: these lines start over in a new file.
    pub reset: bool,
}

/// Follows a file by path: on rotation it finishes the old file, then moves to the new one.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at `offset` of the file now at `path` (which may not exist yet).
    pub fn new(path: PathBuf, offset: u64) -> Self {
        Self { path, file: None, offset, partial: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn poll(&mut self) -> io::Result<Batch> {
        let mut batch = Batch::default();
        if self.file.is_none() {
            self.file = open_if_exists(&self.path)?;
        }
        // Twice at most: the rest of a rotated file, then the start of its successor.
        for _ in 0..2 {
            let Some(file) = self.file.as_mut() else {
                break;
            };
            let meta = file.metadata()?;
            if meta.len() < self.offset {
                // Truncated in place.
                self.offset = 0;
                self.partial.clear();
                batch.reset = true;
            }
            file.seek(SeekFrom::Start(self.offset))?;
            let read = file.read_to_end(&mut self.partial)?;
            self.offset += read as u64;
            if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
                batch.lines.extend(split_lines(&self.partial[..end]));
                self.partial.drain(..=end);
            }
            let moved = match std::fs::metadata(&self.path) {
                Ok(now) => now.ino() != meta.ino() || now.dev() != meta.dev(),
                // Renamed away and not recreated yet: keep reading the old file.
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            if !moved {
                break;
            }
            if !self.partial.is_empty() {
                batch.lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                self.partial.clear();
            }
            self.file = open_if_exists(&self.path)?;
            self.offset = 0;
            batch.reset = true;
        }
        Ok(batch)
    }
}

fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn last_lines_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, format!("{text}partial")).unwrap();
        let (lines, end) = last_lines(&path, 3).unwrap();
        assert_eq!(lines, ["line 19997", "line 19998", "line 19999"]);
        assert_eq!(end, text.len() as u64);
        let (all, _) = last_lines(&path, 1_000_000).unwrap();
        assert_eq!(all.len(), 20_000);
        assert_eq!(all[0], "line 0");
        fs::write(&path, "").unwrap();
        assert_eq!(last_lines(&path, 5).unwrap(), (vec![], 0));
    }

    #[test]
    fn follows_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut f = Follower::new(path.clone(), 0);
        assert_eq!(f.poll().unwrap(), Batch::default());
        append(&path, "a\nb");
        assert_eq!(f.poll().unwrap().lines, ["a"]);
        append(&path, "\nc\n");
        assert_eq!(f.poll().unwrap().lines, ["b", "c"]);
        // Rotation by rename: the old file's last line, then the new file's.
        append(&path, "d\n");
        fs::rename(&path, dir.path().join("log.1")).unwrap();
        append(&path, "e\n");
        let batch = f.poll().unwrap();
        assert_eq!(batch.lines, ["d", "e"]);
        assert!(batch.reset);
        append(&path, "a longer line\n");
        assert_eq!(f.poll().unwrap().lines, ["a longer line"]);
        // Truncation in place: noticed when the file is shorter than the offset.
        fs::write(&path, "").unwrap();
        append(&path, "f\n");
        let batch = f.poll().unwrap();
        assert_eq!((batch.lines, batch.reset), (vec!["f".to_owned()], true));
    }
}
