//! The profile row: created on first access, updated with an optimistic version check.

use serde::Serialize;
use sqlx::{Any, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col},
};

use super::{Part, Store, from_json, to_json};

/// A stored profile. Enum-valued fields hold the protobuf value names ("" = unset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileRow {
    pub user_id: String,
    pub headline: String,
    pub current_role: String,
    pub fields_of_work: Vec<String>,
    pub location: String,
    pub timezone: String,
    pub languages: Vec<String>,
    pub career_stage_override: String,
    pub session_cadence: String,
    pub communication_style: String,
    pub feedback_style: String,
    pub notify_email: bool,
    pub notify_push: bool,
    pub notify_weekly_digest: bool,
    pub notify_mission_reminders: bool,
    pub visibility: String,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The completion percentage analytics was last told.
    pub reported_completion: i64,
}

fn decode(row: &AnyRow) -> Result<ProfileRow, StorageError> {
    let flag = |name: &str| col::<i64>(row, name).map(|v| v != 0);
    Ok(ProfileRow {
        user_id: col(row, "user_id")?,
        headline: col(row, "headline")?,
        current_role: col(row, "role_title")?,
        fields_of_work: from_json(&col::<String>(row, "fields_of_work")?)?,
        location: col(row, "location")?,
        timezone: col(row, "timezone")?,
        languages: from_json(&col::<String>(row, "languages")?)?,
        career_stage_override: col(row, "career_stage_override")?,
        session_cadence: col(row, "session_cadence")?,
        communication_style: col(row, "communication_style")?,
        feedback_style: col(row, "feedback_style")?,
        notify_email: flag("notify_email")?,
        notify_push: flag("notify_push")?,
        notify_weekly_digest: flag("notify_weekly_digest")?,
        notify_mission_reminders: flag("notify_mission_reminders")?,
        visibility: col(row, "visibility")?,
        version: col(row, "version")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        reported_completion: col(row, "reported_completion")?,
    })
}

pub(crate) async fn get(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
) -> Result<Option<ProfileRow>, StorageError> {
    let row = sqlx::query("SELECT * FROM profiles WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(decode).transpose()
}

impl Store {
    /// The profile of `user_id`, or None.
    pub async fn profile(&self, user_id: &str) -> Result<Option<ProfileRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let profile = get(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(profile)
    }

    /// Creates an empty profile unless one exists or the user was deleted (purged). Returns
    /// true when this call created it (with the `profiles.profile.created` event, caused by
    /// `actor`). Idempotent under concurrency.
    pub async fn ensure_profile(
        &self,
        user_id: &str,
        actor: &str,
        now: Millis,
    ) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "INSERT INTO profiles (user_id, version, created_at, updated_at) \
             SELECT $1, 1, $2, $2 WHERE NOT EXISTS (SELECT 1 FROM purged_users WHERE user_id = $1) \
             ON CONFLICT (user_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let created = super::event("profiles.profile.created", user_id, actor, now).build();
        self.commit_change(tx, (user_id, actor, now), Part::Profile, vec![created]).await?;
        Ok(true)
    }

    /// Records `percent` as the completion analytics was told, with the
    /// `profiles.completion.changed` event, if `previous` is still the recorded one (so
    /// concurrent writers report each change once). False when it moved meanwhile.
    pub async fn report_completion(
        &self,
        user_id: &str,
        previous: i64,
        percent: i64,
        now: Millis,
    ) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE profiles SET reported_completion = $3 WHERE user_id = $1 AND reported_completion = $2",
        )
        .bind(user_id)
        .bind(previous)
        .bind(percent)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let event = super::event("profiles.completion.changed", user_id, "", now)
            .int("percent", percent)
            .int("previous", previous)
            .build();
        self.commit(tx, &[event]).await?;
        Ok(true)
    }

    /// Writes every field of `profile` if its stored version is still `expected`; the version
    /// moves on by one, and the `profiles.profile.updated` event names the `fields` changed
    /// (with the time zone when it is one of them). None when the version moved (or the
    /// profile is gone).
    pub async fn update_profile(
        &self,
        profile: &ProfileRow,
        expected: i64,
        now: Millis,
        fields: &[String],
    ) -> Result<Option<ProfileRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let row = sqlx::query(
            "UPDATE profiles SET headline = $3, role_title = $4, fields_of_work = $5, location = $6, \
             timezone = $7, languages = $8, career_stage_override = $9, session_cadence = $10, \
             communication_style = $11, feedback_style = $12, notify_email = $13, notify_push = $14, \
             notify_weekly_digest = $15, notify_mission_reminders = $16, visibility = $17, \
             version = version + 1, updated_at = $18 \
             WHERE user_id = $1 AND version = $2 RETURNING *",
        )
        .bind(&profile.user_id)
        .bind(expected)
        .bind(&profile.headline)
        .bind(&profile.current_role)
        .bind(to_json(&profile.fields_of_work))
        .bind(&profile.location)
        .bind(&profile.timezone)
        .bind(to_json(&profile.languages))
        .bind(&profile.career_stage_override)
        .bind(&profile.session_cadence)
        .bind(&profile.communication_style)
        .bind(&profile.feedback_style)
        .bind(i64::from(profile.notify_email))
        .bind(i64::from(profile.notify_push))
        .bind(i64::from(profile.notify_weekly_digest))
        .bind(i64::from(profile.notify_mission_reminders))
        .bind(&profile.visibility)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row.as_ref().map(decode).transpose()? else {
            return Ok(None);
        };
        let mut event = super::event("profiles.profile.updated", &profile.user_id, &profile.user_id, now)
            .string("fields", fields.join(","));
        if fields.iter().any(|f| f == "timezone") {
            event = event.string("time_zone", profile.timezone.clone());
        }
        let who = (profile.user_id.as_str(), profile.user_id.as_str(), now);
        self.commit_change(tx, who, Part::Profile, vec![event.build()]).await?;
        Ok(Some(row))
    }
}
