//! Access tokens: what verifiers refuse, and key rotation.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;
use tt_proto::identity::v1 as pb;

use crate::support::Stack;

async fn get_me_code(s: &Stack, token: &str) -> Code {
    match s.account(token).get_me(pb::GetMeRequest {}).await {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let s = Stack::start().await;
    let (_, t) = s.register("tok@example.com").await;
    assert_eq!(get_me_code(&s, &t.access_token).await, Code::Ok);
    let parts: Vec<&str> = t.access_token.split('.').collect();

    // alg: none, with the real claims and no signature.
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#), parts[1]);
    // The real header and signature over altered claims.
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).expect("claims")).expect("utf8");
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims.replace("\"learner\"", "\"admin\"")), parts[2]);
    // Same claims claiming to be a refresh token.
    let wrong_type =
        format!("{}.{}.{}", parts[0], b64(&claims.replace("\"access\"", "\"refresh\"")), parts[2]);
    // A token from a key identity never published.
    let foreign = foreign_token(&claims);
    for (what, token) in [
        ("alg none", none),
        ("tampered", tampered),
        ("wrong type", wrong_type),
        ("foreign key", foreign),
        ("refresh token as bearer", t.refresh_token.clone()),
        ("garbage", "a.b.c".into()),
    ] {
        assert_eq!(get_me_code(&s, &token).await, Code::Unauthenticated, "{what}");
    }

    // Expiry: 15 minutes plus at most 30 s of leeway.
    s.clock.advance(Duration::from_secs(15 * 60 + 10));
    assert_eq!(get_me_code(&s, &t.access_token).await, Code::Ok, "within leeway");
    s.clock.advance(Duration::from_secs(30));
    assert_eq!(get_me_code(&s, &t.access_token).await, Code::Unauthenticated, "expired");
}

fn foreign_token(claims: &str) -> String {
    use aws_lc_rs::signature::Ed25519KeyPair;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some("0000000000000000".into());
    let claims: serde_json::Value = serde_json::from_str(claims).expect("json");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

#[tokio::test]
async fn rotated_keys_keep_verifying_old_tokens() {
    let s = Stack::start().await;
    let (_, t) = s.register("rot@example.com").await;
    let admin = s.admin_token().await;
    let before =
        s.auth().list_public_keys(pb::ListPublicKeysRequest {}).await.expect("keys").into_inner().keys;
    assert_eq!(before.len(), 1);
    let new_key = s
        .admin(&admin)
        .rotate_signing_key(pb::RotateSigningKeyRequest {})
        .await
        .expect("rotate")
        .into_inner()
        .key
        .expect("key");
    assert_ne!(new_key.kid, before[0].kid);
    let after =
        s.auth().list_public_keys(pb::ListPublicKeysRequest {}).await.expect("keys").into_inner().keys;
    assert_eq!(after.len(), 2);
    assert_eq!(after.iter().filter(|k| k.active).count(), 1);
    assert_eq!(get_me_code(&s, &t.access_token).await, Code::Ok, "old-key token still verifies");
    let fresh =
        s.login("rot@example.com", crate::support::PASSWORD).await.expect("login").tokens.expect("tokens");
    let header = fresh.access_token.split('.').next().expect("header");
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("utf8");
    assert!(header.contains(&new_key.kid), "{header}");
    assert_eq!(get_me_code(&s, &fresh.access_token).await, Code::Ok);
    // Long after every old token expired, the retired key is no longer published.
    s.clock.advance(Duration::from_secs(3600));
    let later =
        s.auth().list_public_keys(pb::ListPublicKeysRequest {}).await.expect("keys").into_inner().keys;
    assert_eq!(later.len(), 1);
}
