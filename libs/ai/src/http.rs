//! What the HTTP providers share: one client with timeouts, sending and reading under them,
//! `Retry-After`.

use std::time::Duration;

use crate::error::AiError;

/// A provider's HTTP client: its name for errors, and how long an answer may take.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub provider: String,
    /// Until the response headers arrive, and again for a body read whole.
    pub timeout: Duration,
}

/// A request that did not succeed.
pub(crate) enum Failure {
    /// The server answered outside 2xx; the provider reads what it means.
    Status { status: u16, retry_after: Option<Duration>, body: String },
    /// No answer: refused, dropped or too slow.
    Transport(AiError),
}

impl Http {
    pub fn new(provider: &str, connect_timeout: Duration, timeout: Duration) -> Result<Self, AiError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| AiError::Refused { provider: provider.to_owned(), detail: e.to_string() })?;
        Ok(Self { client, provider: provider.to_owned(), timeout })
    }

    pub fn unavailable(&self, detail: &str, retry_after: Option<Duration>) -> AiError {
        AiError::Unavailable { provider: self.provider.clone(), detail: detail.to_owned(), retry_after }
    }

    /// Sends `request` and waits for the response headers.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => return Err(Failure::Transport(self.unavailable("no response in time", None))),
            Ok(Err(e)) => return Err(Failure::Transport(self.unavailable(&e.to_string(), None))),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = tokio::time::timeout(self.timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Err(Failure::Status { status, retry_after, body })
    }

    /// Reads a JSON body whole (`what` names it in errors).
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<T, AiError> {
        tokio::time::timeout(self.timeout, response.json())
            .await
            .map_err(|_| self.unavailable(&format!("the {what} did not arrive in time"), None))?
            .map_err(|e| self.unavailable(&format!("unreadable {what}: {e}"), None))
    }
}

/// `retry-after-ms` (preferred), else `retry-after` in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    let ms = number("retry-after-ms").map(|ms| ms / 1000.0);
    ms.or_else(|| number("retry-after")).filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}
