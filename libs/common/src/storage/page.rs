//! Keyset pagination: bounded page sizes and opaque, signed page tokens.
//!
//! A token carries the sort key of the last row served, the query scope it belongs to (method
//! and filters) and when it was issued, MACed with a key derived from the process secret. A forged
//! token, a token from another query and a token older than a day are all INVALID_ARGUMENT.
//!
//! The scope also names the cursor's format: a query whose cursor changes shape takes a new scope
//! (matching's `FindMatches.v2`), so tokens issued before are refused as from another query
//! instead of being misread.

use crate::error::Invalid;
use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

use crate::{clock::SharedClock, error::Domain, secrets::Secret};

const MAX_AGE_MS: i64 = 24 * 3600 * 1000;

/// A validated page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub const DEFAULT: u32 = 20;
    pub const MAX: u32 = 100;

    /// 0 means the default; above the maximum is lowered to it (AIP-158); negative is an error.
    pub fn new(requested: i32) -> Result<Self, Invalid> {
        match requested {
            n if n < 0 => Err("must not be negative".into()),
            0 => Ok(Self(Self::DEFAULT)),
            n => Ok(Self(u32::try_from(n).unwrap_or(Self::MAX).min(Self::MAX))),
        }
    }

    /// Validates `requested` as the `page_size` field, recording a violation (and returning the
    /// default) when it is invalid.
    pub fn checked(violations: &mut crate::error::Violations, requested: i32) -> Self {
        match Self::new(requested) {
            Ok(size) => size,
            Err(e) => {
                violations.add("page_size", e);
                Self(Self::DEFAULT)
            }
        }
    }

    /// Trims the extra row fetched by [`PageSize::limit_plus_one`] and returns the cursor of the
    /// last row kept when another page follows.
    pub fn split_next<T, C>(self, rows: &mut Vec<T>, cursor: impl Fn(&T) -> C) -> Option<C> {
        let page = usize::try_from(self.0).unwrap_or(usize::MAX);
        if rows.len() > page {
            rows.truncate(page);
            rows.last().map(cursor)
        } else {
            None
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The LIMIT to query: one more than the page, to know whether another page follows.
    pub fn limit_plus_one(self) -> i64 {
        i64::from(self.0) + 1
    }
}

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: hmac::Key,
    clock: SharedClock,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens")
    }
}

#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    /// The cursor: the sort key of the last row served.
    c: T,
    /// Issued at, unix millis.
    t: i64,
}

impl PageTokens {
    /// Tokens sealed with a key derived from `secret`, dated (and expired) on `clock`.
    pub fn new(secret: &Secret, clock: SharedClock) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &secret.derive("page-token")), clock }
    }

    /// Makes the token for the page after `cursor` in query `scope`.
    pub fn encode<T: Serialize>(&self, scope: &str, cursor: &T) -> String {
        let envelope = Envelope { c: cursor, t: self.clock.now_ms() };
        let payload = serde_json::to_vec(&envelope).unwrap_or_default();
        let tag = self.tag(scope, &payload);
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Reads a token sent back by the client: `None` for the first page; INVALID_ARGUMENT
    /// naming `page_token` when it is malformed, forged, from another query or expired.
    pub fn decode<T: DeserializeOwned>(
        &self,
        domain: impl Into<Domain>,
        scope: &str,
        token: &str,
    ) -> Result<Option<T>, tonic::Status> {
        self.decode_reason(scope, token).map_err(|why| domain.into().invalid_field("page_token", why))
    }

    fn decode_reason<T: DeserializeOwned>(
        &self,
        scope: &str,
        token: &str,
    ) -> Result<Option<T>, &'static str> {
        if token.is_empty() {
            return Ok(None);
        }
        let (payload, tag) = token.split_once('.').ok_or("malformed")?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "malformed")?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| "malformed")?;
        hmac::verify(&self.key, &Self::message(scope, &payload), &tag)
            .map_err(|_| "not issued for this query")?;
        let envelope: Envelope<T> = serde_json::from_slice(&payload).map_err(|_| "malformed")?;
        if self.clock.now_ms() - envelope.t > MAX_AGE_MS {
            return Err("expired; start from the first page");
        }
        Ok(Some(envelope.c))
    }

    /// [`PageTokens::decode`] that records a bad token as a `page_token` violation (so it is
    /// reported with every other bad field) and returns `None` for it.
    pub fn checked<T: DeserializeOwned>(
        &self,
        violations: &mut crate::error::Violations,
        scope: &str,
        token: &str,
    ) -> Option<T> {
        match self.decode_reason(scope, token) {
            Ok(cursor) => cursor,
            Err(why) => {
                violations.add("page_token", why);
                None
            }
        }
    }

    /// Checks a list request's `page_size` and `page_token` for query `scope`, recording bad
    /// ones as violations (with every other bad field); the page to query.
    pub fn page<C: DeserializeOwned>(
        &self,
        violations: &mut crate::error::Violations,
        scope: impl Into<String>,
        page_size: i32,
        page_token: &str,
    ) -> Page<'_, C> {
        let scope = scope.into();
        let size = PageSize::checked(violations, page_size);
        let after = self.checked(violations, &scope, page_token);
        Page { tokens: self, scope, size, after }
    }

    fn message(scope: &str, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(scope.len() + 1 + payload.len());
        m.extend_from_slice(scope.as_bytes());
        m.push(0);
        m.extend_from_slice(payload);
        m
    }

    fn tag(&self, scope: &str, payload: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, &Self::message(scope, payload))
    }
}

