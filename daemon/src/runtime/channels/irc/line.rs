//! IRC lines (RFC 1459 / 2812, with IRCv3 message tags skipped): parsed from what the server
//! sends, and built for what we send, with CR, LF and NUL removed so a reply can never smuggle
//! a second command onto the wire.

/// One message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `nick!user@host` or a server name; empty when absent.
    pub prefix: String,
    pub command: String,
    pub params: Vec<String>,
}

impl Line {
    /// Parses one line without its CR LF; None for an empty or malformed one.
    pub fn parse(raw: &str) -> Option<Line> {
        let mut rest = raw.trim_end_matches(['\r', '\n']);
        if rest.starts_with('@') {
            rest = rest.split_once(' ')?.1.trim_start();
        }
        let mut prefix = String::new();
        if let Some(after) = rest.strip_prefix(':') {
            let (p, r) = after.split_once(' ')?;
            prefix = p.to_owned();
            rest = r.trim_start();
        }
        let (head, trailing) = match rest.split_once(" :") {
            Some((h, t)) => (h, Some(t)),
            None => (rest, None),
        };
        let mut words = head.split(' ').filter(|w| !w.is_empty());
        let command = words.next()?.to_ascii_uppercase();
        let mut params: Vec<String> = words.map(str::to_owned).collect();
        if let Some(t) = trailing {
            params.push(t.to_owned());
        }
        Some(Line { prefix, command, params })
    }

    /// The nick of the prefix (`nick!user@host`).
    pub fn nick(&self) -> &str {
        self.prefix.split(['!', '@']).next().unwrap_or("")
    }

    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

/// A command line to send: the parameters, the last one as trailing (`:`) text.
pub fn command(parts: &[&str], trailing: Option<&str>) -> String {
    let mut line: String = parts.iter().map(|p| clean(p)).collect::<Vec<_>>().join(" ");
    if let Some(t) = trailing {
        line.push_str(" :");
        line.push_str(&clean(t));
    }
    line.push_str("\r\n");
    line
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect()
}

/// True when `text` addresses `nick`: the nick as a whole word, in any case.
pub fn mentions(text: &str, nick: &str) -> bool {
    let lower = text.to_lowercase();
    let nick = nick.to_lowercase();
    lower.match_indices(&nick).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + nick.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "-_[]\\`^{}|".contains(c));
        !word(before) && !word(after)
    })
}

/// The text without a leading "nick: " or "nick, " address.
pub fn strip_address<'a>(text: &'a str, nick: &str) -> &'a str {
    let t = text.trim_start();
    if t.len() > nick.len() && t[..nick.len()].eq_ignore_ascii_case(nick) {
        let rest = &t[nick.len()..];
        if let Some(r) = rest.strip_prefix(':').or_else(|| rest.strip_prefix(',')) {
            return r.trim_start();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_prefix_params_trailing_and_tags() {
        let l = Line::parse(":alice!a@host PRIVMSG #chan :hello there :)\r\n").unwrap();
        assert_eq!(
            (l.nick(), l.command.as_str(), l.param(0), l.param(1)),
            ("alice", "PRIVMSG", "#chan", "hello there :)")
        );
        let ping = Line::parse("PING :irc.example").unwrap();
        assert_eq!((ping.command.as_str(), ping.param(0)), ("PING", "irc.example"));
        let tagged = Line::parse("@time=2026 :srv 001 bot :Welcome").unwrap();
        assert_eq!((tagged.command.as_str(), tagged.param(0)), ("001", "bot"));
        assert_eq!(Line::parse(""), None);
    }

    #[test]
    fn a_reply_cannot_inject_a_command() {
        assert_eq!(command(&["PRIVMSG", "#c"], Some("hi\r\nQUIT :bye")), "PRIVMSG #c :hiQUIT :bye\r\n");
    }

    #[test]
    fn mentions_are_whole_words_and_addresses_are_stripped() {
        assert!(mentions("mybot: hello", "MyBot"));
        assert!(mentions("hey mybot!", "mybot"));
        assert!(!mentions("mybots are great", "mybot"));
        assert_eq!(strip_address("MyBot: what time is it?", "mybot"), "what time is it?");
        assert_eq!(strip_address("hello mybot", "mybot"), "hello mybot");
    }
}
