//! Career goals, in the learner's order (`rank` 0 first, kept contiguous).

use serde::Serialize;
use sqlx::{Any, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col},
};

use super::{Part, Store, WriteError, begin_child_write, fetch_all, fetch_one, from_json, small, to_json};
use crate::domain::{MAX_ACTIVE_GOALS, MAX_GOALS};

/// The status name of an active goal.
pub const ACTIVE: &str = "GOAL_STATUS_ACTIVE";
pub const ACHIEVED: &str = "GOAL_STATUS_ACHIEVED";

/// A stored goal. `kind` and `status` hold protobuf value names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GoalRow {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub title: String,
    pub target_role: String,
    pub target_field: String,
    /// YYYY-MM-DD or empty.
    pub target_date: String,
    pub priority: i32,
    pub status: String,
    pub skill_ids: Vec<String>,
    pub rank: i32,
    #[serde(skip)]
    pub request_id: Option<String>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub achieved_at: Option<Millis>,
}

fn decode(row: &AnyRow) -> Result<GoalRow, StorageError> {
    Ok(GoalRow {
        id: col(row, "id")?,
        user_id: col(row, "user_id")?,
        kind: col(row, "kind")?,
        title: col(row, "title")?,
        target_role: col(row, "target_role")?,
        target_field: col(row, "target_field")?,
        target_date: col(row, "target_date")?,
        priority: small(col(row, "priority")?)?,
        status: col(row, "status")?,
        skill_ids: from_json(&col::<String>(row, "skill_ids")?)?,
        rank: small(col(row, "rank")?)?,
        request_id: col(row, "request_id")?,
        version: col(row, "version")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        achieved_at: col(row, "achieved_at")?,
    })
}

pub(crate) async fn all(tx: &mut Transaction<'_, Any>, user_id: &str) -> Result<Vec<GoalRow>, StorageError> {
    fetch_all(tx, "SELECT * FROM goals WHERE user_id = $1 ORDER BY rank, id", &[user_id], decode).await
}

async fn one(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    id: &str,
) -> Result<Option<GoalRow>, StorageError> {
    fetch_one(tx, "SELECT * FROM goals WHERE user_id = $1 AND id = $2", &[user_id, id], decode).await
}

/// Refuses a write that would pass the limits; `others` are the learner's other goals.
fn check_limits(others: &[&GoalRow], added: bool, becomes_active: bool) -> Result<(), WriteError> {
    if added && others.len() >= MAX_GOALS {
        return Err(WriteError::Limit("at most 50 goals; delete old ones first"));
    }
    if becomes_active && others.iter().filter(|g| g.status == ACTIVE).count() >= MAX_ACTIVE_GOALS {
        return Err(WriteError::Limit("at most 10 active goals; achieve or abandon one first"));
    }
    Ok(())
}

