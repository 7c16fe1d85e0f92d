//! What a model call can fail with, and whether trying again may help.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiError {
    /// 429: the provider asks to slow down, for `retry_after` when it says.
    #[error("{provider} is rate limiting")]
    RateLimited { provider: String, retry_after: Option<Duration> },
    /// 5xx, a refused or dropped connection, a timeout before any byte.
    #[error("{provider} is unavailable: {detail}")]
    Unavailable { provider: String, detail: String, retry_after: Option<Duration> },
    /// The prompt and the requested completion do not fit the model's context window.
    #[error("the request does not fit the context window of {model}")]
    ContextLength { model: String },
    /// Any other 4xx: the request is wrong, and sending it again changes nothing.
    #[error("{provider} refused the request: {detail}")]
    Refused { provider: String, detail: String },
    /// No byte arrived for `after` in the middle of a stream.
    #[error("{provider} stalled for {after:?}")]
    Stalled { provider: String, after: Duration },
    /// The stream ended before its final message.
    #[error("{provider} ended the stream before its final message")]
    Truncated { provider: String },
    /// The endpoint failed repeatedly and is not being called for a while.
    #[error("{provider} is failing; calls are held off")]
    BreakerOpen { provider: String, retry_after: Option<Duration> },
    /// The call's deadline passed (retries and streaming included).
    #[error("the model call ran out of time")]
    DeadlineExceeded,
}

impl AiError {
    /// Whether the same request may succeed if sent again (after [`AiError::retry_after`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. } | Self::BreakerOpen { .. })
    }

    /// How long the provider asked to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::Unavailable { retry_after, .. }
            | Self::BreakerOpen { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
