//! The catalog: mentors, their versions, and the shipped demo mentors kept in step.

use sqlx::{Row, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col},
};

use super::Store;
use crate::domain::catalog::{Content, DemoMentor};

pub const ACTIVE: &str = "MENTOR_STATUS_ACTIVE";

/// A mentor's catalog row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MentorRow {
    pub mentor_id: String,
    /// A `MENTOR_STATUS_*` name.
    pub status: String,
    pub latest_version: i64,
    pub published_version: i64,
    pub capacity: i64,
    pub seats_taken: i64,
    pub demo: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One version of a mentor.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub mentor_id: String,
    pub version: i64,
    pub content: Content,
    pub created_by: String,
    pub created_at: Millis,
}

/// A mentor with the versions that matter: the latest, and the published one when it differs.
#[derive(Debug, Clone, PartialEq)]
pub struct MentorRecord {
    pub row: MentorRow,
    pub latest: VersionRow,
    pub published: Option<VersionRow>,
}

fn decode_mentor(row: &AnyRow) -> Result<MentorRow, StorageError> {
    Ok(MentorRow {
        mentor_id: col(row, "mentor_id")?,
        status: col(row, "status")?,
        latest_version: col(row, "latest_version")?,
        published_version: col(row, "published_version")?,
        capacity: col(row, "capacity")?,
        seats_taken: col(row, "seats_taken")?,
        demo: col::<i64>(row, "demo")? != 0,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn decode_version(row: &AnyRow) -> Result<VersionRow, StorageError> {
    let text: String = col(row, "content")?;
    Ok(VersionRow {
        mentor_id: col(row, "mentor_id")?,
        version: col(row, "version")?,
        content: serde_json::from_str(&text)
            .map_err(|e| StorageError::Other(format!("mentor content: {e}").into()))?,
        created_by: col(row, "created_by")?,
        created_at: col(row, "version_created_at")?,
    })
}

fn encode(content: &Content) -> Result<String, StorageError> {
    serde_json::to_string(content).map_err(|e| StorageError::Other(format!("mentor content: {e}").into()))
}

/// The actor of the shipped content's versions.
pub const DEMO_ACTOR: &str = "matching:demo";

impl Store {
    /// Loads the shipped mentors: a new one is created active (version 1, published); one that
    /// no admin edited since (still `demo`) gets a new published version when its content in
    /// the data file changed. Returns how many mentors were created or updated.
    pub async fn seed_demo(&self, mentors: &[DemoMentor], now: Millis) -> Result<usize, StorageError> {
        let mut changed = 0;
        let mut tx = self.db().pool().begin().await?;
        for m in mentors {
            let content = encode(&m.content)?;
            let capacity = i64::from(m.content.capacity);
            let existing = sqlx::query("SELECT demo, latest_version FROM mentors WHERE mentor_id = $1")
                .bind(&m.id)
                .fetch_optional(&mut *tx)
                .await?;
            let version = match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO mentors (mentor_id, status, latest_version, published_version, capacity, \
                         demo, created_at, updated_at) VALUES ($1, $2, 1, 1, $3, 1, $4, $4)",
                    )
                    .bind(&m.id)
                    .bind(ACTIVE)
                    .bind(capacity)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    1
                }
                Some(row) if row.try_get::<i64, _>("demo")? != 0 => {
                    let latest: i64 = row.try_get("latest_version")?;
                    let current = sqlx::query(
                        "SELECT content FROM mentor_versions WHERE mentor_id = $1 AND version = $2",
                    )
                    .bind(&m.id)
                    .bind(latest)
                    .fetch_one(&mut *tx)
                    .await?;
                    let same = serde_json::from_str::<Content>(&current.try_get::<String, _>("content")?)
                        .is_ok_and(|c| c == m.content);
                    if same {
                        continue;
                    }
                    sqlx::query(
                        "UPDATE mentors SET latest_version = $2, published_version = $2, capacity = $3, \
                         status = $4, updated_at = $5 WHERE mentor_id = $1",
                    )
                    .bind(&m.id)
                    .bind(latest + 1)
                    .bind(capacity)
                    .bind(ACTIVE)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    latest + 1
                }
                Some(_) => continue,
            };
            sqlx::query(
                "INSERT INTO mentor_versions (mentor_id, version, content, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&m.id)
            .bind(version)
            .bind(content)
            .bind(DEMO_ACTOR)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Every mentor with its latest and published versions, by id.
    pub async fn catalog(&self) -> Result<Vec<MentorRecord>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        let mentors = sqlx::query("SELECT * FROM mentors ORDER BY mentor_id").fetch_all(&mut *tx).await?;
        let versions = sqlx::query(
            "SELECT v.mentor_id, v.version, v.content, v.created_by, v.created_at AS version_created_at \
             FROM mentor_versions v JOIN mentors m ON m.mentor_id = v.mentor_id \
             WHERE v.version = m.latest_version OR v.version = m.published_version",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut versions: Vec<VersionRow> = versions.iter().map(decode_version).collect::<Result<_, _>>()?;
        versions.sort_by(|a, b| (&a.mentor_id, a.version).cmp(&(&b.mentor_id, b.version)));
        let mut out = Vec::with_capacity(mentors.len());
        for row in mentors.iter().map(decode_mentor) {
            let row = row?;
            let find =
                |v: i64| versions.iter().find(|x| x.mentor_id == row.mentor_id && x.version == v).cloned();
            let latest = find(row.latest_version).ok_or_else(|| {
                StorageError::Other(format!("mentor {} has no latest version", row.mentor_id).into())
            })?;
            let published = (row.published_version > 0 && row.published_version != row.latest_version)
                .then(|| find(row.published_version))
                .flatten();
            out.push(MentorRecord { row, latest, published });
        }
        Ok(out)
    }

    /// One version of a mentor.
    pub async fn version(&self, mentor_id: &str, version: i64) -> Result<Option<VersionRow>, StorageError> {
        let row = sqlx::query(
            "SELECT mentor_id, version, content, created_by, created_at AS version_created_at \
             FROM mentor_versions WHERE mentor_id = $1 AND version = $2",
        )
        .bind(mentor_id)
        .bind(version)
        .fetch_optional(self.db().pool())
        .await?;
        row.as_ref().map(decode_version).transpose()
    }

    /// Seats taken per mentor, now.
    pub async fn seats(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows =
            sqlx::query("SELECT mentor_id, seats_taken FROM mentors").fetch_all(self.db().pool()).await?;
        rows.iter().map(|r| Ok((col(r, "mentor_id")?, col(r, "seats_taken")?))).collect()
    }
}
