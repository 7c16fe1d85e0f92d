//! The tonic handlers: thin adapters that check input into domain values, call the core and
//! map results to messages. One file per gRPC service.

pub mod admin;
pub mod events;
pub mod ingest;
pub mod reports;

use std::{ops::Deref, sync::Arc};

use tt_common::error::Violations;
use tt_proto::{analytics::v1 as pb, common::v1::Event};

use crate::{
    DOMAIN,
    domain::{
        calendar::{self, Range},
        export::ExportRow,
        schema::attributes_from_json,
    },
    service::Analytics,
};

/// The handlers of every analytics gRPC service (one shared core).
#[derive(Debug, Clone)]
pub struct Api(pub Arc<Analytics>);

impl Deref for Api {
    type Target = Analytics;
    fn deref(&self) -> &Analytics {
        &self.0
    }
}

/// A fresh violations list in analytics' error domain.
pub fn violations() -> Violations {
    Violations::new(DOMAIN)
}

/// Ends checking: every violation as one INVALID_ARGUMENT, else the checked value.
pub fn finish<T>(v: Violations, value: Option<T>) -> Result<T, tonic::Status> {
    v.into_result()?;
    value.ok_or_else(|| DOMAIN.internal(&"a checked value is missing"))
}

/// Checks a date range (at most `max_days` long), recording problems under `range.*`.
pub fn range(v: &mut Violations, range: Option<&pb::DateRange>, max_days: i64) -> Option<Range> {
    let Some(r) = range else {
        v.add("range", "is required");
        return None;
    };
    let start = v.take("range.start_date", calendar::date(&r.start_date));
    let end = v.take("range.end_date", calendar::date(&r.end_date));
    let zone = v.take("range.time_zone", calendar::time_zone(&r.time_zone));
    let (start, end, (tz, tz_name)) = (start?, end?, zone?);
    let length = calendar::days_between(start, end) + 1;
    if length < 1 {
        v.add("range.end_date", "must not be before start_date");
        return None;
    }
    if length > max_days {
        v.add("range", format!("at most {max_days} days"));
        return None;
    }
    Some(Range { start, end, tz, tz_name })
}

/// A stored event as the platform's message.
pub fn event(row: ExportRow) -> Event {
    Event {
        id: row.id,
        r#type: row.kind,
        version: u32::try_from(row.version).unwrap_or(0),
        time: Some(tt_common::clock::to_timestamp(row.time)),
        actor: row.actor,
        subject: row.subject,
        source: row.source,
        attributes: attributes_from_json(&row.attributes),
    }
}

/// Checks a list of event-type filters.
pub fn types(v: &mut Violations, types: &[String]) {
    if !v.check_count("types", types.len(), MAX_TYPES) {
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let ok = !t.is_empty() && t.len() <= 100 && t.bytes().all(|b| b.is_ascii_graphic());
        v.check(ok, &format!("types[{i}]"), "must be an event type");
    }
    v.check_unique("types", types);
}

/// Event types one timeline or export filter names at most.
pub const MAX_TYPES: usize = 50;

/// Dead letters one replay names at most.
pub const MAX_REPLAY_IDS: usize = 500;

/// Series one dashboard request names at most.
pub const MAX_SERIES: usize = 20;
