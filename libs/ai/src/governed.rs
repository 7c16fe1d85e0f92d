//! The governed call: what every service calls, so that safety, quotas, model choice,
//! reliability, cost and reporting happen once and in this order.
//!
//! 1. **Redaction** of everything that leaves (emails, phones, keys), when the chain leaves
//!    the process; **moderation** of the learner's input. A flagged input is refused with
//!    INVALID_ARGUMENT and reaches no model.
//! 2. **Model**: the one the caller names, else the cheapest of the chain's first endpoint that
//!    meets the request's context (by the prompt's estimate), tier and JSON needs. A model with
//!    a tokenizer then has the prompt counted exactly (and is chosen again for that count when
//!    the estimate ran short).
//! 3. **Quota**: one request of the learner's minute and the prompt's tokens plus the
//!    completion's cap of their day are reserved, or the call is refused with
//!    RESOURCE_EXHAUSTED (QuotaFailure, RetryInfo); the quota store unreachable refuses with
//!    UNAVAILABLE.
//! 4. **The call** through [`Reliable`] (retries, breakers, fallbacks), bounded by the caller's
//!    deadline.
//! 5. **Settlement**: the reservation replaced by the reported usage; the reply's text is
//!    moderated before its completion is passed on (a flagged reply ends in an error instead).
//! 6. **Report**: one `<service>.ai.called` event per call through the caller's outbox, whatever
//!    the outcome: answered, refused (input, quota), failed, flagged output, or cancelled (the
//!    caller dropped the stream: it is settled with what was streamed by then).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, future::BoxFuture, stream::BoxStream};
use tonic::{Code, Status};
use tt_common::{
    clock::SharedClock,
    error::Reason,
    outbox::{
        EventBuilder, Outbox,
        schema::{Attr, AttrKind::Bool, AttrKind::Int, AttrKind::String as Str},
    },
    storage::Database,
};
use tt_proto::common::v1::Event;

use crate::{
    chat::{ChatEvent, ChatRequest, Completion, Role, Usage},
    error::AiError,
    models::{Models, Needs, Tier},
    quota::{DOMAIN, Quotas, Reservation},
    reliable::Reliable,
    safety::{Moderator, Redaction, Verdict},
    tokens::{estimate, estimate_messages},
};

/// The suffix of the event type each emitter declares as `<module>.ai.called`.
pub const CALLED: &str = "ai.called";

/// The attributes of `<module>.ai.called`: declare
/// `EventType::v1("<module>.ai.called", CALL_ATTRIBUTES)` in the module's manifest.
pub const CALL_ATTRIBUTES: &[Attr] = &[
    Attr::required("purpose", Str),
    Attr::optional("mentor", Str),
    Attr::required("provider", Str),
    Attr::required("model", Str),
    Attr::required("fallback", Bool),
    Attr::required("tokens_in", Int),
    Attr::required("tokens_out", Int),
    Attr::required("tokens_cached", Int),
    Attr::required("estimated", Bool),
    Attr::required("cost_micros", Int),
    Attr::required("latency_ms", Int),
    Attr::required("outcome", Str),
    Attr::required("redactions", Int),
];

/// The completion's cap when the request sets none (for the reservation and the context).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Who calls and why.
#[derive(Debug, Clone)]
pub struct AiCall {
    pub user: String,
    /// The learner's IANA time zone: their quota day.
    pub time_zone: String,
    pub mentor: Option<String>,
    /// What the call is for (`mentor_session`, `mission_draft`, ...), for reports.
    pub purpose: String,
    pub tier: Tier,
    /// The caller's own deadline (its remaining gRPC deadline).
    pub deadline: Option<Instant>,
}

/// How a call ended, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    InputFlagged,
    OutputFlagged,
    QuotaRefused,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::InputFlagged => "input_flagged",
            Self::OutputFlagged => "output_flagged",
            Self::QuotaRefused => "quota_refused",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Where the reports go.
pub trait Report: Send + Sync {
    /// Writes one event; failures are the reporter's to retry and log.
    fn report(&self, event: Event) -> BoxFuture<'_, ()>;
}

