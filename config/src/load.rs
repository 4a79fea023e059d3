//! Reading a config file into a [`Config`], with every problem located by file, line and key.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::Path;

use gateway_proto::api::ConfigIssue;
use toml::de::{DeTable, DeValue};

use crate::schema::Config;

/// A config as read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    /// False when there is no file: the built-in defaults apply.
    pub exists: bool,
    /// The file's text, kept so that later checks can point at a key's line.
    pub text: String,
}

impl Loaded {
    /// An issue about `key`, located in this file's text when the file sets the key.
    pub fn issue_at(&self, file: &Path, key: &str, message: String) -> ConfigIssue {
        located(&self.text, file, key_span(&self.text, key), Some(key.to_owned()), message)
    }
}

impl Loaded {
    /// The dotted keys the file sets: its leaf values, and arrays of tables as a whole
    /// (`hooks.mappings`). A key absent here has its built-in default.
    pub fn set_keys(&self) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        if let Ok(table) = self.text.parse::<toml::Table>() {
            collect_keys("", &table, &mut keys);
        }
        keys
    }
}

fn collect_keys(prefix: &str, table: &toml::Table, keys: &mut BTreeSet<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => collect_keys(&key, t, keys),
            _ => {
                keys.insert(key);
            }
        }
    }
}

/// Reads `path`; a missing file means the defaults. The text must be UTF-8 (a leading byte
/// order mark is allowed); the first bad byte is located by line and column.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<ConfigIssue>> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = decode(&bytes, path)?;
            let config = parse_str(&text, path)?;
            Ok(Loaded { config, exists: true, text })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Ok(Loaded { config: Config::default(), exists: false, text: String::new() })
        }
        Err(e) => Err(vec![ConfigIssue::new(path, None, format!("cannot read the config file: {e}"))]),
    }
}

/// The file's bytes as text, or where its first byte that is not UTF-8 is.
fn decode(bytes: &[u8], file: &Path) -> Result<String, Vec<ConfigIssue>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => {
            let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to there");
            let (line, column) = line_col(good, good.len());
            let mut issue = ConfigIssue::new(
                file,
                None,
                format!(
                    "byte 0x{:02X} is not UTF-8: the file must be saved as UTF-8 (fix the character at this line and column)",
                    bytes[e.valid_up_to()]
                ),
            );
            (issue.line, issue.column) = (Some(line), Some(column));
            Err(vec![issue])
        }
    }
}

/// Parses config text; `file` is only used to name the file in issues.
pub fn parse_str(text: &str, file: &Path) -> Result<Config, Vec<ConfigIssue>> {
    let issue = |span, key, message| located(text, file, span, key, message);
    let de = toml::Deserializer::parse(text).map_err(|e| vec![issue(e.span(), None, tidy(e.message()))])?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = (path != ".").then_some(path);
        let span = inner.span().or_else(|| key.as_deref().and_then(|k| key_span(text, k)));
        vec![issue(span, key, tidy(inner.message()))]
    })
}

/// An issue at a byte span of `text`, given as line and column.
fn located(
    text: &str,
    file: &Path,
    span: Option<Range<usize>>,
    key: Option<String>,
    message: String,
) -> ConfigIssue {
    let mut issue = ConfigIssue::new(file, key, message);
    if let Some(span) = span {
        let (line, column) = line_col(text, span.start);
        (issue.line, issue.column) = (Some(line), Some(column));
    }
    issue
}

/// toml's messages span several lines with a source excerpt; keep the first sentence, and of
/// a value it quotes only the beginning (a 4 MB string must not make a 4 MB message).
fn tidy(message: &str) -> String {
    gateway_proto::quote::shorten_quoted(message.lines().next().unwrap_or(message).trim())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, column as u32)
}

