//! tt-ai: the one way services talk to language models, so that reliability, quotas and cost
//! are solved once.
//!
//! Layout: `chat.rs` is the chat interface (a request with the mentor's persona, the learner's
//! view and retrieved material; a stream of deltas ending in one completion with its usage),
//! `embed.rs` the embeddings interface, `offline.rs` the embedded default (deterministic replies
//! labelled as not a language model, a lexical embedder), `openai.rs` any OpenAI-compatible
//! endpoint (streamed chat completions, embeddings), `reliable.rs` the one retry loop (backoff,
//! breakers, fallback chain, deadline), `quota.rs` per-user quotas in the shared cache,
//! `models.rs` prices, context windows and tiers (cost per call, choosing a model), `safety.rs`
//! redaction and moderation before anything leaves, `tokens.rs` token counts (exact for
//! OpenAI's encodings, else estimated), `error.rs` what can go wrong and whether a retry may
//! help.

pub mod chat;
pub mod config;
pub mod embed;
pub mod error;
pub mod governed;
mod http;
pub mod manus;
pub mod models;
pub mod offline;
pub mod openai;
pub mod quota;
pub mod reliable;
pub mod safety;
pub mod tokens;

pub use chat::{
    ChatEvent, ChatProvider, ChatRequest, ChatStream, Completion, FinishReason, Material, Message, Persona,
    Role, Usage, complete,
};
pub use config::{AiArgs, Opening};
pub use embed::{Embedder, cosine};
pub use error::AiError;
pub use governed::{Ai, AiCall, AiParts, CALL_ATTRIBUTES, GovernedStream, OutboxReport, Report};
pub use models::{ModelInfo, Models, Needs, Tier};
pub use offline::{LexicalEmbedder, OfflineChat};
pub use openai::{OpenAiCompatible, OpenAiConfig, OpenAiEmbedder, OpenAiModerator};
pub use quota::{IdentityLimits, Limits, QuotaError, QuotaPolicy, Quotas, Reservation};
pub use reliable::{Breaker, BreakerPolicy, Reliable, ReliableEmbedder, RetryPolicy};
pub use safety::{Moderator, Redacted, Redaction, TermList, Verdict};

/// FNV-1a, 64 bits: a hash that is the same in every process and on every machine (the
/// standard library's is randomly keyed), for deterministic choices and feature hashing.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
