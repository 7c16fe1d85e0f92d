//! The analytics service: the event pipeline that loses nothing (idempotent batch and streaming
//! ingestion, dead letters with replay), engagement metrics (DAU/WAU/MAU, stickiness, new users,
//! weekly cohorts) in any time zone, usage patterns (heatmaps, feature usage), a learner's
//! timeline, cached dashboards, streamed CSV/JSON Lines exports and pipeline statistics.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service), `service.rs` the core
//! (ingestion), `reports.rs` the reports computed from rollups, `domain/` the rules without I/O
//! (event registry, local calendars, export formats), `store/` the repositories. [`register`]
//! mounts everything on a [`ServerBuilder`]; the `analytics` binary and the all-in-one server
//! both use it.

pub mod api;
pub mod config;
pub mod domain;
pub mod reports;
pub mod run;
pub mod service;
pub mod store;

use std::sync::Arc;

use tt_common::server::ServerBuilder;
use tt_proto::analytics::v1::{
    self as pb, admin_service_server::AdminServiceServer, event_service_server::EventServiceServer,
    ingest_service_server::IngestServiceServer, report_service_server::ReportServiceServer,
};

use crate::api::Api;
pub use crate::service::Analytics;

/// The `ErrorInfo` domain of analytics' errors.
pub const DOMAIN: &str = "analytics.timetravelers.dev";

/// The gRPC services analytics mounts (also its health-check names).
pub const SERVICES: &[&str] = &[
    "timetravelers.analytics.v1.IngestService",
    "timetravelers.analytics.v1.ReportService",
    "timetravelers.analytics.v1.EventService",
    "timetravelers.analytics.v1.AdminService",
];

impl Analytics {
    /// What analytics needs before it serves: its migrations. Runs once per process.
    pub async fn prepare(&self) -> Result<(), String> {
        self.prepared
            .get_or_try_init(|| async { self.store.migrate().await.map_err(|e| e.to_string()) })
            .await?;
        Ok(())
    }
}

/// Folds accepted events into the rollups, once the tables exist.
async fn roll_up(analytics: Arc<Analytics>) {
    while analytics.prepare().await.is_err() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    analytics.roll_up_forever().await;
}

/// Mounts analytics' four gRPC services, its descriptors and its readiness check (migrations).
pub fn register(builder: &mut ServerBuilder, analytics: Arc<Analytics>) {
    let api = Api(analytics.clone());
    let max = builder.args().max_message_bytes;
    let fds = pb::FILE_DESCRIPTOR_SET;
    builder
        .add_service(
            IngestServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            ReportServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            EventServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            AdminServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max),
            fds,
        )
        .background("analytics.rollups", Box::pin(roll_up(analytics.clone())))
        .ready_when(
            SERVICES,
            Box::new(move || {
                let analytics = analytics.clone();
                Box::pin(async move { analytics.prepare().await })
            }),
        );
}
