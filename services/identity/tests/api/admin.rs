//! Administration: users, roles, suspension, deletion, service accounts, settings, audit.

use tonic::Code;
use tt_proto::identity::v1 as pb;

use crate::support::{PASSWORD, Stack, fields};

#[tokio::test]
async fn list_users_filters_and_paginates() {
    let s = Stack::start().await;
    for name in ["amy", "alan", "bob"] {
        s.register(&format!("{name}@example.com")).await;
    }
    let token = s.admin_token().await;
    let mut admin = s.admin(&token);
    let page = |prefix: &str, size: i32, page_token: String| pb::ListUsersRequest {
        page_size: size,
        page_token,
        email_prefix: prefix.into(),
        ..Default::default()
    };
    let a1 = admin.list_users(page("A", 1, String::new())).await.expect("a1").into_inner();
    assert_eq!(a1.users.len(), 1);
    let a2 = admin.list_users(page("A", 1, a1.next_page_token.clone())).await.expect("a2").into_inner();
    let mut emails: Vec<_> = a1.users.iter().chain(&a2.users).map(|u| u.email.clone()).collect();
    emails.sort();
    assert_eq!(emails, ["alan@example.com", "amy@example.com"]);
    assert!(a2.next_page_token.is_empty(), "the last page has no next token");
    // The prefix is normalised like emails are, so "a" continues the "A" listing.
    let again = admin.list_users(page("a", 1, a1.next_page_token.clone())).await.expect("again").into_inner();
    assert_eq!(again.users, a2.users);
    // A token from one query is refused by another.
    let err = admin.list_users(page("b", 1, a1.next_page_token)).await.expect_err("other query");
    assert_eq!(fields(&err), ["page_token"]);
    let admins = admin
        .list_users(pb::ListUsersRequest { role: pb::Role::Admin as i32, ..Default::default() })
        .await
        .expect("admins")
        .into_inner();
    assert_eq!(admins.users.len(), 1);
    let bad = admin
        .list_users(pb::ListUsersRequest {
            role: 99,
            status: 42,
            page_size: -5,
            page_token: "forged.token".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad filters");
    assert_eq!(fields(&bad), ["page_size", "page_token", "role", "status"]);
}

#[tokio::test]
async fn suspension_blocks_login_and_existing_tokens() {
    let s = Stack::start().await;
    let (user, t) = s.register("sus@example.com").await;
    let admin_token = s.admin_token().await;
    let mut admin = s.admin(&admin_token);
    let active =
        admin.get_user(pb::GetUserRequest { user_id: user.id.clone() }).await.expect("get").into_inner();
    assert_eq!(active.user.expect("user").status, pb::UserStatus::Active as i32);
    admin
        .suspend_user(pb::SuspendUserRequest { user_id: user.id.clone(), reason: "abuse".into() })
        .await
        .expect("suspend");
    assert_eq!(
        s.account(&t.access_token).get_me(pb::GetMeRequest {}).await.expect_err("token").code(),
        Code::Unauthenticated
    );
    assert_eq!(s.login("sus@example.com", PASSWORD).await.expect_err("login").code(), Code::PermissionDenied);
    assert_eq!(s.refresh(&t.refresh_token).await.expect_err("refresh").code(), Code::Unauthenticated);
    let got =
        admin.get_user(pb::GetUserRequest { user_id: user.id.clone() }).await.expect("get").into_inner();
    assert_eq!(got.user.expect("user").status, pb::UserStatus::Suspended as i32);
    admin.reinstate_user(pb::ReinstateUserRequest { user_id: user.id.clone() }).await.expect("reinstate");
    s.login("sus@example.com", PASSWORD).await.expect("login again");
    let audit = s.audit_types(&user.id).await;
    assert!(audit.contains(&"user.suspended".to_owned()) && audit.contains(&"user.reinstated".to_owned()));
}

#[tokio::test]
async fn roles_change_and_admins_cannot_lock_themselves_out() {
    let s = Stack::start().await;
    let (user, _) = s.register("editor@example.com").await;
    let token = s.admin_token().await;
    let mut admin = s.admin(&token);
    let updated = admin
        .set_user_roles(pb::SetUserRolesRequest {
            user_id: user.id.clone(),
            roles: vec![pb::Role::ContentEditor as i32],
        })
        .await
        .expect("roles")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(updated.roles, vec![pb::Role::Learner as i32, pb::Role::ContentEditor as i32]);
    let bad = admin
        .set_user_roles(pb::SetUserRolesRequest {
            user_id: "not-an-id".into(),
            roles: vec![pb::Role::Service as i32, 77],
        })
        .await
        .expect_err("bad");
    assert_eq!(fields(&bad), ["roles[0]", "roles[1]", "user_id"]);
    let me =
        s.account(&token).get_me(pb::GetMeRequest {}).await.expect("me").into_inner().user.expect("user");
    let err = admin
        .set_user_roles(pb::SetUserRolesRequest { user_id: me.id.clone(), roles: vec![] })
        .await
        .expect_err("self demotion");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        admin
            .suspend_user(pb::SuspendUserRequest { user_id: me.id.clone(), ..Default::default() })
            .await
            .expect_err("self")
            .code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        admin.delete_user(pb::DeleteUserRequest { user_id: me.id }).await.expect_err("self").code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn deleted_users_are_gone_with_their_sessions() {
    let s = Stack::start().await;
    let (user, t) = s.register("gone@example.com").await;
    let token = s.admin_token().await;
    let mut admin = s.admin(&token);
    admin.delete_user(pb::DeleteUserRequest { user_id: user.id.clone() }).await.expect("delete");
    assert_eq!(
        admin.get_user(pb::GetUserRequest { user_id: user.id.clone() }).await.expect_err("gone").code(),
        Code::NotFound
    );
    assert_eq!(
        admin.delete_user(pb::DeleteUserRequest { user_id: user.id }).await.expect_err("again").code(),
        Code::NotFound
    );
    assert_eq!(
        s.account(&t.access_token).get_me(pb::GetMeRequest {}).await.expect_err("token").code(),
        Code::Unauthenticated
    );
    assert_eq!(s.refresh(&t.refresh_token).await.expect_err("refresh").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn service_accounts_get_service_tokens_until_deleted() {
    let s = Stack::start().await;
    let token = s.admin_token().await;
    let mut admin = s.admin(&token);
    let created = admin
        .create_service_account(pb::CreateServiceAccountRequest {
            name: "profiles".into(),
            description: "profiles svc".into(),
        })
        .await
        .expect("create")
        .into_inner();
    let account = created.service_account.expect("account");
    let dup = admin
        .create_service_account(pb::CreateServiceAccountRequest {
            name: "profiles".into(),
            ..Default::default()
        })
        .await
        .expect_err("dup");
    assert_eq!(dup.code(), Code::AlreadyExists);
    let bad = admin
        .create_service_account(pb::CreateServiceAccountRequest {
            name: "No Spaces".into(),
            ..Default::default()
        })
        .await
        .expect_err("name");
    assert_eq!(fields(&bad), ["name"]);

    let issue = |secret: String| {
        let mut auth = s.auth();
        let id = account.id.clone();
        async move {
            auth.issue_service_token(pb::IssueServiceTokenRequest { client_id: id, client_secret: secret })
                .await
        }
    };
    assert_eq!(issue("ttsa_wrong".into()).await.expect_err("wrong").code(), Code::Unauthenticated);
    let service = issue(created.client_secret.clone()).await.expect("issue").into_inner().access_token;
    let listed =
        s.settings(&service).list_settings(pb::ListSettingsRequest {}).await.expect("service reads settings");
    assert!(listed.into_inner().settings.iter().any(|x| x.key == "default_daily_ai_token_quota"));
    assert_eq!(
        s.account(&service).get_me(pb::GetMeRequest {}).await.expect_err("not a user").code(),
        Code::PermissionDenied
    );
    let page = admin
        .list_service_accounts(pb::ListServiceAccountsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.service_accounts.len(), 1);
    admin
        .delete_service_account(pb::DeleteServiceAccountRequest { service_account_id: account.id.clone() })
        .await
        .expect("delete");
    let err = s.settings(&service).list_settings(pb::ListSettingsRequest {}).await.expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(issue(created.client_secret).await.expect_err("deleted").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn settings_are_typed_and_bounded() {
    let s = Stack::start().await;
    let token = s.admin_token().await;
    let mut settings = s.settings(&token);
    let set = |key: &str, value: pb::setting::Value| pb::UpdateSettingRequest {
        setting: Some(pb::Setting { key: key.into(), value: Some(value), ..Default::default() }),
    };
    let err = settings
        .update_setting(set("default_daily_ai_token_quota", pb::setting::Value::IntValue(-1)))
        .await
        .expect_err("negative");
    assert_eq!(fields(&err), ["setting.value"]);
    let err =
        settings.update_setting(set("signup_open", pb::setting::Value::IntValue(1))).await.expect_err("type");
    assert_eq!(fields(&err), ["setting.value"]);
    let err =
        settings.update_setting(set("nope", pb::setting::Value::BoolValue(true))).await.expect_err("unknown");
    assert_eq!(fields(&err), ["setting.key"]);
    let ok = settings
        .update_setting(set("default_daily_ai_token_quota", pb::setting::Value::IntValue(5000)))
        .await
        .expect("update")
        .into_inner()
        .setting
        .expect("setting");
    assert_eq!(ok.value, Some(pb::setting::Value::IntValue(5000)));
    let got = settings
        .get_setting(pb::GetSettingRequest { key: "default_daily_ai_token_quota".into() })
        .await
        .expect("get")
        .into_inner()
        .setting
        .expect("setting");
    assert_eq!(got.value, Some(pb::setting::Value::IntValue(5000)));
    assert!(!got.updated_by.is_empty());
    let (_, learner) = s.register("l@example.com").await;
    let err = s
        .settings(&learner.access_token)
        .list_settings(pb::ListSettingsRequest {})
        .await
        .expect_err("learner");
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_audit_log_is_admin_only_and_paginated() {
    let s = Stack::start().await;
    let (_, t) = s.register("aud@example.com").await;
    let err = s
        .admin(&t.access_token)
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .expect_err("learner");
    assert_eq!(err.code(), Code::PermissionDenied);
    let token = s.admin_token().await;
    let mut admin = s.admin(&token);
    let first = admin
        .list_audit_events(pb::ListAuditEventsRequest { page_size: 2, ..Default::default() })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(first.events.len(), 2);
    let next = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 2,
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .expect("page 2")
        .into_inner();
    assert!(!next.events.is_empty());
    assert!(next.events[0].id < first.events[1].id, "newest first");
}

#[tokio::test]
async fn a_learners_own_ai_quota_is_set_read_and_cleared_by_admins_only() {
    let s = Stack::start().await;
    let token = s.admin_token().await;
    let mut admin = s.admin(&token);
    let (user, learner) = s.register("quota@example.com").await;
    let get = |user_id: &str| pb::GetAiQuotaRequest { user_id: user_id.into() };
    let set = |tokens: Option<i64>| pb::SetAiQuotaRequest { user_id: user.id.clone(), daily_tokens: tokens };
    let default =
        admin.get_ai_quota(get(&user.id)).await.expect("default").into_inner().quota.expect("quota");
    assert_eq!((default.daily_tokens, default.overridden), (100_000, false), "the default setting applies");

    let own = admin.set_ai_quota(set(Some(2_500))).await.expect("set").into_inner().quota.expect("quota");
    assert_eq!((own.daily_tokens, own.overridden), (2_500, true));
    assert!(!own.updated_by.is_empty() && own.update_time.is_some());
    let read = admin.get_ai_quota(get(&user.id)).await.expect("read").into_inner().quota.expect("quota");
    assert_eq!(read, own);

    // Out of the setting's bounds, for a malformed id, for nobody: refused, nothing changed.
    let err = admin.set_ai_quota(set(Some(-1))).await.expect_err("negative");
    assert_eq!(fields(&err), ["daily_tokens"]);
    let err = admin.set_ai_quota(set(Some(10_000_001))).await.expect_err("too big");
    assert_eq!(fields(&err), ["daily_tokens"]);
    let err = admin
        .set_ai_quota(pb::SetAiQuotaRequest { user_id: "not an id".into(), daily_tokens: Some(5) })
        .await
        .expect_err("bad id");
    assert_eq!(fields(&err), ["user_id"]);
    let nobody = tt_common::new_id();
    let err = admin
        .set_ai_quota(pb::SetAiQuotaRequest { user_id: nobody.clone(), daily_tokens: Some(5) })
        .await
        .expect_err("nobody");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(admin.get_ai_quota(get(&nobody)).await.expect_err("nobody").code(), Code::NotFound);
    let read = admin.get_ai_quota(get(&user.id)).await.expect("read").into_inner().quota.expect("quota");
    assert_eq!(read.daily_tokens, 2_500);

    // Learners may not read or set it; clearing goes back to the default, and is audited.
    let err = s.admin(&learner.access_token).get_ai_quota(get(&user.id)).await.expect_err("learner");
    assert_eq!(err.code(), Code::PermissionDenied);
    let cleared = admin.set_ai_quota(set(None)).await.expect("clear").into_inner().quota.expect("quota");
    assert_eq!((cleared.daily_tokens, cleared.overridden), (100_000, false));
    let audit = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            r#type: "ai_quota.changed".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(audit.events.len(), 2, "set and cleared");
    let mut details: Vec<serde_json::Value> =
        audit.events.iter().map(|e| serde_json::from_str(&e.details_json).expect("details")).collect();
    details.sort_by_key(|d| d["from"].is_null());
    assert_eq!(
        details,
        [serde_json::json!({ "from": 2_500, "to": null }), serde_json::json!({ "from": null, "to": 2_500 })],
        "each change records what it replaced"
    );
}
