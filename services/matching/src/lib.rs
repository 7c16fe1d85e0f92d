//! The matching service: the catalog of AI mentors ("time travelers"), the learner's mentors
//! ranked and explained, mentorships with seats held under concurrency, feedback, and the
//! optimal assignment of cohorts.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service), `convert.rs` rows and
//! views to messages, `service.rs` the core they share (the catalog in memory, learner features
//! from profiles), `catalog.rs` the catalog in memory, `domain/` the rules without I/O, `store/`
//! the repositories. [`Matching`] is the module the platform mounts (`MODULE`), in the
//! `matching` binary and in the all-in-one server alike.

pub mod api;
pub mod catalog;
pub mod cohorts;
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
        USER_DELETED, consumed,
        schema::{
            Attr,
            AttrKind::{Int, String as Str},
            EventType,
        },
    },
    platform::{BoxError, Consumes, Context, Def, Manifest, Module, Mount},
};
use tt_proto::matching::v1::{
    self as pb, admin_service_server::AdminServiceServer,
    integration_service_server::IntegrationServiceServer, match_service_server::MatchServiceServer,
    mentor_service_server::MentorServiceServer, mentorship_service_server::MentorshipServiceServer,
};

use crate::{api::Api, config::MatchingArgs, service::Parts, store::Store};
pub use crate::{
    error::{DOMAIN, Error},
    service::Matching,
};

/// Matching, as the platform mounts it.
pub static MODULE: Def<Matching> = Def::new();

/// The events matching writes to its outbox.
pub const EMITS: &[EventType] = &[
    EventType::v1(
        "matching.mentorship.started",
        &[
            Attr::required("mentorship_id", Str),
            Attr::required("mentor_id", Str),
            Attr::required("mentor_version", Int),
            Attr::required("origin", Str),
        ],
    ),
    EventType::v1(
        "matching.mentorship.proposed",
        &[
            Attr::required("mentorship_id", Str),
            Attr::required("mentor_id", Str),
            Attr::required("mentor_version", Int),
            Attr::required("origin", Str),
        ],
    ),
    EventType::v1("matching.weights.changed", &[Attr::required("version", Int)]),
    EventType::v1(
        "matching.mentorship.ended",
        &[
            Attr::required("mentorship_id", Str),
            Attr::required("mentor_id", Str),
            Attr::required("state", Str),
            Attr::required("reason", Str),
        ],
    ),
    EventType::v1(
        "matching.mentor.published",
        &[Attr::required("mentor_id", Str), Attr::required("version", Int)],
    ),
    EventType::v1("matching.mentor.retired", &[Attr::required("mentor_id", Str)]),
    EventType::v1(
        "matching.feedback.submitted",
        &[
            Attr::required("mentorship_id", Str),
            Attr::required("mentor_id", Str),
            Attr::required("rating", Int),
        ],
    ),
];

impl Module for Matching {
    type Args = MatchingArgs;

    const MANIFEST: &'static Manifest = &Manifest {
        name: "matching",
        domain: DOMAIN,
        emits: EMITS,
        consumes: Some(Consumes {
            types: &[USER_DELETED, api::integration::LEARNER_CHANGED],
            deliver: api::integration::deliver,
        }),
        peers: &["profiles"],
    };

    fn build(cx: Context, args: MatchingArgs) -> BoxFuture<'static, Result<Arc<Self>, BoxError>> {
        Box::pin(async move {
            let clock = cx.platform.clock.clone();
            let embedder = args.ai.embedder(clock.clone())?;
            Ok(Arc::new(Matching::new(Parts {
                store: Store::with_outbox(cx.db, cx.outbox),
                cache: cx.cache,
                clock,
                pages: cx.pages,
                embedder,
                platform: cx.platform.clone(),
                view_ttl: args.matching_view_ttl.0,
                seats_refresh: args.matching_seats_refresh.0,
            })))
        })
    }

    /// Migrations, the demo mentors, and the catalog warmed before SERVING.
    fn prepare(self: Arc<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move { Matching::prepare(&self).await })
    }

    fn mount(self: &Arc<Self>, m: &mut Mount<'_>) {
        let api = Api(self.clone());
        let fds = pb::FILE_DESCRIPTOR_SET;
        m.grpc(MentorServiceServer::new(api.clone()), fds)
            .grpc(MatchServiceServer::new(api.clone()), fds)
            .grpc(MentorshipServiceServer::new(api.clone()), fds)
            .grpc(AdminServiceServer::new(api.clone()), fds)
            .grpc(IntegrationServiceServer::new(api), fds)
            .job("matching.refresh_catalog", Box::pin(self.clone().refresh()))
            .job("matching.expire_proposals", Box::pin(self.clone().expire_proposals()))
            .job(
                "matching.prune_consumed_events",
                Box::pin(consumed::prune_forever(self.store.db().clone(), self.clock.clone())),
            );
    }
}
