//! The identity service core: its dependencies and the steps several RPCs share (issuing
//! tokens, opening sessions, announcing revocations to the feed, loading users).

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Status;
use tt_common::{
    auth::{ACCESS_TOKEN_TYPE, AccessClaims, Role},
    cache::{Cache, Codec},
    clock::{Millis, SharedClock, millis, to_timestamp},
    storage::PageTokens,
};
use tt_proto::identity::v1 as pb;

use crate::{
    DOMAIN,
    config::IdentityArgs,
    domain::{UserStatus, roles, settings},
    guard::Guard,
    hashing::{Hasher, hex},
    keyring::KeyRing,
    store::{
        Store,
        audit::AuditRecord,
        keys::KeyRow,
        sessions::SessionRow,
        users::{Revoke, UserRow},
    },
};

/// Everything the handlers share.
pub struct Identity {
    pub store: Store,
    /// Identity's own cache namespace (user views, sign-in protection).
    pub cache: Cache,
    /// The platform cache, for the keys other modules read ([`tt_common::cache::shared`]).
    pub shared: Cache,
    pub keys: KeyRing,
    pub hasher: Hasher,
    pub guard: Guard,
    /// The source of the revocation feed.
    pub hub: Arc<crate::revocations::RevocationHub>,
    pub pages: PageTokens,
    pub clock: SharedClock,
    pub args: IdentityArgs,
    /// `iss` and `aud` of the tokens it signs.
    pub tokens: tt_common::auth::TokenSettings,
    /// What start-up did about the first admin, once prepared.
    pub(crate) bootstrap: std::sync::OnceLock<crate::Bootstrap>,
    /// Print a generated first-admin password on the console (the all-in-one shows it in its
    /// banner instead).
    pub announce: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

/// A fresh opaque token with 256 random bits and its stored hash.
pub fn new_secret(prefix: &str) -> Result<(String, String), Status> {
    let bytes = tt_common::secrets::random_bytes::<32>().map_err(crate::Error::Random)?;
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&token);
    Ok((token, hash))
}

/// SHA-256 (hex) of a high-entropy secret. Such secrets need no slow hash.
pub fn hash_secret(secret: &str) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref())
}

const USER_VIEW_TTL: Duration = Duration::from_secs(30);

fn user_key(id: &str) -> String {
    format!("user:{id}")
}

