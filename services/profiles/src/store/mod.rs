//! Profiles' repositories: one sqlx implementation over `AnyPool`, in the SQL subset SQLite and
//! PostgreSQL both accept. The conformance tests (`tests/store.rs`) run on both.
//!
//! Every write to a learner's goals, positions or skills runs in one transaction that first
//! bumps the profile row's `child_writes` counter: on PostgreSQL that row lock serialises a
//! learner's concurrent writes, so limits ("at most 10 active goals") and ranks hold under
//! concurrency; SQLite serialises writers anyway.

pub mod assessments;
pub mod goals;
pub mod positions;
pub mod profiles;
pub mod purge;
pub mod skills;

use sqlx::{Any, Transaction};
use tt_common::{
    clock::Millis,
    outbox::{EventBuilder, Outbox},
    storage::{Database, Migration, StorageError},
};
use tt_proto::common::v1::Event;

pub use self::{
    assessments::ResultRow, goals::GoalRow, positions::PositionRow, profiles::ProfileRow, skills::SkillRow,
};

/// Profiles' migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "profiles",
        sql: include_str!("../../migrations/0001_profiles.sql"),
    },
    tt_common::outbox::migration(2),
    Migration {
        version: 3,
        description: "reported completion",
        sql: include_str!("../../migrations/0003_profiles_reported_completion.sql"),
    },
    tt_common::outbox::dead_letter_migration(4),
    Migration {
        version: 5,
        description: "display names",
        sql: include_str!("../../migrations/0005_display_names.sql"),
    },
];

/// The repositories over one database. Writes that analytics hears about commit their events
/// to the outbox in the same transaction ([`Store::commit`]).
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
}

/// Everything profiles holds about one learner (the source of every derived view).
#[derive(Debug, Clone, PartialEq)]
pub struct Learner {
    pub profile: ProfileRow,
    /// In the learner's order.
    pub goals: Vec<GoalRow>,
    /// Newest start first.
    pub positions: Vec<PositionRow>,
    /// By skill id.
    pub skills: Vec<SkillRow>,
    pub latest_result: Option<ResultRow>,
    pub results: i64,
    /// As identity names the user (empty until its first notice arrives).
    pub display_name: String,
}

/// Why a child write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The learner has no profile (or was deleted).
    #[error("no profile")]
    NoProfile,
    #[error("limit reached: {0}")]
    Limit(&'static str),
    #[error("not found")]
    NotFound,
    #[error("version mismatch")]
    Stale,
    #[error("invalid: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

impl Store {
    /// The repositories over `db`, events routed to analytics only (store tests).
    pub fn new(db: Database) -> Self {
        Self::with_outbox(db, Outbox::default())
    }

    /// The repositories over `db`, events routed by `outbox` (the platform's routes).
    pub fn with_outbox(db: Database, outbox: Outbox) -> Self {
        Self { db, outbox }
    }

    /// Commits a write of `user_id`'s `part` by `actor` with its `events` and the learner's
    /// change event.
    pub(crate) async fn commit_change(
        &self,
        tx: Transaction<'_, Any>,
        (user_id, actor, now): (&str, &str, Millis),
        part: Part,
        mut events: Vec<Event>,
    ) -> Result<(), StorageError> {
        events.push(changed(user_id, actor, now, part));
        self.commit(tx, &events).await
    }

    /// Writes `events` to the outbox inside `tx`, commits, and wakes the relays.
    pub(crate) async fn commit(
        &self,
        tx: Transaction<'_, Any>,
        events: &[Event],
    ) -> Result<(), StorageError> {
        self.outbox.write(tx, events).await
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        self.db.migrate(MIGRATIONS).await
    }

    /// Everything about `user_id`, or None when there is no profile. Reads run in one
    /// transaction so the parts agree with each other.
    pub async fn learner(&self, user_id: &str) -> Result<Option<Learner>, StorageError> {
        let mut tx = self.db.pool().begin().await?;
        let Some(profile) = profiles::get(&mut tx, user_id).await? else {
            return Ok(None);
        };
        let goals = goals::all(&mut tx, user_id).await?;
        let positions = positions::all(&mut tx, user_id).await?;
        let skills = skills::all(&mut tx, user_id).await?;
        let (latest_result, results) = assessments::latest(&mut tx, user_id).await?;
        let display_name = purge::display_name(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(Some(Learner { profile, goals, positions, skills, latest_result, results, display_name }))
    }
}

/// An event about `user_id` caused by `actor`, from profiles.
pub(crate) fn event(kind: &str, user_id: &str, actor: &str, now: Millis) -> EventBuilder {
    EventBuilder::new("profiles", kind, user_id, actor, now)
}

/// The part of a learner a write changed, as `profiles.learner.changed` says it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Profile,
    Goals,
    Positions,
    Skills,
    Assessment,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Goals => "goals",
            Self::Positions => "positions",
            Self::Skills => "skills",
            Self::Assessment => "assessment",
        }
    }
}

/// What a write changed of what others see of `user_id` (the learner view), for subscribers
/// that keep copies of it (matching's features).
pub(crate) fn changed(user_id: &str, actor: &str, now: Millis, part: Part) -> Event {
    event(crate::LEARNER_CHANGED, user_id, actor, now).string("part", part.as_str()).build()
}

/// Begins a learner's child write: takes the per-learner row lock (see the module docs).
pub(crate) async fn begin_child_write<'a>(
    db: &'a Database,
    user_id: &str,
) -> Result<Transaction<'a, Any>, WriteError> {
    let mut tx = db.pool().begin().await?;
    let done = sqlx::query("UPDATE profiles SET child_writes = child_writes + 1 WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(WriteError::NoProfile);
    }
    Ok(tx)
}

pub(crate) use tt_common::storage::query::{fetch_all, fetch_one, from_json, small, to_json};
