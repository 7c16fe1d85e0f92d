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
    /// Delivers a batch (oldest first); `backlog` is what the destination still has pending,
    /// this batch included (receivers may report it as the source's lag). `Ok` means every
    /// event was accepted (or was a duplicate the receiver already had); any error retries the
    /// whole batch later.
    fn deliver(&self, events: Vec<Event>, backlog: Backlog) -> BoxFuture<'_, Result<(), Status>>;
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

/// Why a delivery pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("receiver refused or unreachable: {0}")]
    Sink(String),
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
                    tracing::warn!(destination = %self.destination, error = %e, retry_in_ms = millis(wait),
                        "outbox delivery failed");
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
            let rows = sqlx::query(
                "SELECT id, payload FROM outbox WHERE destination = $1 AND delivered_at IS NULL \
                 ORDER BY id LIMIT $2",
            )
            .bind(&self.destination)
            .bind(i64::try_from(self.options.batch).unwrap_or(i64::MAX))
            .fetch_all(self.db.pool())
            .await
            .map_err(StorageError::from)?;
            if rows.is_empty() {
                return Ok(delivered);
            }
            let backlog = super::backlog(self.db.pool(), &self.destination).await?;
            let mut ids = Vec::with_capacity(rows.len());
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("id").map_err(StorageError::from)?;
                let payload: Vec<u8> = row.try_get("payload").map_err(StorageError::from)?;
                match Event::decode(payload.as_slice()) {
                    Ok(event) => events.push(event),
                    // Only a bug writes such a row; skipping it must not block the rest.
                    Err(e) => tracing::error!(destination = %self.destination, row = %id, error = %e,
                        "undecodable outbox row skipped"),
                }
                ids.push(id);
            }
            let count = events.len();
            let outcome = if events.is_empty() { Ok(()) } else { self.sink.deliver(events, backlog).await };
            let now = self.clock.now_ms();
            match outcome {
                Ok(()) => {
                    self.mark(&ids, "delivered_at = $1, attempts = attempts + 1", now, None).await?;
                    metrics::counter!("tt_outbox_delivered_total", "destination" => self.destination.clone())
                        .increment(count as u64);
                    delivered += count;
                }
                Err(status) => {
                    let error = format!("{:?}: {}", status.code(), status.message());
                    self.mark(&ids, "attempts = attempts + 1, last_error = $1", now, Some(&error)).await?;
                    return Err(RelayError::Sink(error));
                }
            }
        }
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

    /// Updates the rows `ids` with `set` (whose `$1` is `now`, or `text` when given).
    async fn mark(
        &self,
        ids: &[String],
        set: &str,
        now: i64,
        text: Option<&str>,
    ) -> Result<(), StorageError> {
        // Placeholders are numbered here; only they and the fixed `set` clause enter the SQL.
        let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!("UPDATE outbox SET {set} WHERE id IN ({})", list.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        query = match text {
            Some(t) => query.bind(t.to_owned()),
            None => query.bind(now),
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
