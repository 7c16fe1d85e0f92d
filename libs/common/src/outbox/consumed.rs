//! The receiving side's bookkeeping, shared by every module that consumes events: event ids
//! applied once (a `consumed_events (event_id, consumed_at)` table in the receiver's database),
//! their pruning, and a sender's own figures for its admin usage RPC.

use std::time::Duration;

use sqlx::{Any, Row, Transaction};

use crate::{
    clock::{Millis, SharedClock},
    storage::{Database, StorageError},
};

/// How long applied event ids are remembered (redelivery happens within minutes).
pub const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// Records `event_id` as applied inside `tx`: false when it was applied before (the caller then
/// does nothing again).
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    event_id: &str,
    now: Millis,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO consumed_events (event_id, consumed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records an event that needs no action; false when it was seen before.
pub async fn acknowledge(db: &Database, event_id: &str, now: Millis) -> Result<bool, StorageError> {
    let mut tx = db.pool().begin().await?;
    let fresh = record(&mut tx, event_id, now).await?;
    tx.commit().await?;
    Ok(fresh)
}

/// Forgets event ids applied before `before`. Safe: applying an old event again changes
/// nothing a receiver cares about, so the ids only need to outlive redelivery.
pub async fn prune(db: &Database, before: Millis) -> Result<u64, StorageError> {
    let done = sqlx::query("DELETE FROM consumed_events WHERE consumed_at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Prunes applied event ids older than [`KEEP_MS`] every hour, for the life of the server (a
/// module's job).
pub async fn prune_forever(db: Database, clock: SharedClock) {
    const EVERY: Duration = Duration::from_secs(3600);
    loop {
        tokio::time::sleep(EVERY).await;
        match prune(&db, clock.now_ms() - KEEP_MS).await {
            Ok(n) if n > 0 => tracing::info!(events = n, "pruned consumed event ids"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning consumed event ids failed"),
        }
    }
}

/// A module's outbox over every destination, for its usage figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxFigures {
    pub pending: i64,
    pub dead_letters: i64,
    pub oldest_pending: Option<Millis>,
}

/// The figures of the outbox in `db`.
pub async fn outbox_figures(db: &Database) -> Result<OutboxFigures, StorageError> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL) AS pending, \
                (SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NOT NULL) AS dead, \
                (SELECT MIN(created_at) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL) AS oldest",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(OutboxFigures {
        pending: row.try_get("pending")?,
        dead_letters: row.try_get("dead")?,
        oldest_pending: row.try_get("oldest")?,
    })
}
