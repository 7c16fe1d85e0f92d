//! The profiles service: the learner's profile, career goals, learning-style assessment,
//! professional experience, skill inventory (over a canonical taxonomy shipped as data) and
//! profile completion, plus the compact learner view other services personalise on.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service), `convert.rs` rows to
//! messages and the derived views, `service.rs` the core they share (access rules, cached views),
//! `domain/` the rules without I/O, `store/` the repositories. [`Profiles`] is the module the
//! platform mounts (`MODULE`), in the `profiles` binary and in the all-in-one server alike.

pub mod api;
pub mod config;
pub mod convert;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::sync::Arc;

use futures::future::BoxFuture;
use tt_common::{
    outbox::{
        USER_DELETED, USER_NAMED, consumed,
        schema::{
            Attr,
            AttrKind::{Int, String as Str},
            EventType,
        },
    },
    platform::{BoxError, Consumes, Context, Def, Manifest, Module, Mount},
};
use tt_proto::profiles::v1::{
    self as pb, assessment_service_server::AssessmentServiceServer,
    experience_service_server::ExperienceServiceServer, goal_service_server::GoalServiceServer,
    integration_service_server::IntegrationServiceServer, profile_service_server::ProfileServiceServer,
    skill_service_server::SkillServiceServer,
};

pub use crate::service::Profiles;
use crate::{api::Api, config::ProfilesArgs, store::Store};

pub use crate::error::{DOMAIN, Error, Resource};

/// Profiles, as the platform mounts it.
pub static MODULE: Def<Profiles> = Def::new();

/// The events profiles writes to its outbox.
pub const EMITS: &[EventType] = &[
    EventType::v1("profiles.profile.created", &[]),
    EventType::v1(
        "profiles.profile.updated",
        &[Attr::required("fields", Str), Attr::optional("time_zone", Str)],
    ),
    EventType::v1("profiles.assessment.completed", &[Attr::required("dominant_style", Str)]),
    EventType::v1("profiles.goal.created", &[Attr::required("goal_id", Str), Attr::optional("kind", Str)]),
    EventType::v1("profiles.goal.achieved", &[Attr::required("goal_id", Str)]),
    EventType::v1("profiles.skill.added", &[Attr::required("skill_id", Str), Attr::optional("level", Int)]),
    EventType::v1(
        "profiles.skill.verified",
        &[Attr::required("skill_id", Str), Attr::required("proficiency", Int), Attr::optional("source", Str)],
    ),
    EventType::v1(
        "profiles.completion.changed",
        &[Attr::required("percent", Int), Attr::required("previous", Int)],
    ),
    EventType::notice(LEARNER_CHANGED, &[Attr::required("part", Str)]),
];

/// Written with every change to what the learner view shows (`part`: profile, goals,
/// positions, skills or assessment), in the writing transaction: a service keeping copies of
/// learner views consumes it to refresh them. A notice: analytics does not hear it.
pub const LEARNER_CHANGED: &str = "profiles.learner.changed";

impl Module for Profiles {
    type Args = ProfilesArgs;

    const MANIFEST: &'static Manifest = &Manifest {
        name: "profiles",
        domain: DOMAIN,
        emits: EMITS,
        consumes: Some(Consumes { types: &[USER_DELETED, USER_NAMED], deliver: api::integration::deliver }),
        peers: &[],
    };

    fn build(cx: Context, args: ProfilesArgs) -> BoxFuture<'static, Result<Arc<Self>, BoxError>> {
        Box::pin(async move {
            let store = Store::with_outbox(cx.db, cx.outbox);
            Profiles::new(store, cx.cache, cx.platform.clock.clone(), cx.pages, args.profiles_cache_ttl.0)
        })
    }

    /// Its migrations.
    fn prepare(self: Arc<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move { Ok(self.store.migrate().await?) })
    }

    fn mount(self: &Arc<Self>, m: &mut Mount<'_>) {
        let api = Api(self.clone());
        let fds = pb::FILE_DESCRIPTOR_SET;
        m.grpc(ProfileServiceServer::new(api.clone()), fds)
            .grpc(GoalServiceServer::new(api.clone()), fds)
            .grpc(AssessmentServiceServer::new(api.clone()), fds)
            .grpc(ExperienceServiceServer::new(api.clone()), fds)
            .grpc(SkillServiceServer::new(api.clone()), fds)
            .grpc(IntegrationServiceServer::new(api), fds)
            .job(
                "profiles.prune_consumed_events",
                Box::pin(consumed::prune_forever(self.store.db().clone(), self.clock.clone())),
            );
    }
}