/// The caller's outbox: each report in its own transaction, then the relays woken.
pub struct OutboxReport {
    pub db: Database,
    pub outbox: Outbox,
}

impl OutboxReport {
    async fn write(&self, event: &Event) -> Result<(), tt_common::storage::StorageError> {
        let tx = self.db.pool().begin().await?;
        self.outbox.write(tx, std::slice::from_ref(event)).await
    }
}

impl Report for OutboxReport {
    fn report(&self, event: Event) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for attempt in 0..3 {
                match self.write(&event).await {
                    Ok(()) => return,
                    Err(e) if attempt < 2 => {
                        tracing::warn!(error = %e, attempt, "an AI call report could not be written; retrying");
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, event = event.id, "an AI call report was not written")
                    }
                }
            }
        })
    }
}

/// A governed reply: deltas, then the completion; errors are statuses for the caller.
pub type GovernedStream = BoxStream<'static, Result<ChatEvent, Status>>;

/// What [`Ai`] is made of.
pub struct AiParts {
    /// The emitting module's name (the event is `<service>.ai.called`).
    pub service: String,
    pub chain: Arc<Reliable>,
    /// The models the chain's first endpoint serves, to choose from.
    pub available: Vec<String>,
    pub models: Models,
    pub quotas: Quotas,
    /// [`Redaction::none`] when nothing leaves the process (offline).
    pub redaction: Redaction,
    pub moderator: Option<Arc<dyn Moderator>>,
    pub report: Arc<dyn Report>,
    pub clock: SharedClock,
}

/// The library's front door; cheap to clone (every call's books share its parts).
#[derive(Clone)]
pub struct Ai {
    parts: Arc<AiParts>,
}

impl std::fmt::Debug for Ai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ai")
            .field("service", &self.parts.service)
            .field("chain", &self.parts.chain)
            .finish_non_exhaustive()
    }
}

impl Ai {
    /// The governed chat over `parts`; the tokenizers of the models it may choose are loaded
    /// in the background.
    pub fn new(parts: AiParts) -> Self {
        let mut tokenizers: Vec<_> =
            parts.available.iter().filter_map(|m| parts.models.get(m).and_then(|m| m.tokenizer)).collect();
        tokenizers.sort();
        tokenizers.dedup();
        for tokenizer in tokenizers {
            tokenizer.preload();
        }
        Self { parts: Arc::new(parts) }
    }

    /// The whole reply at once.
    pub async fn complete(&self, call: &AiCall, request: ChatRequest) -> Result<Completion, Status> {
        let stream = self.chat(call, request).await?;
        crate::chat::collect(stream)
            .await?
            .ok_or_else(|| DOMAIN.unavailable("the model", &"the reply ended early"))
    }

