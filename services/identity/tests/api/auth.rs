//! Register, login, brute-force protection, refresh and logout.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use tt_proto::identity::v1 as pb;

use crate::support::{ADMIN_EMAIL, PASSWORD, Stack, fields};

#[tokio::test]
async fn register_then_get_me_with_the_token() {
    let s = Stack::start().await;
    let (user, tokens) = s.register("  Ada@Example.COM ").await;
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.display_name, "ada");
    assert_eq!(user.roles, vec![pb::Role::Learner as i32]);
    assert_eq!(tokens.token_type, "Bearer");
    let me = s.account(&tokens.access_token).get_me(pb::GetMeRequest {}).await.expect("get me").into_inner();
    assert_eq!(me.user.expect("user").id, user.id);
}

#[tokio::test]
async fn register_reports_every_bad_field_and_creates_nothing() {
    let s = Stack::start().await;
    let err = s
        .auth()
        .register(pb::RegisterRequest {
            email: "nope".into(),
            password: "short".into(),
            display_name: "\u{7}".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["display_name", "email", "password"]);
    let token = s.admin_token().await;
    let users = s.admin(&token).list_users(pb::ListUsersRequest::default()).await.expect("list").into_inner();
    assert_eq!(users.users.len(), 1, "only the bootstrap admin exists");
}

#[tokio::test]
async fn passwords_follow_the_policy_and_are_never_truncated() {
    let s = Stack::start().await;
    let common = s
        .auth()
        .register(pb::RegisterRequest {
            email: "c@example.com".into(),
            password: "Password123".into(),
            ..Default::default()
        })
        .await
        .expect_err("common password");
    assert_eq!(fields(&common), ["password"]);
    let long: String = "ünïcødé-🙂".repeat(12); // 120 characters, far more bytes
    s.auth()
        .register(pb::RegisterRequest {
            email: "u@example.com".into(),
            password: long.clone(),
            ..Default::default()
        })
        .await
        .expect("unicode password accepted");
    let prefix: String = long.chars().take(72).collect();
    assert_eq!(s.login("u@example.com", &prefix).await.expect_err("prefix").code(), Code::Unauthenticated);
    s.login("u@example.com", &long).await.expect("full password");
    let too_long = "x".repeat(129);
    let err = s
        .auth()
        .register(pb::RegisterRequest {
            email: "l@example.com".into(),
            password: too_long,
            ..Default::default()
        })
        .await
        .expect_err("too long");
    assert_eq!(fields(&err), ["password"]);
}

#[tokio::test]
async fn trivial_passwords_are_refused_with_the_reason() {
    use tonic_types::StatusExt;
    let s = Stack::start().await;
    for (password, why) in [
        ("aaaaaaaa", "repetitive"),
        ("abcdefgh", "sequence"),
        ("        ", "spaces"),
        ("\t\t\t\t\t\t\t\t", "spaces"),
    ] {
        let err = s
            .auth()
            .register(pb::RegisterRequest {
                email: "t@example.com".into(),
                password: password.into(),
                ..Default::default()
            })
            .await
            .expect_err(password);
        assert_eq!(fields(&err), ["password"], "{password:?}");
        let described = err.get_details_bad_request().map(|b| b.field_violations[0].description.clone());
        assert!(described.as_deref().is_some_and(|d| d.contains(why)), "{password:?}: {described:?}");
    }
    assert_eq!(
        s.login("t@example.com", "aaaaaaaa").await.expect_err("no account").code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn duplicate_email_is_already_exists() {
    let s = Stack::start().await;
    s.register("dup@example.com").await;
    let err = s
        .auth()
        .register(pb::RegisterRequest {
            email: "DUP@example.com".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect_err("duplicate");
    assert_eq!(err.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let s = Stack::start().await;
    s.register("known@example.com").await;
    let a = s.login("known@example.com", "wrong password!").await.expect_err("wrong");
    let b = s.login("ghost@example.com", "wrong password!").await.expect_err("unknown");
    assert_eq!((a.code(), a.message()), (b.code(), b.message()));
    assert_eq!(a.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn ten_failures_lock_the_identifier_even_for_the_right_password() {
    let s = Stack::start().await;
    let (user, _) = s.register("lock@example.com").await;
    for _ in 0..10 {
        assert_eq!(
            s.login("lock@example.com", "wrong password!").await.expect_err("wrong").code(),
            Code::Unauthenticated
        );
    }
    let locked = s.login("LOCK@example.com", PASSWORD).await.expect_err("locked");
    assert_eq!(locked.code(), Code::ResourceExhausted);
    let retry = locked.get_details_retry_info().and_then(|r| r.retry_delay).expect("retry info");
    assert!(retry > Duration::from_secs(60) && retry <= Duration::from_secs(15 * 60), "{retry:?}");
    // Identifiers without an account are locked the same way.
    for _ in 0..10 {
        let _ = s.login("nobody@example.com", "wrong password!").await;
    }
    assert_eq!(
        s.login("nobody@example.com", "x-whatever").await.expect_err("locked").code(),
        Code::ResourceExhausted
    );
    let audit = s.audit_types("lock@example.com").await;
    assert!(audit.contains(&"login.locked_out".to_owned()), "{audit:?}");
    assert!(audit.iter().filter(|t| *t == "login.failed").count() >= 10);
    let _ = user;
}

#[tokio::test]
async fn fifty_parallel_wrong_attempts_check_at_most_ten_passwords() {
    let s = Stack::start().await;
    s.register("race@example.com").await;
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut auth = s.auth();
        calls.push(tokio::spawn(async move {
            auth.login(pb::LoginRequest {
                email: "race@example.com".into(),
                password: "wrong password!".into(),
            })
            .await
            .expect_err("never succeeds")
            .code()
        }));
    }
    let mut checked = 0;
    for c in calls {
        match c.await.expect("task") {
            Code::Unauthenticated => checked += 1,
            Code::ResourceExhausted => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(checked <= 10, "{checked} passwords were checked");
    assert_eq!(
        s.login("race@example.com", PASSWORD).await.expect_err("locked").code(),
        Code::ResourceExhausted
    );
}

#[tokio::test]
async fn a_burst_of_right_passwords_is_never_blamed_on_failures() {
    let s = Stack::start().await;
    s.register("burst@example.com").await;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut auth = s.auth();
        calls.push(tokio::spawn(async move {
            auth.login(pb::LoginRequest { email: "burst@example.com".into(), password: PASSWORD.into() })
                .await
        }));
    }
    for c in calls {
        if let Err(status) = c.await.expect("task") {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            assert_eq!(
                tt_common::error::reason(&status).as_deref(),
                Some("TOO_MANY_ATTEMPTS_IN_PROGRESS"),
                "no attempt failed: {status:?}"
            );
        }
    }
    s.login("burst@example.com", PASSWORD).await.expect("not locked afterwards");
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_never_end_the_session() {
    let s = Stack::start().await;
    let (_, tokens) = s.register("refresh-race@example.com").await;
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut auth = s.auth();
        let token = tokens.refresh_token.clone();
        calls.push(tokio::spawn(async move {
            auth.refresh_token(pb::RefreshTokenRequest { refresh_token: token }).await
        }));
    }
    let mut won = Vec::new();
    for c in calls {
        match c.await.expect("task") {
            Ok(r) => won.push(r.into_inner().tokens.expect("tokens")),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::Aborted,
                    "a lost race is ABORTED, not sign in again: {status:?}"
                )
            }
        }
    }
    assert!(!won.is_empty(), "one refresh won");
    // The session lives on: the newest token refreshes again.
    let mut newest = None;
    for t in &won {
        if let Ok(next) = s.refresh(&t.refresh_token).await {
            newest = Some(next);
            break;
        }
    }
    assert!(newest.is_some(), "the session still refreshes");
}

#[tokio::test]
async fn a_client_is_rate_limited_across_identifiers() {
    let s = Stack::builder().signin_rate(3).start().await;
    for i in 0..3 {
        let _ = s.login(&format!("p{i}@example.com"), "wrong password!").await;
    }
    let err = s.login("p9@example.com", "wrong password!").await.expect_err("limited");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(tt_common::error::reason(&err).as_deref(), Some("RATE_LIMITED"));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_session() {
    let s = Stack::start().await;
    let (_, first) = s.register("rot@example.com").await;
    let second = s.refresh(&first.refresh_token).await.expect("rotate");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.session_id, first.session_id);
    // A concurrent retry of the token just rotated away is tolerated within the grace.
    let third = s.refresh(&first.refresh_token).await.expect("grace");
    // Much later, presenting an old token is theft: the whole family dies.
    s.clock.advance(Duration::from_secs(11));
    assert_eq!(s.refresh(&first.refresh_token).await.expect_err("reuse").code(), Code::Unauthenticated);
    assert_eq!(
        s.refresh(&third.refresh_token).await.expect_err("family revoked").code(),
        Code::Unauthenticated
    );
    let audit = s.audit_types(&first.session_id).await;
    assert!(audit.contains(&"refresh_token.reused".to_owned()), "{audit:?}");
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let s = Stack::start().await;
    let (_, t) = s.register("idle@example.com").await;
    s.clock.advance(Duration::from_secs(8 * 86_400));
    assert_eq!(s.refresh(&t.refresh_token).await.expect_err("idle").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn logout_ends_the_session_and_is_idempotent() {
    let s = Stack::start().await;
    let (_, t) = s.register("out@example.com").await;
    s.auth().logout(pb::LogoutRequest { refresh_token: t.refresh_token.clone() }).await.expect("logout");
    s.auth().logout(pb::LogoutRequest { refresh_token: t.refresh_token.clone() }).await.expect("again");
    assert_eq!(s.refresh(&t.refresh_token).await.expect_err("ended").code(), Code::Unauthenticated);
    let empty = s.auth().logout(pb::LogoutRequest::default()).await.expect_err("empty");
    assert_eq!(fields(&empty), ["refresh_token"]);
}

#[tokio::test]
async fn signup_can_be_closed_by_a_setting() {
    let s = Stack::start().await;
    let admin = s.admin_token().await;
    s.settings(&admin)
        .update_setting(pb::UpdateSettingRequest {
            setting: Some(pb::Setting {
                key: "signup_open".into(),
                value: Some(pb::setting::Value::BoolValue(false)),
                ..Default::default()
            }),
        })
        .await
        .expect("close signup");
    let err = s
        .auth()
        .register(pb::RegisterRequest {
            email: "late@example.com".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .expect_err("closed");
    assert_eq!(err.code(), Code::FailedPrecondition);
    s.login(ADMIN_EMAIL, crate::support::ADMIN_PASSWORD).await.expect("existing users still sign in");
    assert!(s.audit_types("signup_open").await.contains(&"setting.changed".to_owned()));
}

#[tokio::test]
async fn old_hashes_are_upgraded_at_login() {
    let s = Stack::start().await;
    let (user, _) = s.register("old@example.com").await;
    let old = tt_identity::hashing::Hasher::hash_with(PASSWORD, 4096, 3).expect("old hash");
    s.identity.store.set_password_hash(&user.id, &old).await.expect("store old hash");
    s.login("old@example.com", PASSWORD).await.expect("login with old hash");
    let row = s.identity.store.user_by_id(&user.id).await.expect("load").expect("user");
    assert!(!tt_identity::hashing::Hasher::needs_upgrade(&row.password_hash), "{}", row.password_hash);
}
