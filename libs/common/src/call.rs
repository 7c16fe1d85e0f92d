//! The context of the call being served: what the server stack learned about it (deadline,
//! bearer token, request id) and what peer clients pass on from it. The server sets it for the
//! duration of each call ([`scope`]); clients read it ([`current_call`]).

use std::{future::Future, time::Instant};

/// What the current call may pass on to peers: its deadline and the caller's bearer token.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub deadline: Instant,
    pub bearer: Option<String>,
    pub request_id: String,
}

tokio::task_local! {
    static CALL: CallContext;
}

/// The context of the call being served, when inside one.
pub fn current_call() -> Option<CallContext> {
    CALL.try_with(Clone::clone).ok()
}

/// Runs `fut` as the call described by `call`.
pub fn scope<F: Future>(call: CallContext, fut: F) -> impl Future<Output = F::Output> {
    CALL.scope(call, fut)
}
