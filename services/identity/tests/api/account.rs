//! The signed-in user's own account: profile, password, sessions.

use tonic::Code;
use tt_proto::identity::v1 as pb;

use crate::support::{PASSWORD, Stack, fields};

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

#[tokio::test]
async fn update_me_honours_the_mask_and_the_etag() {
    let s = Stack::start().await;
    let (user, t) = s.register("me@example.com").await;
    let mut account = s.account(&t.access_token);
    // Read first, so a cached view exists that the update must invalidate.
    let before = account.get_me(pb::GetMeRequest {}).await.expect("me").into_inner().user.expect("user");
    assert_eq!(before.display_name, "me");
    let patch =
        pb::User { display_name: "Grace".into(), email: "evil@example.com".into(), ..Default::default() };
    let updated = account
        .update_me(pb::UpdateMeRequest { user: Some(patch.clone()), update_mask: mask(&["display_name"]) })
        .await
        .expect("update")
        .into_inner()
        .user
        .expect("user");
    assert_eq!((updated.display_name.as_str(), updated.email.as_str()), ("Grace", "me@example.com"));
    assert_ne!(updated.etag, user.etag);

    let bad = account
        .update_me(pb::UpdateMeRequest {
            user: Some(patch.clone()),
            update_mask: mask(&["email", "nickname"]),
        })
        .await
        .expect_err("immutable and unknown paths");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), ["update_mask", "update_mask"]);
    let empty = account
        .update_me(pb::UpdateMeRequest { user: Some(patch), update_mask: None })
        .await
        .expect_err("no mask");
    assert_eq!(fields(&empty), ["update_mask"]);

    let stale = pb::User { display_name: "Hopper".into(), etag: user.etag, ..Default::default() };
    let err = account
        .update_me(pb::UpdateMeRequest { user: Some(stale), update_mask: mask(&["display_name"]) })
        .await
        .expect_err("stale etag");
    assert_eq!(err.code(), Code::Aborted);
    let me = account.get_me(pb::GetMeRequest {}).await.expect("me").into_inner().user.expect("user");
    assert_eq!(me.display_name, "Grace", "a refused update changes nothing");
}

#[tokio::test]
async fn change_password_ends_every_session_and_returns_new_tokens() {
    let s = Stack::start().await;
    let (_, t) = s.register("pw@example.com").await;
    let other = s.login("pw@example.com", PASSWORD).await.expect("second device").tokens.expect("tokens");
    let mut account = s.account(&t.access_token);
    let wrong = account
        .change_password(pb::ChangePasswordRequest {
            current_password: "not the password".into(),
            new_password: "a brand new passphrase".into(),
        })
        .await
        .expect_err("wrong current");
    assert_eq!(fields(&wrong), ["current_password"]);
    let weak = account
        .change_password(pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "qwertyuiop".into(),
        })
        .await
        .expect_err("common");
    assert_eq!(fields(&weak), ["new_password"]);

    let fresh = account
        .change_password(pb::ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "a brand new passphrase".into(),
        })
        .await
        .expect("change")
        .into_inner()
        .tokens
        .expect("tokens");
    for old in [&t.access_token, &other.access_token] {
        let err = s.account(old).get_me(pb::GetMeRequest {}).await.expect_err("old access token");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    for old in [t.refresh_token, other.refresh_token] {
        assert_eq!(s.refresh(&old).await.expect_err("old refresh").code(), Code::Unauthenticated);
    }
    s.account(&fresh.access_token).get_me(pb::GetMeRequest {}).await.expect("new token works");
    assert_eq!(
        s.login("pw@example.com", PASSWORD).await.expect_err("old password").code(),
        Code::Unauthenticated
    );
    s.login("pw@example.com", "a brand new passphrase").await.expect("new password");
}

#[tokio::test]
async fn sessions_are_listed_paginated_and_revocable_by_their_owner_only() {
    let s = Stack::start().await;
    let (_, t) = s.register("dev@example.com").await;
    for _ in 0..2 {
        s.login("dev@example.com", PASSWORD).await.expect("login");
    }
    let mut account = s.account(&t.access_token);
    let first = account
        .list_sessions(pb::ListSessionsRequest { page_size: 2, page_token: String::new() })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(first.sessions.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = account
        .list_sessions(pb::ListSessionsRequest { page_size: 2, page_token: first.next_page_token.clone() })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.sessions.len(), 1);
    assert!(second.next_page_token.is_empty());
    let all: Vec<_> = first.sessions.iter().chain(&second.sessions).collect();
    assert_eq!(all.iter().filter(|x| x.current).count(), 1);
    assert!(all.iter().any(|x| x.current && x.id == t.session_id));

    let forged = account
        .list_sessions(pb::ListSessionsRequest {
            page_size: 2,
            page_token: format!("{}x", first.next_page_token),
        })
        .await
        .expect_err("forged token");
    assert_eq!(fields(&forged), ["page_token"]);
    let negative = account
        .list_sessions(pb::ListSessionsRequest { page_size: -1, ..Default::default() })
        .await
        .expect_err("negative");
    assert_eq!(fields(&negative), ["page_size"]);

    let (_, stranger) = s.register("stranger@example.com").await;
    let err = s
        .account(&stranger.access_token)
        .revoke_session(pb::RevokeSessionRequest { session_id: t.session_id.clone() })
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), Code::NotFound);
    account.revoke_session(pb::RevokeSessionRequest { session_id: t.session_id.clone() }).await.expect("own");
    assert_eq!(s.refresh(&t.refresh_token).await.expect_err("revoked").code(), Code::Unauthenticated);
}

#[tokio::test]
async fn logout_all_stops_outstanding_access_tokens() {
    let s = Stack::start().await;
    let (_, t) = s.register("all@example.com").await;
    let mut account = s.account(&t.access_token);
    account.get_me(pb::GetMeRequest {}).await.expect("works before");
    account.logout_all(pb::LogoutAllRequest {}).await.expect("logout all");
    assert_eq!(account.get_me(pb::GetMeRequest {}).await.expect_err("revoked").code(), Code::Unauthenticated);
    assert_eq!(s.refresh(&t.refresh_token).await.expect_err("ended").code(), Code::Unauthenticated);
    s.login("all@example.com", PASSWORD).await.expect("can sign in again");
}
