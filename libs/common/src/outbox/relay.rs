//! The relay: delivers one destination's pending outbox rows to its receiver.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use prost::Message;
use sqlx::Row;
use tokio::sync::Notify;
use tonic::Status;
use tt_proto::common::v1::Event;

use super::{Backlog, Signal};
use crate::{
    clock::{SharedClock, millis},
    storage::{Database, StorageError},
};

/// The receiving end of a destination: usually a peer's gRPC ingestion method.
pub trait Sink: Send + Sync {
    /// Delivers a batch (oldest first); `backlog` is what the destination will still have
    /// pending once this batch is delivered (receivers may report it as the source's lag). `Ok`
    /// means every event was accepted (or was a duplicate the receiver already had). An error
    /// is handled by its [`Refusal`] kind: retried later, or (invalid content) narrowed down to
    /// the event at fault, which becomes a dead letter.
    fn deliver(&self, events: Vec<Event>, backlog: Backlog) -> BoxFuture<'_, Result<(), Status>>;
}

/// The value bound to `$1` of an update.
enum Bound {
    Text(String),
    Int(i64),
}

/// Relay tuning.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Events per delivery call.
    pub batch: usize,
    /// How often to look for rows when nobody wakes the relay.
    pub poll: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long the lease of a silent holder lasts before another replica takes over.
    pub lease: Duration,
    /// How long delivered rows are kept (for inspection) before they are pruned.
    pub retain: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch: 200,
            poll: Duration::from_secs(2),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            lease: Duration::from_secs(15),
            retain: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a receiver's refusal means for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Down, slow, overloaded or failing: retry the batch later, whole.
    Transient,
    /// It refuses this service's credentials (UNAUTHENTICATED, PERMISSION_DENIED): a
    /// deployment mistake, not the events' fault; retried, and logged as an error.
    Configuration,
    /// It refuses the content (INVALID_ARGUMENT, FAILED_PRECONDITION): the event at fault
    /// becomes a dead letter and the rest flow on.
    Poison,
}

impl Refusal {
    pub fn of(code: tonic::Code) -> Self {
        use tonic::Code::*;
        match code {
            InvalidArgument | FailedPrecondition => Self::Poison,
            Unauthenticated | PermissionDenied => Self::Configuration,
            _ => Self::Transient,
        }
    }
}

/// Why a delivery pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("receiver refused or unreachable ({refusal:?}): {message}")]
    Sink { refusal: Refusal, message: String },
}

/// Delivers one destination's outbox.
pub struct Relay {
    db: Database,
    destination: String,
    sink: Arc<dyn Sink>,
    options: RelayOptions,
    clock: SharedClock,
    wake: Arc<Notify>,
    holder: String,
}

/// One pending row, decoded.
struct Pending {
    id: String,
    subject: String,
    event: Result<Event, prost::DecodeError>,
}

impl Relay {
    pub fn new(db: Database, destination: &str, sink: Arc<dyn Sink>, clock: SharedClock) -> Self {
        Self {
            db,
            destination: destination.to_owned(),
            sink,
            options: RelayOptions::default(),
            clock,
            wake: Arc::new(Notify::new()),
            holder: crate::new_id(),
        }
    }

    pub fn with_options(mut self, options: RelayOptions) -> Self {
        self.options = options;
        self
    }

    /// Wakes up whenever the writer raises `signal` (after a commit that wrote events).
    pub fn with_signal(mut self, signal: &Signal) -> Self {
        self.wake = signal.subscribe();
        self
    }

