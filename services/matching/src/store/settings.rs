//! Matching's own settings and operations: the criteria weights with their audit trail, when
//! learners started waiting, and cohort assignments.

use std::collections::HashMap;

use serde::{Serialize, de::DeserializeOwned};
use sqlx::Row;
use tt_common::{
    clock::Millis,
    storage::{StorageError, col, query::chunked_in},
};

use super::{Store, event};
use crate::domain::score::Weights;

/// The weights as stored, with their version (0: the defaults, never set).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsRow {
    pub version: i64,
    pub weights: Weights,
    pub updated_by: String,
    pub updated_at: Millis,
}

/// One change of the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightChangeRow {
    pub version: i64,
    pub previous: Weights,
    pub weights: Weights,
    pub reason: String,
    pub actor: String,
    pub changed_at: Millis,
}

/// A cohort assignment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortRow {
    pub id: String,
    /// A `COHORT_STATE_*` name.
    pub state: String,
    /// JSON of the request.
    pub request: String,
    /// JSON of the result (empty until computed).
    pub result: String,
    pub error: String,
    pub created_by: String,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
}

fn json<T: Serialize>(v: &T) -> Result<String, StorageError> {
    serde_json::to_string(v).map_err(|e| StorageError::Other(format!("JSON: {e}").into()))
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Other(format!("JSON: {e}").into()))
}

fn decode_cohort(r: &sqlx::any::AnyRow) -> Result<CohortRow, StorageError> {
    Ok(CohortRow {
        id: col(r, "id")?,
        state: col(r, "state")?,
        request: col(r, "request")?,
        result: col(r, "result")?,
        error: col(r, "error")?,
        created_by: col(r, "created_by")?,
        created_at: col(r, "created_at")?,
        finished_at: col(r, "finished_at")?,
    })
}

pub const RUNNING: &str = "COHORT_STATE_RUNNING";
pub const SUCCEEDED: &str = "COHORT_STATE_SUCCEEDED";
pub const FAILED: &str = "COHORT_STATE_FAILED";
pub const APPLIED: &str = "COHORT_STATE_APPLIED";

impl Store {
    /// The weights in force.
    pub async fn weights(&self) -> Result<WeightsRow, StorageError> {
        let row = sqlx::query("SELECT * FROM weights WHERE id = 1").fetch_optional(self.db().pool()).await?;
        Ok(match row {
            None => WeightsRow {
                version: 0,
                weights: Weights::default(),
                updated_by: String::new(),
                updated_at: 0,
            },
            Some(r) => WeightsRow {
                version: col(&r, "version")?,
                weights: parse(&col::<String>(&r, "weights")?)?,
                updated_by: col(&r, "updated_by")?,
                updated_at: col(&r, "updated_at")?,
            },
        })
    }

