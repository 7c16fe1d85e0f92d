//! The last look at every status before it leaves the server.
//!
//! tonic answers some transport-level problems itself, with codes gRPC clients do not expect: a
//! request prost cannot decode (invalid UTF-8, a bad wire type, a truncated varint, nesting past
//! the recursion limit) is INTERNAL, a message over the size limit OUT_OF_RANGE. Both are the
//! caller's doing, so they leave as INVALID_ARGUMENT `MALFORMED_REQUEST` and RESOURCE_EXHAUSTED
//! `MESSAGE_TOO_LARGE`, with an `ErrorInfo` like every other status; health and reflection
//! included, which is why this lives here rather than in a codec.
//!
//! And every status stays small: gRPC C-core clients drop a response whose metadata passes
//! 16 KiB (and warn at 8 KiB), reporting RESOURCE_EXHAUSTED instead of the real answer. Statuses
//! are kept small where they are made ([`crate::error::Violations`]); should one still pass
//! [`MAX_STATUS_BYTES`] here, its message is cut and its details shrunk, with a warning, since
//! that is a bug at the source.

use crate::error::Reason;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use prost::Message;
use tonic::Code;

use crate::error;

const DOMAIN: crate::error::Domain = crate::error::Domain::new("server.timetravelers.dev");

/// Message and details of a status, as sent (`grpc-message` percent-encoded,
/// `grpc-status-details-bin` base64), at most: half of what C-core clients warn at.
pub const MAX_STATUS_BYTES: usize = 4096;

/// The longest `grpc-message` kept when a status has to be shrunk here.
const TRIMMED_MESSAGE: usize = 512;

/// The encoding of `grpc-status-details-bin`: standard alphabet, padding optional.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_DETAILS: &str = "grpc-status-details-bin";

/// Rewrites the status in `headers` (the headers of a trailers-only response, or trailers) when
/// it is one of tonic's transport answers or too large. Leaves headers without a status alone.
pub fn normalize(headers: &mut HeaderMap) {
    let Some(code) = headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from)
    else {
        return;
    };
    if code == Code::Ok {
        return;
    }
    let message = headers.get(GRPC_MESSAGE).map(|v| percent_decode(v.as_bytes())).unwrap_or_default();
    if let Some(status) = transport_status(code, &message, headers.contains_key(GRPC_DETAILS)) {
        replace(headers, &status);
        return;
    }
    let size = headers.get(GRPC_MESSAGE).map_or(0, HeaderValue::len)
        + headers.get(GRPC_DETAILS).map_or(0, HeaderValue::len);
    if size > MAX_STATUS_BYTES {
        shrink(headers, code, &message, size);
    }
}

/// The status to send instead of one of tonic's own, if `code`/`message` is one.
fn transport_status(code: Code, message: &str, has_details: bool) -> Option<tonic::Status> {
    if has_details {
        return None; // ours: tonic's own statuses carry no details
    }
    if code == Code::Internal
        && let Some(why) = message.strip_prefix("failed to decode Protobuf message")
    {
        let why = why.trim_start_matches([':', ' ']);
        return Some(DOMAIN.status(
            Code::InvalidArgument,
            Reason::new("MALFORMED_REQUEST"),
            format!("the request message could not be decoded: {}", error::clip(why, 200)),
        ));
    }
    if code == Code::OutOfRange && message.starts_with("Error, decoded message length too large") {
        let numbers: Vec<&str> =
            message.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).collect();
        let text = match numbers.as_slice() {
            [found, limit] => format!("the request message is {found} bytes; the limit is {limit} bytes"),
            _ => "the request message is larger than the limit".to_owned(),
        };
        return Some(DOMAIN.status(Code::ResourceExhausted, Reason::new("MESSAGE_TOO_LARGE"), text));
    }
    None
}

/// Replaces the status fields of `headers` with `status`.
fn replace(headers: &mut HeaderMap, status: &tonic::Status) {
    headers.remove(GRPC_STATUS);
    headers.remove(GRPC_MESSAGE);
    headers.remove(GRPC_DETAILS);
    if status.add_header(headers).is_err() {
        headers.insert(GRPC_STATUS, HeaderValue::from(Code::Internal as i32));
    }
}

