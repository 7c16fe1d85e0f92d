//! The context of the call being served: what the server stack learned about it (deadline,
//! bearer token, request id) and what peer clients pass on from it. The server sets it for the
//! duration of each call ([`scope`]); clients read it ([`current_call`]), and so do errors that
//! become statuses without naming their domain ([`current_domain`]: a storage error in a handler
//! answers with the domain of the module that serves the call).

use std::{future::Future, time::Instant};

use crate::error::Domain;

/// What the current call may pass on to peers: its deadline and the caller's bearer token.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub deadline: Instant,
    pub bearer: Option<String>,
    pub request_id: String,
    /// The error domain of the module serving the call.
    pub domain: Domain,
}

/// The domain of errors outside any call (background jobs).
pub const PLATFORM: Domain = Domain::new("platform.timetravelers.dev");

tokio::task_local! {
    static CALL: CallContext;
}

/// The context of the call being served, when inside one.
pub fn current_call() -> Option<CallContext> {
    CALL.try_with(Clone::clone).ok()
}

/// The error domain of the module serving the current call ([`PLATFORM`] outside one).
pub fn current_domain() -> Domain {
    CALL.try_with(|c| c.domain).unwrap_or(PLATFORM)
}

/// Runs `fut` as the call described by `call`.
pub fn scope<F: Future>(call: CallContext, fut: F) -> impl Future<Output = F::Output> {
    CALL.scope(call, fut)
}
