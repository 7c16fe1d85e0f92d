//! The learner's skill inventory: self-assessed levels, and verifications only services set.

use serde::Serialize;
use sqlx::{Any, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col},
};

use super::{Part, Store, WriteError, begin_child_write, fetch_all, fetch_one, small};
use crate::domain::{MAX_SKILLS, career::MonthIndex};

/// A stored learner skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkillRow {
    pub user_id: String,
    pub skill_id: String,
    pub proficiency: i32,
    #[serde(rename = "years", serialize_with = "tenths_as_years")]
    pub years_tenths: i32,
    #[serde(rename = "last_used", serialize_with = "crate::domain::career::serialize_opt_month")]
    pub last_used_month: Option<MonthIndex>,
    pub verification: Option<Verification>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

fn tenths_as_years<S: serde::Serializer>(tenths: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(f64::from(*tenths) / 10.0)
}

/// A service's confirmation of a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub proficiency: i32,
    pub source: String,
    pub verifier: String,
    pub verified_at: Millis,
}

/// What a learner states about a skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfAssessment {
    pub proficiency: i32,
    pub years_tenths: i32,
    pub last_used_month: Option<MonthIndex>,
}

fn decode(row: &AnyRow) -> Result<SkillRow, StorageError> {
    let verified: Option<i64> = col(row, "verified_proficiency")?;
    let verification = match verified {
        Some(level) => Some(Verification {
            proficiency: small(level)?,
            source: col(row, "verified_source")?,
            verifier: col(row, "verified_by")?,
            verified_at: col::<Option<i64>>(row, "verified_at")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(SkillRow {
        user_id: col(row, "user_id")?,
        skill_id: col(row, "skill_id")?,
        proficiency: small(col(row, "proficiency")?)?,
        years_tenths: small(col(row, "years_tenths")?)?,
        last_used_month: col::<Option<i64>>(row, "last_used_month")?.map(small).transpose()?,
        verification,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

pub(crate) async fn all(tx: &mut Transaction<'_, Any>, user_id: &str) -> Result<Vec<SkillRow>, StorageError> {
    fetch_all(tx, "SELECT * FROM learner_skills WHERE user_id = $1 ORDER BY skill_id", &[user_id], decode)
        .await
}

async fn one(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    skill_id: &str,
) -> Result<Option<SkillRow>, StorageError> {
    fetch_one(
        tx,
        "SELECT * FROM learner_skills WHERE user_id = $1 AND skill_id = $2",
        &[user_id, skill_id],
        decode,
    )
    .await
}

async fn count(tx: &mut Transaction<'_, Any>, user_id: &str) -> Result<i64, StorageError> {
    use sqlx::Row;
    let row = sqlx::query("SELECT COUNT(*) AS n FROM learner_skills WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("n")?)
}

impl Store {
    /// A page of skills after `after` (skill id order).
    pub async fn list_skills(
        &self,
        user_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<SkillRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM learner_skills WHERE user_id = $1 AND skill_id > $2 ORDER BY skill_id LIMIT $3",
        )
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Adds or updates the learner's own assessment of a skill; a verification is kept. At most
    /// 200 skills. Returns (created, row).
    pub async fn upsert_skill(
        &self,
        user_id: &str,
        skill_id: &str,
        stated: SelfAssessment,
        now: Millis,
    ) -> Result<(bool, SkillRow), WriteError> {
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let before = one(&mut tx, user_id, skill_id).await?;
        let existed = before.is_some();
        let same = before.is_some_and(|r| {
            SelfAssessment {
                proficiency: r.proficiency,
                years_tenths: r.years_tenths,
                last_used_month: r.last_used_month,
            } == stated
        });
        if !existed && usize::try_from(count(&mut tx, user_id).await?).unwrap_or(usize::MAX) >= MAX_SKILLS {
            return Err(WriteError::Limit("at most 200 skills"));
        }
        sqlx::query(
            "INSERT INTO learner_skills (user_id, skill_id, proficiency, years_tenths, last_used_month, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (user_id, skill_id) DO UPDATE SET proficiency = excluded.proficiency, \
             years_tenths = excluded.years_tenths, last_used_month = excluded.last_used_month, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(skill_id)
        .bind(i64::from(stated.proficiency))
        .bind(i64::from(stated.years_tenths))
        .bind(stated.last_used_month.map(i64::from))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = one(&mut tx, user_id, skill_id).await?.ok_or(WriteError::NotFound)?;
        let mut events = Vec::new();
        if !existed {
            events.push(
                super::event("profiles.skill.added", user_id, user_id, now)
                    .string("skill_id", skill_id)
                    .int("level", i64::from(stated.proficiency))
                    .build(),
            );
        }
        if same {
            // The learner said it again: nothing others see changed.
            self.commit(tx, &events).await?;
        } else {
            self.commit_change(tx, (user_id, user_id, now), Part::Skills, events).await?;
        }
        Ok((!existed, row))
    }

    /// Records a service's verification; adds the skill (self-assessed at the verified level)
    /// when the learner had not listed it. Returns (changed, row): unchanged when the same
    /// level and source were already recorded, so retries are idempotent.
    pub async fn verify_skill(
        &self,
        user_id: &str,
        skill_id: &str,
        verification: &Verification,
    ) -> Result<(bool, SkillRow), WriteError> {
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let existing = one(&mut tx, user_id, skill_id).await?;
        if let Some(row) = &existing
            && row
                .verification
                .as_ref()
                .is_some_and(|v| v.proficiency == verification.proficiency && v.source == verification.source)
        {
            return Ok((false, row.clone()));
        }
        if existing.is_none()
            && usize::try_from(count(&mut tx, user_id).await?).unwrap_or(usize::MAX) >= MAX_SKILLS
        {
            return Err(WriteError::Limit("at most 200 skills"));
        }
        let now = verification.verified_at;
        sqlx::query(
            "INSERT INTO learner_skills (user_id, skill_id, proficiency, years_tenths, verified_proficiency, \
             verified_source, verified_by, verified_at, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $3, $4, $5, $6, $6, $6) \
             ON CONFLICT (user_id, skill_id) DO UPDATE SET verified_proficiency = excluded.verified_proficiency, \
             verified_source = excluded.verified_source, verified_by = excluded.verified_by, \
             verified_at = excluded.verified_at, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(skill_id)
        .bind(i64::from(verification.proficiency))
        .bind(&verification.source)
        .bind(&verification.verifier)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = one(&mut tx, user_id, skill_id).await?.ok_or(WriteError::NotFound)?;
        let event = super::event("profiles.skill.verified", user_id, &verification.verifier, now)
            .string("skill_id", skill_id)
            .int("proficiency", i64::from(verification.proficiency))
            .string("source", &verification.source)
            .build();
        self.commit_change(tx, (user_id, &verification.verifier, now), Part::Skills, vec![event]).await?;
        Ok((true, row))
    }

    pub async fn delete_skill(&self, user_id: &str, skill_id: &str, now: Millis) -> Result<(), WriteError> {
        let mut tx = begin_child_write(self.db(), user_id).await?;
        let done = sqlx::query("DELETE FROM learner_skills WHERE user_id = $1 AND skill_id = $2")
            .bind(user_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(WriteError::NotFound);
        }
        self.commit_change(tx, (user_id, user_id, now), Part::Skills, Vec::new()).await?;
        Ok(())
    }
}
