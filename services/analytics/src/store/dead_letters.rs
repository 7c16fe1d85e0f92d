//! The dead-letter store: refused events with their reason, listed newest first.

use sqlx::{Row, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, query::chunked_in},
};

use super::Store;

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    pub id: String,
    pub event_id: String,
    pub source: String,
    pub payload: Vec<u8>,
    pub reason: String,
    pub received_at: Millis,
    pub replay_attempts: i64,
    pub replayed_at: Option<Millis>,
}

fn decode(r: &AnyRow) -> Result<DeadLetterRow, StorageError> {
    Ok(DeadLetterRow {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        source: r.try_get("source")?,
        payload: r.try_get("payload")?,
        reason: r.try_get("reason")?,
        received_at: r.try_get("received_at")?,
        replay_attempts: r.try_get("replay_attempts")?,
        replayed_at: r.try_get("replayed_at")?,
    })
}

const COLUMNS: &str = "id, event_id, source, payload, reason, received_at, replay_attempts, replayed_at";

impl Store {
    /// Newest first, before the id `before`; replayed ones only when asked.
    pub async fn dead_letters(
        &self,
        include_replayed: bool,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadLetterRow>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM dead_letters WHERE ($1 = '' OR id < $1) AND ($2 = 1 OR replayed_at IS NULL) \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before.unwrap_or(""))
            .bind(i64::from(include_replayed))
            .bind(limit)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// The pending (not replayed) dead letters among `ids`, or the oldest `limit` pending ones
    /// when `ids` is empty.
    pub async fn pending_dead_letters(
        &self,
        ids: &[String],
        limit: i64,
    ) -> Result<Vec<DeadLetterRow>, StorageError> {
        if ids.is_empty() {
            let sql =
                format!("SELECT {COLUMNS} FROM dead_letters WHERE replayed_at IS NULL ORDER BY id LIMIT $1");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(self.db().pool()).await?;
            return rows.iter().map(decode).collect();
        }
        let sql = |ids: &str| {
            format!("SELECT {COLUMNS} FROM dead_letters WHERE replayed_at IS NULL AND id IN ({ids})")
        };
        let mut conn = self.db().pool().acquire().await?;
        let mut found = chunked_in(&mut conn, ids, 1, sql, |q| q)
            .await?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}
