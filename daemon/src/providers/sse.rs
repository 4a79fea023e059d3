//! Server-sent events as upstream APIs stream them: `event:` and `data:` lines, events separated
//! by a blank line, CRLF or LF line ends.

#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Parser {
    /// Adds bytes and returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend(bytes.iter().copied().filter(|&b| b != b'\r'));
        let mut events = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        events
    }

    /// Bytes of an unfinished event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn parse_block(block: &str) -> Option<Event> {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {} // comments (":" lines), id, retry
        }
    }
    (!data.is_empty()).then(|| Event { event, data: data.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_and_line_ends() {
        let mut p = Parser::default();
        assert!(p.feed(b"event: message_start\r\ndata: {\"a\"").is_empty());
        let e = p.feed(b":1}\r\n\r\n: keepalive\n\ndata: [DONE]\n\n");
        assert_eq!(
            e,
            [
                Event { event: Some("message_start".into()), data: "{\"a\":1}".into() },
                Event { event: None, data: "[DONE]".into() }
            ]
        );
        assert_eq!(p.pending(), 0);
    }
}
