//! Quoting what a client or a file sent, in an error message or a log line: at most a short
//! piece of it, so that a 4 MB value makes a short message that says how long the value was.

/// How many characters of a value a message quotes.
pub const MAX_QUOTED_CHARS: usize = 80;

/// `value` as a Rust-style quoted string, cut to [`MAX_QUOTED_CHARS`] characters with its full
/// length after it when longer: `"aaaa…" (4000000 bytes)`.
pub fn short(value: &str) -> String {
    match head(value) {
        None => format!("{value:?}"),
        Some(head) => format!("{head:?}… ({} bytes)", value.len()),
    }
}

/// `value` unquoted, cut like [`short`] (for messages whose wire text other clients match on,
/// such as `unknown method: NAME`).
pub fn cut(value: &str) -> String {
    match head(value) {
        None => value.to_owned(),
        Some(head) => format!("{head}… ({} bytes)", value.len()),
    }
}

/// The first [`MAX_QUOTED_CHARS`] characters of a value longer than that; None when it is not.
fn head(value: &str) -> Option<String> {
    (value.chars().count() > MAX_QUOTED_CHARS).then(|| value.chars().take(MAX_QUOTED_CHARS).collect())
}

/// Shortens every double-quoted run in `message` longer than [`MAX_QUOTED_CHARS`] (as parsers
/// print the values they reject), and the message itself to a few lines' worth.
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let close = closing_quote(after).unwrap_or(after.len());
        let inner = &after[..close];
        if inner.chars().count() > MAX_QUOTED_CHARS {
            out.extend(inner.chars().take(MAX_QUOTED_CHARS));
            out.push_str(&format!("…\" ({} bytes)", inner.len()));
        } else {
            out.push_str(inner);
            if close < after.len() {
                out.push('"');
            }
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    const MAX_MESSAGE_CHARS: usize = 400;
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    out
}

/// The byte offset of the quote that ends a quoted run (one not escaped by a backslash).
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_with_their_length() {
        assert_eq!(short("evil.example"), "\"evil.example\"");
        let long = "é".repeat(100);
        let quoted = short(&long);
        assert!(quoted.starts_with('"') && quoted.ends_with("… (200 bytes)"), "{quoted}");
        assert_eq!(quoted.chars().filter(|c| *c == 'é').count(), MAX_QUOTED_CHARS);
        assert_eq!(cut("no.such.method"), "no.such.method");
        assert!(cut(&long).ends_with("… (200 bytes)"));
    }

    #[test]
    fn quoted_runs_in_a_message_are_cut() {
        let message = format!("invalid type: string \"{}\", expected u64", "9".repeat(4_000_000));
        let short = shorten_quoted(&message);
        assert!(short.len() < 200, "{short}");
        assert!(
            short.starts_with("invalid type: string \"999")
                && short.contains("(4000000 bytes), expected u64"),
            "{short}"
        );
        assert_eq!(
            shorten_quoted("unknown field `prot`, expected \"port\""),
            "unknown field `prot`, expected \"port\""
        );
        assert_eq!(shorten_quoted("a \"b\\\"c\" d"), "a \"b\\\"c\" d");
    }
}
