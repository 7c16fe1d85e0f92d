//! Ingestion: a batch of checked events and dead letters in one transaction, rollups included.

use std::collections::{BTreeMap, HashSet};

use sqlx::{Any, Row, Transaction};
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, list, placeholders};
use crate::domain::{
    calendar::{activity_bits, quarter, user_key},
    schema::Accepted,
};

/// Rows per multi-row INSERT (9 columns: well under every placeholder limit).
const ROWS_PER_STATEMENT: usize = 500;

/// An event refused by the checks, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    pub event_id: String,
    pub source: String,
    /// The encoded event.
    pub payload: Vec<u8>,
    pub reason: String,
}

/// A source's outbox backlog, as it reported it with a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    pub source: String,
    pub pending: i64,
    pub oldest: Option<Millis>,
}

/// What one transaction writes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub accepted: Vec<Accepted>,
    pub dead: Vec<NewDeadLetter>,
    pub backlog: Option<Backlog>,
    /// Dead letters this batch replays successfully: marked replayed in the same transaction.
    pub replayed: Vec<String>,
    /// Dead letters a replay refused again, with their new reason.
    pub still_failing: Vec<(String, String)>,
    pub now: Millis,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub accepted: i64,
    pub duplicates: i64,
    pub dead_lettered: i64,
}

impl std::ops::AddAssign for Summary {
    fn add_assign(&mut self, other: Self) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.dead_lettered += other.dead_lettered;
    }
}

/// What the rollups need of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub time: Millis,
    pub kind: String,
    pub subject: String,
    pub active: bool,
    pub registered: bool,
    pub time_zone: Option<String>,
}

/// Per-source counts of one batch.
#[derive(Default)]
struct SourceCounts {
    events: i64,
    duplicates: i64,
    dead: i64,
}