impl Store {
    /// A page of goals after the cursor `(rank, id)`, optionally of one status.
    pub async fn list_goals(
        &self,
        user_id: &str,
        status: Option<&str>,
        after: (i32, &str),
        limit: i64,
    ) -> Result<Vec<GoalRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM goals WHERE user_id = $1 AND ($2 = '' OR status = $2) \
             AND (rank > $3 OR (rank = $3 AND id > $4)) ORDER BY rank, id LIMIT $5",
        )
        .bind(user_id)
        .bind(status.unwrap_or(""))
        .bind(i64::from(after.0))
        .bind(after.1)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Adds a goal at the end of the learner's order, atomically with the limit checks. A
    /// retried create (same request id) returns the goal the first one made.
    pub async fn create_goal(&self, goal: &GoalRow) -> Result<GoalRow, WriteError> {
        let mut tx = begin_child_write(self.db(), &goal.user_id).await?;
        let existing = all(&mut tx, &goal.user_id).await?;
        if let Some(first) =
            existing.iter().find(|g| g.request_id.is_some() && g.request_id == goal.request_id)
        {
            return Ok(first.clone());
        }
        check_limits(&existing.iter().collect::<Vec<_>>(), true, goal.status == ACTIVE)?;
        let rank = i32::try_from(existing.len()).unwrap_or(i32::MAX);
        sqlx::query(
            "INSERT INTO goals (id, user_id, kind, title, target_role, target_field, target_date, priority, \
             status, skill_ids, rank, request_id, version, created_at, updated_at, achieved_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13, $14)",
        )
        .bind(&goal.id)
        .bind(&goal.user_id)
        .bind(&goal.kind)
        .bind(&goal.title)
        .bind(&goal.target_role)
        .bind(&goal.target_field)
        .bind(&goal.target_date)
        .bind(i64::from(goal.priority))
        .bind(&goal.status)
        .bind(to_json(&goal.skill_ids))
        .bind(i64::from(rank))
        .bind(goal.request_id.clone())
        .bind(goal.created_at)
        .bind((goal.status == ACHIEVED).then_some(goal.created_at))
        .execute(&mut *tx)
        .await?;
        let created = one(&mut tx, &goal.user_id, &goal.id).await?.ok_or(WriteError::NotFound)?;
        let event = |kind| {
            super::event(kind, &goal.user_id, &goal.user_id, goal.created_at).string("goal_id", &goal.id)
        };
        let mut events = vec![event("profiles.goal.created").string("kind", &goal.kind).build()];
        if goal.status == ACHIEVED {
            events.push(event("profiles.goal.achieved").build());
        }
        let who = (goal.user_id.as_str(), goal.user_id.as_str(), goal.created_at);
        self.commit_change(tx, who, Part::Goals, events).await?;
        Ok(created)
    }

    /// One goal of the learner.
    pub async fn goal(&self, user_id: &str, id: &str) -> Result<Option<GoalRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let goal = one(&mut tx, user_id, id).await?;
        tx.commit().await?;
        Ok(goal)
    }

    /// Writes the editable fields of `goal` over the stored one if its version is still
    /// `expected_version`, checking the active-goal limit when the goal becomes active and
    /// stamping the achievement time.
    pub async fn update_goal(
        &self,
        goal: &GoalRow,
        expected_version: i64,
        now: Millis,
    ) -> Result<GoalRow, WriteError> {
        let (user_id, id) = (goal.user_id.as_str(), goal.id.as_str());
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let goals = all(&mut tx, user_id).await?;
        let (before, others): (Vec<&GoalRow>, Vec<&GoalRow>) = goals.iter().partition(|g| g.id == id);
        let before = before.first().ok_or(WriteError::NotFound)?;
        if expected_version != before.version {
            return Err(WriteError::Stale);
        }
        check_limits(&others, false, goal.status == ACTIVE && before.status != ACTIVE)?;
        let achieved_at = match (goal.status == ACHIEVED, before.achieved_at) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
            (false, _) => None,
        };
        sqlx::query(
            "UPDATE goals SET kind = $3, title = $4, target_role = $5, target_field = $6, target_date = $7, \
             priority = $8, status = $9, skill_ids = $10, achieved_at = $11, version = version + 1, \
             updated_at = $12 WHERE user_id = $1 AND id = $2",
        )
        .bind(user_id)
        .bind(id)
        .bind(&goal.kind)
        .bind(&goal.title)
        .bind(&goal.target_role)
        .bind(&goal.target_field)
        .bind(&goal.target_date)
        .bind(i64::from(goal.priority))
        .bind(&goal.status)
        .bind(to_json(&goal.skill_ids))
        .bind(achieved_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let after = one(&mut tx, user_id, id).await?.ok_or(WriteError::NotFound)?;
        let mut events = Vec::new();
        if after.status == ACHIEVED && before.status != ACHIEVED {
            events.push(
                super::event("profiles.goal.achieved", user_id, user_id, now).string("goal_id", id).build(),
            );
        }
        self.commit_change(tx, (user_id, user_id, now), Part::Goals, events).await?;
        Ok(after)
    }

    /// Deletes a goal and closes the gap in the order. NotFound when there is no such goal.
    pub async fn delete_goal(&self, user_id: &str, id: &str, now: Millis) -> Result<(), WriteError> {
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let goal = one(&mut tx, user_id, id).await?.ok_or(WriteError::NotFound)?;
        sqlx::query("DELETE FROM goals WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE goals SET rank = rank - 1 WHERE user_id = $1 AND rank > $2")
            .bind(user_id)
            .bind(i64::from(goal.rank))
            .execute(&mut *tx)
            .await?;
        self.commit_change(tx, (user_id, user_id, now), Part::Goals, Vec::new()).await?;
        Ok(())
    }

    /// Sets the order to `ids`, which must name every goal of the learner exactly once.
    pub async fn reorder_goals(
        &self,
        user_id: &str,
        ids: &[String],
        now: Millis,
    ) -> Result<Vec<GoalRow>, WriteError> {
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let goals = all(&mut tx, user_id).await?;
        let mut wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut have: Vec<&str> = goals.iter().map(|g| g.id.as_str()).collect();
        wanted.sort_unstable();
        have.sort_unstable();
        if wanted != have {
            return Err(WriteError::Invalid("must name every goal of yours exactly once".into()));
        }
        for (rank, id) in ids.iter().enumerate() {
            sqlx::query(
                "UPDATE goals SET rank = $3, updated_at = $4 WHERE user_id = $1 AND id = $2 AND rank <> $3",
            )
            .bind(user_id)
            .bind(id)
            .bind(i64::try_from(rank).unwrap_or(i64::MAX))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let reordered = all(&mut tx, user_id).await?;
        self.commit_change(tx, (user_id, user_id, now), Part::Goals, Vec::new()).await?;
        Ok(reordered)
    }
}
