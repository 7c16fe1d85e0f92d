//! The export formats: CSV (RFC 4180, a header line, attributes as one JSON column) and JSON
//! Lines (one object per event). Rows are written one at a time into the current chunk.

use tt_common::clock::Millis;

/// One stored event (as checked, stored, listed and exported).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub id: String,
    pub kind: String,
    pub version: i64,
    pub time: Millis,
    pub actor: String,
    pub subject: String,
    pub source: String,
    /// JSON object.
    pub attributes: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

pub const CSV_HEADER: &str = "id,type,version,time,actor,subject,source,attributes\r\n";

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| format!("{t:.3}")).unwrap_or_default()
}

fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

impl Format {
    /// What starts the file.
    pub fn header(self) -> &'static str {
        match self {
            Format::Csv => CSV_HEADER,
            Format::JsonLines => "",
        }
    }

    /// Appends one row (with its line end) to `out`.
    pub fn write(self, row: &ExportRow, out: &mut String) {
        match self {
            Format::Csv => {
                let time = rfc3339(row.time);
                let version = row.version.to_string();
                let fields = [
                    &row.id,
                    &row.kind,
                    &version,
                    &time,
                    &row.actor,
                    &row.subject,
                    &row.source,
                    &row.attributes,
                ];
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    csv_field(out, field);
                }
                out.push_str("\r\n");
            }
            Format::JsonLines => {
                let attributes: serde_json::Value =
                    serde_json::from_str(&row.attributes).unwrap_or_else(|_| serde_json::json!({}));
                let line = serde_json::json!({
                    "id": row.id,
                    "type": row.kind,
                    "version": row.version,
                    "time": rfc3339(row.time),
                    "actor": row.actor,
                    "subject": row.subject,
                    "source": row.source,
                    "attributes": attributes,
                });
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ExportRow {
        ExportRow {
            id: "e1".into(),
            kind: "identity.user.logged_in".into(),
            version: 1,
            time: 1_790_000_000_123,
            actor: "u1".into(),
            subject: "u1".into(),
            source: "identity".into(),
            attributes: r#"{"client":"a, \"b\""}"#.into(),
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = String::new();
        Format::Csv.write(&row(), &mut out);
        assert_eq!(
            out,
            "e1,identity.user.logged_in,1,2026-09-21T14:13:20.123Z,u1,u1,identity,\"{\"\"client\"\":\"\"a, \\\"\"b\\\"\"\"\"}\"\r\n"
        );
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let mut out = String::new();
        Format::JsonLines.write(&row(), &mut out);
        assert!(out.ends_with('\n') && out.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).expect("json");
        assert_eq!(v["attributes"]["client"], "a, \"b\"");
        assert_eq!(v["time"], "2026-09-21T14:13:20.123Z");
    }
}