impl Store {
    /// Stores `batch` atomically. Events already stored (by id, also twice in one batch) count
    /// as duplicates and change nothing; only new events reach the rollups.
    pub async fn ingest(&self, batch: &Batch) -> Result<Summary, StorageError> {
        let mut seen = HashSet::with_capacity(batch.accepted.len());
        let unique: Vec<&Accepted> = batch.accepted.iter().filter(|e| seen.insert(e.id.as_str())).collect();
        let mut tx = self.db().pool().begin().await?;
        let mut inserted = HashSet::with_capacity(unique.len());
        for chunk in unique.chunks(ROWS_PER_STATEMENT) {
            inserted.extend(insert_events(&mut tx, chunk, batch.now).await?);
        }
        let fresh: Vec<&Accepted> = unique.iter().copied().filter(|e| inserted.contains(&e.id)).collect();
        upsert(
            &mut tx,
            &fresh,
            7,
            "INSERT INTO rollup_queue (id, time, type, subject, active, registered, time_zone)",
            "",
            |q, e| {
                q.bind(e.id.clone())
                    .bind(e.time)
                    .bind(e.kind.clone())
                    .bind(e.subject.clone())
                    .bind(i64::from(e.active))
                    .bind(i64::from(e.registered))
                    .bind(e.time_zone.clone().unwrap_or_default())
            },
        )
        .await?;

        let mut sources: BTreeMap<&str, SourceCounts> = BTreeMap::new();
        // Received events that were not stored just now are duplicates (also within the batch).
        for e in &batch.accepted {
            sources.entry(e.source.as_str()).or_default().duplicates += 1;
        }
        for e in &fresh {
            let counts = sources.entry(e.source.as_str()).or_default();
            counts.events += 1;
            counts.duplicates -= 1;
        }
        for d in &batch.dead {
            sources.entry(d.source.as_str()).or_default().dead += 1;
        }
        update_sources(&mut tx, &sources, batch.now).await?;
        insert_dead_letters(&mut tx, &batch.dead, batch.now).await?;
        mark_replays(&mut tx, batch).await?;
        if let Some(b) = &batch.backlog {
            sqlx::query(
                "INSERT INTO source_stats (source, outbox_pending, oldest_pending_at, backlog_reported_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (source) DO UPDATE SET \
                 outbox_pending = excluded.outbox_pending, oldest_pending_at = excluded.oldest_pending_at, \
                 backlog_reported_at = excluded.backlog_reported_at",
            )
            .bind(&b.source)
            .bind(b.pending)
            .bind(b.oldest)
            .bind(batch.now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let accepted = i64::try_from(fresh.len()).unwrap_or(i64::MAX);
        Ok(Summary {
            accepted,
            duplicates: i64::try_from(batch.accepted.len()).unwrap_or(i64::MAX) - accepted,
            dead_lettered: i64::try_from(batch.dead.len()).unwrap_or(i64::MAX),
        })
    }
}

impl Store {
    /// Folds up to `limit` queued events into the rollups in one transaction; returns how many.
    /// Concurrent passes (other replicas) never apply an event twice: each applies exactly the
    /// queue rows its own DELETE removed.
    pub async fn roll_up(&self, limit: i64) -> Result<usize, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let rows = sqlx::query(
            "DELETE FROM rollup_queue WHERE id IN (SELECT id FROM rollup_queue ORDER BY id LIMIT $1) \
             RETURNING time, type, subject, active, registered, time_zone",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let facts = rows
            .iter()
            .map(|r| {
                let time_zone: String = r.try_get("time_zone")?;
                Ok(Fact {
                    time: r.try_get("time")?,
                    kind: r.try_get("type")?,
                    subject: r.try_get("subject")?,
                    active: r.try_get::<i64, _>("active")? != 0,
                    registered: r.try_get::<i64, _>("registered")? != 0,
                    time_zone: (!time_zone.is_empty()).then_some(time_zone),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        update_activity(&mut tx, &facts).await?;
        update_counts(&mut tx, &facts).await?;
        update_users(&mut tx, &facts).await?;
        tx.commit().await?;
        Ok(facts.len())
    }

    /// Events accepted but not yet in the rollups.
    pub async fn rollup_backlog(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM rollup_queue")
            .fetch_one(self.db().pool())
            .await?
            .try_get("n")?)
    }
}

/// Inserts what is new; returns the ids inserted.
async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    events: &[&Accepted],
    now: Millis,
) -> Result<Vec<String>, StorageError> {
    let sql = format!(
        "INSERT INTO events (id, type, version, time, actor, subject, source, attributes, received_at) \
         VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
        placeholders(events.len(), 9, 1)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for e in events {
        query = query
            .bind(e.id.clone())
            .bind(e.kind.clone())
            .bind(e.version)
            .bind(e.time)
            .bind(e.actor.clone())
            .bind(e.subject.clone())
            .bind(e.source.clone())
            .bind(e.attributes.clone())
            .bind(now);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter().map(|r| r.try_get::<String, _>(0).map_err(StorageError::from)).collect()
}

/// Runs `sql_prefix VALUES ... sql_suffix` over `rows` in chunks, binding each row with `bind`.
async fn upsert<T>(
    tx: &mut Transaction<'_, Any>,
    rows: &[T],
    cols: usize,
    sql_prefix: &str,
    sql_suffix: &str,
    bind: impl Fn(
        sqlx::query::Query<'static, Any, sqlx::any::AnyArguments>,
        &T,
    ) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments>,
) -> Result<(), StorageError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("{sql_prefix} VALUES {} {sql_suffix}", placeholders(chunk.len(), cols, 1));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// ORs each active user's quarter-hours into their day's row. Rows are written in key order so
/// concurrent batches lock them in the same order (no deadlocks on PostgreSQL).
async fn update_activity(tx: &mut Transaction<'_, Any>, fresh: &[Fact]) -> Result<(), StorageError> {
    let mut days: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for e in fresh.iter().filter(|e| e.active) {
        let (day, early, late) = activity_bits(e.time);
        let bits = days.entry((day, user_key(&e.subject))).or_default();
        bits.0 |= early;
        bits.1 |= late;
    }
    let rows: Vec<_> = days.into_iter().collect();
    upsert(
        tx,
        &rows,
        4,
        "INSERT INTO activity_days (day, user_key, early, late)",
        "ON CONFLICT (day, user_key) DO UPDATE SET early = activity_days.early | excluded.early, \
         late = activity_days.late | excluded.late",
        |q, ((day, key), (early, late))| q.bind(*day).bind(*key).bind(*early).bind(*late),
    )
    .await
}

async fn update_counts(tx: &mut Transaction<'_, Any>, fresh: &[Fact]) -> Result<(), StorageError> {
    let mut counts: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for e in fresh {
        *counts.entry((quarter(e.time), e.kind.as_str())).or_default() += 1;
    }
    let rows: Vec<_> = counts.into_iter().map(|((b, t), n)| (b, t.to_owned(), n)).collect();
    upsert(
        tx,
        &rows,
        3,
        "INSERT INTO event_counts (bucket, type, events)",
        "ON CONFLICT (bucket, type) DO UPDATE SET events = event_counts.events + excluded.events",
        |q, (bucket, kind, n)| q.bind(*bucket).bind(kind.clone()).bind(*n),
    )
    .await
}

/// Registrations and time zones.
async fn update_users(tx: &mut Transaction<'_, Any>, fresh: &[Fact]) -> Result<(), StorageError> {
    #[derive(Default)]
    struct UserUpdate {
        registered_at: Option<Millis>,
        time_zone: String,
        time_zone_at: Millis,
    }
    let mut users: BTreeMap<&str, UserUpdate> = BTreeMap::new();
    for e in fresh.iter().filter(|e| e.registered || e.time_zone.is_some()) {
        let u = users.entry(e.subject.as_str()).or_default();
        if e.registered {
            u.registered_at = Some(u.registered_at.map_or(e.time, |t| t.min(e.time)));
        }
        if let Some(tz) = &e.time_zone
            && e.time >= u.time_zone_at
        {
            u.time_zone = tz.clone();
            u.time_zone_at = e.time;
        }
    }
    let rows: Vec<_> = users.into_iter().collect();
    upsert(
        tx,
        &rows,
        5,
        "INSERT INTO users (user_id, user_key, registered_at, time_zone, time_zone_at)",
        "ON CONFLICT (user_id) DO UPDATE SET \
         registered_at = COALESCE(excluded.registered_at, users.registered_at), \
         time_zone = CASE WHEN excluded.time_zone_at > users.time_zone_at THEN excluded.time_zone \
         ELSE users.time_zone END, \
         time_zone_at = CASE WHEN excluded.time_zone_at > users.time_zone_at THEN excluded.time_zone_at \
         ELSE users.time_zone_at END",
        |q, (id, u)| {
            q.bind((*id).to_owned())
                .bind(user_key(id))
                .bind(u.registered_at)
                .bind(u.time_zone.clone())
                .bind(u.time_zone_at)
        },
    )
    .await
}

async fn update_sources(
    tx: &mut Transaction<'_, Any>,
    sources: &BTreeMap<&str, SourceCounts>,
    now: Millis,
) -> Result<(), StorageError> {
    let rows: Vec<_> = sources.iter().collect();
    upsert(
        tx,
        &rows,
        6,
        "INSERT INTO source_stats (source, events, duplicates, dead_letters, batches, last_ingest_at)",
        "ON CONFLICT (source) DO UPDATE SET events = source_stats.events + excluded.events, \
         duplicates = source_stats.duplicates + excluded.duplicates, \
         dead_letters = source_stats.dead_letters + excluded.dead_letters, \
         batches = source_stats.batches + 1, last_ingest_at = excluded.last_ingest_at",
        |q, (source, c)| {
            q.bind((**source).to_owned()).bind(c.events).bind(c.duplicates).bind(c.dead).bind(1i64).bind(now)
        },
    )
    .await
}

async fn insert_dead_letters(
    tx: &mut Transaction<'_, Any>,
    dead: &[NewDeadLetter],
    now: Millis,
) -> Result<(), StorageError> {
    let mut seen = HashSet::new();
    let unique: Vec<&NewDeadLetter> =
        dead.iter().filter(|d| d.event_id.is_empty() || seen.insert(d.event_id.as_str())).collect();
    upsert(
        tx,
        &unique,
        6,
        "INSERT INTO dead_letters (id, event_id, source, payload, reason, received_at)",
        "ON CONFLICT DO NOTHING",
        |q, d| {
            q.bind(tt_common::new_id())
                .bind(d.event_id.clone())
                .bind(d.source.clone())
                .bind(d.payload.clone())
                .bind(d.reason.clone())
                .bind(now)
        },
    )
    .await
}

async fn mark_replays(tx: &mut Transaction<'_, Any>, batch: &Batch) -> Result<(), StorageError> {
    for chunk in batch.replayed.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("UPDATE dead_letters SET replayed_at = $1 WHERE id IN ({})", list(chunk.len(), 2));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(batch.now);
        for id in chunk {
            query = query.bind(id.clone());
        }
        query.execute(&mut **tx).await?;
    }
    for (id, reason) in &batch.still_failing {
        sqlx::query(
            "UPDATE dead_letters SET reason = $1, replay_attempts = replay_attempts + 1 WHERE id = $2",
        )
        .bind(reason)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