    /// Runs forever: deliver, prune, wait for a wake-up or the poll interval; back off (with
    /// full jitter) while the receiver fails.
    pub async fn run(self) {
        let mut failures = 0u32;
        let mut last_prune = 0;
        loop {
            match self.deliver_pending().await {
                Ok(_) => {
                    failures = 0;
                    let now = self.clock.now_ms();
                    if now - last_prune > millis(self.options.retain) / 24 {
                        last_prune = now;
                        if let Err(e) = self.prune().await {
                            tracing::warn!(destination = %self.destination, error = %e, "outbox pruning failed");
                        }
                    }
                    let _ = tokio::time::timeout(self.options.poll, self.wake.notified()).await;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!("tt_outbox_delivery_failures_total", "destination" => self.destination.clone())
                        .increment(1);
                    let wait =
                        crate::client::backoff(failures, self.options.backoff_base, self.options.backoff_max);
                    if matches!(e, RelayError::Sink { refusal: Refusal::Configuration, .. }) {
                        tracing::error!(destination = %self.destination, error = %e, retry_in_ms = millis(wait),
                            "outbox delivery refused: the receiver does not accept this service's credentials \
                             (check its service account and the receiver's rules); events wait, nothing is lost");
                    } else {
                        tracing::warn!(destination = %self.destination, error = %e, retry_in_ms = millis(wait),
                            "outbox delivery failed");
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One pass: while this process holds the destination's lease, deliver batches until none
    /// is pending. Returns how many events were delivered.
    pub async fn deliver_pending(&self) -> Result<usize, RelayError> {
        let mut delivered = 0;
        loop {
            if !self.take_lease().await? {
                return Ok(delivered);
            }
            let batch = self.pending_batch().await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            let ids: Vec<String> = batch.iter().map(|p| p.id.clone()).collect();
            let backlog = super::backlog_without(self.db.pool(), &self.destination, &ids).await?;
            if batch.iter().any(|p| p.event.is_err()) {
                delivered += self.deliver_one_by_one(batch, backlog).await?;
                continue;
            }
            let events: Vec<Event> = batch.iter().filter_map(|p| p.event.clone().ok()).collect();
            let count = events.len();
            match self.sink.deliver(events, backlog).await {
                Ok(()) => {
                    self.mark_delivered(&ids).await?;
                    delivered += count;
                }
                Err(status) if Refusal::of(status.code()) == Refusal::Poison => {
                    delivered += self.deliver_one_by_one(batch, backlog).await?;
                }
                Err(status) => return Err(self.failed(&ids, &status).await?),
            }
        }
    }

    /// The oldest pending rows that do not wait behind a dead letter of their subject.
    async fn pending_batch(&self) -> Result<Vec<Pending>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, subject, payload FROM outbox \
             WHERE destination = $1 AND delivered_at IS NULL AND dead_at IS NULL \
             AND subject NOT IN (SELECT subject FROM outbox WHERE destination = $1 \
                                 AND dead_at IS NOT NULL AND delivered_at IS NULL) \
             ORDER BY id LIMIT $2",
        )
        .bind(&self.destination)
        .bind(i64::try_from(self.options.batch).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let payload: Vec<u8> = row.try_get("payload")?;
                Ok(Pending {
                    id: row.try_get("id")?,
                    subject: row.try_get("subject")?,
                    event: Event::decode(payload.as_slice()),
                })
            })
            .collect()
    }

    /// Delivers a refused batch one event at a time, in order: the ones the receiver refuses as
    /// invalid become dead letters, later events about their subjects stay pending behind them,
    /// the others are delivered. Stops at the first refusal that is not about an event.
    async fn deliver_one_by_one(&self, batch: Vec<Pending>, backlog: Backlog) -> Result<usize, RelayError> {
        let mut delivered = 0;
        let mut dead_subjects: Vec<String> = Vec::new();
        for row in batch {
            if dead_subjects.contains(&row.subject) {
                continue; // waits behind its subject's dead letter
            }
            let event = match row.event {
                Ok(event) => event,
                Err(e) => {
                    let reason = format!("undecodable outbox row: {e}");
                    self.dead_letter(&row.id, &row.subject, &reason).await?;
                    dead_subjects.push(row.subject);
                    continue;
                }
            };
            let ids = [row.id.clone()];
            match self.sink.deliver(vec![event], backlog).await {
                Ok(()) => {
                    self.mark_delivered(&ids).await?;
                    delivered += 1;
                }
                Err(status) if Refusal::of(status.code()) == Refusal::Poison => {
                    let reason =
                        format!("{:?}: {}", status.code(), crate::error::clip(status.message(), 1000));
                    self.dead_letter(&row.id, &row.subject, &reason).await?;
                    dead_subjects.push(row.subject);
                }
                Err(status) => return Err(self.failed(&ids, &status).await?),
            }
        }
        Ok(delivered)
    }

    async fn mark_delivered(&self, ids: &[String]) -> Result<(), StorageError> {
        self.update(ids, "delivered_at = $1, attempts = attempts + 1", Bound::Int(self.clock.now_ms()))
            .await?;
        metrics::counter!("tt_outbox_delivered_total", "destination" => self.destination.clone())
            .increment(ids.len() as u64);
        Ok(())
    }

    /// Records a failed attempt on `ids` and returns the error that stops the pass.
    async fn failed(&self, ids: &[String], status: &Status) -> Result<RelayError, StorageError> {
        let message = format!("{:?}: {}", status.code(), crate::error::clip(status.message(), 1000));
        self.update(ids, "attempts = attempts + 1, last_error = $1", Bound::Text(message.clone())).await?;
        Ok(RelayError::Sink { refusal: Refusal::of(status.code()), message })
    }

    /// Makes row `id` a dead letter with the receiver's reason.
    async fn dead_letter(&self, id: &str, subject: &str, reason: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE outbox SET dead_at = $1, attempts = attempts + 1, last_error = $2 WHERE id = $3")
            .bind(self.clock.now_ms())
            .bind(reason)
            .bind(id)
            .execute(self.db.pool())
            .await?;
        metrics::counter!("tt_outbox_dead_letters_total", "destination" => self.destination.clone())
            .increment(1);
        tracing::error!(destination = %self.destination, row = %id, subject, reason,
            "the receiver refused an event: kept as a dead letter at the sender (later events about \
             its subject wait behind it; replay or discard it with OutboxAdminService)");
        Ok(())
    }

    /// Takes or renews the destination's lease; false when another live holder has it.
    async fn take_lease(&self) -> Result<bool, StorageError> {
        let now = self.clock.now_ms();
        let done = sqlx::query(
            "INSERT INTO outbox_leases (destination, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (destination) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE outbox_leases.holder = excluded.holder OR outbox_leases.expires_at < $4",
        )
        .bind(&self.destination)
        .bind(&self.holder)
        .bind(now + millis(self.options.lease))
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Updates the rows `ids` with `set`, whose `$1` is `value`.
    async fn update(&self, ids: &[String], set: &str, value: Bound) -> Result<(), StorageError> {
        // Placeholders are numbered here; only they and the fixed `set` clause enter the SQL.
        let sql =
            format!("UPDATE outbox SET {set} WHERE id IN ({})", crate::storage::query::list(ids.len(), 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        query = match value {
            Bound::Text(t) => query.bind(t),
            Bound::Int(n) => query.bind(n),
        };
        for id in ids {
            query = query.bind(id.clone());
        }
        query.execute(self.db.pool()).await?;
        Ok(())
    }

    /// Deletes delivered rows older than the retention period.
    pub async fn prune(&self) -> Result<u64, StorageError> {
        let before = self.clock.now_ms() - millis(self.options.retain);
        let done = sqlx::query(
            "DELETE FROM outbox WHERE destination = $1 AND delivered_at IS NOT NULL AND delivered_at < $2",
        )
        .bind(&self.destination)
        .bind(before)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
