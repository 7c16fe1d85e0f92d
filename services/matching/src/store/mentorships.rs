//! Mentorships: choosing (a seat taken under the capacity), ending, rematching in one
//! transaction, feedback, history, export and forgetting a deleted user.

use serde::Serialize;
use sqlx::{Any, Row, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    outbox::consumed,
    storage::{StorageError, col},
};
use tt_proto::{
    common::v1::Event,
    matching::v1::{EndReason, MentorshipOrigin, MentorshipState},
};

use super::{Store, event, mentors::ACTIVE};
use crate::domain::mentorship::{demotes, ended_state};

const ACTIVE_STATE: &str = "MENTORSHIP_STATE_ACTIVE";
const PROPOSED_STATE: &str = "MENTORSHIP_STATE_PROPOSED";
const RUNNING: &str = "('MENTORSHIP_STATE_PROPOSED', 'MENTORSHIP_STATE_ACTIVE')";

/// A stored mentorship. `state`, `origin` and `end_reason` hold protobuf value names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MentorshipRow {
    pub id: String,
    pub user_id: String,
    pub mentor_id: String,
    pub mentor_version: i64,
    pub mentor_name: String,
    pub state: String,
    pub origin: String,
    #[serde(skip)]
    pub created_by: String,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub end_reason: String,
    pub end_note: String,
    pub expires_at: Option<Millis>,
    #[serde(skip)]
    pub request_id: Option<String>,
    pub rating: Option<i64>,
    pub feedback_reason: String,
    pub feedback_at: Option<Millis>,
}

impl MentorshipRow {
    pub fn state(&self) -> MentorshipState {
        MentorshipState::from_str_name(&self.state).unwrap_or_default()
    }
}

fn decode(row: &AnyRow) -> Result<MentorshipRow, StorageError> {
    Ok(MentorshipRow {
        id: col(row, "id")?,
        user_id: col(row, "user_id")?,
        mentor_id: col(row, "mentor_id")?,
        mentor_version: col(row, "mentor_version")?,
        mentor_name: col(row, "mentor_name")?,
        state: col(row, "state")?,
        origin: col(row, "origin")?,
        created_by: col(row, "created_by")?,
        created_at: col(row, "created_at")?,
        started_at: col(row, "started_at")?,
        ended_at: col(row, "ended_at")?,
        end_reason: col(row, "end_reason")?,
        end_note: col(row, "end_note")?,
        expires_at: col(row, "expires_at")?,
        request_id: col(row, "request_id")?,
        rating: col(row, "rating")?,
        feedback_reason: col(row, "feedback_reason")?,
        feedback_at: col(row, "feedback_at")?,
    })
}

/// Why a mentorship write was refused.
#[derive(Debug, thiserror::Error)]
pub enum MentorshipError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("no such mentor")]
    MentorNotFound,
    #[error("the mentor is not active")]
    MentorNotActive,
    #[error("the mentor has no free seat")]
    MentorFull,
    /// The learner already has a proposed or active mentorship.
    #[error("a mentorship is already running")]
    Exists(Option<String>),
    #[error("no such mentorship")]
    NotFound,
    /// The mentorship is not in a state that allows the change.
    #[error("the mentorship is {0}")]
    WrongState(String),
    #[error("the same mentor")]
    SameMentor,
    /// A proposal past its expiry (it is expired now); the mentor whose seat this call freed
    /// (None when another call expired it first).
    #[error("the proposal expired")]
    Expired(Option<String>),
}

impl From<sqlx::Error> for MentorshipError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

/// A mentorship to create.
#[derive(Debug, Clone)]
pub struct NewMentorship<'a> {
    pub user_id: &'a str,
    pub mentor_id: &'a str,
    pub origin: MentorshipOrigin,
    pub request_id: Option<&'a str>,
    /// Who asked (the learner, an admin).
    pub actor: &'a str,
    pub now: Millis,
    /// A proposal holding its seat until then; None: active at once.
    pub expires_at: Option<Millis>,
}

/// An ending of a running mentorship.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub user_id: &'a str,
    pub mentorship_id: &'a str,
    pub reason: EndReason,
    pub note: &'a str,
    pub actor: &'a str,
    pub now: Millis,
}