    /// A streamed reply, governed (see the module's steps).
    pub async fn chat(&self, call: &AiCall, mut request: ChatRequest) -> Result<GovernedStream, Status> {
        let started = Instant::now();
        let ai = &self.parts;
        let redactions = ai.redaction.request(&mut request).total();
        let mut ledger = Ledger {
            open: Some(Open {
                ai: Arc::clone(ai),
                user: call.user.clone(),
                mentor: call.mentor.clone(),
                purpose: call.purpose.clone(),
                started,
                redactions,
                reservation: None,
                prompt_tokens: 0,
                streamed: 0,
                provider: crate::chat::ChatProvider::name(ai.chain.as_ref()).to_owned(),
                asked: false,
                model: String::new(),
            }),
        };
        if let Some(moderator) = &ai.moderator {
            let input: Vec<&str> = request
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .map(|m| m.content.as_str())
                .collect();
            match moderator.check(&input.join("\n")).await {
                Ok(Verdict::Allowed) => {}
                Ok(Verdict::Flagged(categories)) => {
                    ledger.close(Outcome::InputFlagged, None).await;
                    let mut v = DOMAIN.violations();
                    v.add("messages", format!("the message was flagged ({})", categories.join(", ")));
                    return Err(v.into_result().err().unwrap_or_else(|| DOMAIN.internal(&"no violation")));
                }
                Err(e) => {
                    ledger.close(Outcome::Failed, None).await;
                    return Err(to_status(&e));
                }
            }
        }
        let cap = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        let available: Vec<&str> = ai.available.iter().map(String::as_str).collect();
        let prompt = request.prompt();
        let estimate = estimate_messages(&prompt);
        let needs =
            |prompt: u32| Needs { context: prompt.saturating_add(cap), tier: call.tier, json: request.json };
        let named = request.model.as_deref();
        let mut model = ai.models.choose(named, needs(estimate), &available);
        let tokenizer = model.as_deref().and_then(|m| ai.models.get(m)).and_then(|m| m.tokenizer);
        let prompt_tokens = match tokenizer {
            Some(tokenizer) => {
                let exact = tokenizer.count_messages_async(prompt).await;
                if exact > estimate {
                    // The estimate ran short (scripts without spaces): choose for the real need.
                    model = ai.models.choose(named, needs(exact), &available).or(model);
                }
                exact
            }
            None => estimate,
        };
        let open = ledger.open.as_mut().ok_or_else(|| DOMAIN.internal(&"the ledger closed early"))?;
        open.prompt_tokens = prompt_tokens;
        match ai.quotas.reserve(&call.user, &call.time_zone, prompt_tokens.saturating_add(cap)).await {
            Ok(reservation) => open.reservation = Some(reservation),
            Err(e) => {
                ledger.close(Outcome::QuotaRefused, None).await;
                return Err(e.into());
            }
        }
        request.model = model.or(request.model);
        open.model = request.model.clone().unwrap_or_default();
        // From here the prompt may be out and paid for: a caller who leaves during the wait
        // is settled with it.
        open.asked = true;
        let stream = match ai.chain.stream_until(request, call.deadline).await {
            Ok(stream) => stream,
            Err(e) => {
                // No reply started: nothing was produced, nothing is counted.
                if let Some(open) = &mut ledger.open {
                    open.asked = false;
                }
                ledger.close(Outcome::Failed, None).await;
                return Err(to_status(&e));
            }
        };
        Ok(govern(stream, ledger, ai.moderator.clone()))
    }
}

/// The reply passed on, settled and reported once it ends (or is dropped).
fn govern(
    stream: crate::chat::ChatStream,
    ledger: Ledger,
    moderator: Option<Arc<dyn Moderator>>,
) -> GovernedStream {
    struct State {
        stream: crate::chat::ChatStream,
        ledger: Ledger,
        text: String,
        moderator: Option<Arc<dyn Moderator>>,
    }
    let state = State { stream, ledger, text: String::new(), moderator };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.stream.next().await {
            Some(Ok(ChatEvent::Delta(delta))) => {
                state.text.push_str(&delta);
                state.ledger.streamed(&delta);
                Some((Ok(ChatEvent::Delta(delta)), Some(state)))
            }
            Some(Ok(ChatEvent::Done(completion))) => {
                let verdict = match &state.moderator {
                    Some(m) => m.check(&state.text).await,
                    None => Ok(Verdict::Allowed),
                };
                let (outcome, item) = match verdict {
                    Ok(Verdict::Allowed) => (Outcome::Answered, Ok(ChatEvent::Done(completion.clone()))),
                    Ok(Verdict::Flagged(categories)) => (
                        Outcome::OutputFlagged,
                        Err(DOMAIN.status(
                            Code::FailedPrecondition,
                            Reason::new("AI_OUTPUT_WITHHELD"),
                            format!(
                                "the reply was withheld ({}); discard what was shown",
                                categories.join(", ")
                            ),
                        )),
                    ),
                    Err(e) => (Outcome::Failed, Err(to_status(&e))),
                };
                state.ledger.close(outcome, Some(&completion)).await;
                Some((item, None))
            }
            Some(Err(e)) => {
                state.ledger.close(Outcome::Failed, None).await;
                Some((Err(to_status(&e)), None))
            }
            None => {
                state.ledger.close(Outcome::Failed, None).await;
                Some((Err(DOMAIN.unavailable("the model", &"the reply ended early")), None))
            }
        }
    })
    .boxed()
}