/// One checked page of a keyset-paginated list: its size, where it continues, and the query
/// scope its next token is sealed to.
#[derive(Debug)]
pub struct Page<'a, C> {
    tokens: &'a PageTokens,
    scope: String,
    size: PageSize,
    /// The sort key of the last row of the previous page; `None` on the first page.
    pub after: Option<C>,
}

impl<C: Serialize> Page<'_, C> {
    /// How many rows to serve.
    pub fn size(&self) -> usize {
        usize::try_from(self.size.get()).unwrap_or(usize::MAX)
    }

    /// The LIMIT to query: one row more than the page, to know whether another follows.
    pub fn limit(&self) -> i64 {
        self.size.limit_plus_one()
    }

    /// The token of the page that continues after `cursor`.
    pub fn token(&self, cursor: &C) -> String {
        self.tokens.encode(&self.scope, cursor)
    }

    /// Trims the look-ahead row off `rows` (queried with [`Page::limit`]) and returns the next
    /// page's token: empty on the last page.
    pub fn next<T>(&self, rows: &mut Vec<T>, cursor: impl Fn(&T) -> C) -> String {
        self.size.split_next(rows, cursor).map(|c| self.token(&c)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::new(&Secret::from_bytes([7; 32]), std::sync::Arc::new(crate::clock::SystemClock))
    }

    #[test]
    fn tokens_expire_on_the_injected_clock() {
        let clock = crate::clock::ManualClock::new();
        let t = PageTokens::new(&Secret::from_bytes([7; 32]), std::sync::Arc::new(clock.clone()));
        let token = t.encode("s", &5_i64);
        assert_eq!(t.decode::<i64>("d", "s", &token).expect("fresh"), Some(5));
        clock.advance(std::time::Duration::from_millis(MAX_AGE_MS.unsigned_abs() + 1000));
        let expired = t.decode::<i64>("d", "s", &token).expect_err("expired");
        assert_eq!(expired.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn round_trips_within_its_scope_only() {
        let t = tokens();
        let token = t.encode("users:a", &("2024", "id-1"));
        let back: Option<(String, String)> = t.decode("d", "users:a", &token).expect("valid");
        assert_eq!(back, Some(("2024".into(), "id-1".into())));
        let err = t.decode::<(String, String)>("d", "users:b", &token).expect_err("scope");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_float_cursor_comes_back_to_the_last_bit() {
        // Keysets compare the cursor exactly: a score read back one ulp off would repeat or skip
        // a row at the page boundary. Many arbitrary finite floats, plus the awkward ones.
        let t = tokens();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut floats = vec![0.1 + 0.2, 1.0 / 3.0, f64::MIN_POSITIVE, 5e-324, f64::MAX, -0.0];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                floats.push(f);
            }
            // Scores live in [0, 1]: sample them densely too.
            floats.push((x >> 11) as f64 / (1u64 << 53) as f64);
        }
        for f in floats {
            let token = t.encode("s", &(f, "id"));
            let back: Option<(f64, String)> = t.decode("d", "s", &token).expect("valid");
            let (g, _) = back.expect("a cursor");
            assert_eq!(g.to_bits(), f.to_bits(), "{f:e} came back as {g:e}");
        }
    }

    #[test]
    fn forged_and_foreign_tokens_are_rejected() {
        let t = tokens();
        let token = t.encode("s", &5_i64);
        let (_, tag) = token.split_once('.').expect("dot");
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(br#"{"c":9,"t":0}"#), tag);
        assert!(t.decode::<i64>("d", "s", &forged).is_err());
        let other =
            PageTokens::new(&Secret::from_bytes([8; 32]), std::sync::Arc::new(crate::clock::SystemClock));
        assert!(other.decode::<i64>("d", "s", &token).is_err());
        assert!(t.decode::<i64>("d", "s", "garbage").is_err());
        assert_eq!(t.decode::<i64>("d", "s", "").expect("empty"), None);
    }

    #[test]
    fn a_page_continues_where_its_token_says_and_ends_without_one() {
        let t = tokens();
        let mut v = crate::error::Violations::new("d");
        let first: Page<'_, i64> = t.page(&mut v, "n", 2, "");
        assert_eq!((first.after, first.limit()), (None, 3));
        let mut rows = vec![1_i64, 2, 3];
        let token = first.next(&mut rows, |r| *r);
        assert_eq!(rows, [1, 2]);
        let second: Page<'_, i64> = t.page(&mut v, "n", 2, &token);
        assert_eq!(second.after, Some(2));
        let mut last = vec![3_i64];
        assert_eq!(second.next(&mut last, |r| *r), "");
        assert!(v.is_empty());
        // A bad size and a token of another query are both reported.
        let _: Page<'_, i64> = t.page(&mut v, "other", -1, &token);
        let status = v.into_result().expect_err("bad");
        assert_eq!(crate::error::bad_fields(&status), ["page_size", "page_token"]);
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(PageSize::new(0).map(PageSize::get), Ok(20));
        assert_eq!(PageSize::new(1000).map(PageSize::get), Ok(100));
        assert!(PageSize::new(-1).is_err());
    }
}
