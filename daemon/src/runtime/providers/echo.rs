//! The built-in echo model: no network, no configuration, deterministic. It streams the last
//! user message back in a few chunks, so every API can be tried (and tested) out of the box.

use super::{Deltas, ModelCall, Reply};
use crate::runtime::agent::{FinishReason, Message, Role, Usage};

/// How it describes itself in `models.list`.
pub const DESCRIPTION: &str = "built-in echo model: streams the last user message back (no upstream)";

/// Chunks per reply (fewer for short messages).
const CHUNKS: usize = 3;

pub async fn call(request: ModelCall, deltas: &mut Deltas<'_>) -> Reply {
    let text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    for chunk in chunks(&text) {
        deltas.send(chunk).await;
    }
    let input_tokens = request.messages.iter().map(|m| words(&m.content)).sum();
    Reply {
        usage: Usage { input_tokens, output_tokens: words(&text) },
        message: Message::new(Role::Assistant, text),
        finish_reason: FinishReason::Stop,
    }
}

/// The text cut at word boundaries into up to [`CHUNKS`] pieces that join back to it.
pub fn chunks(text: &str) -> Vec<&str> {
    let pieces: Vec<&str> = text.split_inclusive(' ').collect();
    let per = pieces.len().div_ceil(CHUNKS).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for group in pieces.chunks(per) {
        let len: usize = group.iter().map(|p| p.len()).sum();
        out.push(&text[start..start + len]);
        start += len;
    }
    out
}

/// A rough token count: words.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_join_back_to_the_text() {
        for text in ["", "one", "one two", "the quick brown fox jumps over the lazy dog", "  spaced  out "] {
            let c = chunks(text);
            assert_eq!(c.concat(), text);
            assert!(c.len() <= CHUNKS);
        }
        assert_eq!(chunks("a b c d e f").len(), 3);
    }
}
