//! WebSocket framing, server side (RFC 6455): an incremental decoder that checks sizes from the
//! frame header before buffering any payload, and an encoder for unmasked server frames.
//! Pure code with no I/O, so it can be fuzzed on its own.

/// Why the connection must close, with the close code to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// 1002: the peer broke the framing rules.
    Protocol(&'static str),
    /// 1009: a message over the current limit.
    TooBig { limit: usize },
    /// 1007: a text message that is not UTF-8.
    InvalidUtf8,
}

impl CodecError {
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::TooBig { .. } => 1009,
            Self::InvalidUtf8 => 1007,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Self::Protocol(why) => format!("protocol error: {why}"),
            Self::TooBig { limit } => format!("message too big: the limit is {limit} bytes"),
            Self::InvalidUtf8 => "text message is not valid UTF-8".into(),
        }
    }
}

/// A whole message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The peer's close code and reason, if it sent them.
    Close(Option<(u16, String)>),
}

/// Frame opcodes (RFC 6455 section 5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Turns bytes from the socket into messages. Holds no allocation while idle.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// A fragmented message in progress: its opcode and the payload so far.
    partial: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Buffered bytes not yet decoded, plus a fragmented message's payload so far.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.partial.as_ref().map_or(0, |(_, p)| p.len())
    }

    /// Gives memory back once everything buffered has been decoded.
    pub fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
    }

    /// The next whole message, if the buffer holds one. `max_message` applies to the whole
    /// message, fragments included, and is checked before the payload is buffered.
    pub fn next(&mut self, max_message: usize) -> Result<Option<Message>, CodecError> {
        loop {
            let Some(header) = parse_header(&self.buf)? else {
                return Ok(None);
            };
            let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len());
            let is_control = header.opcode >= CLOSE;
            if !is_control && so_far as u64 + header.len > max_message as u64 {
                return Err(CodecError::TooBig { limit: max_message });
            }
            let total = header.header_len as u64 + header.len;
            if (self.buf.len() as u64) < total {
                return Ok(None);
            }
            let total = total as usize;
            let mut payload = self.buf[header.header_len..total].to_vec();
            self.buf.drain(..total);
            unmask(&mut payload, header.mask);
            if let Some(message) = self.assemble(header.fin, header.opcode, payload)? {
                return Ok(Some(message));
            }
        }
    }

    fn assemble(&mut self, fin: bool, opcode: u8, payload: Vec<u8>) -> Result<Option<Message>, CodecError> {
        match opcode {
            CLOSE => Ok(Some(Message::Close(parse_close(&payload)?))),
            PING => Ok(Some(Message::Ping(payload))),
            PONG => Ok(Some(Message::Pong)),
            TEXT | BINARY => {
                if self.partial.is_some() {
                    return Err(CodecError::Protocol("a new message began inside a fragmented one"));
                }
                if fin {
                    return finish(opcode, payload).map(Some);
                }
                self.partial = Some((opcode, payload));
                Ok(None)
            }
            CONTINUATION => {
                let Some((first, mut so_far)) = self.partial.take() else {
                    return Err(CodecError::Protocol("continuation frame without a message to continue"));
                };
                so_far.extend_from_slice(&payload);
                if fin {
                    finish(first, so_far).map(Some)
                } else {
                    self.partial = Some((first, so_far));
                    Ok(None)
                }
            }
            _ => Err(CodecError::Protocol("unknown opcode")),
        }
    }
}

fn finish(opcode: u8, payload: Vec<u8>) -> Result<Message, CodecError> {
    if opcode == TEXT {
        String::from_utf8(payload).map(Message::Text).map_err(|_| CodecError::InvalidUtf8)
    } else {
        Ok(Message::Binary(payload))
    }
}

fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, CodecError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(CodecError::Protocol("close frame with a one-byte payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| CodecError::InvalidUtf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    header_len: usize,
}

/// The header at the start of `buf`, or `None` if more bytes are needed.
fn parse_header(buf: &[u8]) -> Result<Option<Header>, CodecError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(CodecError::Protocol("reserved bits set without a negotiated extension"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if b1 & 0x80 == 0 {
        return Err(CodecError::Protocol("client frames must be masked"));
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(CodecError::Protocol("payload length with the high bit set"));
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode >= CLOSE && (len > 125 || !fin) {
        return Err(CodecError::Protocol("control frames must be whole and at most 125 bytes"));
    }
    if buf.len() < at + 4 {
        return Ok(None);
    }
    let mask = buf[at..at + 4].try_into().expect("4 bytes");
    at += 4;
    Ok(Some(Header { fin, opcode, mask, len, header_len: at }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// The longest header of a server frame (unmasked): two bytes and a 64-bit length.
const MAX_HEADER: usize = 10;

/// The header of an unmasked, final server frame with `len` payload bytes, and its length.
fn header(opcode: u8, len: usize) -> ([u8; MAX_HEADER], usize) {
    let mut header = [0u8; MAX_HEADER];
    header[0] = 0x80 | opcode;
    let used = match len {
        n if n < 126 => {
            header[1] = n as u8;
            2
        }
        n if n <= 0xFFFF => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        n => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        }
    };
    (header, used)
}

/// One unmasked server frame.
pub fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    OutFrame::build(opcode, payload.len(), |out| out.extend_from_slice(payload)).bytes().to_vec()
}

/// A server frame ready to send, built in place: the payload is written after room for the
/// longest header and the header goes just before it, so a payload is never copied.
pub struct OutFrame {
    buf: Vec<u8>,
    start: usize,
}

impl OutFrame {
    /// A frame whose payload `write` appends; `capacity` is the payload's expected length, so
    /// that the buffer is allocated once.
    pub fn build(opcode: u8, capacity: usize, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        let mut buf = Vec::with_capacity(MAX_HEADER + capacity);
        buf.resize(MAX_HEADER, 0);
        write(&mut buf);
        let (header, used) = header(opcode, buf.len() - MAX_HEADER);
        let start = MAX_HEADER - used;
        buf[start..MAX_HEADER].copy_from_slice(&header[..used]);
        Self { buf, start }
    }

    /// Bytes sent as they are, outside any frame (the upgrade's response head).
    pub fn unframed(bytes: Vec<u8>) -> Self {
        Self { buf: bytes, start: 0 }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Its length on the wire.
    pub fn size(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// A text frame whose payload `write` appends, about `capacity` bytes long.
pub fn text(capacity: usize, write: impl FnOnce(&mut Vec<u8>)) -> OutFrame {
    OutFrame::build(TEXT, capacity, write)
}

pub fn pong(payload: &[u8]) -> OutFrame {
    OutFrame::build(PONG, payload.len(), |out| out.extend_from_slice(payload))
}

/// A close frame; the reason is cut to fit the 125-byte control frame limit.
pub fn close(code: u16, reason: &str) -> OutFrame {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    OutFrame::build(CLOSE, 2 + cut, |out| {
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&reason.as_bytes()[..cut]);
    })
}

/// A masked client frame, for tests and fuzzing.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = encode(opcode, payload);
    if !fin {
        frame[0] &= 0x7F;
    }
    let header_len = frame.len() - payload.len();
    frame[1] |= 0x80;
    let mut masked = payload.to_vec();
    unmask(&mut masked, mask);
    frame.truncate(header_len);
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(&masked);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 4] = [1, 2, 3, 4];

    fn decode_all(bytes: &[u8], max: usize) -> Result<Vec<Message>, CodecError> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        // Byte by byte: every split point of the stream must work.
        for b in bytes {
            d.feed(std::slice::from_ref(b));
            while let Some(m) = d.next(max)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    #[test]
    fn text_of_every_length_class() {
        for len in [0, 5, 125, 126, 65_535, 65_536, 70_000] {
            let body = "x".repeat(len);
            let msgs = decode_all(&client_frame(true, TEXT, body.as_bytes(), M), 1 << 20).unwrap();
            assert_eq!(msgs, [Message::Text(body)], "{len}");
        }
    }

    #[test]
    fn fragments_with_control_frames_between() {
        let mut bytes = client_frame(false, TEXT, b"hel", M);
        bytes.extend(client_frame(true, PING, b"p", M));
        bytes.extend(client_frame(true, CONTINUATION, b"lo", M));
        let msgs = decode_all(&bytes, 100).unwrap();
        assert_eq!(msgs, [Message::Ping(b"p".to_vec()), Message::Text("hello".into())]);
    }

    #[test]
    fn limits_apply_before_the_payload_arrives() {
        let mut d = Decoder::default();
        // Only the header of a 1 MiB frame: refused at once.
        let frame = client_frame(true, TEXT, &vec![b'a'; 1 << 20], M);
        d.feed(&frame[..14]);
        assert_eq!(d.next(65_536), Err(CodecError::TooBig { limit: 65_536 }));
        // Fragments add up.
        let mut bytes = client_frame(false, TEXT, &[b'a'; 60], M);
        bytes.extend(client_frame(true, CONTINUATION, &[b'a'; 60], M));
        assert_eq!(decode_all(&bytes, 100), Err(CodecError::TooBig { limit: 100 }));
    }

    #[test]
    fn framing_violations_are_protocol_errors() {
        let unmasked = encode(TEXT, b"hi");
        assert!(matches!(decode_all(&unmasked, 100), Err(CodecError::Protocol(_))));
        let mut rsv = client_frame(true, TEXT, b"hi", M);
        rsv[0] |= 0x40;
        assert!(matches!(decode_all(&rsv, 100), Err(CodecError::Protocol(_))));
        let cont = client_frame(true, CONTINUATION, b"hi", M);
        assert!(matches!(decode_all(&cont, 100), Err(CodecError::Protocol(_))));
        let long_ping = client_frame(true, PING, &[0; 126], M);
        assert!(matches!(decode_all(&long_ping, 1000), Err(CodecError::Protocol(_))));
        let mut two = client_frame(false, TEXT, b"a", M);
        two.extend(client_frame(true, TEXT, b"b", M));
        assert!(matches!(decode_all(&two, 100), Err(CodecError::Protocol(_))));
        let bad = client_frame(true, TEXT, &[0xff, 0xfe], M);
        assert_eq!(decode_all(&bad, 100), Err(CodecError::InvalidUtf8));
        let op = client_frame(true, 0x3, b"", M);
        assert!(matches!(decode_all(&op, 100), Err(CodecError::Protocol(_))));
    }

    #[test]
    fn close_frames() {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let msgs = decode_all(&client_frame(true, CLOSE, &payload, M), 100).unwrap();
        assert_eq!(msgs, [Message::Close(Some((1000, "bye".into())))]);
        let encoded = close(1009, &"é".repeat(100));
        assert!(encoded.size() <= 127 && encoded.bytes()[1] as usize <= 125);
        assert_eq!(encoded.bytes()[..4], [0x88, encoded.size() as u8 - 2, 0x03, 0xF1]);
    }

    #[test]
    fn server_frames_of_every_length_class() {
        for (len, header) in [(0, &[0x81, 0][..]), (125, &[0x81, 125]), (126, &[0x81, 126, 0, 126])] {
            let frame = text(0, |out| out.extend(std::iter::repeat_n(b'x', len)));
            assert_eq!(&frame.bytes()[..header.len()], header, "{len}");
            assert_eq!(frame.size(), header.len() + len);
        }
        let big = text(0, |out| out.resize(out.len() + 70_000, b'x'));
        assert_eq!(big.bytes()[..10], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(big.size(), 70_010);
    }

    #[test]
    fn idle_decoder_holds_no_memory() {
        let mut d = Decoder::default();
        d.feed(&client_frame(true, TEXT, b"hello", M));
        d.next(100).unwrap().unwrap();
        d.release();
        assert_eq!(d.buf.capacity(), 0);
    }
}
