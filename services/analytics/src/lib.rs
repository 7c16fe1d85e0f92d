//! The analytics service: the event pipeline that loses nothing (idempotent batch and streaming
//! ingestion, dead letters with replay), engagement metrics (DAU/WAU/MAU, stickiness, new users,
//! weekly cohorts) in any time zone, usage patterns (heatmaps, feature usage), a learner's
//! timeline, cached dashboards, streamed CSV/JSON Lines exports and pipeline statistics.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service), `service.rs` the core
//! (ingestion), `reports.rs` the reports computed from rollups, `domain/` the rules without I/O
//! (event registry, local calendars, export formats), `store/` the repositories. [`Analytics`] is the module
//! the platform mounts (`MODULE`), in the `analytics` binary and in the all-in-one alike.

pub mod api;
pub mod config;
pub mod domain;
pub mod reports;
pub mod service;
pub mod store;

use std::sync::Arc;

use futures::future::BoxFuture;
use tt_common::platform::{BoxError, Context, Def, Manifest, Module, Mount};
use tt_proto::analytics::v1::{
    self as pb, admin_service_server::AdminServiceServer, event_service_server::EventServiceServer,
    ingest_service_server::IngestServiceServer, report_service_server::ReportServiceServer,
};

pub use crate::service::Analytics;
use crate::{api::Api, config::AnalyticsArgs, domain::schema::Registry, store::Store};

/// The `ErrorInfo` domain of analytics' errors.
pub const DOMAIN: tt_common::error::Domain = tt_common::error::Domain::new("analytics.timetravelers.dev");

/// Analytics, as the platform mounts it.
pub static MODULE: Def<Analytics> = Def::new();

impl Module for Analytics {
    type Args = AnalyticsArgs;

    /// Analytics hears every event of every module through their outboxes (the platform routes
    /// them here) and accepts the types their manifests declare.
    const MANIFEST: &'static Manifest =
        &Manifest { name: "analytics", domain: DOMAIN, emits: &[], consumes: None, peers: &[] };

    fn build(cx: Context, args: AnalyticsArgs) -> BoxFuture<'static, Result<Arc<Self>, BoxError>> {
        Box::pin(async move {
            Ok(Arc::new(Analytics::new(
                Store::new(cx.db),
                cx.cache,
                cx.platform.clock.clone(),
                cx.pages,
                args.analytics_dashboard_ttl.0,
                Registry::new(cx.platform.emitted()),
            )))
        })
    }

    /// Its migrations.
    fn prepare(self: Arc<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move { Ok(self.store.migrate().await?) })
    }

    fn mount(self: &Arc<Self>, m: &mut Mount<'_>) {
        let api = Api(self.clone());
        let fds = pb::FILE_DESCRIPTOR_SET;
        m.grpc(IngestServiceServer::new(api.clone()), fds)
            .grpc(ReportServiceServer::new(api.clone()), fds)
            .grpc(EventServiceServer::new(api.clone()), fds)
            .grpc(AdminServiceServer::new(api), fds)
            .job("analytics.rollups", {
                let analytics = self.clone();
                Box::pin(async move { analytics.roll_up_forever().await })
            });
    }
}
