//! Where a module's events go: analytics hears every event but notices, and each module that
//! declared it consumes a type gets that type too. The platform computes the routes from the manifests of
//! every module it knows, so an emitter never names its receivers.

use std::sync::Arc;

use sqlx::{Any, Transaction};
use tt_proto::common::v1::Event;

use super::{ANALYTICS, Signal};
use crate::storage::StorageError;

/// Event type -> destinations (outbox destination names are module names).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// (event type, consuming module), in declaration order.
    consumers: Vec<(String, String)>,
    /// Notices: types analytics does not hear.
    notices: Vec<String>,
}

impl Routes {
    /// Analytics only.
    pub fn new() -> Self {
        Self::default()
    }

    /// `destination` also receives events of `event_type`.
    pub fn consumer(mut self, event_type: &str, destination: &str) -> Self {
        let pair = (event_type.to_owned(), destination.to_owned());
        if !self.consumers.contains(&pair) && destination != ANALYTICS {
            self.consumers.push(pair);
        }
        self
    }

    /// `event_type` is a notice: it goes to its consumers only.
    pub fn notice(mut self, event_type: &str) -> Self {
        if !self.notices.iter().any(|t| t == event_type) {
            self.notices.push(event_type.to_owned());
        }
        self
    }

    /// Where an event of `event_type` goes: analytics first (unless it is a notice), then its
    /// consumers.
    pub fn destinations(&self, event_type: &str) -> Vec<&str> {
        let mut out = Vec::new();
        if !self.notices.iter().any(|t| t == event_type) {
            out.push(ANALYTICS);
        }
        out.extend(self.consumers.iter().filter(|(t, _)| t == event_type).map(|(_, d)| d.as_str()));
        out
    }

    /// Every destination any of `event_types` goes to, analytics first.
    pub fn destinations_of<'a>(&self, event_types: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = vec![ANALYTICS.to_owned()];
        for event_type in event_types {
            for (t, d) in &self.consumers {
                if t == event_type && !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }
}

/// A module's outbox: the routes of its events and the signal that wakes its relays.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    routes: Arc<Routes>,
    signal: Signal,
}

impl Outbox {
    pub fn new(routes: Routes) -> Self {
        Self { routes: Arc::new(routes), signal: Signal::new() }
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Raised after every commit that wrote events.
    pub fn signal(&self) -> &Signal {
        &self.signal
    }

    /// Writes `event` for each of its destinations inside the caller's transaction (then
    /// [`Outbox::commit`] it).
    pub async fn enqueue(&self, tx: &mut Transaction<'_, Any>, event: &Event) -> Result<(), StorageError> {
        super::enqueue(tx, &self.routes.destinations(&event.r#type), event).await
    }

    /// Commits `tx`, which enqueued events, and wakes the relays.
    pub async fn commit(&self, tx: Transaction<'_, Any>) -> Result<(), StorageError> {
        tx.commit().await?;
        self.signal.raise();
        Ok(())
    }

    /// Enqueues `events` inside `tx`, commits, and wakes the relays when there were any.
    pub async fn write(&self, mut tx: Transaction<'_, Any>, events: &[Event]) -> Result<(), StorageError> {
        for event in events {
            self.enqueue(&mut tx, event).await?;
        }
        if events.is_empty() {
            tx.commit().await?;
            return Ok(());
        }
        self.commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytics_hears_everything_and_consumers_what_they_declared() {
        let routes = Routes::new()
            .consumer("identity.user.deleted", "profiles")
            .consumer("identity.user.deleted", "matching")
            .consumer("identity.user.deleted", "profiles");
        assert_eq!(routes.destinations("identity.user.deleted"), ["analytics", "profiles", "matching"]);
        assert_eq!(routes.destinations("identity.user.registered"), ["analytics"]);
        assert_eq!(
            routes.destinations_of(["identity.user.registered", "identity.user.deleted"]),
            ["analytics", "profiles", "matching"]
        );
        let routes = routes.notice("profiles.learner.changed");
        assert!(routes.destinations("profiles.learner.changed").is_empty(), "no consumer yet: nowhere");
        let routes = routes.consumer("profiles.learner.changed", "matching");
        assert_eq!(routes.destinations("profiles.learner.changed"), ["matching"], "a notice skips analytics");
    }
}
