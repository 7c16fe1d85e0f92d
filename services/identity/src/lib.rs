//! The identity service: accounts, credentials, sessions and tokens, signing keys, service
//! accounts, system settings and the security audit log.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service), `service.rs` the core
//! they share, `domain/` the rules without I/O, `store/` the repositories, and `keyring.rs`,
//! `hashing.rs` and `guard.rs` the signing keys, password hashing and brute-force protection.
//! [`Identity`] is the module the platform mounts (`MODULE`), in the `identity` binary and in
//! the all-in-one server alike.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod guard;
pub mod hashing;
pub mod keyring;
pub mod revocations;
pub mod service;
pub mod store;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures::future::BoxFuture;
use tt_common::platform::{BoxError, Context, Def, Manifest, Module, Mount};
use tt_proto::identity::v1::{
    self as pb, account_service_server::AccountServiceServer, admin_service_server::AdminServiceServer,
    auth_service_server::AuthServiceServer, revocation_service_server::RevocationServiceServer,
    settings_service_server::SettingsServiceServer,
};

pub use crate::service::Identity;
use crate::{
    api::Api,
    config::IdentityArgs,
    domain::{UserStatus, email::Email},
    keyring::KeyRing,
    store::{Store, audit::AuditRecord, users::UserRow},
};

pub use crate::error::{DOMAIN, Error};

/// Identity, as the platform mounts it.
pub static MODULE: Def<Identity> = Def::new();

/// What start-up did about the first admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub email: String,
    /// Set when this start created the admin with a generated password (shown once).
    pub generated_password: Option<String>,
    pub created: bool,
}

impl Identity {
    /// What start-up did about the first admin, once identity is prepared.
    pub fn bootstrap(&self) -> Option<&Bootstrap> {
        self.bootstrap.get()
    }

