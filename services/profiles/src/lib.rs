//! The profiles service: the learner's profile, career goals, learning-style assessment,
//! professional experience, skill inventory (over a canonical taxonomy shipped as data) and
//! profile completion, plus the compact learner view other services personalise on.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service) and `convert.rs` (rows to
//! messages, derived views), `service.rs` the core they share (access rules, cached views),
//! `domain/` the rules without I/O, `store/` the repositories. [`register`] mounts everything on a
//! [`ServerBuilder`]; the `profiles` binary and the all-in-one server both use it.

pub mod api;
pub mod config;
pub mod domain;
pub mod run;
pub mod service;
pub mod store;

use std::sync::Arc;

use tt_common::{
    client::Peer,
    outbox::{ANALYTICS, AnalyticsSink, Relay},
    server::ServerBuilder,
};
use tt_proto::profiles::v1::{
    self as pb, assessment_service_server::AssessmentServiceServer,
    experience_service_server::ExperienceServiceServer, goal_service_server::GoalServiceServer,
    integration_service_server::IntegrationServiceServer, profile_service_server::ProfileServiceServer,
    skill_service_server::SkillServiceServer,
};

use crate::api::Api;
pub use crate::service::Profiles;

/// The `ErrorInfo` domain of profiles' errors.
pub const DOMAIN: &str = "profiles.timetravelers.dev";

/// The gRPC services profiles mounts (also its health-check names).
pub const SERVICES: &[&str] = &[
    "timetravelers.profiles.v1.ProfileService",
    "timetravelers.profiles.v1.GoalService",
    "timetravelers.profiles.v1.AssessmentService",
    "timetravelers.profiles.v1.ExperienceService",
    "timetravelers.profiles.v1.SkillService",
    "timetravelers.profiles.v1.IntegrationService",
];

impl Profiles {
    /// What profiles needs before it serves: its migrations. Runs once per process.
    pub async fn prepare(&self) -> Result<(), String> {
        self.prepared
            .get_or_try_init(|| async { self.store.migrate().await.map_err(|e| e.to_string()) })
            .await?;
        Ok(())
    }
}

/// Mounts profiles' six gRPC services, its descriptors and its readiness check (migrations),
/// and, given analytics (a peer carrying a service token), the relay that delivers profiles'
/// events there from the outbox. Without it the events wait in the outbox.
pub fn register(builder: &mut ServerBuilder, profiles: Arc<Profiles>, analytics: Option<Peer>) {
    if let Some(peer) = analytics {
        let sink = Arc::new(AnalyticsSink::new(peer, "profiles"));
        let relay = Relay::new(profiles.store.db().clone(), ANALYTICS, sink, profiles.clock.clone())
            .with_signal(profiles.store.outbox());
        let ready = profiles.clone();
        builder.background(
            "profiles.outbox.analytics",
            Box::pin(async move {
                // The outbox tables exist once the migrations ran.
                while ready.prepare().await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                relay.run().await;
            }),
        );
    }
    builder.outbox(tt_common::outbox::OutboxSource {
        service: "profiles".into(),
        db: profiles.store.db().clone(),
        destinations: vec![ANALYTICS.into()],
        pages: profiles.pages.clone(),
        clock: profiles.clock.clone(),
        signal: Some(profiles.store.outbox().clone()),
    });
    let api = Api(profiles.clone());
    let max = builder.args().max_message_bytes;
    let fds = pb::FILE_DESCRIPTOR_SET;
    builder
        .add_service(
            ProfileServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            GoalServiceServer::new(api.clone()).max_decoding_message_size(max).max_encoding_message_size(max),
            fds,
        )
        .add_service(
            AssessmentServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            ExperienceServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            SkillServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            IntegrationServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max),
            fds,
        )
        .background("profiles.prune_consumed_events", Box::pin(prune_consumed(profiles.clone())))
        .ready_when(
            SERVICES,
            Box::new(move || {
                let profiles = profiles.clone();
                Box::pin(async move { profiles.prepare().await })
            }),
        );
}

/// Forgets consumed event ids after 30 days, hourly (redelivery happens within minutes).
async fn prune_consumed(profiles: Arc<Profiles>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
    loop {
        tokio::time::sleep(EVERY).await;
        match profiles.store.prune_consumed(profiles.now() - KEEP_MS).await {
            Ok(n) if n > 0 => tracing::info!(events = n, "pruned consumed event ids"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning consumed event ids failed"),
        }
    }
}
