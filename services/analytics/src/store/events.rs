//! Reading stored events: timelines (newest first) and export pages (oldest first), both with
//! keyset cursors over (time, id).

use sqlx::{Row, any::AnyRow};
use tt_common::{clock::Millis, storage::StorageError};

use super::{Store, list};
use crate::domain::export::ExportRow;

const COLUMNS: &str = "id, type, version, time, actor, subject, source, attributes";

fn decode(r: &AnyRow) -> Result<ExportRow, StorageError> {
    Ok(ExportRow {
        id: r.try_get("id")?,
        kind: r.try_get("type")?,
        version: r.try_get("version")?,
        time: r.try_get("time")?,
        actor: r.try_get("actor")?,
        subject: r.try_get("subject")?,
        source: r.try_get("source")?,
        attributes: r.try_get("attributes")?,
    })
}

/// Which events an export (or a timeline) covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only about this user.
    pub subject: Option<String>,
    /// Only these types (empty: all).
    pub types: Vec<String>,
    /// Event time from (included).
    pub from: Option<Millis>,
    /// Event time to (excluded).
    pub to: Option<Millis>,
}

/// A position in (time, id) order.
pub type Cursor = (Millis, String);

impl Store {
    /// One page of events matching `filter`, after (`newest_first`: before) `cursor`.
    pub async fn events_page(
        &self,
        filter: &Filter,
        cursor: Option<&Cursor>,
        newest_first: bool,
        limit: i64,
    ) -> Result<Vec<ExportRow>, StorageError> {
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.subject.is_some() {
            clauses.push(format!("subject = ${}", next()));
        }
        if filter.from.is_some() {
            clauses.push(format!("time >= ${}", next()));
        }
        if filter.to.is_some() {
            clauses.push(format!("time < ${}", next()));
        }
        if cursor.is_some() {
            let op = if newest_first { "<" } else { ">" };
            let (a, b) = (next(), next());
            clauses.push(format!("(time, id) {op} (${a}, ${b})"));
        }
        if !filter.types.is_empty() {
            clauses.push(format!("type IN ({})", list(filter.types.len(), n + 1)));
            n += filter.types.len();
        }
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM events {} {} ORDER BY time {order}, id {order} LIMIT ${}",
            if clauses.is_empty() { "" } else { "WHERE" },
            clauses.join(" AND "),
            n + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(s) = &filter.subject {
            query = query.bind(s.clone());
        }
        if let Some(from) = filter.from {
            query = query.bind(from);
        }
        if let Some(to) = filter.to {
            query = query.bind(to);
        }
        if let Some((time, id)) = cursor {
            query = query.bind(*time).bind(id.clone());
        }
        for t in &filter.types {
            query = query.bind(t.clone());
        }
        let rows = query.bind(limit).fetch_all(self.db().pool()).await?;
        rows.iter().map(decode).collect()
    }

    /// How many events are stored with these ids (tests and checks of exactly-once delivery).
    pub async fn count_events(&self, filter: &Filter) -> Result<i64, StorageError> {
        let mut total = 0;
        let mut cursor = None;
        loop {
            let page = self.events_page(filter, cursor.as_ref(), false, 1000).await?;
            total += i64::try_from(page.len()).unwrap_or(0);
            match page.last() {
                Some(last) if page.len() == 1000 => cursor = Some((last.time, last.id.clone())),
                _ => return Ok(total),
            }
        }
    }
}
