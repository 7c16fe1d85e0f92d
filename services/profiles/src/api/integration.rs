//! IntegrationService: what other services call with their service tokens.

use futures::future::BoxFuture;
use tonic::{Request, Response, Status};
use tt_common::{auth::require_service, client::Peer, clock::from_timestamp};
use tt_proto::{
    common::v1::Event,
    profiles::v1::{self as pb, integration_service_server::IntegrationService},
};

use super::{Api, violations};
use crate::convert;

/// Events one ConsumeEvents call carries at most (the relay sends batches of 200).
const MAX_CONSUMED_EVENTS: usize = 1000;
use crate::{Error, Resource, store::skills::Verification};

pub use tt_common::outbox::{USER_DELETED, USER_NAMED};

/// The longest display name kept (identity allows 100 characters).
const MAX_DISPLAY_NAME: usize = 100;

/// The `display_name` of a naming notice.
fn display_name(e: &Event) -> Option<&str> {
    match e.attributes.get("display_name")?.kind.as_ref()? {
        tt_proto::common::v1::attribute_value::Kind::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// How other modules' outboxes hand profiles the events it consumes (its manifest declares it).
pub fn deliver(peer: Peer, events: Vec<Event>) -> BoxFuture<'static, Result<(), Status>> {
    tt_common::platform::consume_events(
        peer,
        "/timetravelers.profiles.v1.IntegrationService/ConsumeEvents",
        events,
    )
}

#[tonic::async_trait]
impl IntegrationService for Api {
    async fn get_learner_view(
        &self,
        request: Request<pb::GetLearnerViewRequest>,
    ) -> Result<Response<pb::GetLearnerViewResponse>, Status> {
        require_service(&request)?;
        let user_id = request.into_inner().user_id;
        let mut v = violations();
        v.check_id("user_id", &user_id);
        v.into_result()?;
        let view = self.learner_view(&user_id).await?;
        Ok(Response::new(pb::GetLearnerViewResponse { view: Some(view) }))
    }

    async fn verify_learner_skill(
        &self,
        request: Request<pb::VerifyLearnerSkillRequest>,
    ) -> Result<Response<pb::VerifyLearnerSkillResponse>, Status> {
        let verifier = require_service(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        v.check_id("user_id", &req.user_id);
        self.check_skill(&mut v, "skill_id", &req.skill_id, true);
        v.check((1..=5).contains(&req.proficiency), "proficiency", "must be 1 to 5");
        let source = req.source.trim();
        v.check(!source.is_empty(), "source", "must not be empty");
        v.check_text("source", source, 200);
        v.into_result()?;
        self.ensure(&req.user_id, &verifier).await?;
        let verification = Verification {
            proficiency: req.proficiency,
            source: source.to_owned(),
            verifier,
            verified_at: self.now(),
        };
        let (changed, row) = self
            .store
            .verify_skill(&req.user_id, &req.skill_id, &verification)
            .await
            .map_err(Error::write(Resource::Skill, &req.skill_id))?;
        if changed {
            self.changed(&req.user_id).await;
        }
        Ok(Response::new(pb::VerifyLearnerSkillResponse {
            skill: Some(convert::learner_skill(&row, &self.taxonomy)),
        }))
    }

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
            if e.r#type == USER_DELETED || e.r#type == USER_NAMED {
                v.check_id(&format!("events[{i}].subject"), &e.subject);
            }
            if e.r#type == USER_NAMED {
                v.check(
                    display_name(e).is_some_and(|n| n.chars().count() <= MAX_DISPLAY_NAME),
                    &format!("events[{i}].attributes"),
                    format!("must carry a display_name of at most {MAX_DISPLAY_NAME} characters"),
                );
            }
        }
        v.into_result()?;
        let mut applied = 0;
        for e in &events {
            let at = e.time.as_ref().map_or_else(|| self.now(), from_timestamp);
            let fresh = if e.r#type == USER_DELETED {
                let fresh = self.store.purge_user(&e.id, &e.subject, at).await?;
                self.changed(&e.subject).await;
                fresh
            } else if let (USER_NAMED, Some(name)) = (e.r#type.as_str(), display_name(e)) {
                let fresh = self.store.name_user(&e.id, &e.subject, name, at).await?;
                self.changed(&e.subject).await;
                fresh
            } else {
                self.store.acknowledge_event(&e.id, self.now()).await?
            };
            applied += i32::from(fresh);
        }
        Ok(Response::new(pb::ConsumeEventsResponse { applied }))
    }
}
