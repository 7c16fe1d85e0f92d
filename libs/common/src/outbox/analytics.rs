//! The analytics destination, shared by every service that reports events: batches go to
//! analytics' `IngestService.IngestEvents` with the source's backlog (its delivery lag).

use futures::future::BoxFuture;
use tonic::Status;
use tt_proto::{
    analytics::v1::{IngestEventsRequest, SourceBacklog, ingest_service_client::IngestServiceClient},
    common::v1::Event,
};

use super::{Backlog, Sink};
use crate::client::Peer;

/// The outbox destination name of analytics.
pub const ANALYTICS: &str = "analytics";

/// Delivers to analytics over `peer` (which carries the source's service credentials).
pub struct AnalyticsSink {
    peer: Peer,
    source: String,
}

impl AnalyticsSink {
    pub fn new(peer: Peer, source: &str) -> Self {
        Self { peer, source: source.to_owned() }
    }
}

impl Sink for AnalyticsSink {
    fn deliver(&self, events: Vec<Event>, backlog: Backlog) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            let request = IngestEventsRequest {
                events,
                backlog: Some(SourceBacklog {
                    source: self.source.clone(),
                    pending: backlog.pending,
                    oldest_pending_time: backlog.oldest.map(crate::clock::to_timestamp),
                }),
            };
            self.peer
                .call(|ch| {
                    let request = request.clone();
                    async move { IngestServiceClient::new(ch).ingest_events(request).await }
                })
                .await
                .map(|_| ())
        })
    }
}
