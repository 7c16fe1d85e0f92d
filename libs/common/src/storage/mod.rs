//! Storage: one sqlx [`AnyPool`] over SQLite (the embedded default, one file per service) or
//! PostgreSQL (production, one database per service), migrations run at start-up, and the helpers
//! every repository needs (error classification, page tokens, page sizes, etags).
//!
//! Repositories are written in the SQL subset both databases accept: TEXT UUIDv7 ids, BIGINT unix
//! millis, INTEGER 0/1 flags, TEXT JSON, and `$N` placeholders.

mod page;
pub mod query;
pub mod update;

use crate::error::Reason;
use std::time::Duration;

pub use page::{Page, PageSize, PageTokens};
use sqlx::{
    AnyPool, Executor,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
};

/// One numbered, forward-only migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of a `DATABASE_URL`, or `None` for an unsupported scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Pool settings. PostgreSQL defaults follow what measured best here: no ping before every
/// acquire, a bounded acquire timeout and a statement timeout.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl DatabaseOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// A service's database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

/// A storage failure, classified so the edge can pick the right status.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached or dropped the connection (retryable).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A unique constraint was violated.
    #[error("unique constraint violated: {0}")]
    Conflict(#[source] Cause),
    /// The database refused a value the caller sent (PostgreSQL text cannot hold NUL): a bad
    /// request that got past the handler's checks. Nothing was written (the statement failed).
    #[error("value refused by the database: {0}")]
    Invalid(#[source] Cause),
    /// Anything else: a bug or a broken invariant.
    #[error("database error: {0}")]
    Other(#[source] Cause),
}

/// What caused a [`StorageError`]: the driver's error (with the database's code) or a
/// description of the broken invariant.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A database's refusal with its SQLSTATE (or SQLite extended) code, the driver's error kept.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {source}")]
pub struct DatabaseFailure {
    pub code: String,
    pub source: sqlx::Error,
}

impl StorageError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The status a handler returns for this error (causes are logged, never returned).
    pub fn to_status(&self, domain: crate::error::Domain) -> tonic::Status {
        match self {
            Self::Unavailable(_) => domain.unavailable("database", self),
            Self::Conflict(_) => domain.status(
                tonic::Code::AlreadyExists,
                Reason::new("ALREADY_EXISTS"),
                "the resource already exists",
            ),
            Self::Invalid(_) => {
                tracing::warn!(domain = domain.as_str(), error = %self, "a value got past the checks and the database refused it");
                domain.status(
                    tonic::Code::InvalidArgument,
                    Reason::new("INVALID_TEXT"),
                    "the request holds text the database cannot store (a NUL or invalid character)",
                )
            }
            Self::Other(_) => domain.internal(self),
        }
    }
}

/// A storage error as the answer of the call being served, in the domain of the module that
/// serves it: handlers use `?` on their store's results.
impl From<StorageError> for tonic::Status {
    fn from(e: StorageError) -> Self {
        e.to_status(crate::call::current_domain())
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        let code = match &e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => return Self::Unavailable(Box::new(e)),
            _ => return Self::Other(Box::new(e)),
        };
        // 23505 (PostgreSQL) and 2067/1555 (SQLite extended codes) are unique violations;
        // 22021/22P05 an invalid byte sequence (NUL in text) or an untranslatable character;
        // connection failures, admin shutdown (57P01 after a restart), too many connections,
        // statement timeout, SQLITE_BUSY/LOCKED are worth a retry.
        let kind: fn(Cause) -> Self = if matches!(code.as_str(), "23505" | "2067" | "1555") {
            Self::Conflict
        } else if matches!(code.as_str(), "22021" | "22P05") {
            Self::Invalid
        } else if code.starts_with("08")
            || code.starts_with("57P")
            || matches!(code.as_str(), "53300" | "57014" | "5" | "6" | "517")
        {
            Self::Unavailable
        } else {
            Self::Other
        };
        kind(Box::new(DatabaseFailure { code, source: e }))
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => Self::Other(Box::new(other)),
        }
    }
}

impl Database {
    /// Creates the pool without connecting: start-up order does not matter, and readiness
    /// ([`Database::migrate`]) is what flips health to SERVING.
    pub fn connect_lazy(options: &DatabaseOptions) -> Result<Self, StorageError> {
        install_default_drivers();
        let backend = Backend::of_url(&options.url).ok_or_else(|| {
            StorageError::Other("DATABASE_URL must start with sqlite: or postgres://".into())
        })?;
        let statement_timeout_ms = options.statement_timeout.as_millis();
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite serialises writers; a few connections keep readers parallel under WAL.
                Backend::Sqlite => options.max_connections.min(8),
                Backend::Postgres => options.max_connections,
            })
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .idle_timeout(Some(Duration::from_secs(300)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                        }
                        Backend::Postgres => {
                            let sql = format!("SET statement_timeout = {statement_timeout_ms}");
                            conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_lazy(&options.url)?;
        Ok(Self { pool, backend })
    }

    /// The URL of a SQLite file (created when missing).
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the service's pending migrations (forward-only, numbered, each in a
    /// transaction). The SQL is embedded in the binary with `include_str!`.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<(), StorageError> {
        use sqlx::{SqlSafeStr, migrate::MigrationType};
        let list = migrations
            .iter()
            .map(|m| {
                sqlx::migrate::Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    m.sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(list).run(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a column, turning a decode failure into a storage error.
pub fn col<T>(row: &sqlx::any::AnyRow, name: &str) -> Result<T, StorageError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name).map_err(StorageError::from)
}

/// An etag for a row version (opaque to clients).
pub fn etag(version: i64) -> String {
    format!("v{version}")
}

/// True when the client sent no etag or the one matching `version`.
pub fn etag_matches(given: &str, version: i64) -> bool {
    given.is_empty() || given == etag(version)
}

/// The version an etag from [`etag`] names; `None` for anything this platform never issued.
pub fn etag_version(given: &str) -> Option<i64> {
    given.strip_prefix('v')?.parse().ok()
}
