//! AuthService: register, login, refresh, logout, service tokens, public keys.

use serde_json::json;
use subtle::ConstantTimeEq;
use tonic::{Code, Request, Response, Status};
use tt_common::error::Reason;
use tt_common::{auth::Role, clock::to_timestamp, error::Violations};
use tt_proto::identity::v1::{self as pb, auth_service_server::AuthService};

use super::Api;
use crate::{
    DOMAIN,
    domain::{UserStatus, email::Email, parse_display_name, password, settings},
    guard::Failure,
    service::{client_of, hash_secret, key_to_proto, new_secret, user_agent, user_to_proto},
    store::{audit::AuditRecord, sessions::Rotation, users::UserRow},
};

/// Only the token just rotated away may be presented again, and only this soon after, so that
/// concurrent refreshes of one session do not look like theft.
const REUSE_GRACE_MS: i64 = 10_000;

fn invalid_credentials() -> Status {
    DOMAIN.unauthenticated(Reason::new("INVALID_CREDENTIALS"), "invalid email or password")
}

fn invalid_refresh() -> Status {
    DOMAIN.unauthenticated(
        Reason::new("INVALID_REFRESH_TOKEN"),
        "the refresh token is invalid or expired; sign in again",
    )
}

#[tonic::async_trait]
impl AuthService for Api {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let client = client_of(&request);
        let agent = user_agent(&request);
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let email = v.take("email", Email::parse(&req.email));
        v.take("password", password::check_new_password(&req.password));
        let display_name = if req.display_name.trim().is_empty() {
            email.as_ref().map(|e| e.local_part().to_owned())
        } else {
            v.take("display_name", parse_display_name(&req.display_name))
        };
        v.into_result()?;
        let (Some(email), Some(display_name)) = (email, display_name) else {
            return Err(DOMAIN.internal(&"validated fields missing"));
        };
        self.guard.client_attempt(&client).await?;
        if self.setting(settings::SIGNUP_OPEN).await? == settings::SettingValue::Bool(false) {
            return Err(DOMAIN.status(
                Code::FailedPrecondition,
                Reason::new("SIGNUP_CLOSED"),
                "sign-up is closed",
            ));
        }
        let hash = self.hasher.hash(&req.password).await?;
        let now = self.now();
        let user = UserRow {
            id: tt_common::new_id(),
            email: email.as_str().to_owned(),
            display_name,
            password_hash: hash,
            roles: vec![Role::Learner],
            status: UserStatus::Active,
            tokens_valid_after: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let audit = AuditRecord::new("user.registered", &user.id, &user.id, json!({}), now);
        match self.store.create_user(&user, &audit).await {
            Ok(()) => {}
            Err(tt_common::storage::StorageError::Conflict(_)) => {
                return Err(DOMAIN.status(
                    Code::AlreadyExists,
                    Reason::new("EMAIL_TAKEN"),
                    "an account with this email already exists",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let login = AuditRecord::new("login.succeeded", &user.id, &user.id, json!({"via": "register"}), now);
        let tokens = self.open_session(&user, &agent, &login).await?;
        Ok(Response::new(pb::RegisterResponse { user: Some(user_to_proto(&user)), tokens: Some(tokens) }))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let client = client_of(&request);
        let agent = user_agent(&request);
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let email = v.take("email", Email::parse(&req.email));
        v.take("password", password::check_presented_password(&req.password));
        v.into_result()?;
        let Some(email) = email else {
            return Err(DOMAIN.internal(&"validated email missing"));
        };
        let id = email.as_str();
        self.guard.client_attempt(&client).await?;
        self.guard.begin(id).await?;
        let user = self.store.user_by_email(id).await?;
        let ok = self.hasher.verify(&req.password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        let now = self.now();
        let user = match (ok, user) {
            (true, Some(user)) => user,
            (_, user) => {
                let actor = user.as_ref().map(|u| u.id.as_str()).unwrap_or("");
                let failure = self.guard.failed(id).await?;
                let mut audit =
                    vec![AuditRecord::new("login.failed", actor, id, json!({"client": client}), now)];
                if failure == Failure::LockedNow {
                    audit.push(AuditRecord::new(
                        "login.locked_out",
                        actor,
                        id,
                        json!({"client": client}),
                        now,
                    ));
                }
                self.store.audit(&audit).await?;
                return Err(invalid_credentials());
            }
        };
        self.guard.succeeded(id).await;
        if user.status == UserStatus::Suspended {
            let audit = AuditRecord::new("login.refused_suspended", &user.id, &user.id, json!({}), now);
            self.store.audit(std::slice::from_ref(&audit)).await?;
            return Err(DOMAIN.status(
                Code::PermissionDenied,
                Reason::new("ACCOUNT_SUSPENDED"),
                "this account is suspended",
            ));
        }
        if crate::hashing::Hasher::needs_upgrade(&user.password_hash) {
            let upgraded = self.hasher.hash(&req.password).await?;
            self.store.set_password_hash(&user.id, &upgraded).await?;
        }
        let audit = AuditRecord::new("login.succeeded", &user.id, &user.id, json!({"client": client}), now);
        let tokens = self.open_session(&user, &agent, &audit).await?;
        Ok(Response::new(pb::LoginResponse { user: Some(user_to_proto(&user)), tokens: Some(tokens) }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let req = request.into_inner();
        if req.refresh_token.is_empty() || req.refresh_token.len() > 256 {
            return Err(DOMAIN.invalid_field("refresh_token", "must be a refresh token"));
        }
        let old = hash_secret(&req.refresh_token);
        let now = self.now();
        let presented = self.store.token_by_hash(&old).await?.ok_or_else(invalid_refresh)?;
        let session = presented.session;
        if !session.is_live(now) {
            return Err(invalid_refresh());
        }
        if let Some(rotated_at) = presented.rotated_at {
            // Parallel refreshes of one token rotate it several times within moments: follow
            // the rotations made within the grace to the current token and rotate that one.
            // Anything else is reuse of a rotated token, which ends the session.
            let mut next = presented.replaced_by.clone();
            let mut within = now - rotated_at <= REUSE_GRACE_MS;
            let mut current = None;
            for _ in 0..16 {
                let Some(hash) = next.take().filter(|_| within) else { break };
                if self.store.is_current_token(&hash).await? {
                    current = Some(hash);
                    break;
                }
                let Some(t) = self.store.token_by_hash(&hash).await? else { break };
                within = t.rotated_at.is_some_and(|r| now - r <= REUSE_GRACE_MS);
                next = t.replaced_by;
            }
            let Some(current) = current else {
                let audit = AuditRecord::new(
                    "refresh_token.reused",
                    &session.user_id,
                    &session.id,
                    json!({"rotated_ms_ago": now - rotated_at}),
                    now,
                );
                self.store.revoke_session(&session.id, now, Some(&audit)).await?;
                return Err(invalid_refresh());
            };
            return self.rotate(&session.user_id, &session.id, &current, now).await;
        }
        self.rotate(&session.user_id, &session.id, &old, now).await
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let req = request.into_inner();
        if req.refresh_token.is_empty() || req.refresh_token.len() > 256 {
            return Err(DOMAIN.invalid_field("refresh_token", "must be a refresh token"));
        }
        let now = self.now();
        // Unknown tokens succeed too: logging out is idempotent and reveals nothing.
        if let Some(t) = self.store.token_by_hash(&hash_secret(&req.refresh_token)).await? {
            let audit =
                AuditRecord::new("session.logged_out", &t.session.user_id, &t.session.id, json!({}), now);
            self.store.revoke_session(&t.session.id, now, Some(&audit)).await?;
        }
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let client = client_of(&request);
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("client_id", &req.client_id);
        v.check(
            !req.client_secret.is_empty() && req.client_secret.len() <= 256,
            "client_secret",
            "must be the account's secret",
        );
        v.into_result()?;
        self.guard.client_attempt(&client).await?;
        let account = self.store.service_account(&req.client_id).await?;
        let presented = hash_secret(&req.client_secret);
        let stored = account.as_ref().map_or_else(|| hash_secret("no account"), |a| a.secret_hash.clone());
        let matches: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
        let Some(account) = account.filter(|_| matches) else {
            let audit = AuditRecord::new(
                "service_token.refused",
                "",
                &req.client_id,
                json!({"client": client}),
                self.now(),
            );
            self.store.audit(std::slice::from_ref(&audit)).await?;
            return Err(DOMAIN.unauthenticated(Reason::new("INVALID_CLIENT"), "invalid client credentials"));
        };
        let ttl = self.args.service_token_ttl.0;
        let (token, exp) = self.access_token(&account.id, &[Role::Service], None, ttl).await?;
        Ok(Response::new(pb::IssueServiceTokenResponse {
            access_token: token,
            expire_time: Some(to_timestamp(exp)),
            token_type: "Bearer".into(),
        }))
    }

    async fn list_public_keys(
        &self,
        _request: Request<pb::ListPublicKeysRequest>,
    ) -> Result<Response<pb::ListPublicKeysResponse>, Status> {
        let rows = self.keys.public_keys(self.now()).await?;
        let keys = rows.iter().map(key_to_proto).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListPublicKeysResponse { keys }))
    }
}

impl Api {
    /// Rotates `current` in `session` and returns new tokens; a lost race is ABORTED.
    async fn rotate(
        &self,
        user_id: &str,
        session_id: &str,
        current: &str,
        now: i64,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let user = self.store.user_by_id(user_id).await?.ok_or_else(invalid_refresh)?;
        if user.status != UserStatus::Active {
            return Err(invalid_refresh());
        }
        let (refresh, hash) = new_secret("rt_")?;
        let idle = now + tt_common::clock::millis(self.args.refresh_idle_ttl.0);
        match self.store.rotate(session_id, current, &hash, now, idle).await? {
            Rotation::Rotated => {}
            // A concurrent refresh of the same token won: the session is fine.
            Rotation::NotCurrent => {
                return Err(DOMAIN.status(
                    tonic::Code::Aborted,
                    Reason::new("REFRESH_RACE"),
                    "another refresh of this token won the race; retry with the token it returned",
                ));
            }
        }
        let session = self.store.session(session_id).await?.ok_or_else(invalid_refresh)?;
        let tokens = self.token_pair(&user, &session, refresh).await?;
        Ok(Response::new(pb::RefreshTokenResponse { tokens: Some(tokens) }))
    }
}
