//! Users: accounts, credentials, roles, status and the tokens-valid-after mark.

use sqlx::any::AnyRow;
use tt_common::{auth::Role, clock::Millis, storage::StorageError};

use super::{Store, audit::AuditRecord, col};
use crate::domain::{UserStatus, roles};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: Vec<Role>,
    pub status: UserStatus,
    pub tokens_valid_after: Millis,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

const COLUMNS: &str = "id, email, display_name, password_hash, roles, status, tokens_valid_after, \
                       version, created_at, updated_at";

fn decode(row: &AnyRow) -> Result<UserRow, StorageError> {
    let status: String = col(row, "status")?;
    Ok(UserRow {
        id: col(row, "id")?,
        email: col(row, "email")?,
        display_name: col(row, "display_name")?,
        password_hash: col(row, "password_hash")?,
        roles: roles::decode(&col::<String>(row, "roles")?),
        status: UserStatus::parse(&status)
            .ok_or_else(|| StorageError::Other(format!("unknown user status {status:?}").into()))?,
        tokens_valid_after: col(row, "tokens_valid_after")?,
        version: col(row, "version")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Ends every live session of `user_id` inside `tx`.
async fn end_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    now: Millis,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What an update revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Revoke {
    /// Outstanding access tokens stop verifying.
    pub mark: bool,
    /// Every session (refresh-token family) ends.
    pub sessions: bool,
}

impl Revoke {
    pub const NOTHING: Self = Self { mark: false, sessions: false };
    pub const TOKENS: Self = Self { mark: true, sessions: false };
    pub const EVERYTHING: Self = Self { mark: true, sessions: true };
}

/// Filters for [`Store::list_users`].
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub email_prefix: Option<String>,
    pub role: Option<Role>,
    pub status: Option<UserStatus>,
}

impl Store {
    /// Inserts a user with its audit record, atomically. A taken email is `Conflict`.
    pub async fn create_user(&self, user: &UserRow, audit: &AuditRecord) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, roles, status, \
             tokens_valid_after, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(roles::encode(&user.roles))
        .bind(user.status.as_str())
        .bind(user.tokens_valid_after)
        .bind(user.version)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&mut *tx)
        .await?;
        self.record(&mut tx, audit).await?;
        let named = crate::events::named(&user.id, &user.display_name, user.created_at);
        self.outbox.enqueue(&mut tx, &named).await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(self.db().pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    /// Looks up by normalised email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(self.db().pool()).await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn count_users(&self) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(self.db().pool()).await?;
        col(&row, "n")
    }

    /// Users in id (creation) order after `after`, at most `limit`.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<UserRow>, StorageError> {
        let prefix = filter.email_prefix.clone().unwrap_or_default();
        let role = filter.role.map(|r| format!("%,{},%", r.as_str())).unwrap_or_default();
        let status = filter.status.map(|s| s.as_str().to_owned()).unwrap_or_default();
        let prefix_len = i64::try_from(prefix.chars().count()).unwrap_or(0);
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE id > $1 \
             AND ($2 = '' OR substr(email, 1, CAST($3 AS INTEGER)) = $2) \
             AND ($4 = '' OR roles LIKE $4) \
             AND ($5 = '' OR status = $5) \
             ORDER BY id LIMIT $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(&prefix)
            .bind(prefix_len)
            .bind(&role)
            .bind(&status)
            .bind(limit)
            .fetch_all(self.db().pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Replaces the mutable profile fields when `version` still matches, with the
    /// `identity.user.named` notice in the same transaction; returns the new row, or `None` when
    /// the row changed (or vanished) meanwhile.
    pub async fn update_display_name(
        &self,
        id: &str,
        version: i64,
        display_name: &str,
        now: Millis,
    ) -> Result<Option<UserRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET display_name = $1, version = version + 1, updated_at = $2 \
             WHERE id = $3 AND version = $4",
        )
        .bind(display_name)
        .bind(now)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.outbox.enqueue(&mut tx, &crate::events::named(id, display_name, now)).await?;
        self.commit(tx).await?;
        self.user_by_id(id).await
    }

    /// Stores a new hash (parameter upgrade at login); no version bump, nothing else changes.
    pub async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StorageError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(self.db().pool())
            .await?;
        Ok(())
    }

    /// Changes the password, moves the tokens-valid-after mark to `now` and ends every session,
    /// atomically with the audit record.
    pub async fn change_password(
        &self,
        id: &str,
        hash: &str,
        now: Millis,
        audit: &AuditRecord,
    ) -> Result<(), StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, tokens_valid_after = $2, version = version + 1, \
             updated_at = $2 WHERE id = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        end_sessions(&mut tx, id, now).await?;
        super::revocations::revoke(&mut tx, id, now).await?;
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Sets roles and/or status (`None` keeps it); with `revoke.mark`, moves the
    /// tokens-valid-after mark to `now`; with `revoke.sessions`, ends every session. Atomic with
    /// the audit record. Returns the new row, or `None` when the user does not exist.
    pub async fn admin_update(
        &self,
        id: &str,
        roles: Option<&[Role]>,
        status: Option<UserStatus>,
        revoke: Revoke,
        now: Millis,
        audit: &AuditRecord,
    ) -> Result<Option<UserRow>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET roles = COALESCE($1, roles), status = COALESCE($2, status), \
             tokens_valid_after = CASE WHEN $3 = 1 THEN $4 ELSE tokens_valid_after END, \
             version = version + 1, updated_at = $4 WHERE id = $5",
        )
        .bind(roles.map(roles::encode))
        .bind(status.map(|s| s.as_str()))
        .bind(i64::from(revoke.mark))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        if revoke.sessions {
            end_sessions(&mut tx, id, now).await?;
        }
        if revoke.mark {
            super::revocations::revoke(&mut tx, id, now).await?;
        }
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        self.user_by_id(id).await
    }

    /// Deletes the user, their sessions and refresh tokens, atomically with the audit record (and
    /// so with the event telling other services, see [`AuditRecord::insert`]). Returns false when
    /// there was no such user.
    pub async fn delete_user(&self, id: &str, audit: &AuditRecord) -> Result<bool, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM ai_quotas WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // The row is gone; the revocation stays until the deleted user's tokens have expired.
        super::revocations::revoke(&mut tx, id, audit.created_at).await?;
        self.record(&mut tx, audit).await?;
        self.commit(tx).await?;
        Ok(true)
    }
}
