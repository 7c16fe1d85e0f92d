//! AdminService: users, keys, service accounts and the audit log. Admins only.

use serde_json::json;
use tonic::{Code, Request, Response, Status};
use tt_common::error::Reason;
use tt_common::{
    auth::{Role, require_admin, require_admin_or_service},
    clock::to_timestamp,
    error::Violations,
    storage::{Page, StorageError},
};
use tt_proto::identity::v1::{self as pb, admin_service_server::AdminService};

use super::Api;

/// Roles one SetUserRoles names at most (there are three a person can hold).
const MAX_ROLES: usize = 8;
use crate::{
    DOMAIN,
    domain::settings::{self, DEFAULT_DAILY_AI_TOKEN_QUOTA, SettingValue},
    domain::{UserStatus, parse_account_name, roles},
    service::{key_to_proto, new_secret, user_to_proto},
    store::{
        ai_quotas::AiQuotaRow,
        audit::AuditRecord,
        service_accounts::ServiceAccountRow,
        users::{Revoke, UserFilter},
    },
};

#[tonic::async_trait]
impl AdminService for Api {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_text("email_prefix", &req.email_prefix, 254);
        let role = match pb::Role::try_from(req.role) {
            Ok(r) => roles::from_proto(r),
            Err(_) => {
                v.add("role", "unknown role");
                None
            }
        };
        let status = match pb::UserStatus::try_from(req.status) {
            Ok(pb::UserStatus::Unspecified) => None,
            Ok(pb::UserStatus::Active) => Some(UserStatus::Active),
            Ok(pb::UserStatus::Suspended) => Some(UserStatus::Suspended),
            Err(_) => {
                v.add("status", "unknown status");
                None
            }
        };
        let prefix = req.email_prefix.trim().to_lowercase();
        let scope = format!("users:{prefix}:{}:{}", req.role, req.status);
        let page: Page<'_, String> = self.pages.page(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let filter =
            UserFilter { email_prefix: (!prefix.is_empty()).then_some(prefix.clone()), role, status };
        let mut rows = self.store.list_users(&filter, page.after.as_deref(), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |u| u.id.clone());
        Ok(Response::new(pb::ListUsersResponse {
            users: rows.iter().map(user_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        v.into_result()?;
        let user = self.user_view(&req.user_id).await?;
        Ok(Response::new(pb::GetUserResponse { user: Some(user) }))
    }

    async fn set_user_roles(
        &self,
        request: Request<pb::SetUserRolesRequest>,
    ) -> Result<Response<pb::SetUserRolesResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        let mut wanted = vec![Role::Learner];
        let listed = v.check_count("roles", req.roles.len(), MAX_ROLES);
        if listed {
            v.check_unique("roles", &req.roles);
        }
        for (i, raw) in req.roles.iter().enumerate().filter(|_| listed) {
            match pb::Role::try_from(*raw).ok().and_then(roles::from_proto) {
                Some(Role::Service) => {
                    v.add(&format!("roles[{i}]"), "the service role belongs to service accounts");
                }
                Some(role) => wanted.push(role),
                None => {
                    v.add(&format!("roles[{i}]"), "unknown role");
                }
            }
        }
        v.into_result()?;
        wanted.sort_unstable();
        wanted.dedup();
        if req.user_id == admin && !wanted.contains(&Role::Admin) {
            return Err(DOMAIN.status(
                Code::FailedPrecondition,
                Reason::new("SELF_DEMOTION"),
                "you cannot remove your own admin role",
            ));
        }
        let before = self.user(&req.user_id).await?;
        let now = self.now();
        let audit = AuditRecord::new(
            "user.roles_changed",
            &admin,
            &req.user_id,
            json!({"from": roles::encode(&before.roles), "to": roles::encode(&wanted)}),
            now,
        );
        // New roles take effect at the next refresh: outstanding tokens carry the old ones.
        let user = self.change_user(&req.user_id, Some(&wanted), None, Revoke::TOKENS, &audit).await?;
        Ok(Response::new(pb::SetUserRolesResponse { user: Some(user) }))
    }

    async fn suspend_user(
        &self,
        request: Request<pb::SuspendUserRequest>,
    ) -> Result<Response<pb::SuspendUserResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        v.check(req.reason.chars().count() <= 500, "reason", "must be at most 500 characters");
        v.into_result()?;
        if req.user_id == admin {
            return Err(DOMAIN.status(
                Code::FailedPrecondition,
                Reason::new("SELF_SUSPENSION"),
                "you cannot suspend yourself",
            ));
        }
        let now = self.now();
        let audit =
            AuditRecord::new("user.suspended", &admin, &req.user_id, json!({"reason": req.reason}), now);
        let user = self
            .change_user(&req.user_id, None, Some(UserStatus::Suspended), Revoke::EVERYTHING, &audit)
            .await?;
        Ok(Response::new(pb::SuspendUserResponse { user: Some(user) }))
    }

    async fn reinstate_user(
        &self,
        request: Request<pb::ReinstateUserRequest>,
    ) -> Result<Response<pb::ReinstateUserResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        v.into_result()?;
        let now = self.now();
        let audit = AuditRecord::new("user.reinstated", &admin, &req.user_id, json!({}), now);
        let user =
            self.change_user(&req.user_id, None, Some(UserStatus::Active), Revoke::NOTHING, &audit).await?;
        Ok(Response::new(pb::ReinstateUserResponse { user: Some(user) }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        v.into_result()?;
        if req.user_id == admin {
            return Err(DOMAIN.status(
                Code::FailedPrecondition,
                Reason::new("SELF_DELETION"),
                "you cannot delete yourself",
            ));
        }
        let now = self.now();
        let audit = AuditRecord::new("user.deleted", &admin, &req.user_id, json!({}), now);
        if !self.store.delete_user(&req.user_id, &audit).await? {
            return Err(DOMAIN.not_found("user", &req.user_id));
        }
        self.forget_user(&req.user_id).await;
        self.publish_revocation().await;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let row = self.keys.rotate(&admin, self.now()).await?;
        Ok(Response::new(pb::RotateSigningKeyResponse { key: Some(key_to_proto(&row)?) }))
    }

    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let name = v.take("name", parse_account_name(&req.name));
        v.check_text("description", &req.description, 500);
        v.into_result()?;
        let Some(name) = name else {
            return Err(DOMAIN.internal(&"validated name missing"));
        };
        let (secret, hash) = new_secret("ttsa_")?;
        let now = self.now();
        let row = ServiceAccountRow {
            id: tt_common::new_id(),
            name,
            description: req.description,
            secret_hash: hash,
            created_at: now,
            created_by: admin.clone(),
        };
        let audit =
            AuditRecord::new("service_account.created", &admin, &row.id, json!({"name": row.name}), now);
        match self.store.create_service_account(&row, &audit).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => {
                return Err(DOMAIN.status(
                    Code::AlreadyExists,
                    Reason::new("NAME_TAKEN"),
                    "a service account with this name exists",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Response::new(pb::CreateServiceAccountResponse {
            service_account: Some(account_to_proto(&row)),
            client_secret: secret,
        }))
    }

    async fn list_service_accounts(
        &self,
        request: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        let page: Page<'_, String> =
            self.pages.page(&mut v, "service_accounts", req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows = self.store.list_service_accounts(page.after.as_deref(), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| r.id.clone());
        Ok(Response::new(pb::ListServiceAccountsResponse {
            service_accounts: rows.iter().map(account_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_service_account(
        &self,
        request: Request<pb::DeleteServiceAccountRequest>,
    ) -> Result<Response<pb::DeleteServiceAccountResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        if !tt_common::is_id(&req.service_account_id) {
            return Err(DOMAIN.invalid_field("service_account_id", "must be a service account id"));
        }
        let now = self.now();
        let audit =
            AuditRecord::new("service_account.deleted", &admin, &req.service_account_id, json!({}), now);
        if !self.store.delete_service_account(&req.service_account_id, &audit).await? {
            return Err(DOMAIN.not_found("service account", &req.service_account_id));
        }
        // Its outstanding tokens stop working too.
        self.publish_revocation().await;
        Ok(Response::new(pb::DeleteServiceAccountResponse {}))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_text("type", &req.r#type, 64);
        v.check_text("subject", &req.subject, 320);
        let scope = format!("audit:{}:{}", req.r#type, req.subject);
        let page: Page<'_, String> = self.pages.page(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let kind = (!req.r#type.is_empty()).then_some(req.r#type.as_str());
        let subject = (!req.subject.is_empty()).then_some(req.subject.as_str());
        let mut rows = self.store.list_audit(kind, subject, page.after.as_deref(), page.limit()).await?;
        let next = page.next(&mut rows, |r| r.id.clone());
        let events = rows
            .into_iter()
            .map(|r| pb::AuditEvent {
                id: r.id,
                r#type: r.kind,
                actor_id: r.actor_id,
                subject: r.subject,
                details_json: r.details,
                create_time: Some(to_timestamp(r.created_at)),
            })
            .collect();
        Ok(Response::new(pb::ListAuditEventsResponse { events, next_page_token: next }))
    }

    async fn get_ai_quota(
        &self,
        request: Request<pb::GetAiQuotaRequest>,
    ) -> Result<Response<pb::GetAiQuotaResponse>, Status> {
        require_admin_or_service(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        v.into_result()?;
        let own = self.store.ai_quota(&req.user_id).await?;
        if own.is_none() {
            // A NOT_FOUND for users that do not exist, rather than the default.
            self.user_view(&req.user_id).await?;
        }
        let quota = self.ai_quota(&req.user_id, own.as_ref()).await?;
        Ok(Response::new(pb::GetAiQuotaResponse { quota: Some(quota) }))
    }

    async fn set_ai_quota(
        &self,
        request: Request<pb::SetAiQuotaRequest>,
    ) -> Result<Response<pb::SetAiQuotaResponse>, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new(DOMAIN);
        v.check_id("user_id", &req.user_id);
        if let (Some(tokens), Some(def)) = (req.daily_tokens, settings::find(DEFAULT_DAILY_AI_TOKEN_QUOTA))
            && let Err(e) = def.check(&SettingValue::Int(tokens))
        {
            v.add("daily_tokens", e);
        }
        v.into_result()?;
        let now = self.now();
        let row = req.daily_tokens.map(|daily_tokens| AiQuotaRow {
            user_id: req.user_id.clone(),
            daily_tokens,
            updated_at: now,
            updated_by: admin.clone(),
        });
        let audit = |before: Option<i64>| {
            let details = json!({ "from": before, "to": req.daily_tokens });
            AuditRecord::new("ai_quota.changed", &admin, &req.user_id, details, now)
        };
        if !self.store.put_ai_quota(&req.user_id, row.as_ref(), audit).await? {
            return Err(DOMAIN.not_found("user", &req.user_id));
        }
        self.shared.invalidate(&format!("{}{}", tt_common::cache::shared::AI_LIMITS, req.user_id)).await;
        let quota = self.ai_quota(&req.user_id, row.as_ref()).await?;
        Ok(Response::new(pb::SetAiQuotaResponse { quota: Some(quota) }))
    }
}

fn account_to_proto(a: &ServiceAccountRow) -> pb::ServiceAccount {
    pb::ServiceAccount {
        id: a.id.clone(),
        name: a.name.clone(),
        description: a.description.clone(),
        create_time: Some(to_timestamp(a.created_at)),
        created_by: a.created_by.clone(),
    }
}