/// A model error as the caller's status.
pub fn to_status(e: &AiError) -> Status {
    match e {
        AiError::DeadlineExceeded => {
            DOMAIN.status(Code::DeadlineExceeded, Reason::new("AI_DEADLINE_EXCEEDED"), e.to_string())
        }
        AiError::ContextLength { .. } => {
            DOMAIN.status(Code::FailedPrecondition, Reason::new("AI_CONTEXT_TOO_LONG"), e.to_string())
        }
        AiError::Refused { .. } => DOMAIN.internal(e),
        _ => DOMAIN.unavailable("the model provider", e),
    }
}

/// A call's books until it is reported: dropped open (the caller went away), it settles and
/// reports as cancelled on its own.
struct Ledger {
    open: Option<Open>,
}

struct Open {
    ai: Arc<AiParts>,
    user: String,
    mentor: Option<String>,
    purpose: String,
    started: Instant,
    redactions: u32,
    reservation: Option<Reservation>,
    /// The prompt's tokens, counted before the call (exactly when the model has a tokenizer).
    prompt_tokens: u32,
    /// Estimated tokens of the deltas passed on so far.
    streamed: u32,
    /// The prompt went out (or may have): it is counted unless the call failed before a reply.
    asked: bool,
    /// Who was asked, until a completion says who answered.
    provider: String,
    model: String,
}

impl Ledger {
    fn streamed(&mut self, delta: &str) {
        if let Some(open) = &mut self.open {
            open.streamed = open.streamed.saturating_add(estimate(delta));
        }
    }

    /// Settles and reports: with the completion's usage, or (no completion) with the prompt's
    /// count and what was streamed once a model was asked, else nothing.
    async fn close(&mut self, outcome: Outcome, completion: Option<&Completion>) {
        if let Some(open) = self.open.take() {
            open.close(outcome, completion).await;
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let Some(open) = self.open.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(open.close(Outcome::Cancelled, None))),
            Err(_) => {
                tracing::error!("an AI call was dropped outside a runtime; it stays reserved, unreported")
            }
        }
    }
}

impl Open {
    async fn close(self, outcome: Outcome, completion: Option<&Completion>) {
        let usage = match completion {
            Some(c) => c.usage,
            // Asked but no completion: the prompt went out, and what streamed was produced.
            None if self.asked => {
                Usage { prompt: self.prompt_tokens, completion: self.streamed, cached: 0, estimated: true }
            }
            None => Usage::default(),
        };
        if let Some(reservation) = self.reservation {
            reservation.settle(usage.prompt.saturating_add(usage.completion)).await;
        }
        let (provider, model, fallback) = completion
            .map_or((self.provider.as_str(), self.model.as_str(), false), |c| {
                (c.provider.as_str(), c.model.as_str(), c.fallback)
            });
        let ai = &self.ai;
        let cost = ai.models.cost_micros(model, &usage).unwrap_or(0);
        let latency = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let kind = format!("{}.{CALLED}", ai.service);
        let mut event = EventBuilder::new(&ai.service, &kind, &self.user, &self.user, ai.clock.now_ms())
            .string("purpose", self.purpose.as_str())
            .string("provider", provider)
            .string("model", model)
            .bool("fallback", fallback)
            .int("tokens_in", i64::from(usage.prompt))
            .int("tokens_out", i64::from(usage.completion))
            .int("tokens_cached", i64::from(usage.cached))
            .bool("estimated", usage.estimated)
            .int("cost_micros", cost)
            .int("latency_ms", latency)
            .string("outcome", outcome.as_str())
            .int("redactions", i64::from(self.redactions));
        if let Some(mentor) = &self.mentor {
            event = event.string("mentor", mentor.as_str());
        }
        ai.report.report(event.build()).await;
    }
}
