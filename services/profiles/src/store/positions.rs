//! Professional positions, newest start first.

use serde::Serialize;
use sqlx::{Any, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col},
};

use super::{Part, Store, WriteError, begin_child_write, fetch_all, fetch_one, from_json, small, to_json};
use crate::domain::{MAX_POSITIONS, career::MonthIndex};

/// A stored position. Months are month indexes (`year * 12 + month - 1`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PositionRow {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub organization: String,
    #[serde(rename = "start", serialize_with = "crate::domain::career::serialize_month")]
    pub start_month: MonthIndex,
    #[serde(rename = "end", serialize_with = "crate::domain::career::serialize_opt_month")]
    pub end_month: Option<MonthIndex>,
    pub current: bool,
    pub description: String,
    pub skill_ids: Vec<String>,
    #[serde(skip)]
    pub request_id: Option<String>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

fn decode(row: &AnyRow) -> Result<PositionRow, StorageError> {
    Ok(PositionRow {
        id: col(row, "id")?,
        user_id: col(row, "user_id")?,
        title: col(row, "title")?,
        organization: col(row, "organization")?,
        start_month: small(col(row, "start_month")?)?,
        end_month: col::<Option<i64>>(row, "end_month")?.map(small).transpose()?,
        current: col::<i64>(row, "is_current")? != 0,
        description: col(row, "description")?,
        skill_ids: from_json(&col::<String>(row, "skill_ids")?)?,
        request_id: col(row, "request_id")?,
        version: col(row, "version")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

pub(crate) async fn all(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
) -> Result<Vec<PositionRow>, StorageError> {
    let sql = "SELECT * FROM positions WHERE user_id = $1 ORDER BY start_month DESC, id DESC";
    fetch_all(tx, sql, &[user_id], decode).await
}

async fn one(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    id: &str,
) -> Result<Option<PositionRow>, StorageError> {
    fetch_one(tx, "SELECT * FROM positions WHERE user_id = $1 AND id = $2", &[user_id, id], decode).await
}

impl Store {
    /// A page of positions before the cursor `(start_month, id)` in newest-first order.
    pub async fn list_positions(
        &self,
        user_id: &str,
        before: (MonthIndex, &str),
        limit: i64,
    ) -> Result<Vec<PositionRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM positions WHERE user_id = $1 \
             AND (start_month < $2 OR (start_month = $2 AND id < $3)) \
             ORDER BY start_month DESC, id DESC LIMIT $4",
        )
        .bind(user_id)
        .bind(i64::from(before.0))
        .bind(before.1)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Adds a position (at most 50 per learner). A retried create with the same request id
    /// returns the first one.
    pub async fn create_position(&self, p: &PositionRow) -> Result<PositionRow, WriteError> {
        let mut tx = begin_child_write(self.db(), &p.user_id).await?;
        let existing = all(&mut tx, &p.user_id).await?;
        if let Some(first) = existing.iter().find(|e| e.request_id.is_some() && e.request_id == p.request_id)
        {
            return Ok(first.clone());
        }
        if existing.len() >= MAX_POSITIONS {
            return Err(WriteError::Limit("at most 50 positions"));
        }
        sqlx::query(
            "INSERT INTO positions (id, user_id, title, organization, start_month, end_month, is_current, \
             description, skill_ids, request_id, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11)",
        )
        .bind(&p.id)
        .bind(&p.user_id)
        .bind(&p.title)
        .bind(&p.organization)
        .bind(i64::from(p.start_month))
        .bind(p.end_month.map(i64::from))
        .bind(i64::from(p.current))
        .bind(&p.description)
        .bind(to_json(&p.skill_ids))
        .bind(p.request_id.clone())
        .bind(p.created_at)
        .execute(&mut *tx)
        .await?;
        let created = one(&mut tx, &p.user_id, &p.id).await?.ok_or(WriteError::NotFound)?;
        let who = (p.user_id.as_str(), p.user_id.as_str(), p.created_at);
        self.commit_change(tx, who, Part::Positions, Vec::new()).await?;
        Ok(created)
    }

    /// One position of the learner.
    pub async fn position(&self, user_id: &str, id: &str) -> Result<Option<PositionRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let position = one(&mut tx, user_id, id).await?;
        tx.commit().await?;
        Ok(position)
    }

    /// Writes the editable fields of `p` over the stored position if its version is still
    /// `expected_version` (Stale otherwise).
    pub async fn update_position(
        &self,
        p: &PositionRow,
        expected_version: i64,
        now: Millis,
    ) -> Result<PositionRow, WriteError> {
        let (user_id, id) = (p.user_id.as_str(), p.id.as_str());
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let done = sqlx::query(
            "UPDATE positions SET title = $3, organization = $4, start_month = $5, end_month = $6, \
             is_current = $7, description = $8, skill_ids = $9, version = version + 1, updated_at = $10 \
             WHERE user_id = $1 AND id = $2 AND version = $11",
        )
        .bind(user_id)
        .bind(id)
        .bind(&p.title)
        .bind(&p.organization)
        .bind(i64::from(p.start_month))
        .bind(p.end_month.map(i64::from))
        .bind(i64::from(p.current))
        .bind(&p.description)
        .bind(to_json(&p.skill_ids))
        .bind(now)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(match one(&mut tx, user_id, id).await? {
                Some(_) => WriteError::Stale,
                None => WriteError::NotFound,
            });
        }
        let updated = one(&mut tx, user_id, id).await?.ok_or(WriteError::NotFound)?;
        self.commit_change(tx, (user_id, user_id, now), Part::Positions, Vec::new()).await?;
        Ok(updated)
    }

    pub async fn delete_position(&self, user_id: &str, id: &str, now: Millis) -> Result<(), WriteError> {
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let done = sqlx::query("DELETE FROM positions WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(WriteError::NotFound);
        }
        self.commit_change(tx, (user_id, user_id, now), Part::Positions, Vec::new()).await?;
        Ok(())
    }
}
