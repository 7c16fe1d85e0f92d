//! Ingestion: a batch of checked events and dead letters in one transaction, rollups included.

use std::collections::{BTreeMap, HashSet};

use sqlx::{Any, Row, Transaction};
use tt_common::{
    clock::Millis,
    storage::{
        Backend, StorageError,
        query::{AnyQuery, chunked_in},
    },
};

use super::{Store, placeholders};
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
            inserted.extend(insert_events(&mut tx, self.db().backend(), chunk, batch.now).await?);
        }
        let fresh: Vec<&Accepted> = unique.iter().copied().filter(|e| inserted.contains(&e.id)).collect();
        if self.db().backend() != Backend::Postgres {
            upsert(
                &mut tx,
                &fresh,
                6,
                "INSERT INTO rollup_queue (id, time, type, actor, subject, attributes)",
                "",
                |q, e| {
                    q.bind(e.id.clone())
                        .bind(e.time)
                        .bind(e.kind.clone())
                        .bind(e.actor.clone())
                        .bind(e.subject.clone())
                        .bind(e.attributes.clone())
                },
            )
            .await?;
        }

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
        // The rows this transaction deletes are its own to apply: a concurrent pass that picked
        // the same ones finds them gone once this one commits. (On SQLite the transaction takes
        // the write lock with its first statement.)
        let rows = sqlx::query(
            "DELETE FROM rollup_queue WHERE id IN (SELECT id FROM rollup_queue ORDER BY id LIMIT $1) \
             RETURNING time, type, actor, subject, attributes",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut facts = Vec::with_capacity(rows.len());
        for r in &rows {
            let (kind, actor, subject): (String, String, String) =
                (r.try_get("type")?, r.try_get("actor")?, r.try_get("subject")?);
            facts.push(Fact {
                time: r.try_get("time")?,
                registered: kind == crate::domain::schema::REGISTERED,
                kind,
                active: crate::domain::schema::is_activity(&actor, &subject),
                subject,
                time_zone: crate::domain::schema::time_zone_of(&r.try_get::<String, _>("attributes")?),
            });
        }
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

/// Inserts what is new; returns the ids inserted. On PostgreSQL the same statement queues them
/// for the rollups (a data-modifying CTE, one round trip); elsewhere the caller queues them.
async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    events: &[&Accepted],
    now: Millis,
) -> Result<Vec<String>, StorageError> {
    let insert = format!(
        "INSERT INTO events (id, type, version, time, actor, subject, source, attributes, received_at) \
         VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
        placeholders(events.len(), 9, 1)
    );
    let sql = match backend {
        Backend::Postgres => format!(
            "WITH new AS ({insert}, time, type, actor, subject, attributes), \
             queued AS (INSERT INTO rollup_queue (id, time, type, actor, subject, attributes) \
             SELECT id, time, type, actor, subject, attributes FROM new) \
             SELECT id FROM new"
        ),
        Backend::Sqlite => insert,
    };
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
    bind: impl Fn(AnyQuery<'static>, &T) -> AnyQuery<'static>,
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

/// ORs each active user's quarter-hours into their day's row, and counts the rows created
/// into `daily_active`. Rows are written in key order so concurrent passes lock them in the same
/// order (no deadlocks on PostgreSQL). A row another pass created meanwhile is not returned by
/// the insert, so it is merged (and not counted) here.
async fn update_activity(tx: &mut Transaction<'_, Any>, fresh: &[Fact]) -> Result<(), StorageError> {
    let mut days: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for e in fresh.iter().filter(|e| e.active) {
        let (day, early, late) = activity_bits(e.time);
        let bits = days.entry((day, user_key(&e.subject))).or_default();
        bits.0 |= early;
        bits.1 |= late;
    }
    let rows: Vec<_> = days.into_iter().collect();
    let mut created = HashSet::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO activity_days (day, user_key, early, late) VALUES {} \
             ON CONFLICT (day, user_key) DO NOTHING RETURNING day, user_key",
            placeholders(chunk.len(), 4, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((day, key), (early, late)) in chunk {
            query = query.bind(*day).bind(*key).bind(*early).bind(*late);
        }
        for row in query.fetch_all(&mut **tx).await? {
            created.insert((row.try_get::<i64, _>("day")?, row.try_get::<i64, _>("user_key")?));
        }
    }
    let existing: Vec<_> = rows.iter().filter(|(key, _)| !created.contains(key)).collect();
    upsert(
        tx,
        &existing,
        4,
        "INSERT INTO activity_days (day, user_key, early, late)",
        "ON CONFLICT (day, user_key) DO UPDATE SET early = activity_days.early | excluded.early, \
         late = activity_days.late | excluded.late",
        |q, ((day, key), (early, late))| q.bind(*day).bind(*key).bind(*early).bind(*late),
    )
    .await?;
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for (day, _) in &created {
        *per_day.entry(*day).or_default() += 1;
    }
    let per_day: Vec<_> = per_day.into_iter().collect();
    upsert(
        tx,
        &per_day,
        2,
        "INSERT INTO daily_active (day, users)",
        "ON CONFLICT (day) DO UPDATE SET users = daily_active.users + excluded.users",
        |q, (day, n)| q.bind(*day).bind(*n),
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
    let sql = |ids: &str| format!("UPDATE dead_letters SET replayed_at = $1 WHERE id IN ({ids})");
    chunked_in(tx, &batch.replayed, 2, sql, |q| q.bind(batch.now)).await?;
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