/// Cuts the message and shrinks the details of a status over [`MAX_STATUS_BYTES`].
fn shrink(headers: &mut HeaderMap, code: Code, message: &str, size: usize) {
    tracing::warn!(?code, size, "a status over the size budget was shrunk at the edge");
    metrics::counter!("grpc_server_statuses_shrunk_total").increment(1);
    let details = headers
        .get(GRPC_DETAILS)
        .and_then(|v| BASE64.decode(v.as_bytes()).ok())
        .and_then(|bytes| tonic_types::Status::decode(bytes.as_slice()).ok());
    let budget = MAX_STATUS_BYTES - TRIMMED_MESSAGE * 3;
    let details = details.map(|mut d| {
        d.message = String::new();
        let mut kept = Vec::new();
        let mut used = 0;
        // Small details (ErrorInfo, RetryInfo) first; a large one goes only if it still fits.
        d.details.sort_by_key(|a| a.value.len());
        for any in d.details {
            let cost = (any.value.len() + any.type_url.len() + 8) * 4 / 3;
            if used + cost <= budget {
                used += cost;
                kept.push(any);
            }
        }
        d.details = kept;
        d.encode_to_vec()
    });
    let status = tonic::Status::with_details(
        code,
        error::clip(message, TRIMMED_MESSAGE),
        details.unwrap_or_default().into(),
    );
    replace(headers, &status);
}

/// Decodes a percent-encoded `grpc-message` (invalid sequences are kept as they are).
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && let Some(byte) =
                std::str::from_utf8(&raw[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    fn headers_of(status: &tonic::Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).expect("status headers");
        h
    }

    fn status_of(h: &HeaderMap) -> tonic::Status {
        tonic::Status::from_header_map(h).expect("a status")
    }

    #[test]
    fn undecodable_requests_are_invalid_argument() {
        let mut h = headers_of(&tonic::Status::internal(
            "failed to decode Protobuf message: invalid string value: data is not UTF-8 encoded",
        ));
        normalize(&mut h);
        let s = status_of(&h);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(error::reason(&s).as_deref(), Some("MALFORMED_REQUEST"));
        assert!(s.message().contains("not UTF-8"), "{}", s.message());
    }

    #[test]
    fn oversized_requests_are_resource_exhausted_naming_the_limit() {
        let mut h = headers_of(&tonic::Status::out_of_range(
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
        ));
        normalize(&mut h);
        let s = status_of(&h);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(error::reason(&s).as_deref(), Some("MESSAGE_TOO_LARGE"));
        assert_eq!(s.message(), "the request message is 5000000 bytes; the limit is 4194304 bytes");
    }

    #[test]
    fn our_own_statuses_pass_untouched() {
        let ours = crate::error::Domain::new("x.timetravelers.dev").status(
            Code::Internal,
            Reason::new("INTERNAL"),
            "internal error",
        );
        let mut h = headers_of(&ours);
        let before = h.clone();
        normalize(&mut h);
        assert_eq!(h, before);
        let mut ok = HeaderMap::new();
        ok.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        normalize(&mut ok);
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn oversized_statuses_are_shrunk_keeping_the_small_details() {
        let mut details = tonic_types::ErrorDetails::with_error_info(
            "INVALID_ARGUMENT",
            "d",
            std::collections::HashMap::new(),
        );
        details.set_bad_request(
            (0..2000)
                .map(|i| tonic_types::FieldViolation::new(format!("f{i}"), "x".repeat(50)))
                .collect::<Vec<_>>(),
        );
        let big = tonic::Status::with_error_details(Code::InvalidArgument, "y".repeat(20_000), details);
        let mut h = headers_of(&big);
        normalize(&mut h);
        let size =
            h.get(GRPC_MESSAGE).map_or(0, HeaderValue::len) + h.get(GRPC_DETAILS).map_or(0, HeaderValue::len);
        assert!(size <= MAX_STATUS_BYTES, "{size}");
        let s = status_of(&h);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(error::reason(&s).as_deref(), Some("INVALID_ARGUMENT"));
        assert!(s.get_details_bad_request().is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b%"), "a b%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }
}
