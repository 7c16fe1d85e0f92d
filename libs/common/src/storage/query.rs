//! Generic query helpers every store uses: numbered placeholders (only numbers enter the SQL),
//! text-bound queries decoded row by row, statements over long id lists in chunks, JSON text
//! lists, narrow integer columns.

use sqlx::{
    Any, AnyConnection, Transaction,
    any::{AnyArguments, AnyRow},
    query::Query,
};

use super::StorageError;

/// A query on either database, its arguments owned.
pub type AnyQuery<'q> = Query<'q, Any, AnyArguments>;

/// Ids per statement of [`chunked_in`]: well under both databases' limits on bound values.
const IN_CHUNK: usize = 500;

/// `$first, $first+1, ...` for an IN list of `n` values.
pub fn list(n: usize, first: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `rows` groups of `cols` numbered placeholders starting at `$first`: `($1, $2), ($3, $4)`.
pub fn rows(rows: usize, cols: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        out.push_str(&list(cols, first + r * cols));
        out.push(')');
    }
    out
}

/// Runs `sql(list)` once per chunk of at most [`IN_CHUNK`] of `ids`, `list` being the chunk's
/// numbered placeholders from `$first` (the statement's IN list), after `lead` has bound
/// `$1..$first-1`; returns the rows of every run, in order. Only numbered placeholders and the
/// caller's fixed text enter the SQL.
pub async fn chunked_in<'q>(
    conn: &mut AnyConnection,
    ids: &[String],
    first: usize,
    sql: impl Fn(&str) -> String,
    lead: impl Fn(AnyQuery<'q>) -> AnyQuery<'q>,
) -> Result<Vec<AnyRow>, StorageError> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let mut query = lead(sqlx::query(sqlx::AssertSqlSafe(sql(&list(chunk.len(), first)))));
        for id in chunk {
            query = query.bind(id.clone());
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Runs a query whose `$1..$n` are the text `binds` and decodes every row.
pub async fn fetch_all<T>(
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    binds: &[&str],
    decode: fn(&sqlx::any::AnyRow) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(b.to_string());
    }
    query.fetch_all(&mut **tx).await?.iter().map(decode).collect()
}

/// [`fetch_all`] for at most one row.
pub async fn fetch_one<T>(
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    binds: &[&str],
    decode: fn(&sqlx::any::AnyRow) -> Result<T, StorageError>,
) -> Result<Option<T>, StorageError> {
    Ok(fetch_all(tx, sql, binds, decode).await?.into_iter().next())
}

/// A list of strings as JSON text (a column both databases hold).
pub fn to_json(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

/// The list [`to_json`] stored.
pub fn from_json(text: &str) -> Result<Vec<String>, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Other(format!("bad JSON list: {e}").into()))
}

/// A BIGINT column that holds an i32.
pub fn small(v: i64) -> Result<i32, StorageError> {
    i32::try_from(v).map_err(|_| StorageError::Other(format!("{v} out of range").into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_in_row_order() {
        assert_eq!(super::rows(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::rows(1, 2, 4), "($4, $5)");
        assert_eq!(super::list(3, 2), "$2, $3, $4");
    }

    #[test]
    fn json_lists_round_trip_and_narrow_columns_are_checked() {
        let values = vec!["a".to_owned(), "b\"c".to_owned()];
        assert_eq!(super::from_json(&super::to_json(&values)).expect("list"), values);
        assert!(super::from_json("{").is_err());
        assert_eq!(super::small(7).expect("fits"), 7);
        assert!(super::small(i64::MAX).is_err());
    }
}
