//! Assessment results: kept as history, newest first; the latest is the one others use.

use serde::Serialize;
use sqlx::{Any, Row, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col},
};

use super::{Part, Store, WriteError, begin_child_write, small};
use crate::domain::assessment::Scores;

/// A stored result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    pub id: String,
    pub user_id: String,
    pub version: i32,
    /// question id -> option id.
    pub answers: std::collections::BTreeMap<String, String>,
    pub scores: Scores,
    pub created_at: Millis,
}

fn decode(row: &AnyRow) -> Result<ResultRow, StorageError> {
    let json = |name: &str| -> Result<String, StorageError> { col(row, name) };
    Ok(ResultRow {
        id: col(row, "id")?,
        user_id: col(row, "user_id")?,
        version: small(col(row, "version")?)?,
        answers: serde_json::from_str(&json("answers")?).map_err(|e| StorageError::Other(Box::new(e)))?,
        scores: serde_json::from_str(&json("scores")?).map_err(|e| StorageError::Other(Box::new(e)))?,
        created_at: col(row, "created_at")?,
    })
}

/// The newest result and how many there are.
pub(crate) async fn latest(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
) -> Result<(Option<ResultRow>, i64), StorageError> {
    let row = sqlx::query("SELECT * FROM assessment_results WHERE user_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM assessment_results WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    Ok((row.as_ref().map(decode).transpose()?, n))
}

impl Store {
    /// Keeps a scored result (with the `profiles.assessment.completed` event).
    pub async fn add_result(&self, result: &ResultRow) -> Result<(), WriteError> {
        let answers =
            serde_json::to_string(&result.answers).map_err(|e| WriteError::Invalid(e.to_string()))?;
        let scores = serde_json::to_string(&result.scores).map_err(|e| WriteError::Invalid(e.to_string()))?;
        let mut tx = begin_child_write(self.db(), &result.user_id).await?;
        sqlx::query(
            "INSERT INTO assessment_results (id, user_id, version, answers, scores, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&result.id)
        .bind(&result.user_id)
        .bind(i64::from(result.version))
        .bind(answers)
        .bind(scores)
        .bind(result.created_at)
        .execute(&mut *tx)
        .await?;
        let style = serde_json::to_value(result.scores.dominant)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let event = super::event(
            "profiles.assessment.completed",
            &result.user_id,
            &result.user_id,
            result.created_at,
        )
        .string("dominant_style", style)
        .build();
        let who = (result.user_id.as_str(), result.user_id.as_str(), result.created_at);
        self.commit_change(tx, who, Part::Assessment, vec![event]).await?;
        Ok(())
    }

    /// A page of results older than the id `before`, newest first.
    pub async fn list_results(
        &self,
        user_id: &str,
        before: &str,
        limit: i64,
    ) -> Result<Vec<ResultRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM assessment_results WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(before)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }
}