    /// Sets the weights if `expected` is still the version in force, with the change in the
    /// audit trail and an event for analytics; None when another change came first.
    pub async fn set_weights(
        &self,
        expected: i64,
        weights: &Weights,
        reason: &str,
        actor: &str,
        now: Millis,
    ) -> Result<Option<WeightsRow>, StorageError> {
        let current = self.weights().await?;
        if current.version != expected {
            return Ok(None);
        }
        let mut tx = self.db().pool().begin().await?;
        let text = json(weights)?;
        let done = if expected == 0 {
            sqlx::query(
                "INSERT INTO weights (id, version, weights, updated_by, updated_at) VALUES (1, 1, $1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&text)
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE weights SET version = version + 1, weights = $2, updated_by = $3, updated_at = $4 \
                 WHERE id = 1 AND version = $1",
            )
            .bind(expected)
            .bind(&text)
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await?
        };
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let version = expected + 1;
        sqlx::query(
            "INSERT INTO weight_changes (version, previous, weights, reason, actor, changed_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(version)
        .bind(json(&current.weights)?)
        .bind(&text)
        .bind(reason)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let changed = event("matching.weights.changed", actor, actor, now).int("version", version).build();
        self.outbox.write(tx, &[changed]).await?;
        Ok(Some(WeightsRow { version, weights: *weights, updated_by: actor.to_owned(), updated_at: now }))
    }

    /// Changes of the weights, newest first, below version `before`.
    pub async fn weight_changes(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WeightChangeRow>, StorageError> {
        let rows =
            sqlx::query("SELECT * FROM weight_changes WHERE version < $1 ORDER BY version DESC LIMIT $2")
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(self.db().pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(WeightChangeRow {
                    version: col(r, "version")?,
                    previous: parse(&col::<String>(r, "previous")?)?,
                    weights: parse(&col::<String>(r, "weights")?)?,
                    reason: col(r, "reason")?,
                    actor: col(r, "actor")?,
                    changed_at: col(r, "changed_at")?,
                })
            })
            .collect()
    }

    /// Remembers that matching saw `user_ids` now (the first time counts).
    pub async fn seen(&self, user_ids: &[String], now: Millis) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        for user in user_ids {
            sqlx::query("INSERT INTO learners_seen (user_id, first_seen_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING")
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per learner: since when they have waited for a mentor (the end of their last mentorship,
    /// else when matching first saw them), and whether a mentorship is running now.
    pub async fn waiting(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, (Option<Millis>, bool)>, StorageError> {
        let sql = |ids: &str| {
            format!(
                "SELECT s.user_id, s.first_seen_at, \
                 (SELECT MAX(ended_at) FROM mentorships m WHERE m.user_id = s.user_id) AS last_end, \
                 (SELECT COUNT(*) FROM mentorships m WHERE m.user_id = s.user_id \
                  AND m.state IN ('MENTORSHIP_STATE_PROPOSED', 'MENTORSHIP_STATE_ACTIVE')) AS running \
                 FROM learners_seen s WHERE s.user_id IN ({ids})"
            )
        };
        let mut conn = self.db().pool().acquire().await?;
        let rows = chunked_in(&mut conn, user_ids, 1, sql, |q| q).await?;
        let mut out: HashMap<String, (Option<Millis>, bool)> = HashMap::with_capacity(rows.len());
        for r in rows {
            let last_end: Option<Millis> = r.try_get("last_end")?;
            let first: Millis = r.try_get("first_seen_at")?;
            let running: i64 = r.try_get("running")?;
            out.insert(r.try_get("user_id")?, (Some(last_end.unwrap_or(first)), running > 0));
        }
        Ok(out)
    }

    /// Records a cohort assignment being computed; with a `request_id` the caller used before,
    /// the first one's id instead (false: not created now).
    pub async fn create_cohort(
        &self,
        id: &str,
        request: &impl Serialize,
        request_id: Option<&str>,
        actor: &str,
        now: Millis,
    ) -> Result<(String, bool), StorageError> {
        if let Some(rid) = request_id {
            let row =
                sqlx::query("SELECT id FROM cohort_assignments WHERE created_by = $1 AND request_id = $2")
                    .bind(actor)
                    .bind(rid)
                    .fetch_optional(self.db().pool())
                    .await?;
            if let Some(r) = row {
                return Ok((col(&r, "id")?, false));
            }
        }
        sqlx::query(
            "INSERT INTO cohort_assignments (id, state, request, request_id, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(RUNNING)
        .bind(json(request)?)
        .bind(request_id)
        .bind(actor)
        .bind(now)
        .execute(self.db().pool())
        .await?;
        Ok((id.to_owned(), true))
    }

    /// Stores a computed result (or the failure) of a running assignment.
    pub async fn finish_cohort(
        &self,
        id: &str,
        result: Result<&impl Serialize, &str>,
        now: Millis,
    ) -> Result<(), StorageError> {
        let (state, result, error) = match result {
            Ok(r) => (SUCCEEDED, json(r)?, String::new()),
            Err(e) => (FAILED, String::new(), e.to_owned()),
        };
        sqlx::query("UPDATE cohort_assignments SET state = $2, result = $3, error = $4, finished_at = $5 WHERE id = $1 AND state = $6")
            .bind(id)
            .bind(state)
            .bind(result)
            .bind(error)
            .bind(now)
            .bind(RUNNING)
            .execute(self.db().pool())
            .await?;
        Ok(())
    }

    /// Marks assignments left running by a stopped process as failed.
    pub async fn interrupt_cohorts(&self, now: Millis) -> Result<u64, StorageError> {
        let done = sqlx::query(
            "UPDATE cohort_assignments SET state = $1, error = $2, finished_at = $3 WHERE state = $4",
        )
        .bind(FAILED)
        .bind("interrupted: the server stopped while computing it; start it again")
        .bind(now)
        .bind(RUNNING)
        .execute(self.db().pool())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn cohort(&self, id: &str) -> Result<Option<CohortRow>, StorageError> {
        let row = sqlx::query("SELECT * FROM cohort_assignments WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db().pool())
            .await?;
        row.as_ref().map(decode_cohort).transpose()
    }
}
