//! Matching's repositories: one sqlx implementation over `AnyPool`, in the SQL subset SQLite and
//! PostgreSQL both accept. The conformance tests (`tests/store.rs`) run on both.
//!
//! Seats: a mentor's `seats_taken` only grows by an `UPDATE ... WHERE seats_taken < capacity`,
//! the first statement of the transaction that creates the mentorship. On PostgreSQL that row
//! lock makes racing choosers wait and re-check the condition; SQLite serialises writers (the
//! write comes first, so no transaction upgrades a read lock). A learner's one running
//! mentorship is a unique index.

pub mod mentors;
pub mod mentorships;
pub mod settings;

use tt_common::{
    clock::Millis,
    outbox::{EventBuilder, Outbox, consumed},
    storage::{Database, Migration, StorageError},
};

pub use self::{
    mentors::{CatalogError, MentorRecord, MentorRow, VersionRow},
    mentorships::{MentorshipError, MentorshipRow, NewMentorship},
};

/// Matching's migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "matching",
        sql: include_str!("../../migrations/0001_matching.sql"),
    },
    tt_common::outbox::migration(2),
    tt_common::outbox::dead_letter_migration(3),
    Migration {
        version: 4,
        description: "settings and operations",
        sql: include_str!("../../migrations/0004_matching_settings.sql"),
    },
    Migration {
        version: 5,
        description: "persona vectors",
        sql: include_str!("../../migrations/0005_persona_vectors.sql"),
    },
];

/// The repositories over one database; writes that others hear about commit their events to
/// the outbox in the same transaction.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
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

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        self.db.migrate(MIGRATIONS).await
    }

    /// Records an event that needs no action; false when it was seen before.
    pub async fn acknowledge_event(&self, event_id: &str, now: Millis) -> Result<bool, StorageError> {
        consumed::acknowledge(&self.db, event_id, now).await
    }

    /// Counts for the admin usage RPC: (name, count), in a fixed order.
    pub async fn usage(&self) -> Result<Vec<(String, i64)>, StorageError> {
        use sqlx::Row;
        let mut out = Vec::new();
        for (prefix, sql) in [
            ("mentors", "SELECT status AS k, COUNT(*) AS n FROM mentors GROUP BY status ORDER BY status"),
            (
                "mentorships",
                "SELECT state AS k, COUNT(*) AS n FROM mentorships GROUP BY state ORDER BY state",
            ),
        ] {
            for row in sqlx::query(sql).fetch_all(self.db.pool()).await? {
                let k: String = row.try_get("k")?;
                let short = k
                    .rsplit_once("_STATUS_")
                    .or_else(|| k.rsplit_once("_STATE_"))
                    .map_or(k.as_str(), |p| p.1);
                out.push((format!("{prefix}.{}", short.to_ascii_lowercase()), row.try_get("n")?));
            }
        }
        let row = sqlx::query("SELECT COUNT(*) AS n FROM mentorships WHERE rating IS NOT NULL")
            .fetch_one(self.db.pool())
            .await?;
        out.push(("feedback".to_owned(), row.try_get("n")?));
        Ok(out)
    }
}

/// An event about `user_id` caused by `actor`, from matching.
pub(crate) fn event(kind: &str, user_id: &str, actor: &str, now: Millis) -> EventBuilder {
    EventBuilder::new("matching", kind, user_id, actor, now)
}
