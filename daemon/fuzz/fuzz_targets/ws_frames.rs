//! The WebSocket frame decoder (`gatewayd::api::ws::codec::Decoder`), fed in arbitrary chunk splits.
//!
//! Two modes, chosen by the first byte:
//! - raw: the rest is arbitrary bytes from a client. The decoder must never panic; every error
//!   must map to a close code the protocol uses; every message must respect the limit; and
//!   whenever it asks for more bytes, what it buffers must stay within the limit plus one
//!   frame header plus one control frame (it checks sizes before buffering payloads).
//! - frames: the rest describes a sequence of valid client frames (text split at arbitrary byte
//!   offsets, even inside a UTF-8 character, binary, pings between fragments, pongs, closes);
//!   they are encoded with `codec::client_frame` and the decoder must return exactly the
//!   messages they make, in order, whatever the chunking.

#![no_main]

use gatewayd::api::ws::codec::{
    client_frame, CodecError, Decoder, Message, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT,
};
use libfuzzer_sys::fuzz_target;

/// Longest header of a client frame: 2 + 8 (length) + 4 (mask).
const MAX_HEADER: usize = 14;
const MAX_CONTROL: usize = 125;

/// Chunk sizes from a tiny generator seeded by the input, so that every split point occurs.
struct Chunks {
    state: u32,
    max: usize,
}

impl Chunks {
    fn next(&mut self) -> usize {
        self.state = self.state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (self.state >> 16) as usize % self.max
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let chunks = Chunks {
        state: u32::from(data[1]) << 8 | u32::from(data[2]),
        max: [1, 3, 16, 200, 5000][usize::from(data[1]) % 5],
    };
    if data[0] & 0x80 == 0 {
        raw(data[0], chunks, &data[3..]);
    } else {
        frames(chunks, &data[3..]);
    }
});

fn raw(selector: u8, mut chunks: Chunks, bytes: &[u8]) {
    let limit = [0, 1, 125, 126, 1024, 65_536, 1 << 20][usize::from(selector) % 7];
    let mut decoder = Decoder::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunks.next().min(rest.len()));
        rest = tail;
        decoder.feed(chunk);
        loop {
            match decoder.next(limit) {
                Ok(Some(message)) => check_message(&message, limit),
                Ok(None) => break,
                Err(e) => {
                    check_error(&e);
                    return;
                }
            }
        }
        assert!(
            decoder.buffered() <= limit + MAX_HEADER + MAX_CONTROL,
            "buffered {} bytes with a limit of {limit}",
            decoder.buffered()
        );
        decoder.release();
    }
}

fn check_message(message: &Message, limit: usize) {
    match message {
        Message::Text(t) => assert!(t.len() <= limit, "text of {} over {limit}", t.len()),
        Message::Binary(b) => assert!(b.len() <= limit, "binary of {} over {limit}", b.len()),
        Message::Ping(p) => assert!(p.len() <= MAX_CONTROL),
        Message::Pong => {}
        Message::Close(Some((_, reason))) => assert!(reason.len() <= MAX_CONTROL - 2),
        Message::Close(None) => {}
    }
}

fn check_error(e: &CodecError) {
    assert!(matches!(e.close_code(), 1002 | 1007 | 1009), "{e:?}");
    assert!(!e.reason().is_empty());
    // A close frame carrying the reason must fit a control frame.
    assert!(gatewayd::api::ws::codec::close(e.close_code(), &e.reason()).size() <= 2 + MAX_CONTROL);
}

/// Reads the frame description: an op byte, then lengths and payload bytes taken from the input.
struct Script<'a> {
    bytes: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head.to_vec()
    }

    fn mask(&mut self) -> [u8; 4] {
        let m = self.take(4);
        [0, 1, 2, 3].map(|i| m.get(i).copied().unwrap_or(0x5a))
    }
}

fn frames(mut chunks: Chunks, bytes: &[u8]) {
    let mut script = Script { bytes };
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    while let Some(op) = script.byte() {
        let len = usize::from(script.byte().unwrap_or(0)) * (1 + usize::from(op >> 5));
        match op % 5 {
            0 | 1 => {
                // A data message in 1-4 fragments, split at arbitrary byte offsets, with a ping
                // or pong between fragments when the op says so.
                let text = op % 5 == 0;
                let raw = script.take(len);
                let (opcode, payload, message) = if text {
                    let s = String::from_utf8_lossy(&raw).into_owned();
                    (TEXT, s.clone().into_bytes(), Message::Text(s))
                } else {
                    (BINARY, raw.clone(), Message::Binary(raw))
                };
                let pieces = 1 + usize::from(op >> 3) % 4;
                let mut cuts: Vec<usize> = (0..pieces - 1)
                    .map(|_| usize::from(script.byte().unwrap_or(0)) * payload.len() / 256)
                    .collect();
                cuts.push(0);
                cuts.push(payload.len());
                cuts.sort_unstable();
                for (i, pair) in cuts.windows(2).enumerate() {
                    let first = i == 0;
                    let fin = i == cuts.len() - 2;
                    let code = if first { opcode } else { CONTINUATION };
                    let mask = script.mask();
                    wire.extend(client_frame(fin, code, &payload[pair[0]..pair[1]], mask));
                    if !fin && op & 0x04 != 0 {
                        let ping = script.take(usize::from(op) % 20);
                        let mask = script.mask();
                        wire.extend(client_frame(true, PING, &ping, mask));
                        expected.push(Message::Ping(ping));
                    }
                }
                expected.push(message);
            }
            2 => {
                let payload = script.take(len.min(MAX_CONTROL));
                let mask = script.mask();
                wire.extend(client_frame(true, PING, &payload, mask));
                expected.push(Message::Ping(payload));
            }
            3 => {
                let payload = script.take(len.min(MAX_CONTROL));
                let mask = script.mask();
                wire.extend(client_frame(true, PONG, &payload, mask));
                expected.push(Message::Pong);
            }
            _ => {
                let code = u16::from_be_bytes([op, script.byte().unwrap_or(0)]);
                let reason: String =
                    script.take(len.min(MAX_CONTROL - 2)).iter().map(|b| char::from(b'a' + b % 26)).collect();
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                let mask = script.mask();
                wire.extend(client_frame(true, CLOSE, &payload, mask));
                expected.push(Message::Close(Some((code, reason))));
            }
        }
    }

    let limit = 1 << 20;
    let mut decoder = Decoder::default();
    let mut got = Vec::new();
    let mut rest = wire.as_slice();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunks.next().min(rest.len()));
        rest = tail;
        decoder.feed(chunk);
        while let Some(message) =
            decoder.next(limit).unwrap_or_else(|e| panic!("valid frames refused: {e:?}"))
        {
            got.push(message);
        }
        decoder.release();
    }
    assert_eq!(decoder.buffered(), 0, "bytes left over after whole frames");
    assert_eq!(got, expected);
}
