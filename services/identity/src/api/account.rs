//! AccountService: the signed-in user's own account and sessions.

use serde_json::json;
use tonic::{Request, Response, Status};
use tt_common::{
    auth::require_user,
    clock::to_timestamp,
    error::Violations,
    storage::{
        Page,
        update::{Fields, MaskedUpdate},
    },
};
use tt_proto::identity::v1::{self as pb, account_service_server::AccountService};

use super::Api;
use crate::{
    DOMAIN,
    domain::{parse_display_name, password},
    service::{user_agent, user_to_proto},
    store::{audit::AuditRecord, users::Revoke},
};

/// What UpdateMe changes of `User`: the display name (the rest through other RPCs, or never).
const FIELDS: Fields = Fields {
    message: "User",
    kind: "user",
    immutable: &["id", "email", "roles", "status", "create_time", "update_time", "etag"],
    immutable_note: " here",
};

#[tonic::async_trait]
impl AccountService for Api {
    async fn get_me(
        &self,
        request: Request<pb::GetMeRequest>,
    ) -> Result<Response<pb::GetMeResponse>, Status> {
        let me = require_user(&request)?;
        let user = self.user_view(&me.subject).await?;
        Ok(Response::new(pb::GetMeResponse { user: Some(user) }))
    }

    async fn update_me(
        &self,
        request: Request<pb::UpdateMeRequest>,
    ) -> Result<Response<pb::UpdateMeResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let patch = req.user.unwrap_or_default();
        let update = MaskedUpdate::new(&mut v, req.update_mask, &patch.etag, " (display_name)", &FIELDS);
        let mut display_name = None;
        update.apply(&mut v, &mut display_name, |v, path, name| {
            if path != "display_name" {
                return false;
            }
            *name = v.take("user.display_name", parse_display_name(&patch.display_name));
            true
        });
        v.into_result()?;
        let current = self.user(&me).await?;
        let expected = update.expected_version(current.version)?;
        let name = display_name.unwrap_or(current.display_name.clone());
        let updated = self
            .store
            .update_display_name(&me, expected, &name, self.now())
            .await?
            .ok_or_else(|| DOMAIN.etag_mismatch("user"))?;
        self.forget_user(&me).await;
        Ok(Response::new(pb::UpdateMeResponse { user: Some(user_to_proto(&updated)) }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let agent = user_agent(&request);
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.take("current_password", password::check_presented_password(&req.current_password));
        v.take("new_password", password::check_new_password(&req.new_password));
        v.check(
            req.current_password != req.new_password,
            "new_password",
            "must differ from the current password",
        );
        v.into_result()?;
        let user = self.user(&me).await?;
        // Guessing the current password with a stolen token counts like failed logins.
        self.guard.begin(&user.email).await?;
        let ok = self.hasher.verify(&req.current_password, Some(&user.password_hash)).await?;
        if !ok {
            self.guard.failed(&user.email).await?;
            return Err(DOMAIN.invalid_field("current_password", "is not the current password"));
        }
        self.guard.succeeded(&user.email).await;
        let hash = self.hasher.hash(&req.new_password).await?;
        let now = self.now();
        let audit = AuditRecord::new("password.changed", &me, &me, json!({}), now);
        // Every session ends (and outstanding access tokens stop); the caller gets a new one.
        self.store.change_password(&me, &hash, now, &audit).await?;
        self.forget_user(&me).await;
        self.publish_revocation().await;
        // Roles and id, all a session needs, are as read above.
        let login =
            AuditRecord::new("login.succeeded", &me, &me, json!({"via": "change_password"}), self.now());
        let tokens = self.open_session(&user, &agent, &login).await?;
        Ok(Response::new(pb::ChangePasswordResponse { tokens: Some(tokens) }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let me = require_user(&request)?;
        let (subject, current) = (me.subject.clone(), me.session_id.clone());
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let page: Page<'_, String> =
            self.pages.page(&mut v, format!("sessions:{subject}"), req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows =
            self.store.list_sessions(&subject, self.now(), page.after.as_deref(), page.limit()).await?;
        let next = page.next(&mut rows, |r| r.id.clone());
        let sessions = rows
            .into_iter()
            .map(|s| pb::Session {
                current: current.as_deref() == Some(s.id.as_str()),
                id: s.id,
                create_time: Some(to_timestamp(s.created_at)),
                last_used_time: Some(to_timestamp(s.last_used_at)),
                expire_time: Some(to_timestamp(s.absolute_expires_at.min(s.idle_expires_at))),
                user_agent: s.user_agent,
            })
            .collect();
        Ok(Response::new(pb::ListSessionsResponse { sessions, next_page_token: next }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let req = request.into_inner();
        if !tt_common::is_id(&req.session_id) {
            return Err(DOMAIN.invalid_field("session_id", "must be a session id"));
        }
        let session = self.store.session(&req.session_id).await?;
        // Another user's session is reported exactly like a missing one.
        let Some(session) = session.filter(|s| s.user_id == me) else {
            return Err(DOMAIN.not_found("session", &req.session_id));
        };
        let now = self.now();
        let audit = AuditRecord::new("session.revoked", &me, &session.id, json!({}), now);
        self.store.revoke_session(&session.id, now, Some(&audit)).await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn logout_all(
        &self,
        request: Request<pb::LogoutAllRequest>,
    ) -> Result<Response<pb::LogoutAllResponse>, Status> {
        let me = require_user(&request)?.subject.clone();
        let now = self.now();
        let audit = AuditRecord::new("sessions.revoked_all", &me, &me, json!({}), now);
        self.change_user(&me, None, None, Revoke::EVERYTHING, &audit).await?;
        Ok(Response::new(pb::LogoutAllResponse {}))
    }
}
