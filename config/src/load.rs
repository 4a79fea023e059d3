//! Reading a config file into a [`Config`], with every problem located by file, line and key.

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

/// Reads `path`; a missing file means the defaults.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<ConfigIssue>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let config = parse_str(&text, path)?;
            Ok(Loaded { config, exists: true, text })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Ok(Loaded { config: Config::default(), exists: false, text: String::new() })
        }
        Err(e) => Err(vec![ConfigIssue::new(path, None, format!("cannot read the config file: {e}"))]),
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

/// toml's messages span several lines with a source excerpt; keep the first sentence.
fn tidy(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
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
        let (key, value) = table.get_key_value(part)?;
        if parts.peek().is_none() {
            return Some(key.span());
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
    fn empty_text_is_the_defaults() {
        assert_eq!(parse_str("", Path::new("x")).unwrap(), Config::default());
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
        assert!(e.message.contains("from 1 to 65535"), "{e}");
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
    }
}