/// Where a dotted key is written in the text, if it is.
fn key_span(text: &str, dotted: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        // `jobs[2]`: the third table of an array of tables.
        let (name, index) = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            Some((name, i)) => (name, Some(i.parse::<usize>().ok()?)),
            None => (part, None),
        };
        let (key, mut value) = table.get_key_value(name)?;
        if let Some(i) = index {
            match value.get_ref() {
                DeValue::Array(items) => value = items.get(i)?,
                _ => return None,
            }
        }
        if parts.peek().is_none() {
            return Some(if index.is_some() { value.span() } else { key.span() });
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::*;
    use crate::SecretRef;

    fn err(text: &str) -> ConfigIssue {
        parse_str(text, Path::new("/etc/g.toml")).unwrap_err().remove(0)
    }

    #[test]
    fn bad_utf8_is_located_and_a_bom_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, b"[gateway]\nport = 1\nbind = \"lo\xFFopback\"\n").unwrap();
        let issue = load_file(&path).unwrap_err().remove(0);
        assert_eq!((issue.line, issue.column), (Some(3), Some(11)), "{issue}");
        assert!(issue.message.contains("0xFF") && issue.message.contains("UTF-8"), "{issue}");
        std::fs::write(&path, b"\xEF\xBB\xBF[gateway]\nport = 19999\n").unwrap();
        assert_eq!(load_file(&path).unwrap().config.gateway.port.map(|p| p.port()), Some(19999));
    }

    #[test]
    fn a_huge_value_is_quoted_short() {
        let text = format!("[gateway.heartbeat]\ninterval_ms = \"{}\"\n", "9".repeat(4_000_000));
        let issue = err(&text);
        assert!(issue.message.len() < 300, "{} bytes: {}", issue.message.len(), &issue.message[..300]);
        assert_eq!(issue.key.as_deref(), Some("gateway.heartbeat.interval_ms"));
    }

    #[test]
    fn the_keys_a_file_sets_are_listed() {
        let loaded = Loaded {
            config: Config::default(),
            exists: true,
            text: "[gateway]\nport = 1\n[gateway.heartbeat]\ninterval_ms = 9000\n[[hooks.mappings]]\nname = \"a\"\n".into(),
        };
        let keys: Vec<String> = loaded.set_keys().into_iter().collect();
        assert_eq!(keys, ["gateway.heartbeat.interval_ms", "gateway.port", "hooks.mappings"]);
    }

    #[test]
    fn empty_text_is_the_defaults() {
        assert_eq!(parse_str("", Path::new("x")).unwrap(), Config::default());
    }

    #[test]
    fn a_quoted_port_asks_for_a_port_number() {
        let e = err("[gateway]\nport = \"18790\"\n");
        assert_eq!(e.key.as_deref(), Some("gateway.port"), "{e}");
        assert_eq!(
            e.message,
            "expected a port number 1-65535, not the string \"18790\": write 18790 without quotes"
        );
        let e = err("[gateway]\nport = 0\n");
        assert_eq!(e.message, "0 is out of range: use a port number 1-65535");
        let e = err("[gateway.heartbeat]\ninterval_ms = 1.5\n");
        assert!(e.message.contains("expected a whole number from"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = err("[gateway]\nport = 1234\nprot = 5\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key.as_deref(), Some("gateway.prot"), "{e}");
        assert!(e.message.contains("unknown field"), "{e}");
        assert!(e.to_string().starts_with("/etc/g.toml:3:1: key `gateway.prot`"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = err("[gateway]\n\n[gateway.reload]\nmode = \"sometimes\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("gateway.reload.mode")), "{e}");
        let e = err("[gateway]\nport = 0\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("gateway.port")), "{e}");
        assert!(e.message.contains("a port number 1-65535"), "{e}");
        let e = err("[gateway]\nbind = \"moon\"\n");
        assert_eq!(e.key.as_deref(), Some("gateway.bind"), "{e}");
        assert!(e.message.contains("loopback"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = err("[gateway]\nport = 18789\n[logging\n");
        assert_eq!(e.line, Some(3), "{e}");
        let e = err("[gateway]\nport = \"unterminated\n");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn values_parse() {
        let c = parse_str(
            "[gateway]\nbind = \"10.0.0.5\"\nport = 9\n[gateway.auth]\ntoken = \"env:T\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.gateway.bind, Bind::Addr("10.0.0.5".parse().unwrap()));
        assert_eq!(c.gateway.port.map(Port::port), Some(9));
        assert_eq!(c.gateway.auth.token, Some(SecretRef::Env("T".into())));
    }

    #[test]
    fn issue_at_finds_keys() {
        let text = "[gateway]\nmode = \"remote\"\n";
        let loaded = Loaded { config: Config::default(), exists: true, text: text.into() };
        let i = loaded.issue_at(Path::new("f"), "gateway.mode", "m".into());
        assert_eq!((i.line, i.column), (Some(2), Some(1)));
        let i = loaded.issue_at(Path::new("f"), "gateway.bind", "m".into());
        assert_eq!(i.line, None);
        let text = "[[cron.jobs]]\nname = \"a\"\n\n[[cron.jobs]]\nname = \"b\"\ncron = \"x\"\n";
        let loaded = Loaded { config: Config::default(), exists: true, text: text.into() };
        let i = loaded.issue_at(Path::new("f"), "cron.jobs[1].cron", "m".into());
        assert_eq!((i.line, i.column), (Some(6), Some(1)));
    }
}
