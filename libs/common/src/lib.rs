//! The platform every TimeTravelers service stands on.
//!
//! A service writes its domain code and gets the rest from here:
//! - [`config`]: layered configuration (defaults < file < `TT_...` env < CLI), exit 64 on bad input;
//! - [`telemetry`]: tracing (pretty or JSON), optional OTLP export, trace-context propagation;
//! - [`server`]: the one server builder (health, reflection, tower stack, metrics, shutdown);
//! - [`storage`]: the sqlx `AnyPool` (SQLite or PostgreSQL), migrations, page tokens, etags;
//! - [`cache`]: one cache interface over Redis or an in-process store;
//! - [`auth`]: JWT verification, revocation, the typed [`auth::Principal`] and its checks;
//! - [`error`]: `Status` builders with `ErrorInfo` and `BadRequest` details;
//! - [`call`]: the context of the call being served (deadline, bearer), set by the server,
//!   read by the clients;
//! - [`client`]: peer gRPC clients with deadlines, retries and token forwarding;
//! - [`outbox`]: the transactional outbox and its relay (events that are never lost);
//! - [`platform`]: the service kit: a service is a module the platform mounts;
//! - [`clock`]: injected time, so expiry is tested without waiting;
//! - [`secrets`]: the process secret and keys derived from it.

pub mod auth;
pub mod cache;
pub mod call;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod outbox;
pub mod platform;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod telemetry;

/// A new time-ordered id (UUIDv7) as the TEXT primary key both databases accept.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// True when `s` is a canonical lower-case UUID string, as [`new_id`] makes.
pub fn is_id(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}
