//! `OutboxAdminService`: the outboxes of the services on one server, their backlog and their
//! dead letters (events a receiver refused as invalid), which admins replay or discard.
//!
//! Every service with an outbox hands the server builder an [`OutboxSource`]; the builder mounts
//! one `OutboxAdminService` over all of them, so a service binary serves its own outbox and the
//! all-in-one every service's, the same way.

use prost::Message;
use sqlx::Row;
use tonic::{Request, Response, Status};
use tt_proto::common::v1::{
    self as pb, Event,
    outbox_admin_service_server::{OutboxAdminService, OutboxAdminServiceServer},
};

use super::Signal;
use crate::{
    auth::require_admin,
    clock::{SharedClock, to_timestamp},
    error::Violations,
    storage::{Database, PageTokens, StorageError},
};

pub(crate) const DOMAIN: crate::error::Domain = crate::error::Domain::new("outbox.timetravelers.dev");

/// Dead letters one replay or discard names at most.
pub const MAX_IDS: usize = 500;

/// One service's outbox, as the admin service sees it.
#[derive(Clone)]
pub struct OutboxSource {
    pub service: String,
    pub db: Database,
    pub destinations: Vec<String>,
    pub pages: PageTokens,
    pub clock: SharedClock,
    /// Raised after a replay or discard, so the relays look again at once.
    pub signal: Option<Signal>,
}

impl std::fmt::Debug for OutboxSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxSource").field("service", &self.service).finish()
    }
}

/// The admin service over the outboxes of the services on this server.
#[derive(Debug, Clone)]
pub struct OutboxAdmin {
    sources: Vec<OutboxSource>,
}

impl OutboxAdmin {
    pub fn new(sources: Vec<OutboxSource>) -> Self {
        Self { sources }
    }

    /// The tonic server, with the message-size limit applied.
    pub fn server(self, max_message_bytes: usize) -> OutboxAdminServiceServer<Self> {
        OutboxAdminServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }

    /// The source named `service`, recording a violation when there is none.
    fn source(&self, v: &mut Violations, service: &str) -> Option<&OutboxSource> {
        let found = self.sources.iter().find(|s| s.service == service);
        if found.is_none() {
            let names: Vec<&str> = self.sources.iter().map(|s| s.service.as_str()).collect();
            v.add("service", format!("must be one of: {}", names.join(", ")));
        }
        found
    }
}

/// The rows that are dead letters: refused, neither replayed nor discarded.
const DEAD: &str = "dead_at IS NOT NULL AND delivered_at IS NULL";

#[tonic::async_trait]
impl OutboxAdminService for OutboxAdmin {
    async fn list_outboxes(
        &self,
        request: Request<pb::ListOutboxesRequest>,
    ) -> Result<Response<pb::ListOutboxesResponse>, Status> {
        require_admin(&request)?;
        let mut outboxes = Vec::new();
        for source in &self.sources {
            for destination in &source.destinations {
                let row = sqlx::query(
                    "SELECT \
                     (SELECT COUNT(*) FROM outbox WHERE destination = $1 AND delivered_at IS NULL \
                      AND dead_at IS NULL) AS pending, \
                     (SELECT COUNT(*) FROM outbox WHERE destination = $1 AND delivered_at IS NULL \
                      AND dead_at IS NULL AND subject IN (SELECT subject FROM outbox WHERE destination = $1 \
                      AND dead_at IS NOT NULL AND delivered_at IS NULL)) AS held, \
                     (SELECT COUNT(*) FROM outbox WHERE destination = $1 AND dead_at IS NOT NULL \
                      AND delivered_at IS NULL) AS dead, \
                     (SELECT MIN(created_at) FROM outbox WHERE destination = $1 AND delivered_at IS NULL \
                      AND dead_at IS NULL) AS oldest",
                )
                .bind(destination)
                .fetch_one(source.db.pool())
                .await
                .map_err(StorageError::from)?;
                let oldest: Option<i64> = row.try_get("oldest").map_err(StorageError::from)?;
                outboxes.push(pb::OutboxStatus {
                    service: source.service.clone(),
                    destination: destination.clone(),
                    pending: row.try_get("pending").map_err(StorageError::from)?,
                    held: row.try_get("held").map_err(StorageError::from)?,
                    dead_letters: row.try_get("dead").map_err(StorageError::from)?,
                    oldest_pending_time: oldest.map(to_timestamp),
                });
            }
        }
        Ok(Response::new(pb::ListOutboxesResponse { outboxes }))
    }

