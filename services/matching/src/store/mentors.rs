//! The catalog: mentors, their versions, and the shipped demo mentors kept in step.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sqlx::{Any, AnyConnection, Row, Transaction, any::AnyRow};
use tt_common::{
    clock::Millis,
    storage::{StorageError, col, query::chunked_in},
};

use super::{Store, event};
use crate::domain::catalog::{Content, DemoMentor};

pub const ACTIVE: &str = "MENTOR_STATUS_ACTIVE";
pub const DRAFT: &str = "MENTOR_STATUS_DRAFT";
pub const RETIRED: &str = "MENTOR_STATUS_RETIRED";

/// Why a catalog write was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the mentor id is taken")]
    Exists,
    #[error("no such mentor")]
    NotFound,
    /// A newer version exists than the one the caller saw.
    #[error("a newer version exists")]
    Stale,
    /// The mentor's status does not allow the change (its `MENTOR_STATUS_*` name).
    #[error("the mentor is {0}")]
    WrongStatus(String),
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

async fn insert_version(
    tx: &mut Transaction<'_, Any>,
    mentor_id: &str,
    version: i64,
    content: &Content,
    actor: &str,
    now: Millis,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO mentor_versions (mentor_id, version, content, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(mentor_id)
    .bind(version)
    .bind(encode(content)?)
    .bind(actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

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

impl MentorRecord {
    /// Whether learners see a version, and whether it is the latest.
    fn shown(&self) -> Option<bool> {
        match self.row.published_version {
            0 => None,
            v => Some(v == self.latest.version),
        }
    }

    /// The version learners see (None while never published).
    pub fn public(&self) -> Option<&VersionRow> {
        match self.shown()? {
            true => Some(&self.latest),
            false => self.published.as_ref(),
        }
    }

    /// Active and published: learners find and may choose it.
    pub fn is_active(&self) -> bool {
        self.row.status == ACTIVE && self.public().is_some()
    }

    /// The row, the latest version and the one learners see, shared with the latest when it is
    /// the same version.
    pub fn into_shared(self) -> (MentorRow, Arc<VersionRow>, Option<Arc<VersionRow>>) {
        let shown = self.shown();
        let latest = Arc::new(self.latest);
        let public = match shown {
            None => None,
            Some(true) => Some(latest.clone()),
            Some(false) => self.published.map(Arc::new),
        };
        (self.row, latest, public)
    }
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

/// The persona vectors `model` embedded, by (mentor, version): all of them, or only those of
/// `only`.
async fn read_vectors(
    conn: &mut AnyConnection,
    model: &str,
    only: Option<&[(String, i64)]>,
) -> Result<HashMap<(String, i64), Vec<f32>>, StorageError> {
    let decode = |r: &AnyRow| -> Result<((String, i64), Vec<f32>), StorageError> {
        let bytes: Vec<u8> = col(r, "vector")?;
        Ok(((col(r, "mentor_id")?, col(r, "version")?), floats(&bytes)))
    };
    const SQL: &str = "SELECT mentor_id, version, vector FROM persona_vectors WHERE model = $1";
    let Some(only) = only else {
        let rows = sqlx::query(SQL).bind(model).fetch_all(&mut *conn).await?;
        return rows.iter().map(decode).collect();
    };
    let wanted: HashSet<(&str, i64)> = only.iter().map(|(id, v)| (id.as_str(), *v)).collect();
    let ids: Vec<String> = only.iter().map(|(id, _)| id.clone()).collect();
    let sql = |ids: &str| format!("{SQL} AND mentor_id IN ({ids})");
    let model = model.to_owned();
    let rows = chunked_in(conn, &ids, 2, sql, |q| q.bind(model.clone())).await?;
    let mut out = HashMap::with_capacity(only.len());
    for r in &rows {
        let (key, vector) = decode(r)?;
        if wanted.contains(&(key.0.as_str(), key.1)) {
            out.insert(key, vector);
        }
    }
    Ok(out)
}

/// Little-endian f32s back to floats (a trailing partial float is dropped).
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
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
            insert_version(&mut tx, &m.id, version, &m.content, DEMO_ACTOR, now).await?;
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Every mentor with its latest and published versions, by id.
    pub async fn catalog(&self) -> Result<Vec<MentorRecord>, StorageError> {
        self.catalog_of(None).await
    }

    /// [`Store::catalog`], or only `mentor_id`'s record.
    async fn catalog_of(&self, mentor_id: Option<&str>) -> Result<Vec<MentorRecord>, StorageError> {
        let only = mentor_id.unwrap_or("");
        let mut tx = self.db().pool().begin().await?;
        let mentors =
            sqlx::query("SELECT * FROM mentors WHERE ($1 = '' OR mentor_id = $1) ORDER BY mentor_id")
                .bind(only)
                .fetch_all(&mut *tx)
                .await?;
        let versions = sqlx::query(
            "SELECT v.mentor_id, v.version, v.content, v.created_by, v.created_at AS version_created_at \
             FROM mentor_versions v JOIN mentors m ON m.mentor_id = v.mentor_id \
             WHERE ($1 = '' OR m.mentor_id = $1) AND (v.version = m.latest_version OR v.version = m.published_version)",
        )
        .bind(only)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut versions: Vec<VersionRow> = versions.iter().map(decode_version).collect::<Result<_, _>>()?;
        versions.sort_by(|a, b| (&a.mentor_id, a.version).cmp(&(&b.mentor_id, b.version)));
        let mut out = Vec::with_capacity(mentors.len());
        for row in mentors.iter().map(decode_mentor) {
            let row = row?;
            let find = |v: i64| {
                let key = (row.mentor_id.as_str(), v);
                versions
                    .binary_search_by(|x| (x.mentor_id.as_str(), x.version).cmp(&key))
                    .ok()
                    .map(|i| versions[i].clone())
            };
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

    /// The persona vectors `model` embedded, by (mentor, version): all of them, or only those of
    /// `only` (a reload reads just the versions it does not hold).
    pub async fn persona_vectors(
        &self,
        model: &str,
        only: Option<&[(String, i64)]>,
    ) -> Result<HashMap<(String, i64), Vec<f32>>, StorageError> {
        let mut conn = self.db().pool().acquire().await?;
        read_vectors(&mut conn, model, only).await
    }

    /// Keeps the persona vectors `model` embedded for (mentor, version) unless one is kept
    /// already (the first save of a version wins), drops every vector of a version that is no
    /// longer the published one, and returns the vectors now kept for the versions given: a
    /// replica that embedded a version at the same time as another (an embedder need not
    /// repeat itself to the bit) gets the other's, so every replica scores with the same one.
    pub async fn save_persona_vectors(
        &self,
        model: &str,
        vectors: &[(&str, i64, &[f32])],
        now: Millis,
    ) -> Result<HashMap<(String, i64), Vec<f32>>, StorageError> {
        let mut tx = self.db().pool().begin().await?;
        for (mentor_id, version, vector) in vectors {
            sqlx::query(
                "INSERT INTO persona_vectors (mentor_id, version, model, vector, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(*mentor_id)
            .bind(*version)
            .bind(model)
            .bind(vector.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let saved: Vec<(String, i64)> = vectors.iter().map(|(id, v, _)| ((*id).to_owned(), *v)).collect();
        let kept = read_vectors(&mut tx, model, Some(&saved)).await?;
        sqlx::query(
            "DELETE FROM persona_vectors WHERE NOT EXISTS (SELECT 1 FROM mentors m \
             WHERE m.mentor_id = persona_vectors.mentor_id AND m.published_version = persona_vectors.version)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(kept)
    }

    /// Seats taken per mentor, now.
    pub async fn seats(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows =
            sqlx::query("SELECT mentor_id, seats_taken FROM mentors").fetch_all(self.db().pool()).await?;
        rows.iter().map(|r| Ok((col(r, "mentor_id")?, col(r, "seats_taken")?))).collect()
    }

    /// Creates a draft mentor at version 1. Conflict (ALREADY_EXISTS) when the id is taken.
    pub async fn create_mentor(
        &self,
        mentor_id: &str,
        content: &Content,
        actor: &str,
        now: Millis,
    ) -> Result<MentorRecord, CatalogError> {
        let mut tx = self.db().pool().begin().await?;
        sqlx::query(
            "INSERT INTO mentors (mentor_id, status, latest_version, published_version, capacity, demo, created_at, updated_at) \
             VALUES ($1, $2, 1, 0, $3, 0, $4, $4)",
        )
        .bind(mentor_id)
        .bind(DRAFT)
        .bind(i64::from(content.capacity))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StorageError::from)
        .map_err(|e| match e {
            StorageError::Conflict(_) => CatalogError::Exists,
            e => e.into(),
        })?;
        insert_version(&mut tx, mentor_id, 1, content, actor, now).await?;
        tx.commit().await?;
        self.record(mentor_id).await
    }

    /// Adds a version made from the latest; `expected`: the latest version the caller saw.
    pub async fn update_mentor(
        &self,
        mentor_id: &str,
        expected: i64,
        content: &Content,
        actor: &str,
        now: Millis,
    ) -> Result<MentorRecord, CatalogError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mentors SET latest_version = latest_version + 1, demo = 0, updated_at = $3 \
             WHERE mentor_id = $1 AND latest_version = $2",
        )
        .bind(mentor_id)
        .bind(expected)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(self.missing_or_stale(&mut tx, mentor_id).await?);
        }
        insert_version(&mut tx, mentor_id, expected + 1, content, actor, now).await?;
        tx.commit().await?;
        self.record(mentor_id).await
    }

    /// Publishes version `version` (the latest, validated by the caller) with its capacity: the
    /// mentor becomes active. An event tells analytics.
    pub async fn publish_mentor(
        &self,
        mentor_id: &str,
        version: i64,
        capacity: u32,
        actor: &str,
        now: Millis,
    ) -> Result<MentorRecord, CatalogError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mentors SET published_version = latest_version, status = $3, capacity = $4, demo = 0, \
             updated_at = $5 WHERE mentor_id = $1 AND latest_version = $2",
        )
        .bind(mentor_id)
        .bind(version)
        .bind(ACTIVE)
        .bind(i64::from(capacity))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(self.missing_or_stale(&mut tx, mentor_id).await?);
        }
        let published = event("matching.mentor.published", actor, actor, now)
            .string("mentor_id", mentor_id)
            .int("version", version)
            .build();
        self.outbox.write(tx, &[published]).await?;
        self.record(mentor_id).await
    }

    /// Retires an active mentor (a draft or a retired one: WrongStatus).
    pub async fn retire_mentor(
        &self,
        mentor_id: &str,
        actor: &str,
        now: Millis,
    ) -> Result<MentorRecord, CatalogError> {
        let mut tx = self.db().pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mentors SET status = $2, demo = 0, updated_at = $3 WHERE mentor_id = $1 AND status = $4",
        )
        .bind(mentor_id)
        .bind(RETIRED)
        .bind(now)
        .bind(ACTIVE)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let row = sqlx::query("SELECT status FROM mentors WHERE mentor_id = $1")
                .bind(mentor_id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match row {
                None => CatalogError::NotFound,
                Some(r) => CatalogError::WrongStatus(r.try_get("status")?),
            });
        }
        let retired =
            event("matching.mentor.retired", actor, actor, now).string("mentor_id", mentor_id).build();
        self.outbox.write(tx, &[retired]).await?;
        self.record(mentor_id).await
    }

    async fn missing_or_stale(
        &self,
        tx: &mut Transaction<'_, Any>,
        mentor_id: &str,
    ) -> Result<CatalogError, StorageError> {
        let row = sqlx::query("SELECT mentor_id FROM mentors WHERE mentor_id = $1")
            .bind(mentor_id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(if row.is_some() { CatalogError::Stale } else { CatalogError::NotFound })
    }

    /// One mentor with its latest and published versions.
    pub async fn record(&self, mentor_id: &str) -> Result<MentorRecord, CatalogError> {
        self.catalog_of(Some(mentor_id)).await?.pop().ok_or(CatalogError::NotFound)
    }

    /// A mentor's versions, newest first, below `before` (a version number), at most `limit`.
    pub async fn versions(
        &self,
        mentor_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT mentor_id, version, content, created_by, created_at AS version_created_at FROM mentor_versions \
             WHERE mentor_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
        )
        .bind(mentor_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(decode_version).collect()
    }

    /// What changes when the catalog changes (not when seats move): other replicas reload on it.
    pub async fn catalog_stamp(&self) -> Result<(i64, i64), StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n, COALESCE(MAX(updated_at), 0) AS at FROM mentors")
            .fetch_one(self.db().pool())
            .await?;
        Ok((row.try_get("n")?, row.try_get("at")?))
    }
}
