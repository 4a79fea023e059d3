//! Reading the JSONL log by byte cursor, for `GET /v1/logs` (and `gatewayctl logs --follow`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use gateway_proto::api::LogTail;

pub const DEFAULT_LINES: usize = 100;
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024;

/// With no cursor: the last `lines` lines. With a cursor: the lines after it, at most
/// `max_bytes` of them; a cursor past the end means the file was rotated, so start over.
pub fn read(path: &Path, cursor: Option<u64>, lines: usize, max_bytes: u64) -> io::Result<LogTail> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(empty(path, 0, cursor.is_some_and(|c| c > 0)))
        }
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let (start, reset) = match cursor {
        Some(c) if c <= size => (c, false),
        Some(_) => (0, true),
        None => (size.saturating_sub(max_bytes), false),
    };
    let len = (size - start).min(max_bytes);
    let mut buf = vec![0; len as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut buf)?;
    // Only whole lines: drop a partial last line, and when reading a tail a partial first one.
    let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let begin = if cursor.is_none() && start > 0 {
        buf[..end].iter().position(|&b| b == b'\n').map_or(end, |i| i + 1)
    } else {
        0
    };
    let text = String::from_utf8_lossy(&buf[begin..end]);
    let mut all: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut truncated = start + (end as u64) < size;
    if cursor.is_none() && all.len() > lines {
        all.drain(..all.len() - lines);
        truncated = true;
    }
    Ok(LogTail {
        file: path.display().to_string(),
        cursor: start + end as u64,
        size,
        lines: all,
        truncated,
        reset,
    })
}

fn empty(path: &Path, size: u64, reset: bool) -> LogTail {
    LogTail { file: path.display().to_string(), cursor: 0, size, lines: Vec::new(), truncated: false, reset }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_and_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "a\nb\nc\npartial").unwrap();
        let tail = read(&path, None, 2, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(tail.lines, ["b", "c"]);
        assert!(tail.truncated);
        assert_eq!(tail.cursor, 6);
        std::fs::write(&path, "a\nb\nc\npartial done\nd\n").unwrap();
        let next = read(&path, Some(tail.cursor), 100, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(next.lines, ["partial done", "d"]);
        let rotated = read(&path, Some(10_000), 100, DEFAULT_MAX_BYTES).unwrap();
        assert!(rotated.reset);
        assert_eq!(rotated.lines.len(), 5);
    }

    #[test]
    fn byte_limit_returns_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "0123456789\nabc\n").unwrap();
        let part = read(&path, Some(0), 100, 12).unwrap();
        assert_eq!(part.lines, ["0123456789"]);
        assert!(part.truncated);
        let tail = read(&path, None, 100, 6).unwrap();
        assert_eq!(tail.lines, ["abc"]);
    }
}
