//! Talking to identity over gRPC: verification keys and service tokens.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tonic::Status;
use tt_proto::identity::v1::{
    IssueServiceTokenRequest, ListPublicKeysRequest, auth_service_client::AuthServiceClient,
};

use super::{KeySource, VerifyingKey};
use crate::{
    client::{Peer, TokenProvider},
    clock::SharedClock,
};

/// Fetches verification keys from identity's `ListPublicKeys`.
#[derive(Debug, Clone)]
pub struct GrpcKeySource {
    identity: Peer,
}

impl GrpcKeySource {
    /// `identity` needs no credentials: the method is public.
    pub fn new(identity: Peer) -> Self {
        Self { identity }
    }
}

impl KeySource for GrpcKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<VerifyingKey>, crate::error::BoxError>> {
        Box::pin(async move {
            let response = self
                .identity
                .call(|ch| async move {
                    AuthServiceClient::new(ch).list_public_keys(ListPublicKeysRequest {}).await
                })
                .await
                .map_err(|s| format!("identity ListPublicKeys: {}", s.message()))?;
            Ok(response
                .keys
                .into_iter()
                .map(|k| VerifyingKey { kid: k.kid, public_key: k.public_key })
                .collect())
        })
    }
}

/// A token kept until a minute before it expires, then issued again (one issuer call at a time).
pub struct RenewingToken {
    clock: SharedClock,
    current: Mutex<Option<(String, i64)>>,
}

impl RenewingToken {
    pub fn new(clock: SharedClock) -> Self {
        Self { clock, current: Mutex::new(None) }
    }

    /// The current token, or the one `issue` returns (token, expiry in unix millis).
    pub async fn get<F, Fut>(&self, issue: F) -> Result<String, Status>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, i64), Status>>,
    {
        let mut current = self.current.lock().await;
        let now = self.clock.now_ms();
        if let Some((token, expires)) = current.as_ref()
            && now + crate::clock::millis(RENEW_BEFORE) < *expires
        {
            return Ok(token.clone());
        }
        let (token, expires) = issue().await?;
        *current = Some((token.clone(), expires));
        Ok(token)
    }
}

/// A service token from identity's client-credentials grant, renewed a minute before expiry.
pub struct ClientCredentials {
    identity: Peer,
    client_id: String,
    client_secret: String,
    token: RenewingToken,
}

impl ClientCredentials {
    pub fn new(identity: Peer, client_id: String, client_secret: String, clock: SharedClock) -> Arc<Self> {
        Arc::new(Self { identity, client_id, client_secret, token: RenewingToken::new(clock) })
    }
}

const RENEW_BEFORE: Duration = Duration::from_secs(60);

impl TokenProvider for ClientCredentials {
    fn token(&self) -> BoxFuture<'_, Result<String, Status>> {
        Box::pin(self.token.get(|| async {
            let request = IssueServiceTokenRequest {
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
            };
            let issued = self
                .identity
                .call(|ch| {
                    let request = request.clone();
                    async move { AuthServiceClient::new(ch).issue_service_token(request).await }
                })
                .await?;
            let expires = issued.expire_time.map_or(0, |t| crate::clock::from_timestamp(&t));
            Ok((issued.access_token, expires))
        }))
    }
}
