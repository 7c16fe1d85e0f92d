//! Manus' task notifications and their signatures.
//!
//! Manus signs `{timestamp}.{url}.{sha256_hex(body)}` with RSA-SHA256 (PKCS#1 v1.5, 2048-bit
//! key) and sends the base64 signature in `X-Webhook-Signature`, the unix seconds in
//! `X-Webhook-Timestamp`. The URL is the one registered, query included: it is configured,
//! never read from the request's Host (a proxy changes that). A notification older or newer
//! than the freshness window is refused before any signature work. The public key is fetched
//! from `webhook.publicKey` and kept for an hour; a signature that fails against a key older
//! than a minute fetches it again once (Manus rotated it), so a stream of forged requests
//! cannot make this fetch more than once a minute.

use std::time::Duration;

use aws_lc_rs::{
    digest,
    signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tt_common::{
    clock::{Millis, SharedClock, millis},
    secrets::hex,
};

use super::{Attachment, Manus};
use crate::error::AiError;

pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";

/// Why a notification was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the notification's timestamp is missing or not a number")]
    NoTimestamp,
    #[error("the notification is {seconds} s away from now, outside the freshness window")]
    Stale { seconds: i64 },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the notification is not one Manus sends: {0}")]
    Malformed(String),
    #[error("Manus' public key could not be had: {0}")]
    KeyUnavailable(AiError),
}

/// Why the task stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The final result.
    Finish,
    /// Paused for input.
    Ask,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StructuredOutput {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub error: Option<String>,
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Deliveries may repeat: the receiver keeps each id once.
    pub event_id: String,
    pub task_id: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Created {
        title: String,
        url: String,
    },
    Stopped {
        reason: StopReason,
        message: String,
        attachments: Vec<Attachment>,
        structured: Option<StructuredOutput>,
    },
    Progress {
        message: String,
    },
    /// A kind this client does not know yet.
    Other(String),
}

#[derive(Deserialize)]
struct Wire {
    event_id: String,
    event_type: String,
    #[serde(default)]
    task_detail: Option<Value>,
    #[serde(default)]
    progress_detail: Option<Value>,
}

impl WebhookEvent {
    /// Reads a notification's body (after its signature was verified).
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        let wire: Wire = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let detail = wire.task_detail.or(wire.progress_detail).unwrap_or(Value::Null);
        let text = |key: &str| super::text(&detail, key);
        let task_id = text("task_id");
        if task_id.is_empty() {
            return Err(WebhookError::Malformed("no task_detail.task_id".into()));
        }
        let kind = match wire.event_type.as_str() {
            "task_created" => EventKind::Created { title: text("task_title"), url: text("task_url") },
            "task_stopped" => EventKind::Stopped {
                reason: match text("stop_reason").as_str() {
                    "finish" => StopReason::Finish,
                    "ask" => StopReason::Ask,
                    other => StopReason::Other(other.to_owned()),
                },
                message: text("message"),
                attachments: super::attachments(&detail),
                structured: detail
                    .get("structured_output")
                    .filter(|s| !s.is_null())
                    .map(|s| serde_json::from_value(s.clone()))
                    .transpose()
                    .map_err(|e| WebhookError::Malformed(format!("structured_output: {e}")))?,
            },
            "task_progress" => EventKind::Progress { message: text("message") },
            other => EventKind::Other(other.to_owned()),
        };
        Ok(Self { event_id: wire.event_id, task_id, kind })
    }
}

/// Where the public key comes from (Manus in production; a fixed key in tests of a receiver).
pub trait KeySource: Send + Sync {
    fn fetch(&self) -> futures::future::BoxFuture<'_, Result<String, AiError>>;
}

impl KeySource for Manus {
    fn fetch(&self) -> futures::future::BoxFuture<'_, Result<String, AiError>> {
        Box::pin(self.public_key())
    }
}

struct CachedKey {
    der: Vec<u8>,
    fetched: Millis,
}

/// Verifies notifications sent to one configured URL.
pub struct WebhookVerifier {
    source: Box<dyn KeySource>,
    url: String,
    window: Duration,
    key_ttl: Duration,
    refetch_after: Duration,
    clock: SharedClock,
    key: Mutex<Option<CachedKey>>,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier").field("url", &self.url).field("window", &self.window).finish()
    }
}

impl WebhookVerifier {
    /// `url`: the public callback URL as registered with Manus. A five-minute window, the key
    /// kept for an hour.
    pub fn new(source: Box<dyn KeySource>, url: &str, clock: SharedClock) -> Self {
        Self {
            source,
            url: url.to_owned(),
            window: Duration::from_secs(300),
            key_ttl: Duration::from_secs(3600),
            refetch_after: Duration::from_secs(60),
            clock,
            key: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The notification, if `signature` is Manus' over `timestamp`, the URL and `body`, and
    /// `timestamp` is fresh.
    pub async fn verify(
        &self,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let seconds: i64 = timestamp.trim().parse().map_err(|_| WebhookError::NoTimestamp)?;
        let skew = self.clock.now_ms() / 1000 - seconds;
        if skew.unsigned_abs() > self.window.as_secs() {
            return Err(WebhookError::Stale { seconds: skew });
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| WebhookError::BadSignature)?;
        let hash = digest::digest(&digest::SHA256, body);
        let signed = format!("{}.{}.{}", timestamp.trim(), self.url, hex(hash.as_ref()));
        if !self.check(signed.as_bytes(), &signature).await? {
            return Err(WebhookError::BadSignature);
        }
        WebhookEvent::parse(body)
    }

    /// Checks against the cached key, fetching it when absent or expired, and once more when
    /// it fails and the key is not fresh.
    async fn check(&self, signed: &[u8], signature: &[u8]) -> Result<bool, WebhookError> {
        let mut key = self.key.lock().await;
        let now = self.clock.now_ms();
        let age = |k: &CachedKey| now - k.fetched;
        if key.as_ref().is_none_or(|k| age(k) >= millis(self.key_ttl)) {
            *key = Some(self.fetch(now).await?);
        }
        let verifies = |k: &CachedKey| {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &k.der).verify(signed, signature).is_ok()
        };
        let current = key.as_ref().is_some_and(verifies);
        if current || key.as_ref().is_some_and(|k| age(k) < millis(self.refetch_after)) {
            return Ok(current);
        }
        let fresh = self.fetch(now).await?;
        let ok = verifies(&fresh);
        *key = Some(fresh);
        Ok(ok)
    }

    async fn fetch(&self, now: Millis) -> Result<CachedKey, WebhookError> {
        let pem = self.source.fetch().await.map_err(WebhookError::KeyUnavailable)?;
        let der = pem_der(&pem).ok_or_else(|| {
            WebhookError::KeyUnavailable(AiError::Refused {
                provider: super::PROVIDER.into(),
                detail: "the public key is not a PEM public key".into(),
            })
        })?;
        Ok(CachedKey { der, fetched: now })
    }
}

/// The DER inside a PEM block (`-----BEGIN PUBLIC KEY-----` or `RSA PUBLIC KEY`).
pub(crate) fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok().filter(|d| !d.is_empty())
}
