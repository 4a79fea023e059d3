//! Server-sent events as upstream APIs stream them: `event:` and `data:` lines, events separated
//! by a blank line, CRLF or LF line ends.

/// The most an unfinished event may hold: an upstream that never ends an event must not grow
/// the gateway's memory without bound. Streamed events are deltas, far smaller.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no event end.
    scanned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

impl Parser {
    /// Adds bytes and returns the events they completed; an error when an unfinished event
    /// grew past [`MAX_EVENT_BYTES`].
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, String> {
        self.buf.extend(bytes.iter().copied().filter(|&b| b != b'\r'));
        let mut events = Vec::new();
        while let Some(at) = self.buf[self.scanned..].windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..self.scanned + at + 2).collect();
            self.scanned = 0;
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        // The last byte may be the first of an event end.
        self.scanned = self.buf.len().saturating_sub(1);
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "a streamed event grew past {} MiB without ending; the upstream does not speak server-sent events as expected",
                MAX_EVENT_BYTES >> 20
            ));
        }
        Ok(events)
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
        assert!(p.feed(b"event: message_start\r\ndata: {\"a\"").unwrap().is_empty());
        assert!(p.feed(b":1}\n").unwrap().is_empty());
        let e = p.feed(b"\r\n: keepalive\n\ndata: [DONE]\n\n").unwrap();
        assert_eq!(
            e,
            [
                Event { event: Some("message_start".into()), data: "{\"a\":1}".into() },
                Event { event: None, data: "[DONE]".into() }
            ]
        );
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn an_event_that_never_ends_is_refused_not_buffered() {
        let mut p = Parser::default();
        let line = vec![b'x'; 64 << 10];
        let mut fed = 0;
        let error = loop {
            match p.feed(&line) {
                Ok(events) => assert!(events.is_empty()),
                Err(e) => break e,
            }
            fed += line.len();
            assert!(fed <= MAX_EVENT_BYTES, "still buffering after {fed} bytes");
        };
        assert!(error.contains("without ending"), "{error}");
    }
}
