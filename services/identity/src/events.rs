//! What identity tells other services, through its transactional outbox: user deletions go to
//! profiles (which purges the user's data). The relay authenticates with a service token that
//! identity signs for itself.

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::Status;
use tt_common::{
    auth::{RenewingToken, Role},
    client::{Credentials, Peer, PeerOptions, TokenProvider},
    outbox::{Relay, Sink},
};
use tt_proto::{
    common::v1::Event,
    profiles::v1::{ConsumeEventsRequest, integration_service_client::IntegrationServiceClient},
};

use crate::Identity;

/// The event a deletion writes (subject: the user id).
pub const USER_DELETED: &str = "identity.user.deleted";

/// The subject of the tokens identity signs for its own calls.
pub const SELF_SUBJECT: &str = "identity";

/// Service tokens identity signs for itself.
pub struct SelfIssued {
    identity: Arc<Identity>,
    token: RenewingToken,
}

impl SelfIssued {
    pub fn new(identity: Arc<Identity>) -> Arc<Self> {
        let clock = identity.clock.clone();
        Arc::new(Self { identity, token: RenewingToken::new(clock) })
    }
}

impl TokenProvider for SelfIssued {
    fn token(&self) -> BoxFuture<'_, Result<String, Status>> {
        Box::pin(self.token.get(|| {
            let ttl = self.identity.args.service_token_ttl.0;
            self.identity.access_token(SELF_SUBJECT, &[Role::Service], None, ttl)
        }))
    }
}

/// Delivers batches to profiles' `IntegrationService.ConsumeEvents`.
struct ProfilesSink(Peer);

impl Sink for ProfilesSink {
    fn deliver(&self, events: Vec<Event>) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            let request = ConsumeEventsRequest { events };
            self.0
                .call(|ch| {
                    let request = request.clone();
                    async move { IntegrationServiceClient::new(ch).consume_events(request).await }
                })
                .await
                .map(|_| ())
        })
    }
}

/// The relay of the "profiles" destination, to profiles at `url`, woken by
/// [`Identity::outbox_wake`].
pub fn profiles_relay(identity: &Arc<Identity>, url: &str) -> Result<Relay, String> {
    let peer =
        Peer::connect_lazy(PeerOptions::new(url), Credentials::Service(SelfIssued::new(identity.clone())))?;
    Ok(Relay::new(
        identity.store.db().clone(),
        "profiles",
        Arc::new(ProfilesSink(peer)),
        identity.clock.clone(),
    )
    .with_waker(identity.outbox_wake.clone()))
}
