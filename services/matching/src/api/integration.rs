//! IntegrationService: the events matching consumes, delivered by the other services' outboxes.

use futures::future::BoxFuture;
use tonic::{Request, Response, Status};
use tt_common::{auth::require_service, client::Peer, clock::from_timestamp};
use tt_proto::{
    common::v1::Event,
    matching::v1::{self as pb, integration_service_server::IntegrationService},
};

use super::{Api, violations};

pub use tt_common::outbox::USER_DELETED;

/// Profiles' notice that a learner's view changed (`tt_profiles::LEARNER_CHANGED`).
pub const LEARNER_CHANGED: &str = "profiles.learner.changed";

/// Events one ConsumeEvents call carries at most (the relay sends batches of 200).
const MAX_CONSUMED_EVENTS: usize = 1000;

/// How other modules' outboxes hand matching the events it consumes (its manifest declares it).
pub fn deliver(peer: Peer, events: Vec<Event>) -> BoxFuture<'static, Result<(), Status>> {
    tt_common::platform::consume_events(
        peer,
        "/timetravelers.matching.v1.IntegrationService/ConsumeEvents",
        events,
    )
}

#[tonic::async_trait]
impl IntegrationService for Api {
    async fn consume_events(
        &self,
        request: Request<pb::ConsumeEventsRequest>,
    ) -> Result<Response<pb::ConsumeEventsResponse>, Status> {
        require_service(&request)?;
        let events = request.into_inner().events;
        let mut v = violations();
        let listed = v.check_count("events", events.len(), MAX_CONSUMED_EVENTS);
        for (i, e) in events.iter().enumerate().filter(|_| listed) {
            let ok = !e.id.is_empty() && e.id.len() <= 64 && e.id.bytes().all(|b| b.is_ascii_graphic());
            v.check(ok, &format!("events[{i}].id"), "must be an event id");
            if e.r#type == USER_DELETED || e.r#type == LEARNER_CHANGED {
                v.check_id(&format!("events[{i}].subject"), &e.subject);
            }
        }
        v.into_result()?;
        let mut applied = 0;
        for e in &events {
            let fresh = if e.r#type == USER_DELETED {
                let at = e.time.as_ref().map_or_else(|| self.now(), from_timestamp);
                let freed = self.store.purge_user(&e.id, &e.subject, at).await?;
                let catalog = self.catalog();
                for mentor_id in freed.iter().flatten() {
                    catalog.adjust_seats(mentor_id, -1);
                }
                freed.is_some()
            } else {
                self.store.acknowledge_event(&e.id, self.now()).await?
            };
            if e.r#type == USER_DELETED || e.r#type == LEARNER_CHANGED {
                self.forget_learner(&e.subject).await;
            }
            applied += i32::from(fresh);
        }
        Ok(Response::new(pb::ConsumeEventsResponse { applied }))
    }
}
