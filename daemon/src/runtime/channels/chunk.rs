//! Cutting a reply to a network's message size: on a paragraph break if one fits, else a line
//! break, else the end of a sentence, else a space, else wherever the limit falls (never inside
//! a character). Pieces are trimmed; empty ones are dropped.

/// Pieces of `text`, each at most `limit` bytes.
pub fn chunks(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(4);
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.len() <= limit {
            out.push(rest.to_owned());
            break;
        }
        let cut = split_point(rest, limit);
        let piece = rest[..cut].trim_end();
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    out
}

/// Where to cut `text` (longer than `limit`): just after the best boundary within the limit.
fn split_point(text: &str, limit: usize) -> usize {
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let window = &text[..end];
    // A boundary in the first quarter would leave tiny pieces: cut at the limit instead.
    let far_enough = |at: usize| at > limit / 4;
    for boundary in ["\n\n", "\n"] {
        if let Some(at) = window.rfind(boundary).filter(|a| far_enough(*a)) {
            return at + boundary.len();
        }
    }
    let sentence = [". ", "! ", "? ", "; "].iter().filter_map(|b| window.rfind(b).map(|a| a + 1)).max();
    if let Some(at) = sentence.filter(|a| far_enough(*a)) {
        return at;
    }
    if let Some(at) = window.rfind(' ').filter(|a| far_enough(*a)) {
        return at + 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_one_piece() {
        assert_eq!(chunks("  hello  ", 100), ["hello"]);
        assert!(chunks("   ", 100).is_empty());
    }

    #[test]
    fn paragraphs_then_sentences_then_words_are_kept_whole() {
        let text = "First paragraph here.\n\nSecond one, a little longer than the first.";
        assert_eq!(
            chunks(text, 50),
            ["First paragraph here.", "Second one, a little longer than the first."]
        );
        let sentences = "One sentence. Two sentences here. Three of them now.";
        assert_eq!(chunks(sentences, 35), ["One sentence. Two sentences here.", "Three of them now."]);
        let words = "alpha beta gamma delta epsilon zeta eta theta";
        for piece in chunks(words, 12) {
            assert!(piece.len() <= 12 && !piece.starts_with(' ') && !piece.ends_with(' '), "{piece:?}");
        }
        assert_eq!(chunks(words, 12).join(" "), words);
    }

    #[test]
    fn a_long_word_is_cut_at_a_character_boundary() {
        let text = "é".repeat(20); // 40 bytes
        let pieces = chunks(&text, 9);
        assert!(pieces.iter().all(|p| p.len() <= 9));
        assert_eq!(pieces.concat(), text);
    }
}
