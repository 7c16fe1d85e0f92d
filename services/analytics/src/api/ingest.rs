//! IngestService: outbox relays (and bulk loaders) deliver events here, with service tokens.

use tonic::{Request, Response, Status, Streaming};
use tt_common::{auth::require_service, clock::from_timestamp};
use tt_proto::analytics::v1::{self as pb, ingest_service_server::IngestService};

use super::{Api, violations};
use crate::store::{Backlog, Summary};

/// Events per call or stream message.
pub const MAX_BATCH: usize = 5000;

fn summary(s: Summary) -> Option<pb::IngestSummary> {
    Some(pb::IngestSummary { accepted: s.accepted, duplicates: s.duplicates, dead_lettered: s.dead_lettered })
}

#[tonic::async_trait]
impl IngestService for Api {
    async fn ingest_events(
        &self,
        request: Request<pb::IngestEventsRequest>,
    ) -> Result<Response<pb::IngestEventsResponse>, Status> {
        require_service(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        v.check(req.events.len() <= MAX_BATCH, "events", format!("at most {MAX_BATCH} per call"));
        if let Some(b) = &req.backlog {
            v.check(
                !b.source.is_empty()
                    && b.source.len() <= 64
                    && b.source.chars().all(|c| c.is_ascii_graphic()),
                "backlog.source",
                "must name the source service",
            );
            v.check(b.pending >= 0, "backlog.pending", "must not be negative");
        }
        v.into_result()?;
        let backlog = req.backlog.map(|b| Backlog {
            source: b.source,
            pending: b.pending,
            oldest: b.oldest_pending_time.as_ref().map(from_timestamp),
        });
        let s = self.ingest(req.events, backlog).await?;
        Ok(Response::new(pb::IngestEventsResponse { summary: summary(s) }))
    }

    async fn stream_events(
        &self,
        request: Request<Streaming<pb::StreamEventsRequest>>,
    ) -> Result<Response<pb::StreamEventsResponse>, Status> {
        require_service(&request)?;
        let mut stream = request.into_inner();
        let mut total = Summary::default();
        while let Some(message) = stream.message().await? {
            let mut v = violations();
            v.check(message.events.len() <= MAX_BATCH, "events", format!("at most {MAX_BATCH} per message"));
            v.into_result()?;
            total += self.ingest(message.events, None).await?;
        }
        Ok(Response::new(pb::StreamEventsResponse { summary: summary(total) }))
    }
}
