//! What identity tells other modules, through its transactional outbox: the event types it
//! emits ([`EMITS`]; audited changes carry them, see `AuditRecord::event`), and the service
//! tokens it signs in process for its own relays and for modules mounted beside it.

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::Status;
use tt_common::{
    auth::{RenewingToken, Role},
    client::TokenProvider,
    outbox::schema::{Attr, AttrKind, EventType},
    platform::ServiceTokens,
};

use crate::Identity;

pub use tt_common::outbox::{USER_DELETED, USER_NAMED};

/// The subject of the tokens identity signs for its own calls.
pub const SELF_SUBJECT: &str = "identity";

/// The events identity writes to its outbox (every one about a user, its subject).
pub const EMITS: &[EventType] = &[
    EventType::v1("identity.user.registered", &[]),
    EventType::v1("identity.user.logged_in", &[Attr::optional("client", AttrKind::String)]),
    EventType::v1("identity.user.locked_out", &[]),
    EventType::v1("identity.user.suspended", &[]),
    EventType::v1(USER_DELETED, &[]),
    EventType::notice(USER_NAMED, &[Attr::required("display_name", AttrKind::String)]),
];

/// The notice that `user_id` is now called `display_name`.
pub fn named(
    user_id: &str,
    display_name: &str,
    now: tt_common::clock::Millis,
) -> tt_proto::common::v1::Event {
    tt_common::outbox::EventBuilder::new(SELF_SUBJECT, USER_NAMED, user_id, user_id, now)
        .string("display_name", display_name)
        .build()
}

/// Service tokens identity signs for itself (or, in the all-in-one server, for a co-located
/// service named by `subject`).
pub struct SelfIssued {
    identity: Arc<Identity>,
    subject: String,
    token: RenewingToken,
}

impl SelfIssued {
    pub fn new(identity: Arc<Identity>, subject: &str) -> Arc<Self> {
        let clock = identity.clock.clone();
        Arc::new(Self { identity, subject: subject.to_owned(), token: RenewingToken::new(clock) })
    }
}

impl TokenProvider for SelfIssued {
    fn token(&self) -> BoxFuture<'_, Result<String, Status>> {
        Box::pin(self.token.get(|| {
            let ttl = self.identity.args.service_token_ttl.0;
            self.identity.access_token(&self.subject, &[Role::Service], None, ttl)
        }))
    }
}

/// Identity as the platform's in-process token issuer.
pub struct Issuer(pub Arc<Identity>);

impl ServiceTokens for Issuer {
    fn for_subject(&self, subject: &str) -> Arc<dyn TokenProvider> {
        SelfIssued::new(self.0.clone(), subject)
    }
}