    async fn bootstrap_admin(&self) -> Result<Bootstrap, BoxError> {
        let email = Email::parse(&self.args.bootstrap_admin_email)
            .map_err(|e| format!("TT_BOOTSTRAP_ADMIN_EMAIL {e}"))?;
        let mut outcome =
            Bootstrap { email: email.as_str().to_owned(), generated_password: None, created: false };
        if self.store.count_users().await? > 0 {
            return Ok(outcome);
        }
        let configured = self.args.bootstrap_admin_password()?;
        let (password, generated) = if configured.is_empty() {
            let bytes = tt_common::secrets::random_bytes::<12>()?;
            (crate::hashing::hex(&bytes), true)
        } else {
            (configured, false)
        };
        let hash = self.hasher.hash(&password).await?;
        let now = self.now();
        let user = UserRow {
            id: tt_common::new_id(),
            email: email.as_str().to_owned(),
            display_name: "Administrator".into(),
            password_hash: hash,
            roles: vec![tt_common::auth::Role::Learner, tt_common::auth::Role::Admin],
            status: UserStatus::Active,
            tokens_valid_after: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let audit = AuditRecord::new("user.bootstrap_admin", "", &user.id, serde_json::json!({}), now);
        match self.store.create_user(&user, &audit).await {
            // Another replica won the race: fine.
            Ok(()) | Err(tt_common::storage::StorageError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        outcome.created = true;
        outcome.generated_password = generated.then_some(password);
        Ok(outcome)
    }
}

impl Module for Identity {
    type Args = IdentityArgs;

    const MANIFEST: &'static Manifest =
        &Manifest { name: "identity", domain: DOMAIN, emits: events::EMITS, consumes: None, peers: &[] };

    /// Identity on its database, its cache namespace and the process secret (which also keys the
    /// subjects on the revocation feed).
    fn build(cx: Context, args: IdentityArgs) -> BoxFuture<'static, Result<Arc<Self>, BoxError>> {
        Box::pin(async move {
            let store = Store::with_outbox(cx.db, cx.outbox);
            let pem = match &args.signing_key_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("TT_SIGNING_KEY_FILE {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let publish_for = args.access_token_ttl.0.max(args.service_token_ttl.0) + Duration::from_secs(60);
            let platform = &cx.platform;
            let keys = KeyRing::new(store.clone(), &platform.secret, pem, publish_for)?;
            Identity::new(store, cx.cache, keys, cx.pages, args, platform).await
        })
    }

    /// Migrations, an active signing key and the first admin.
    fn prepare(self: Arc<Self>) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move {
            self.store.migrate().await?;
            self.keys.ensure(self.now()).await?;
            let bootstrap = self.bootstrap_admin().await?;
            if let Some(password) = &bootstrap.generated_password
                && self.announce.load(Ordering::Relaxed)
            {
                // Printed once, on the console rather than in the structured logs.
                eprintln!(
                    "identity: created the first admin {} with the generated password {password} \
                     (shown once; change it with ChangePassword)",
                    bootstrap.email
                );
            }
            let _ = self.bootstrap.set(bootstrap);
            Ok(())
        })
    }

    /// Five gRPC services (sign-in and the revocation feed public), the session pruning and the
    /// revocation feed; identity signs the process's service tokens, and a revocation reaches
    /// this process's verifier before the RPC that made it answers.
    fn mount(self: &Arc<Self>, m: &mut Mount<'_>) {
        let api = Api(self.clone());
        let fds = pb::FILE_DESCRIPTOR_SET;
        self.hub.attach(m.platform().revocations.clone());
        m.verify_in_process((
            Arc::new(LocalKeySource(self.clone())),
            Arc::new(revocations::LocalRevocations(self.hub.clone())),
        ));
        let hub = self.hub.clone();
        m.grpc(AuthServiceServer::new(api.clone()), fds)
            .grpc(AccountServiceServer::new(api.clone()), fds)
            .grpc(AdminServiceServer::new(api.clone()), fds)
            .grpc(SettingsServiceServer::new(api.clone()), fds)
            .grpc(RevocationServiceServer::new(api), fds)
            .public::<AuthServiceServer<Api>>()
            .public::<RevocationServiceServer<Api>>()
            .job("identity.prune_sessions", Box::pin(prune_sessions(self.clone())))
            .job("identity.revocation_feed", Box::pin(hub.run()))
            .issue_service_tokens(Arc::new(events::Issuer(self.clone())));
    }
}

/// Deletes sessions (and their refresh tokens) that ended more than a day ago, and revocations
/// older than every token they could concern, hourly.
async fn prune_sessions(identity: Arc<Identity>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    const KEEP_MS: i64 = 24 * 3600 * 1000;
    loop {
        tokio::time::sleep(EVERY).await;
        match identity.store.prune_sessions(identity.now(), KEEP_MS).await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "pruned ended sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "session pruning failed"),
        }
        let window = identity.args.access_token_ttl.0.max(identity.args.service_token_ttl.0);
        let before = identity.now() - tt_common::clock::millis(window) - KEEP_MS;
        if let Err(e) = identity.store.prune_revocations(before).await {
            tracing::warn!(error = %e, "revocation pruning failed");
        }
    }
}

/// Verification keys read straight from identity's own store (identity's binary verifies its
/// own tokens without a network hop; other services use `GrpcKeySource`).
#[derive(Debug, Clone)]
pub struct LocalKeySource(pub Arc<Identity>);

impl tt_common::auth::KeySource for LocalKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<tt_common::auth::VerifyingKey>, BoxError>> {
        Box::pin(async move {
            let rows = self.0.keys.public_keys(self.0.now()).await.map_err(|e| e.to_string())?;
            rows.into_iter()
                .map(|k| {
                    let public_key = k.public_key_bytes().map_err(|e| e.to_string())?;
                    Ok(tt_common::auth::VerifyingKey { kid: k.kid, public_key })
                })
                .collect()
        })
    }
}
