//! Token counts for budgets and context windows.
//!
//! A model marked with a [`Tokenizer`] in the models table (OpenAI's o200k and cl100k encodings,
//! compiled into the binary by tiktoken-rs, nothing fetched) is counted exactly: its
//! byte-pair encoding of each message, plus the framing OpenAI documents for chat formats
//! (about three tokens a message and its role, three that prime the reply). A table is parsed on
//! first use and kept for the process (see docs/performance.md for its memory), so a process
//! that never asks such a model never loads one.
//!
//! Any other model (the offline one, open models behind vLLM or Ollama, whose tokenizers differ)
//! gets an estimate: the larger of one token per four characters and four tokens per three
//! words, the usual ratios of OpenAI's English tokenizers, so prose and code-like text (long
//! words, symbols) are both covered from above. Quotas reserve by the count and settle with the
//! provider's reported usage.

use serde::Deserialize;

use crate::chat::Message;

/// Tokens each message adds for its role and separators in chat formats.
const PER_MESSAGE: u32 = 4;
/// Tokens that prime the reply.
const PER_REPLY: u32 = 3;
/// Prompts longer than this (in bytes) are counted on a blocking thread.
const INLINE_BYTES: usize = 16 * 1024;

/// An encoding that counts a model's tokens exactly, offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// GPT-4o, GPT-4.1, GPT-5 and the o-series.
    O200kBase,
    /// GPT-4, GPT-3.5 and OpenAI's embedding models.
    Cl100kBase,
}

impl Tokenizer {
    fn bpe(self) -> &'static tiktoken_rs::CoreBPE {
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// Parses the encoding's table now on a blocking thread (in a runtime), so the first call
    /// need not wait for it.
    pub fn preload(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn_blocking(move || self.bpe()));
        }
    }

    /// The exact tokens of `text` (special-token markers in it count as ordinary text).
    pub fn count(self, text: &str) -> u32 {
        u32::try_from(self.bpe().encode_ordinary(text).len()).unwrap_or(u32::MAX)
    }

    /// The exact prompt tokens of `messages` in a chat format.
    pub fn count_messages(self, messages: &[Message]) -> u32 {
        sum_messages(messages, |text| self.count(text))
    }

    /// [`Self::count_messages`], off the async workers when the prompt is long.
    pub async fn count_messages_async(self, messages: Vec<Message>) -> u32 {
        let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
        if bytes <= INLINE_BYTES {
            return self.count_messages(&messages);
        }
        let fallback = estimate_messages(&messages);
        tokio::task::spawn_blocking(move || self.count_messages(&messages)).await.unwrap_or(fallback)
    }
}

fn sum_messages(messages: &[Message], count: impl Fn(&str) -> u32) -> u32 {
    messages.iter().fold(PER_REPLY, |n, m| n.saturating_add(PER_MESSAGE).saturating_add(count(&m.content)))
}

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
    sum_messages(messages, estimate)
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

    #[test]
    fn the_encodings_count_as_openai_publishes() {
        // Counts from OpenAI's tokenizer for these encodings.
        assert_eq!(Tokenizer::O200kBase.count("hello world"), 2);
        assert_eq!(Tokenizer::Cl100kBase.count("hello world"), 2);
        assert_eq!(Tokenizer::Cl100kBase.count("tiktoken is great!"), 6);
        assert_eq!(Tokenizer::O200kBase.count(""), 0);
        // The two encodings differ where their vocabularies do.
        let text = "Die Lernende möchte von Support zu Data Engineering wechseln.";
        assert!(Tokenizer::O200kBase.count(text) < Tokenizer::Cl100kBase.count(text));
        let messages = [Message::system("be brief"), Message::user("hello world")];
        let content = Tokenizer::O200kBase.count("be brief") + 2;
        assert_eq!(Tokenizer::O200kBase.count_messages(&messages), 3 + 4 + 4 + content);
    }

    #[test]
    fn the_estimate_is_the_safe_side_of_english_prose() {
        let prose = "A learner who moved from customer support into data engineering asked how \
                     to plan the first ninety days, which skills to practise and whom to ask.";
        assert!(estimate(prose) >= Tokenizer::O200kBase.count(prose));
    }

    #[tokio::test]
    async fn a_long_prompt_counts_the_same_off_the_workers() {
        let long = "word ".repeat(10_000);
        let messages = vec![Message::user(long)];
        let inline = Tokenizer::O200kBase.count_messages(&messages);
        assert_eq!(Tokenizer::O200kBase.count_messages_async(messages).await, inline);
        assert!(inline > 10_000, "each repeated word is a token: {inline}");
    }
}