async fn one(
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    binds: &[&str],
) -> Result<Option<MentorshipRow>, StorageError> {
    tt_common::storage::query::fetch_one(tx, sql, binds, decode).await
}

/// Takes a seat of `mentor_id` (the transaction's first write) and creates the mentorship,
/// active or proposed, with its event.
async fn start(
    tx: &mut Transaction<'_, Any>,
    new: &NewMentorship<'_>,
) -> Result<(MentorshipRow, Event), MentorshipError> {
    let taken = sqlx::query(
        "UPDATE mentors SET seats_taken = seats_taken + 1 \
         WHERE mentor_id = $1 AND status = $2 AND seats_taken < capacity",
    )
    .bind(new.mentor_id)
    .bind(ACTIVE)
    .execute(&mut **tx)
    .await?;
    if taken.rows_affected() == 0 {
        let row = sqlx::query("SELECT status FROM mentors WHERE mentor_id = $1")
            .bind(new.mentor_id)
            .fetch_optional(&mut **tx)
            .await?;
        return Err(match row {
            None => MentorshipError::MentorNotFound,
            Some(r) if r.try_get::<String, _>("status")? != ACTIVE => MentorshipError::MentorNotActive,
            Some(_) => MentorshipError::MentorFull,
        });
    }
    let running = format!("SELECT * FROM mentorships WHERE user_id = $1 AND state IN {RUNNING}");
    let existing =
        sqlx::query(sqlx::AssertSqlSafe(running)).bind(new.user_id).fetch_optional(&mut **tx).await?;
    if let Some(row) = existing {
        return Err(MentorshipError::Exists(Some(col(&row, "id")?)));
    }
    let published = sqlx::query(
        "SELECT v.version, v.content FROM mentors m JOIN mentor_versions v \
         ON v.mentor_id = m.mentor_id AND v.version = m.published_version WHERE m.mentor_id = $1",
    )
    .bind(new.mentor_id)
    .fetch_one(&mut **tx)
    .await?;
    let version: i64 = published.try_get("version")?;
    let content: crate::domain::catalog::Content =
        serde_json::from_str(&published.try_get::<String, _>("content")?)
            .map_err(|e| StorageError::Other(format!("mentor content: {e}").into()))?;
    let id = tt_common::new_id();
    let (state, started_at) = match new.expires_at {
        Some(_) => (PROPOSED_STATE, None),
        None => (ACTIVE_STATE, Some(new.now)),
    };
    sqlx::query(
        "INSERT INTO mentorships (id, user_id, mentor_id, mentor_version, mentor_name, state, origin, \
         created_by, created_at, started_at, request_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(new.user_id)
    .bind(new.mentor_id)
    .bind(version)
    .bind(&content.name)
    .bind(state)
    .bind(new.origin.as_str_name())
    .bind(new.actor)
    .bind(new.now)
    .bind(started_at)
    .bind(new.request_id)
    .bind(new.expires_at)
    .execute(&mut **tx)
    .await?;
    let row =
        one(tx, "SELECT * FROM mentorships WHERE id = $1", &[&id]).await?.ok_or(MentorshipError::NotFound)?;
    let kind =
        if new.expires_at.is_some() { "matching.mentorship.proposed" } else { "matching.mentorship.started" };
    let started = event(kind, new.user_id, new.actor, new.now)
        .string("mentorship_id", &id)
        .string("mentor_id", new.mentor_id)
        .int("mentor_version", version)
        .string("origin", origin_name(new.origin))
        .build();
    Ok((row, started))
}

/// `CHOSEN` from `MENTORSHIP_ORIGIN_CHOSEN`, as events carry it.
fn origin_name(origin: MentorshipOrigin) -> String {
    origin.as_str_name().trim_start_matches("MENTORSHIP_ORIGIN_").to_ascii_lowercase()
}

/// Ends the learner's active mentorship (the transaction's first write) and frees its seat.
async fn finish(
    tx: &mut Transaction<'_, Any>,
    end: &Ending<'_>,
) -> Result<(MentorshipRow, Event), MentorshipError> {
    let state = ended_state(end.reason);
    let done = sqlx::query(
        "UPDATE mentorships SET state = $3, ended_at = $4, end_reason = $5, end_note = $6 \
         WHERE id = $1 AND user_id = $2 AND state = $7",
    )
    .bind(end.mentorship_id)
    .bind(end.user_id)
    .bind(state.as_str_name())
    .bind(end.now)
    .bind(end.reason.as_str_name())
    .bind(end.note)
    .bind(ACTIVE_STATE)
    .execute(&mut **tx)
    .await?;
    let row = one(
        tx,
        "SELECT * FROM mentorships WHERE id = $1 AND user_id = $2",
        &[end.mentorship_id, end.user_id],
    )
    .await?
    .ok_or(MentorshipError::NotFound)?;
    if done.rows_affected() == 0 {
        return Err(MentorshipError::WrongState(row.state));
    }
    free_seat(tx, &row.mentor_id).await?;
    let ended = ended_event(&row, state, end.reason, end.actor, end.now);
    Ok((row, ended))
}

/// `matching.mentorship.ended` for `row`, now in `state` for `reason`.
fn ended_event(
    row: &MentorshipRow,
    state: MentorshipState,
    reason: EndReason,
    actor: &str,
    now: Millis,
) -> Event {
    let reason = match reason {
        EndReason::Unspecified => "expired".to_owned(),
        r => r.as_str_name().trim_start_matches("END_REASON_").to_ascii_lowercase(),
    };
    event("matching.mentorship.ended", &row.user_id, actor, now)
        .string("mentorship_id", &row.id)
        .string("mentor_id", &row.mentor_id)
        .string("state", state.as_str_name().trim_start_matches("MENTORSHIP_STATE_").to_ascii_lowercase())
        .string("reason", reason)
        .build()
}

/// Frees the seat of a mentorship that stopped running.
async fn free_seat(tx: &mut Transaction<'_, Any>, mentor_id: &str) -> Result<(), StorageError> {
    sqlx::query("UPDATE mentors SET seats_taken = seats_taken - 1 WHERE mentor_id = $1 AND seats_taken > 0")
        .bind(mentor_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Expires the proposal `id` if it is still one (its seat freed, its event written in `tx`).
async fn expire(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    now: Millis,
) -> Result<Option<(MentorshipRow, Event)>, StorageError> {
    let done = sqlx::query("UPDATE mentorships SET state = $2, ended_at = $3 WHERE id = $1 AND state = $4")
        .bind(id)
        .bind(MentorshipState::Expired.as_str_name())
        .bind(now)
        .bind(PROPOSED_STATE)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let Some(row) = one(tx, "SELECT * FROM mentorships WHERE id = $1", &[id]).await? else { return Ok(None) };
    free_seat(tx, &row.mentor_id).await?;
    let expired = ended_event(&row, MentorshipState::Expired, EndReason::Unspecified, "matching", now);
    Ok(Some((row, expired)))
}

impl Store {
    /// The learner's mentorship created with `request_id`, if any.
    pub async fn by_request(
        &self,
        user_id: &str,
        request_id: &str,
    ) -> Result<Option<MentorshipRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let row = one(
            &mut tx,
            "SELECT * FROM mentorships WHERE user_id = $1 AND request_id = $2",
            &[user_id, request_id],
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Starts an active mentorship with a free seat of an active mentor. A retry with the same
    /// request id returns the first result (and false: nothing was done now).
    pub async fn choose(&self, new: &NewMentorship<'_>) -> Result<(MentorshipRow, bool), MentorshipError> {
        if let Some(rid) = new.request_id
            && let Some(row) = self.by_request(new.user_id, rid).await?
        {
            return Ok((row, false));
        }
        let mut tx = self.db().pool().begin().await?;
        let (row, started) = start(&mut tx, new).await?;
        self.settle(tx, &[started], new).await?;
        Ok((row, true))
    }

    /// Commits, turning a lost race (the unique indexes) into its answer: the first result of
    /// the same request, or the running mentorship.
    async fn settle(
        &self,
        tx: Transaction<'_, Any>,
        events: &[Event],
        new: &NewMentorship<'_>,
    ) -> Result<(), MentorshipError> {
        match self.outbox.write(tx, events).await {
            Ok(()) => Ok(()),
            Err(StorageError::Conflict(_)) => Err(MentorshipError::Exists(None)),
            Err(e) => {
                tracing::debug!(user_id = new.user_id, error = %e, "choosing failed");
                Err(e.into())
            }
        }
    }

    /// Ends the learner's active mentorship: completed for GOALS_REACHED, else ended.
    pub async fn end(&self, end: &Ending<'_>) -> Result<MentorshipRow, MentorshipError> {
        let mut tx = self.db().pool().begin().await?;
        let (row, ended) = finish(&mut tx, end).await?;
        self.outbox.write(tx, &[ended]).await?;
        Ok(row)
    }

    /// Ends the active mentorship and starts one with another mentor: both or neither. A retry
    /// with the same request id returns the first result (and false).
    pub async fn rematch(
        &self,
        end: &Ending<'_>,
        new: &NewMentorship<'_>,
    ) -> Result<(MentorshipRow, MentorshipRow, bool), MentorshipError> {
        if let Some(rid) = new.request_id
            && let Some(row) = self.by_request(new.user_id, rid).await?
        {
            let ended =
                self.mentorship(new.user_id, end.mentorship_id).await?.ok_or(MentorshipError::NotFound)?;
            return Ok((ended, row, false));
        }
        let mut tx = self.db().pool().begin().await?;
        let (ended, ended_event) = finish(&mut tx, end).await?;
        if ended.mentor_id == new.mentor_id {
            return Err(MentorshipError::SameMentor);
        }
        let (row, started) = start(&mut tx, new).await?;
        self.settle(tx, &[ended_event, started], new).await?;
        Ok((ended, row, true))
    }

    /// Accepts a proposal made to the learner: active from now. A proposal past its expiry is
    /// expired now (its seat freed) and refused.
    pub async fn accept(
        &self,
        user_id: &str,
        id: &str,
        now: Millis,
    ) -> Result<MentorshipRow, MentorshipError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mentorships SET state = $3, started_at = $4 \
             WHERE id = $1 AND user_id = $2 AND state = $5 AND expires_at > $4",
        )
        .bind(id)
        .bind(user_id)
        .bind(ACTIVE_STATE)
        .bind(now)
        .bind(PROPOSED_STATE)
        .execute(&mut *tx)
        .await?;
        let row = one(&mut tx, "SELECT * FROM mentorships WHERE id = $1 AND user_id = $2", &[id, user_id])
            .await?
            .ok_or(MentorshipError::NotFound)?;
        if done.rows_affected() == 0 {
            if row.state() != MentorshipState::Proposed {
                return Err(MentorshipError::WrongState(row.state));
            }
            let expired = expire(&mut tx, id, now).await?;
            let freed = expired.as_ref().map(|(row, _)| row.mentor_id.clone());
            let events: Vec<Event> = expired.into_iter().map(|(_, e)| e).collect();
            self.outbox.write(tx, &events).await?;
            return Err(MentorshipError::Expired(freed));
        }
        let origin = MentorshipOrigin::from_str_name(&row.origin).unwrap_or_default();
        let started = event("matching.mentorship.started", user_id, user_id, now)
            .string("mentorship_id", id)
            .string("mentor_id", &row.mentor_id)
            .int("mentor_version", row.mentor_version)
            .string("origin", origin_name(origin))
            .build();
        self.outbox.write(tx, &[started]).await?;
        Ok(row)
    }

    /// Declines a proposal made to the learner (its seat freed).
    pub async fn decline(&self, end: &Ending<'_>) -> Result<MentorshipRow, MentorshipError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mentorships SET state = $3, ended_at = $4, end_reason = $5, end_note = $6 \
             WHERE id = $1 AND user_id = $2 AND state = $7",
        )
        .bind(end.mentorship_id)
        .bind(end.user_id)
        .bind(MentorshipState::Declined.as_str_name())
        .bind(end.now)
        .bind(end.reason.as_str_name())
        .bind(end.note)
        .bind(PROPOSED_STATE)
        .execute(&mut *tx)
        .await?;
        let row = one(
            &mut tx,
            "SELECT * FROM mentorships WHERE id = $1 AND user_id = $2",
            &[end.mentorship_id, end.user_id],
        )
        .await?
        .ok_or(MentorshipError::NotFound)?;
        if done.rows_affected() == 0 {
            return Err(MentorshipError::WrongState(row.state));
        }
        free_seat(&mut tx, &row.mentor_id).await?;
        let declined = ended_event(&row, MentorshipState::Declined, end.reason, end.actor, end.now);
        self.outbox.write(tx, &[declined]).await?;
        Ok(row)
    }

    /// Expires proposals whose time is up (at most 500 per call): their seats are freed. Returns
    /// the mentors whose seats moved.
    pub async fn expire_proposals(&self, now: Millis) -> Result<Vec<String>, StorageError> {
        let due = sqlx::query(
            "SELECT id FROM mentorships WHERE state = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT 500",
        )
        .bind(PROPOSED_STATE)
        .bind(now)
        .fetch_all(self.db().pool())
        .await?;
        let mut moved = Vec::new();
        for r in &due {
            let id: String = col(r, "id")?;
            let mut tx = self.db().pool().begin().await?;
            if let Some((row, expired)) = expire(&mut tx, &id, now).await? {
                self.outbox.write(tx, &[expired]).await?;
                moved.push(row.mentor_id);
            }
        }
        Ok(moved)
    }

    /// Applies a computed cohort assignment: a proposal per pair (origin COHORT) and the
    /// assignment marked applied, in one transaction. Pairs that cannot be proposed now (the
    /// learner has a mentorship, the mentor is full or no longer active) are skipped with the
    /// reason; WrongState when the assignment is not a succeeded one.
    pub async fn apply_cohort(
        &self,
        assignment_id: &str,
        pairs: &[(String, String)],
        actor: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(Vec<MentorshipRow>, Vec<(String, String, &'static str)>), MentorshipError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query("UPDATE cohort_assignments SET state = $2 WHERE id = $1 AND state = $3")
            .bind(assignment_id)
            .bind(super::settings::APPLIED)
            .bind(super::settings::SUCCEEDED)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            let row = sqlx::query("SELECT state FROM cohort_assignments WHERE id = $1")
                .bind(assignment_id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match row {
                None => MentorshipError::NotFound,
                Some(r) => MentorshipError::WrongState(r.try_get("state")?),
            });
        }
        let (mut proposed, mut skipped, mut events) = (Vec::new(), Vec::new(), Vec::new());
        for (user, mentor) in pairs {
            let new = NewMentorship {
                user_id: user,
                mentor_id: mentor,
                origin: MentorshipOrigin::Cohort,
                request_id: None,
                actor,
                now,
                expires_at: Some(expires_at),
            };
            match start(&mut tx, &new).await {
                Ok((row, e)) => {
                    proposed.push(row);
                    events.push(e);
                }
                Err(MentorshipError::Exists(_)) => {
                    skipped.push((user.clone(), mentor.clone(), "MENTORSHIP_EXISTS"))
                }
                Err(MentorshipError::MentorFull) => {
                    skipped.push((user.clone(), mentor.clone(), "MENTOR_FULL"))
                }
                Err(MentorshipError::MentorNotActive | MentorshipError::MentorNotFound) => {
                    skipped.push((user.clone(), mentor.clone(), "MENTOR_NOT_ACTIVE"));
                }
                Err(e) => return Err(e),
            }
        }
        self.outbox.write(tx, &events).await?;
        Ok((proposed, skipped))
    }

    /// Rates a started mentorship of the learner's (the new rating replaces the last).
    pub async fn feedback(
        &self,
        user_id: &str,
        mentorship_id: &str,
        rating: i32,
        reason: &str,
        now: Millis,
    ) -> Result<MentorshipRow, MentorshipError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mentorships SET rating = $3, feedback_reason = $4, feedback_at = $5 \
             WHERE id = $1 AND user_id = $2 AND started_at IS NOT NULL",
        )
        .bind(mentorship_id)
        .bind(user_id)
        .bind(i64::from(rating))
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = one(
            &mut tx,
            "SELECT * FROM mentorships WHERE id = $1 AND user_id = $2",
            &[mentorship_id, user_id],
        )
        .await?
        .ok_or(MentorshipError::NotFound)?;
        if done.rows_affected() == 0 {
            return Err(MentorshipError::WrongState(row.state));
        }
        let rated = event("matching.feedback.submitted", user_id, user_id, now)
            .string("mentorship_id", mentorship_id)
            .string("mentor_id", &row.mentor_id)
            .int("rating", i64::from(rating))
            .build();
        self.outbox.write(tx, &[rated]).await?;
        Ok(row)
    }

    /// One mentorship of the learner's.
    pub async fn mentorship(&self, user_id: &str, id: &str) -> Result<Option<MentorshipRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let row =
            one(&mut tx, "SELECT * FROM mentorships WHERE id = $1 AND user_id = $2", &[id, user_id]).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The learner's mentorships newest first, after `after` (created_at, id), in `state` when
    /// given, at most `limit`.
    pub async fn list(
        &self,
        user_id: &str,
        state: Option<MentorshipState>,
        after: Option<&(Millis, String)>,
        limit: i64,
    ) -> Result<Vec<MentorshipRow>, StorageError> {
        let (at, id) = after.cloned().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(
            "SELECT * FROM mentorships WHERE user_id = $1 AND ($2 = '' OR state = $2) \
             AND (created_at < $3 OR (created_at = $3 AND ($4 = '' OR id < $4))) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(user_id)
        .bind(state.map_or("", |s| s.as_str_name()))
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every mentorship of the learner's (export), oldest first.
    pub async fn all_of(&self, user_id: &str) -> Result<Vec<MentorshipRow>, StorageError> {
        let rows = sqlx::query("SELECT * FROM mentorships WHERE user_id = $1 ORDER BY created_at, id")
            .bind(user_id)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Why the learner ended or declined mentors before: (mentor id, reason, note), newest first;
    /// completed mentorships do not count.
    pub async fn history(&self, user_id: &str) -> Result<Vec<(String, EndReason, String)>, StorageError> {
        let rows = sqlx::query(
            "SELECT mentor_id, end_reason, end_note FROM mentorships WHERE user_id = $1 \
             AND state IN ('MENTORSHIP_STATE_ENDED', 'MENTORSHIP_STATE_DECLINED') ORDER BY ended_at DESC",
        )
        .bind(user_id)
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let reason = EndReason::from_str_name(&col::<String>(r, "end_reason")?).unwrap_or_default();
            if demotes(reason) {
                out.push((col(r, "mentor_id")?, reason, col(r, "end_note")?));
            }
        }
        Ok(out)
    }

    /// Forgets `user_id`: frees the seats of their running mentorships and deletes every
    /// mentorship, atomically with recording `event_id`. False when the event was applied before.
    pub async fn purge_user(
        &self,
        event_id: &str,
        user_id: &str,
        now: Millis,
    ) -> Result<Option<Vec<String>>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        if !consumed::record(&mut tx, event_id, now).await? {
            return Ok(None);
        }
        let running = format!("SELECT mentor_id FROM mentorships WHERE user_id = $1 AND state IN {RUNNING}");
        let freed = sqlx::query(sqlx::AssertSqlSafe(running)).bind(user_id).fetch_all(&mut *tx).await?;
        let freed: Vec<String> = freed.iter().map(|r| col(r, "mentor_id")).collect::<Result<_, _>>()?;
        for mentor_id in &freed {
            sqlx::query("UPDATE mentors SET seats_taken = seats_taken - 1 WHERE mentor_id = $1")
                .bind(mentor_id)
                .execute(&mut *tx)
                .await?;
        }
        for table in ["mentorships", "learners_seen"] {
            // Table names come from the fixed list above, never from input.
            let sql = format!("DELETE FROM {table} WHERE user_id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(freed))
    }

    /// Rows left about `user_id` (for tests and audits).
    pub async fn rows_about(&self, user_id: &str) -> Result<i64, StorageError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM mentorships WHERE user_id = $1) \
             + (SELECT COUNT(*) FROM learners_seen WHERE user_id = $1) AS n",
        )
        .bind(user_id)
        .fetch_one(self.db().pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// When matching first saw the learner, if it has.
    pub async fn first_seen(&self, user_id: &str) -> Result<Option<Millis>, StorageError> {
        let row = sqlx::query("SELECT first_seen_at FROM learners_seen WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.db().pool())
            .await?;
        Ok(row.map(|r| r.try_get("first_seen_at")).transpose()?)
    }
}
