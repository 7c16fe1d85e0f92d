//! End to end: the all-in-one server started in this process, the identity journey walked
//! through the generated clients, as an internal service or a developer would.

use tonic::{Code, transport::Channel};
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne};
use tt_proto::identity::v1::{
    self as pb, account_service_client::AccountServiceClient, admin_service_client::AdminServiceClient,
    auth_service_client::AuthServiceClient, settings_service_client::SettingsServiceClient,
};
use tt_testkit::{AuthedChannel, Bearer};

fn with(ch: &Channel, token: &str) -> AuthedChannel {
    tonic::service::interceptor::InterceptedService::new(ch.clone(), Bearer::new(token))
}

#[tokio::test]
async fn the_identity_journey() -> anyhow::Result<()> {
    let server = AllInOne::start().await?;
    let ch = server.channel().await?;
    let mut auth = AuthServiceClient::new(ch.clone());

    // Sign up and look at yourself.
    let reg = auth
        .register(pb::RegisterRequest {
            email: "Grace@Example.org".into(),
            password: "cobol forever and ever".into(),
            display_name: "Grace".into(),
        })
        .await?
        .into_inner();
    let user = reg.user.expect("user");
    let tokens = reg.tokens.expect("tokens");
    let mut me = AccountServiceClient::new(with(&ch, &tokens.access_token));
    assert_eq!(
        me.get_me(pb::GetMeRequest {}).await?.into_inner().user.expect("user").email,
        "grace@example.org"
    );

    // Rename yourself.
    let renamed = me
        .update_me(pb::UpdateMeRequest {
            user: Some(pb::User { display_name: "Rear Admiral Hopper".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
        })
        .await?
        .into_inner()
        .user
        .expect("user");
    assert_eq!(renamed.display_name, "Rear Admiral Hopper");

    // Sign in elsewhere, refresh there, see both sessions, end the other one.
    let laptop = auth
        .login(pb::LoginRequest {
            email: "grace@example.org".into(),
            password: "cobol forever and ever".into(),
        })
        .await?
        .into_inner()
        .tokens
        .expect("tokens");
    let rotated = auth
        .refresh_token(pb::RefreshTokenRequest { refresh_token: laptop.refresh_token.clone() })
        .await?
        .into_inner()
        .tokens
        .expect("tokens");
    let sessions = me.list_sessions(pb::ListSessionsRequest::default()).await?.into_inner().sessions;
    assert_eq!(sessions.len(), 2);
    me.revoke_session(pb::RevokeSessionRequest { session_id: laptop.session_id.clone() }).await?;
    let err = auth
        .refresh_token(pb::RefreshTokenRequest { refresh_token: rotated.refresh_token })
        .await
        .expect_err("revoked session");
    assert_eq!(err.code(), Code::Unauthenticated);

    // The admin sees the new user and the security events.
    let admin_tokens = auth
        .login(pb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await?
        .into_inner()
        .tokens
        .expect("tokens");
    let mut admin = AdminServiceClient::new(with(&ch, &admin_tokens.access_token));
    let found = admin
        .list_users(pb::ListUsersRequest { email_prefix: "grace".into(), ..Default::default() })
        .await?
        .into_inner()
        .users;
    assert_eq!(found.iter().map(|u| u.id.clone()).collect::<Vec<_>>(), vec![user.id.clone()]);
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            subject: user.id.clone(),
            page_size: 50,
            ..Default::default()
        })
        .await?
        .into_inner()
        .events;
    assert!(events.iter().any(|e| e.r#type == "user.registered"));

    // A service account reads settings with its own token.
    let account = admin
        .create_service_account(pb::CreateServiceAccountRequest {
            name: "e2e-probe".into(),
            description: String::new(),
        })
        .await?
        .into_inner();
    let service_token = auth
        .issue_service_token(pb::IssueServiceTokenRequest {
            client_id: account.service_account.expect("account").id,
            client_secret: account.client_secret,
        })
        .await?
        .into_inner()
        .access_token;
    let settings = SettingsServiceClient::new(with(&ch, &service_token))
        .list_settings(pb::ListSettingsRequest {})
        .await?;
    assert!(settings.into_inner().settings.iter().any(|s| s.key == "signup_open"));

    // Change the password: old tokens die at once, the new ones work.
    let fresh = me
        .change_password(pb::ChangePasswordRequest {
            current_password: "cobol forever and ever".into(),
            new_password: "nanoseconds are 11.8 inches".into(),
        })
        .await?
        .into_inner()
        .tokens
        .expect("tokens");
    assert_eq!(me.get_me(pb::GetMeRequest {}).await.expect_err("old token").code(), Code::Unauthenticated);
    let mut me = AccountServiceClient::new(with(&ch, &fresh.access_token));
    me.get_me(pb::GetMeRequest {}).await?;

    // Log out everywhere.
    me.logout_all(pb::LogoutAllRequest {}).await?;
    assert_eq!(me.get_me(pb::GetMeRequest {}).await.expect_err("logged out").code(), Code::Unauthenticated);

    server.stop().await
}

#[tokio::test]
async fn a_restart_keeps_accounts_keys_and_the_admin() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let first = AllInOne::start_in(dir.path().to_path_buf(), |_| {}).await?;
    let mut auth = AuthServiceClient::new(first.channel().await?);
    let tokens = auth
        .register(pb::RegisterRequest {
            email: "kept@example.org".into(),
            password: "persistence matters".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tokens
        .expect("tokens");
    first.stop().await?;

    let second = AllInOne::start_in(dir.path().to_path_buf(), |_| {}).await?;
    let ch = second.channel().await?;
    // The access token signed before the restart still verifies: the key was kept.
    AccountServiceClient::new(with(&ch, &tokens.access_token)).get_me(pb::GetMeRequest {}).await?;
    AuthServiceClient::new(ch)
        .login(pb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await?;
    second.stop().await
}