    async fn list_outbox_dead_letters(
        &self,
        request: Request<pb::ListOutboxDeadLettersRequest>,
    ) -> Result<Response<pb::ListOutboxDeadLettersResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let source = self.source(&mut v, &req.service);
        if let Some(s) = source {
            v.check(
                req.destination.is_empty() || s.destinations.contains(&req.destination),
                "destination",
                format!("must be empty or one of: {}", s.destinations.join(", ")),
            );
        }
        let scope = format!("outbox-dead:{}:{}", req.service, req.destination);
        let page = source.map(|s| s.pages.page::<String>(&mut v, scope, req.page_size, &req.page_token));
        v.into_result()?;
        let (Some(source), Some(page)) = (source, page) else {
            return Err(DOMAIN.internal(&"no source after checks"));
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, destination, payload, last_error, dead_at, attempts, \
             (SELECT COUNT(*) FROM outbox o WHERE o.destination = outbox.destination AND o.subject = outbox.subject \
              AND o.delivered_at IS NULL AND o.dead_at IS NULL) AS held \
             FROM outbox WHERE {DEAD} AND ($1 = '' OR destination = $1) AND id > $2 ORDER BY id LIMIT $3"
        )))
        .bind(&req.destination)
        .bind(page.after.as_deref().unwrap_or_default())
        .bind(page.limit())
        .fetch_all(source.db.pool())
        .await
        .map_err(StorageError::from)?;
        let mut letters = Vec::with_capacity(rows.len());
        for row in &rows {
            let payload: Vec<u8> = row.try_get("payload").map_err(StorageError::from)?;
            let dead_at: Option<i64> = row.try_get("dead_at").map_err(StorageError::from)?;
            let attempts: i32 = row.try_get("attempts").map_err(StorageError::from)?;
            letters.push(pb::OutboxDeadLetter {
                id: row.try_get("id").map_err(StorageError::from)?,
                service: source.service.clone(),
                destination: row.try_get("destination").map_err(StorageError::from)?,
                event: Event::decode(payload.as_slice()).ok(),
                reason: row
                    .try_get::<Option<String>, _>("last_error")
                    .map_err(StorageError::from)?
                    .unwrap_or_default(),
                dead_time: dead_at.map(to_timestamp),
                attempts,
                held_events: row.try_get("held").map_err(StorageError::from)?,
            });
        }
        let next_page_token = page.next(&mut letters, |l| l.id.clone());
        Ok(Response::new(pb::ListOutboxDeadLettersResponse { dead_letters: letters, next_page_token }))
    }

    async fn replay_outbox_dead_letters(
        &self,
        request: Request<pb::ReplayOutboxDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayOutboxDeadLettersResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let source = self.source(&mut v, &req.service);
        v.check(
            req.all == req.dead_letter_ids.is_empty(),
            "dead_letter_ids",
            "name dead letters, or set all",
        );
        v.check_ids("dead_letter_ids", &req.dead_letter_ids, MAX_IDS);
        v.into_result()?;
        let Some(source) = source else { return Err(DOMAIN.internal(&"no source after checks")) };
        let n = update(source, "dead_at = NULL", None, &req.dead_letter_ids).await?;
        Ok(Response::new(pb::ReplayOutboxDeadLettersResponse { requeued: n }))
    }

    async fn discard_outbox_dead_letters(
        &self,
        request: Request<pb::DiscardOutboxDeadLettersRequest>,
    ) -> Result<Response<pb::DiscardOutboxDeadLettersResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let source = self.source(&mut v, &req.service);
        v.check(!req.dead_letter_ids.is_empty(), "dead_letter_ids", "name the dead letters to discard");
        v.check_ids("dead_letter_ids", &req.dead_letter_ids, MAX_IDS);
        v.into_result()?;
        let Some(source) = source else { return Err(DOMAIN.internal(&"no source after checks")) };
        let now = source.clock.now_ms();
        let n = update(source, "delivered_at = $1", Some(now), &req.dead_letter_ids).await?;
        tracing::warn!(service = %source.service, discarded = n, by = %admin, "outbox dead letters discarded");
        Ok(Response::new(pb::DiscardOutboxDeadLettersResponse { discarded: n }))
    }
}

/// Applies `set` to the named dead letters (every one when `ids` is empty) and wakes the relays.
async fn update(source: &OutboxSource, set: &str, now: Option<i64>, ids: &[String]) -> Result<i32, Status> {
    let first = if now.is_some() { 2 } else { 1 };
    let mut sql = format!("UPDATE outbox SET {set} WHERE {DEAD}");
    if !ids.is_empty() {
        sql.push_str(&format!(" AND id IN ({})", crate::storage::query::list(ids.len(), first)));
    }
    // Only fixed text and numbered placeholders enter the SQL.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(now) = now {
        query = query.bind(now);
    }
    for id in ids {
        query = query.bind(id.clone());
    }
    let done = query.execute(source.db.pool()).await.map_err(StorageError::from)?;
    if let Some(signal) = &source.signal {
        signal.raise();
    }
    Ok(i32::try_from(done.rows_affected()).unwrap_or(i32::MAX))
}