impl Identity {
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Builds identity over its parts and the platform's secret (which keys the subjects on the
    /// revocation feed), clock and token settings.
    pub async fn new(
        store: Store,
        cache: Cache,
        keys: KeyRing,
        pages: PageTokens,
        args: IdentityArgs,
        platform: &tt_common::platform::Platform,
    ) -> Result<Arc<Self>, tt_common::error::BoxError> {
        let subject_keys = tt_common::auth::SubjectKeys::new(&platform.secret);
        let (clock, tokens) = (platform.clock.clone(), platform.tokens.clone());
        // Each hash in progress holds a 19 MiB buffer: the default stops at four.
        let parallelism = if args.hash_parallelism == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
        } else {
            args.hash_parallelism
        };
        let hasher = Hasher::new(parallelism).await.map_err(|e| e.to_string())?;
        let guard = Guard::new(cache.clone(), args.signin_rate_per_minute);
        let window = args.access_token_ttl.0.max(args.service_token_ttl.0) + Duration::from_secs(90);
        let hub = crate::revocations::RevocationHub::new(
            store.clone(),
            subject_keys,
            clock.clone(),
            window,
            args.revocation_poll.0,
        );
        Ok(Arc::new(Self {
            store,
            cache,
            shared: platform.cache.clone(),
            keys,
            hasher,
            guard,
            hub,
            pages,
            clock,
            args,
            tokens,
            bootstrap: std::sync::OnceLock::new(),
            announce: std::sync::atomic::AtomicBool::new(true),
        }))
    }

    /// Signs an access token.
    pub async fn access_token(
        &self,
        subject: &str,
        roles: &[Role],
        session_id: Option<&str>,
        ttl: Duration,
    ) -> Result<(String, Millis), Status> {
        let now = self.now();
        let exp_ms = now + millis(ttl);
        let claims = AccessClaims {
            iss: self.tokens.issuer.clone(),
            aud: self.tokens.audience.clone(),
            sub: subject.to_owned(),
            exp: exp_ms / 1000,
            nbf: now / 1000,
            iat: now / 1000,
            iat_ms: now,
            jti: tt_common::new_id(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            sid: session_id.map(str::to_owned),
        };
        let token = self.keys.sign(&claims).await?;
        Ok((token, exp_ms))
    }

    /// Opens a session for `user` (with the audit record) and returns its tokens.
    pub async fn open_session(
        &self,
        user: &UserRow,
        user_agent: &str,
        audit: &AuditRecord,
    ) -> Result<pb::TokenPair, Status> {
        let now = self.now();
        let session = SessionRow {
            id: tt_common::new_id(),
            user_id: user.id.clone(),
            user_agent: user_agent.chars().take(256).collect(),
            created_at: now,
            last_used_at: now,
            idle_expires_at: now + millis(self.args.refresh_idle_ttl.0),
            absolute_expires_at: now + millis(self.args.refresh_absolute_ttl.0),
            revoked_at: None,
        };
        let (refresh, hash) = new_secret("rt_")?;
        self.store.create_session(&session, &hash, audit).await?;
        self.token_pair(user, &session, refresh).await
    }

    /// The token pair for a session and its current refresh token.
    pub async fn token_pair(
        &self,
        user: &UserRow,
        session: &SessionRow,
        refresh: String,
    ) -> Result<pb::TokenPair, Status> {
        let (access, exp) =
            self.access_token(&user.id, &user.roles, Some(&session.id), self.args.access_token_ttl.0).await?;
        let refresh_exp = session.absolute_expires_at.min(self.now() + millis(self.args.refresh_idle_ttl.0));
        Ok(pb::TokenPair {
            access_token: access,
            access_token_expire_time: Some(to_timestamp(exp)),
            refresh_token: refresh,
            refresh_token_expire_time: Some(to_timestamp(refresh_exp)),
            token_type: "Bearer".into(),
            session_id: session.id.clone(),
        })
    }

    /// Tells the revocation feed that tokens were revoked (the mark is already committed with
    /// the change): this process's verifiers honour it before this returns, the feed's
    /// subscribers moments later, and verifiers following other replicas at their next poll.
    pub async fn publish_revocation(&self) {
        self.hub.sync().await;
    }

    /// The public view of user `id` (no credentials), cache-aside: GetMe and GetUser are the hot
    /// reads. Every write to a user calls [`Identity::forget_user`]; the TTL bounds staleness
    /// should an invalidation be lost (a cache outage, or a read racing a write).
    pub async fn user_view(&self, id: &str) -> Result<pb::User, Status> {
        self.cache
            .get_or_load_with(&user_key(id), USER_VIEW_TTL, Codec::protobuf(), || async {
                self.user(id).await.map(|u| user_to_proto(&u))
            })
            .await
    }

    /// Drops the cached view after a write.
    pub async fn forget_user(&self, id: &str) {
        self.cache.invalidate(&user_key(id)).await;
    }

    /// Applies an administrative change to a user (roles and/or status, with what it revokes)
    /// atomically with its audit record, then drops the cached view and publishes the revocation
    /// mark when tokens were revoked. NOT_FOUND when the user does not exist.
    pub async fn change_user(
        &self,
        user_id: &str,
        roles: Option<&[Role]>,
        status: Option<UserStatus>,
        revoke: Revoke,
        audit: &AuditRecord,
    ) -> Result<pb::User, Status> {
        let now = audit.created_at;
        let user = self
            .store
            .admin_update(user_id, roles, status, revoke, now, audit)
            .await?
            .ok_or_else(|| DOMAIN.not_found("user", user_id))?;
        self.forget_user(user_id).await;
        if revoke.mark {
            self.publish_revocation().await;
        }
        Ok(user_to_proto(&user))
    }

    /// The user `id` or NOT_FOUND.
    pub async fn user(&self, id: &str) -> Result<UserRow, Status> {
        self.store.user_by_id(id).await?.ok_or_else(|| DOMAIN.not_found("user", id))
    }

    /// The quota that applies to `user_id`: `own`, else the default setting.
    pub async fn ai_quota(
        &self,
        user_id: &str,
        own: Option<&crate::store::ai_quotas::AiQuotaRow>,
    ) -> Result<pb::AiQuota, Status> {
        let daily_tokens = match own {
            Some(row) => row.daily_tokens,
            None => match self.setting(settings::DEFAULT_DAILY_AI_TOKEN_QUOTA).await? {
                settings::SettingValue::Int(i) => i,
                settings::SettingValue::Bool(_) => {
                    return Err(DOMAIN.internal(&"the default quota is not a number"));
                }
            },
        };
        Ok(pb::AiQuota {
            user_id: user_id.to_owned(),
            daily_tokens,
            overridden: own.is_some(),
            update_time: own.map(|r| to_timestamp(r.updated_at)),
            updated_by: own.map(|r| r.updated_by.clone()).unwrap_or_default(),
        })
    }

    /// A setting's current value.
    pub async fn setting(&self, key: &str) -> Result<settings::SettingValue, Status> {
        let def = settings::find(key).ok_or_else(|| DOMAIN.internal(&format!("unknown setting {key}")))?;
        let stored = self.store.setting(key).await?;
        Ok(def.current(stored.as_ref().map(|r| r.value.as_str())))
    }
}

/// The proto view of a signing key's public half.
pub fn key_to_proto(k: &KeyRow) -> Result<pb::PublicKey, Status> {
    Ok(pb::PublicKey {
        kid: k.kid.clone(),
        algorithm: "EdDSA".into(),
        public_key: k.public_key_bytes()?,
        create_time: Some(to_timestamp(k.created_at)),
        retire_time: k.retired_at.map(to_timestamp),
        active: k.active,
    })
}

/// The proto view of a user.
pub fn user_to_proto(u: &UserRow) -> pb::User {
    pb::User {
        id: u.id.clone(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        roles: u.roles.iter().map(|r| roles::to_proto(*r) as i32).collect(),
        status: match u.status {
            crate::domain::UserStatus::Active => pb::UserStatus::Active,
            crate::domain::UserStatus::Suspended => pb::UserStatus::Suspended,
        } as i32,
        create_time: Some(to_timestamp(u.created_at)),
        update_time: Some(to_timestamp(u.updated_at)),
        etag: tt_common::storage::etag(u.version),
    }
}

/// The client address of a request, for rate limiting.
pub fn client_of<T>(request: &tonic::Request<T>) -> String {
    request.remote_addr().map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// The caller's user agent, for the session list.
pub fn user_agent<T>(request: &tonic::Request<T>) -> String {
    request.metadata().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}
