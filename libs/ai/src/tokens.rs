//! Token estimates for budgets and context windows.
//!
//! An estimate, not a tokenizer: the larger of one token per four characters and four tokens per
//! three words, the usual ratios of OpenAI's English tokenizers, so prose and code-like text
//! (long words, symbols) are both covered from above. Chat formatting adds a few tokens per
//! message. Quotas reserve by this estimate and settle with the provider's reported usage.

use crate::chat::Message;

/// Tokens each message adds for its role and separators in chat formats.
const PER_MESSAGE: u32 = 4;
/// Tokens that prime the reply.
const PER_REPLY: u32 = 3;

/// The estimated tokens of `text`.
pub fn estimate(text: &str) -> u32 {
    let chars = text.chars().count();
    let words = text.split_whitespace().count();
    let by_chars = chars.div_ceil(4);
    let by_words = (words * 4).div_ceil(3);
    u32::try_from(by_chars.max(by_words)).unwrap_or(u32::MAX)
}

/// The estimated prompt tokens of `messages`.
pub fn estimate_messages(messages: &[Message]) -> u32 {
    messages.iter().fold(PER_REPLY, |n, m| n.saturating_add(PER_MESSAGE).saturating_add(estimate(&m.content)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_grow_with_the_text_and_cover_both_ratios() {
        assert_eq!(estimate(""), 0);
        assert_eq!(estimate("abcd"), 2, "a lone word errs high: 4/3 of a token, rounded up");
        assert_eq!(estimate("a b c"), 4, "short words count by words");
        assert_eq!(estimate(&"x".repeat(400)), 100, "one long word counts by characters");
        assert!(estimate("one two three four") < estimate("one two three four five six"));
        let messages = [Message::system("be brief"), Message::user("hello there")];
        assert_eq!(estimate_messages(&messages), 3 + 4 + 3 + 4 + 3);
    }
}
