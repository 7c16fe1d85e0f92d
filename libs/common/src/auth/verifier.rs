//! Local verification of access tokens with keys fetched from identity.

use crate::error::Reason;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{
    ACCESS_TOKEN_TYPE, AccessClaims, JWT_HEADER_TYPE, Principal, PrincipalKind, Role, TokenSettings,
    revocations::{RevocationSource, Revocations},
};
use crate::clock::SharedClock;

/// A public key that verifies tokens.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    pub kid: String,
    /// Raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
}

/// Where verification keys come from: identity over gRPC, or identity's own key store.
pub trait KeySource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<VerifyingKey>, crate::error::BoxError>>;
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is not acceptable: UNAUTHENTICATED.
    #[error("{0}")]
    Invalid(&'static str),
    /// Keys could not be read, or revocations are staler than allowed: UNAVAILABLE (fail closed).
    #[error("authentication state unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn to_status(&self) -> tonic::Status {
        const DOMAIN: crate::error::Domain = crate::error::Domain::new("auth.timetravelers.dev");
        match self {
            Self::Invalid(why) => DOMAIN.unauthenticated(Reason::new("INVALID_TOKEN"), *why),
            Self::Unavailable(e) => DOMAIN.unavailable("authentication", e),
        }
    }
}

struct Verified {
    principal: Principal,
    iat_ms: i64,
    /// The subject's name on the revocation feed.
    subject_key: [u8; super::revocations::SUBJECT_KEY_BYTES],
}

/// Verifies access tokens: EdDSA only; `iss`, `aud`, `exp`, `nbf`, `typ` and `kid` checked with
/// a bounded leeway; revocations from identity's feed honoured. Verified tokens are remembered
/// until they expire so the signature is not checked on every call (revocation still is).
pub struct TokenVerifier {
    settings: TokenSettings,
    source: Arc<dyn KeySource>,
    feed: Arc<dyn RevocationSource>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
    /// Kids a fetch did not know, refused without refetching for a while.
    unknown_kids: moka::sync::Cache<String, ()>,
    fetch_lock: tokio::sync::Mutex<()>,
    revocations: Arc<Revocations>,
    verified: moka::sync::Cache<String, Arc<Verified>>,
    validation: Validation,
    clock: SharedClock,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("settings", &self.settings).finish()
    }
}

/// Keys are refetched at most this often.
const MIN_REFETCH: Duration = Duration::from_millis(500);

impl TokenVerifier {
    /// `revocations` is what `feed` (followed by [`TokenVerifier::follow`]) fills in.
    pub fn new(
        settings: TokenSettings,
        source: Arc<dyn KeySource>,
        revocations: Arc<Revocations>,
        feed: Arc<dyn RevocationSource>,
        clock: SharedClock,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        // exp and nbf are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            settings,
            source,
            feed,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            unknown_kids: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            fetch_lock: tokio::sync::Mutex::new(()),
            revocations,
            verified: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(Duration::from_secs(15 * 60))
                .build(),
            validation,
            clock,
        }
    }

    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Follows the revocation feed for as long as it is polled (the server builder runs it as
    /// a background task while it serves).
    pub fn follow(&self) -> BoxFuture<'static, ()> {
        Box::pin(self.revocations.clone().follow(self.feed.clone(), self.clock.clone()))
    }

    /// Verifies `token` and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now_ms = self.clock.now_ms();
        let verified = match self.verified.get(token) {
            Some(v) => v,
            None => {
                let v = Arc::new(self.verify_signature(token).await?);
                self.verified.insert(token.to_owned(), v.clone());
                v
            }
        };
        let leeway_ms = crate::clock::millis(self.settings.leeway);
        if now_ms > verified.principal.expires_at_ms + leeway_ms {
            self.verified.invalidate(token);
            return Err(AuthError::Invalid("token expired"));
        }
        self.revocations.check(&verified.subject_key, verified.iat_ms)?;
        Ok(verified.principal.clone())
    }

    async fn verify_signature(&self, token: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid("unsupported algorithm"));
        }
        if header.typ.as_deref() != Some(JWT_HEADER_TYPE) {
            return Err(AuthError::Invalid("not an access token"));
        }
        let kid = header.kid.ok_or(AuthError::Invalid("token has no key id"))?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
            .map_err(|_| AuthError::Invalid("invalid token"))?;
        let claims = data.claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(AuthError::Invalid("not an access token"));
        }
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(30);
        let now = self.clock.now_ms() / 1000;
        if now > claims.exp + leeway {
            return Err(AuthError::Invalid("token expired"));
        }
        if now + leeway < claims.nbf {
            return Err(AuthError::Invalid("token not yet valid"));
        }
        let roles: Vec<Role> = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
        let kind = if roles.contains(&Role::Service) { PrincipalKind::Service } else { PrincipalKind::User };
        Ok(Verified {
            subject_key: self.revocations.keys().of(&claims.sub),
            principal: Principal {
                subject: claims.sub,
                kind,
                roles,
                session_id: claims.sid,
                token: token.to_owned(),
                expires_at_ms: claims.exp.saturating_mul(1000),
            },
            iat_ms: claims.iat_ms,
        })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(k) = self.cached_key(kid) {
            return Ok(k);
        }
        let _guard = self.fetch_lock.lock().await;
        if let Some(k) = self.cached_key(kid) {
            return Ok(k);
        }
        if self.unknown_kids.contains_key(kid) {
            return Err(AuthError::Invalid("unknown signing key"));
        }
        // Refetches are spaced out (waiting, under the fetch lock) rather than refused, so a
        // token signed by a just-rotated key verifies, and forged kids cannot flood identity.
        let last = *self.last_fetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(wait) = last.map(|t| MIN_REFETCH.saturating_sub(t.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        *self.last_fetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        let fetched = self.source.fetch().await.map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let map: HashMap<String, DecodingKey> =
            fetched.into_iter().map(|k| (k.kid, DecodingKey::from_ed_der(&k.public_key))).collect();
        let found = map.get(kid).cloned();
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = map;
        if found.is_none() {
            self.unknown_kids.insert(kid.to_owned(), ());
        }
        found.ok_or(AuthError::Invalid("unknown signing key"))
    }

    fn cached_key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(kid).cloned()
    }
}
