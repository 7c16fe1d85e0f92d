//! What identity tells other services, through its transactional outbox. Audited changes carry
//! their events ([`for_audit`]): user registrations, sign-ins, lockouts and suspensions go to
//! analytics; deletions go to analytics and to profiles (which purges the user's data). The
//! relays authenticate with service tokens identity signs for itself.

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::Status;
use tt_common::{
    auth::{RenewingToken, Role},
    client::{Credentials, Peer, PeerOptions, TokenProvider},
    outbox::{ANALYTICS, AnalyticsSink, Backlog, EventBuilder, Relay, Sink},
};
use tt_proto::{
    common::v1::Event,
    profiles::v1::{ConsumeEventsRequest, integration_service_client::IntegrationServiceClient},
};

use crate::{Identity, store::audit::AuditRecord};

/// The event a deletion writes (subject: the user id).
pub const USER_DELETED: &str = "identity.user.deleted";

/// The outbox destination of profiles (identity's deletions go there).
pub const PROFILES: &str = "profiles";

/// The subject of the tokens identity signs for its own calls.
pub const SELF_SUBJECT: &str = "identity";

/// The event an audit record stands for, if any, and where it goes. Every event is about a
/// user (its subject); the actor is whoever caused it (empty: the system).
pub fn for_audit(record: &AuditRecord) -> Option<(Event, &'static [&'static str])> {
    const TO_ANALYTICS: &[&str] = &[ANALYTICS];
    let event = |kind: &str, subject: &str, actor: &str| {
        EventBuilder::new(SELF_SUBJECT, kind, subject, actor, record.created_at)
    };
    let client = || {
        serde_json::from_str::<serde_json::Value>(&record.details)
            .ok()
            .and_then(|d| d.get("client").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_default()
    };
    let (event, destinations) = match record.kind.as_str() {
        "user.registered" => {
            (event("identity.user.registered", &record.subject, &record.actor_id), TO_ANALYTICS)
        }
        "login.succeeded" => {
            let e = event("identity.user.logged_in", &record.subject, &record.actor_id);
            let client = client();
            (if client.is_empty() { e } else { e.string("client", client) }, TO_ANALYTICS)
        }
        // The subject of a lockout record is the sign-in name; only known users are reported.
        "login.locked_out" if !record.actor_id.is_empty() => {
            (event("identity.user.locked_out", &record.actor_id, ""), TO_ANALYTICS)
        }
        "user.suspended" => {
            (event("identity.user.suspended", &record.subject, &record.actor_id), TO_ANALYTICS)
        }
        "user.deleted" => {
            (event(USER_DELETED, &record.subject, &record.actor_id), &[PROFILES, ANALYTICS][..])
        }
        _ => return None,
    };
    Some((event.build(), destinations))
}

/// Service tokens identity signs for itself (or, in the all-in-one server, for a co-located
/// service named by `subject`).
pub struct SelfIssued {
    identity: Arc<Identity>,
    subject: String,
    token: RenewingToken,
}

impl SelfIssued {
    pub fn new(identity: Arc<Identity>, subject: &str) -> Arc<Self> {
        let clock = identity.clock.clone();
        Arc::new(Self { identity, subject: subject.to_owned(), token: RenewingToken::new(clock) })
    }
}

impl TokenProvider for SelfIssued {
    fn token(&self) -> BoxFuture<'_, Result<String, Status>> {
        Box::pin(self.token.get(|| {
            let ttl = self.identity.args.service_token_ttl.0;
            self.identity.access_token(&self.subject, &[Role::Service], None, ttl)
        }))
    }
}

/// Delivers batches to profiles' `IntegrationService.ConsumeEvents`.
struct ProfilesSink(Peer);

impl Sink for ProfilesSink {
    fn deliver(&self, events: Vec<Event>, _backlog: Backlog) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            let request = ConsumeEventsRequest { events };
            self.0
                .call(|ch| {
                    let request = request.clone();
                    async move { IntegrationServiceClient::new(ch).consume_events(request).await }
                })
                .await
                .map(|_| ())
        })
    }
}

fn peer(identity: &Arc<Identity>, url: &str) -> Result<Peer, String> {
    Peer::connect_lazy(
        PeerOptions::new(url),
        Credentials::Service(SelfIssued::new(identity.clone(), SELF_SUBJECT)),
    )
}

fn relay(identity: &Arc<Identity>, destination: &str, sink: Arc<dyn Sink>) -> Relay {
    Relay::new(identity.store.db().clone(), destination, sink, identity.clock.clone())
        .with_signal(identity.store.outbox())
}

/// The relay of the "profiles" destination, to profiles at `url`.
pub fn profiles_relay(identity: &Arc<Identity>, url: &str) -> Result<Relay, String> {
    Ok(relay(identity, PROFILES, Arc::new(ProfilesSink(peer(identity, url)?))))
}

/// The relay of the "analytics" destination, to analytics at `url`.
pub fn analytics_relay(identity: &Arc<Identity>, url: &str) -> Result<Relay, String> {
    let sink = AnalyticsSink::new(peer(identity, url)?, SELF_SUBJECT);
    Ok(relay(identity, ANALYTICS, Arc::new(sink)))
}
