//! The core the handlers share: ingestion (checks, dead letters, one transaction per batch) and
//! the mapping of store errors.

use std::time::Duration;

use prost::Message;
use tonic::Status;
use tt_common::{
    cache::Cache,
    clock::{Millis, SharedClock},
    storage::PageTokens,
};
use tt_proto::common::v1::Event;

use crate::{
    domain::schema,
    store::{Backlog, Batch, NewDeadLetter, Store, Summary},
};

/// The analytics service core.
#[derive(Debug)]
pub struct Analytics {
    pub store: Store,
    /// Analytics' own cache namespace (dashboards).
    pub cache: Cache,
    pub clock: SharedClock,
    pub pages: PageTokens,
    /// How long a computed dashboard is served from the cache; zero turns caching off.
    pub dashboard_ttl: Duration,
    /// Wakes the roll-up task after a batch queued events.
    pub rollup_wake: tokio::sync::Notify,
    /// The event types accepted: those the platform's modules declare.
    pub registry: schema::Registry,
}

/// Queued events one roll-up transaction folds in at most.
pub const ROLLUP_CHUNK: i64 = 20_000;

/// A refused event as a dead letter.
pub fn dead_letter(event: &Event, reason: String) -> NewDeadLetter {
    NewDeadLetter {
        event_id: if schema::is_uuid(&event.id) { event.id.clone() } else { String::new() },
        // The payload keeps the event as received; this column only needs to be readable text.
        source: event.source.chars().filter(|c| !c.is_control()).take(64).collect(),
        payload: event.encode_to_vec(),
        reason,
    }
}

impl Analytics {
    pub fn new(
        store: Store,
        cache: Cache,
        clock: SharedClock,
        pages: PageTokens,
        dashboard_ttl: Duration,
        registry: schema::Registry,
    ) -> Self {
        Self { store, cache, clock, pages, dashboard_ttl, rollup_wake: tokio::sync::Notify::new(), registry }
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Checks and stores one batch: accepted events and dead letters in one transaction.
    pub async fn ingest(&self, events: Vec<Event>, backlog: Option<Backlog>) -> Result<Summary, Status> {
        let now = self.now();
        let mut batch = Batch { now, backlog, ..Batch::default() };
        for event in &events {
            match self.registry.check(event, now) {
                Ok(accepted) => batch.accepted.push(accepted),
                Err(reason) => batch.dead.push(dead_letter(event, reason.into())),
            }
        }
        let summary = self.store.ingest(&batch).await?;
        if summary.accepted > 0 {
            self.rollup_wake.notify_one();
        }
        metrics::counter!("tt_analytics_events_accepted_total").increment(summary.accepted.unsigned_abs());
        metrics::counter!("tt_analytics_events_duplicate_total").increment(summary.duplicates.unsigned_abs());
        metrics::counter!("tt_analytics_events_dead_lettered_total")
            .increment(summary.dead_lettered.unsigned_abs());
        if summary.dead_lettered > 0 {
            tracing::warn!(dead_lettered = summary.dead_lettered, "events refused to the dead-letter store");
        }
        Ok(summary)
    }

    /// Folds what is queued into the rollups before a report reads them (the background task
    /// keeps the queue short; this makes a report include every event accepted before it).
    /// Stops after five chunks: under a bulk load the report is then a few seconds behind.
    pub async fn catch_up(&self) -> Result<(), Status> {
        for _ in 0..5 {
            if self.store.roll_up(ROLLUP_CHUNK).await? < ROLLUP_CHUNK as usize {
                break;
            }
        }
        Ok(())
    }

    /// The background roll-up task: folds queued events in as they arrive.
    pub async fn roll_up_forever(&self) {
        loop {
            match self.store.roll_up(ROLLUP_CHUNK).await {
                Ok(n) if n as i64 == ROLLUP_CHUNK => continue,
                Ok(_) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.rollup_wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rolling up events failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
