//! Sessions (refresh-token families) and their rotating refresh tokens.

use sqlx::any::AnyRow;
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, audit::AuditRecord, col};

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub user_agent: String,
    pub created_at: Millis,
    pub last_used_at: Millis,
    pub idle_expires_at: Millis,
    pub absolute_expires_at: Millis,
    pub revoked_at: Option<Millis>,
}

impl SessionRow {
    pub fn is_live(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }
}

const COLUMNS: &str = "s.id, s.user_id, s.user_agent, s.created_at, s.last_used_at, \
                       s.idle_expires_at, s.absolute_expires_at, s.revoked_at";

fn decode(row: &AnyRow) -> Result<SessionRow, StorageError> {
    Ok(SessionRow {
        id: col(row, "id")?,
        user_id: col(row, "user_id")?,
        user_agent: col(row, "user_agent")?,
        created_at: col(row, "created_at")?,
        last_used_at: col(row, "last_used_at")?,
        idle_expires_at: col(row, "idle_expires_at")?,
        absolute_expires_at: col(row, "absolute_expires_at")?,
        revoked_at: col(row, "revoked_at")?,
    })
}

/// A refresh token looked up by its hash, with its session.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub session: SessionRow,
    pub rotated_at: Option<Millis>,
    pub replaced_by: Option<String>,
}

/// What [`Store::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The token was no longer current (a concurrent rotation won).
    NotCurrent,
}

impl Store {
    /// Creates a session with its first refresh token (and an audit record), atomically.
    pub async fn create_session(
        &self,
        session: &SessionRow,
        token_hash: &str,
        audit: &AuditRecord,
    ) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, user_agent, created_at, last_used_at, \
             idle_expires_at, absolute_expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&session.id)
        .bind(&session.user_id)
        .bind(&session.user_agent)
        .bind(session.created_at)
        .bind(session.last_used_at)
        .bind(session.idle_expires_at)
        .bind(session.absolute_expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(&session.id)
            .bind(session.created_at)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<PresentedToken>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS}, t.rotated_at, t.replaced_by FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(self.db().pool()).await?;
        row.map(|r| {
            Ok(PresentedToken {
                session: decode(&r)?,
                rotated_at: col(&r, "rotated_at")?,
                replaced_by: col(&r, "replaced_by")?,
            })
        })
        .transpose()
    }

    /// True when `hash` is the session's current (never rotated) token.
    pub async fn is_current_token(&self, hash: &str) -> Result<bool, StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE token_hash = $1 AND rotated_at IS NULL",
        )
        .bind(hash)
        .fetch_one(self.db().pool())
        .await?;
        Ok(col::<i64>(&row, "n")? > 0)
    }

    /// Replaces `old` by `new` in its session if `old` is still current, extending the idle
    /// expiry (never past the absolute one). Atomic: of two concurrent rotations of the same
    /// token exactly one succeeds.
    pub async fn rotate(
        &self,
        session_id: &str,
        old: &str,
        new: &str,
        now: Millis,
        idle_expires_at: Millis,
    ) -> Result<Rotation, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1, replaced_by = $2 \
             WHERE token_hash = $3 AND rotated_at IS NULL",
        )
        .bind(now)
        .bind(new)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(Rotation::NotCurrent);
        }
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(new)
            .bind(session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sessions SET last_used_at = $1, \
             idle_expires_at = CASE WHEN $2 < absolute_expires_at THEN $2 ELSE absolute_expires_at END \
             WHERE id = $3",
        )
        .bind(now)
        .bind(idle_expires_at)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(Rotation::Rotated)
    }

    /// Revokes one session (no-op when already revoked), with an optional audit record.
    pub async fn revoke_session(
        &self,
        session_id: &str,
        now: Millis,
        audit: Option<&AuditRecord>,
    ) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        if let Some(a) = audit {
            self.record(&mut tx, a).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM sessions s WHERE s.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.db().pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    /// A user's live sessions, newest first, before `before` (an id).
    pub async fn list_sessions(
        &self,
        user_id: &str,
        now: Millis,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SessionRow>, StorageError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL \
             AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2 \
             AND ($3 = '' OR s.id < $3) ORDER BY s.id DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now)
            .bind(before.unwrap_or(""))
            .bind(limit)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Deletes sessions that ended more than `keep_ms` ago (and their tokens).
    pub async fn prune_sessions(&self, now: Millis, keep_ms: i64) -> Result<u64, StorageError> {
        let cutoff = now - keep_ms;
        let mut tx = self.db().pool().begin().await?;
        let ended = "SELECT id FROM sessions WHERE absolute_expires_at < $1 OR idle_expires_at < $1 \
                     OR revoked_at < $1";
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM refresh_tokens WHERE session_id IN ({ended})")))
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM sessions WHERE id IN ({ended})")))
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(done.rows_affected())
    }
}
