//! AdminService: usage statistics and the dead-letter store. Admins only.

use prost::Message;
use tonic::{Request, Response, Status};
use tt_common::{auth::require_admin, clock::to_timestamp, storage::Page};
use tt_proto::{
    analytics::v1::{self as pb, admin_service_server::AdminService},
    common::v1::Event,
};

use super::{Api, MAX_REPLAY_IDS, violations};
use crate::{
    domain::calendar::quarter,
    store::{Batch, dead_letters::DeadLetterRow},
};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Dead letters one ReplayDeadLetters call handles.
const MAX_REPLAY: usize = 5000;

fn dead_letter_message(row: DeadLetterRow) -> pb::DeadLetter {
    pb::DeadLetter {
        id: row.id,
        event: Event::decode(row.payload.as_slice()).ok(),
        reason: row.reason,
        receive_time: Some(to_timestamp(row.received_at)),
        replay_attempts: i32::try_from(row.replay_attempts).unwrap_or(i32::MAX),
        replay_time: row.replayed_at.map(to_timestamp),
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn get_usage_stats(
        &self,
        request: Request<pb::GetUsageStatsRequest>,
    ) -> Result<Response<pb::GetUsageStatsResponse>, Status> {
        require_admin(&request)?;
        let usage = self.store.usage(quarter(self.now() - DAY_MS)).await?;
        let rollup_backlog = self.store.rollup_backlog().await?;
        let sources = usage
            .sources
            .into_iter()
            .map(|s| pb::SourceStats {
                outbox_lag_ms: match (s.oldest_pending_at, s.backlog_reported_at) {
                    (Some(oldest), Some(reported)) if s.outbox_pending > 0 => (reported - oldest).max(0),
                    _ => 0,
                },
                source: s.source,
                events: s.events,
                duplicates: s.duplicates,
                dead_letters: s.dead_letters,
                batches: s.batches,
                last_ingest_time: (s.last_ingest_at > 0).then(|| to_timestamp(s.last_ingest_at)),
                outbox_pending: s.outbox_pending,
                oldest_pending_time: s.oldest_pending_at.map(to_timestamp),
                backlog_report_time: s.backlog_reported_at.map(to_timestamp),
            })
            .collect();
        Ok(Response::new(pb::GetUsageStatsResponse {
            events_total: usage.events_total,
            events_last_24h: usage.events_since,
            users_total: usage.users_total,
            dead_letters_pending: usage.dead_letters_pending,
            sources,
            rollup_backlog,
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let scope = format!("dead_letters:{}", req.include_replayed);
        let page: Page<'_, String> = self.pages.page(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows =
            self.store.dead_letters(req.include_replayed, page.after.as_deref(), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| r.id.clone());
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: rows.into_iter().map(dead_letter_message).collect(),
            next_page_token,
        }))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        v.check(
            req.all == req.dead_letter_ids.is_empty(),
            "dead_letter_ids",
            "name dead letters, or set all",
        );
        v.check_ids("dead_letter_ids", &req.dead_letter_ids, MAX_REPLAY_IDS);
        v.into_result()?;
        let rows = self.store.pending_dead_letters(&req.dead_letter_ids, MAX_REPLAY as i64).await?;
        let now = self.now();
        let mut batch = Batch { now, ..Batch::default() };
        for row in rows {
            let checked = Event::decode(row.payload.as_slice())
                .map_err(|e| tt_common::error::Invalid::from(format!("MALFORMED: undecodable ({e})")))
                .and_then(|event| self.registry.check(&event, now));
            match checked {
                Ok(accepted) => {
                    batch.accepted.push(accepted);
                    batch.replayed.push(row.id);
                }
                Err(reason) => batch.still_failing.push((row.id, reason.into())),
            }
        }
        let replayed = batch.replayed.len() as i64;
        let still_failing = batch.still_failing.len() as i64;
        self.store.ingest(&batch).await?;
        Ok(Response::new(pb::ReplayDeadLettersResponse { replayed, still_failing }))
    }
}
