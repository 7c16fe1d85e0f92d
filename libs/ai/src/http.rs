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

/// `retry-after-ms` (preferred), else `retry-after` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let seconds = |v: &str| v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0);
    if let Some(ms) = value("retry-after-ms").and_then(seconds) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let after = value("retry-after")?;
    seconds(after).map(Duration::from_secs_f64).or_else(|| until_date(after, jiff::Timestamp::now()))
}

/// The wait until an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`) from `now`; a past date is none.
fn until_date(date: &str, now: jiff::Timestamp) -> Option<Duration> {
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(date).ok()?;
    let ms = at.as_millisecond().checked_sub(now.as_millisecond())?;
    u64::try_from(ms).ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().expect("header"));
        }
        h
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_http_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "2")])), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&headers(&[])), None);
        let now: jiff::Timestamp = "2026-10-21T07:27:30Z".parse().expect("now");
        assert_eq!(until_date("Wed, 21 Oct 2026 07:28:00 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(until_date("Wed, 21 Oct 2026 07:27:00 GMT", now), None, "a date past is no wait");
        assert_eq!(until_date("soon", now), None);
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        let date =
            jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&later).expect("date");
        let wait = retry_after(&headers(&[("retry-after", date.as_str())])).expect("a wait");
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
    }
}
