//! The identity service: accounts, credentials, sessions and tokens, signing keys, service
//! accounts, system settings and the security audit log.
//!
//! Layout: `api/` holds the tonic handlers (one file per gRPC service), `service.rs` the core
//! they share, `domain/` the rules without I/O, `store/` the repositories, and `keyring.rs`,
//! `hashing.rs` and `guard.rs` the signing keys, password hashing and brute-force protection.
//! [`register`] mounts everything on a [`ServerBuilder`]; the `identity` binary and the
//! all-in-one server both use it.

pub mod api;
pub mod config;
pub mod domain;
pub mod events;
pub mod guard;
pub mod hashing;
pub mod keyring;
pub mod revocations;
pub mod run;
pub mod service;
pub mod store;

use std::sync::Arc;

use futures::future::BoxFuture;
use tt_common::{
    auth::{KeySource, VerifyingKey},
    server::ServerBuilder,
};
use tt_proto::identity::v1::{
    self as pb, account_service_server::AccountServiceServer, admin_service_server::AdminServiceServer,
    auth_service_server::AuthServiceServer, revocation_service_server::RevocationServiceServer,
    settings_service_server::SettingsServiceServer,
};

pub use crate::service::Identity;
use crate::{
    api::Api,
    domain::{UserStatus, email::Email},
    store::{audit::AuditRecord, users::UserRow},
};

/// The `ErrorInfo` domain of identity's errors.
pub const DOMAIN: &str = "identity.timetravelers.dev";

/// The gRPC services identity mounts (also its health-check names).
pub const SERVICES: &[&str] = &[
    "timetravelers.identity.v1.AuthService",
    "timetravelers.identity.v1.AccountService",
    "timetravelers.identity.v1.AdminService",
    "timetravelers.identity.v1.SettingsService",
    "timetravelers.identity.v1.RevocationService",
];

/// What start-up did about the first admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    pub email: String,
    /// Set when this start created the admin with a generated password (shown once).
    pub generated_password: Option<String>,
    pub created: bool,
}

impl Identity {
    /// Everything identity needs before it serves: migrations, an active signing key and the
    /// first admin. Runs once per process: later
    /// calls (the readiness check after the all-in-one's own call) return the first outcome,
    /// without the generated password, which is shown once.
    pub async fn prepare(&self) -> Result<Bootstrap, String> {
        let mut prepared = self.prepared.lock().await;
        if let Some(done) = prepared.as_ref() {
            return Ok(done.clone());
        }
        self.store.migrate().await.map_err(|e| e.to_string())?;
        let now = self.now();
        self.keys.ensure(now).await.map_err(|e| e.to_string())?;
        let bootstrap = self.bootstrap_admin().await?;
        *prepared = Some(Bootstrap { generated_password: None, ..bootstrap.clone() });
        Ok(bootstrap)
    }

    /// Returns once [`Identity::prepare`] has succeeded (background work waits for migrations).
    pub async fn wait_prepared(&self) {
        while self.prepared.lock().await.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    async fn bootstrap_admin(&self) -> Result<Bootstrap, String> {
        let email = Email::parse(&self.args.bootstrap_admin_email)
            .map_err(|e| format!("TT_BOOTSTRAP_ADMIN_EMAIL {e}"))?;
        let mut outcome =
            Bootstrap { email: email.as_str().to_owned(), generated_password: None, created: false };
        if self.store.count_users().await.map_err(|e| e.to_string())? > 0 {
            return Ok(outcome);
        }
        let configured = self.args.bootstrap_admin_password().map_err(|e| e.to_string())?;
        let (password, generated) = if configured.is_empty() {
            let bytes = tt_common::secrets::random_bytes::<12>().map_err(|e| e.to_string())?;
            (crate::hashing::hex(&bytes), true)
        } else {
            (configured, false)
        };
        let hash = self.hasher.hash(&password).await.map_err(|e| e.to_string())?;
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
            Err(e) => return Err(e.to_string()),
        }
        outcome.created = true;
        outcome.generated_password = generated.then_some(password);
        Ok(outcome)
    }
}

/// Mounts identity's four gRPC services, its descriptors, its public methods and its readiness
/// check (which runs [`Identity::prepare`]).
pub fn register(builder: &mut ServerBuilder, identity: Arc<Identity>) {
    type MakeRelay = fn(&Arc<Identity>, &str) -> Result<tt_common::outbox::Relay, String>;
    let relays: [(&str, &str, MakeRelay); 2] = [
        ("identity.outbox.profiles", &identity.args.profiles_url, events::profiles_relay),
        ("identity.outbox.analytics", &identity.args.analytics_url, events::analytics_relay),
    ];
    for (name, url, relay) in relays {
        if url.is_empty() {
            continue; // events wait in the outbox until the peer's URL is configured
        }
        match relay(&identity, url) {
            Ok(relay) => {
                let identity = identity.clone();
                builder.background(
                    name,
                    Box::pin(async move {
                        identity.wait_prepared().await;
                        relay.run().await;
                    }),
                );
            }
            Err(e) => tracing::error!(relay = name, error = %e, "an outbox relay cannot start"),
        }
    }
    builder.outbox(tt_common::outbox::OutboxSource {
        service: "identity".into(),
        db: identity.store.db().clone(),
        destinations: vec![events::PROFILES.into(), tt_common::outbox::ANALYTICS.into()],
        pages: identity.pages.clone(),
        clock: identity.clock.clone(),
        signal: Some(identity.store.outbox().clone()),
    });
    let api = Api(identity.clone());
    let max = builder.args().max_message_bytes;
    let fds = pb::FILE_DESCRIPTOR_SET;
    builder
        .add_service(
            AuthServiceServer::new(api.clone()).max_decoding_message_size(max).max_encoding_message_size(max),
            fds,
        )
        .add_service(
            AccountServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            AdminServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            SettingsServiceServer::new(api.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            fds,
        )
        .add_service(
            RevocationServiceServer::new(api).max_decoding_message_size(max).max_encoding_message_size(max),
            fds,
        )
        .background("identity.prune_sessions", Box::pin(prune_sessions(identity.clone())))
        .background("identity.revocation_feed", {
            let identity = identity.clone();
            Box::pin(async move {
                identity.wait_prepared().await;
                identity.hub.clone().run().await;
            })
        })
        .public("/timetravelers.identity.v1.AuthService/")
        .public("/timetravelers.identity.v1.RevocationService/")
        .ready_when(
            SERVICES,
            Box::new(move || {
                let identity = identity.clone();
                Box::pin(async move {
                    let bootstrap = identity.prepare().await?;
                    if let Some(password) = bootstrap.generated_password {
                        // Printed once, on the console rather than in the structured logs.
                        eprintln!(
                            "identity: created the first admin {} with the generated password {password} \
                             (shown once; change it with ChangePassword)",
                            bootstrap.email
                        );
                    }
                    Ok(())
                })
            }),
        );
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

/// Verification keys read straight from identity's own store (the identity binary verifies its
/// own tokens without a network hop; other services use `GrpcKeySource`).
#[derive(Debug, Clone)]
pub struct LocalKeySource(pub Arc<Identity>);

impl KeySource for LocalKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<VerifyingKey>, String>> {
        Box::pin(async move {
            let rows = self.0.keys.public_keys(self.0.now()).await.map_err(|e| e.to_string())?;
            rows.into_iter()
                .map(|k| {
                    let public_key = k.public_key_bytes().map_err(|e| e.to_string())?;
                    Ok(VerifyingKey { kid: k.kid, public_key })
                })
                .collect()
        })
    }
}
