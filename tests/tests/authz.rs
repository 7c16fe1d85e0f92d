//! The authorization matrix: every RPC of every service the all-in-one server registers, called
//! as {anonymous, user, owner, other user, admin, service}. A method without a row here fails the
//! test, so a new RPC cannot ship without its rule.

use std::collections::BTreeMap;

use prost::Message;
use tonic::{Code, transport::Channel};
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne, raw};
use tt_proto::identity::v1::{self as pb, auth_service_client::AuthServiceClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    User,
    Owner,
    OtherUser,
    Admin,
    Service,
}

const EVERYONE: [Who; 6] = [Who::Anonymous, Who::User, Who::Owner, Who::OtherUser, Who::Admin, Who::Service];

/// Who may call a method.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// No token needed.
    Public,
    /// Any signed-in person, acting on themself; service accounts are refused.
    SignedIn,
    /// Signed-in people acting on a resource of the owner's: others get NOT_FOUND (no leak).
    OwnerOnly,
    Admin,
    AdminOrService,
}

/// What the caller gets.
fn expected(rule: Rule, who: Who) -> Option<Code> {
    use Who::*;
    match (rule, who) {
        (Rule::Public, _) => None,
        (_, Anonymous) => Some(Code::Unauthenticated),
        (Rule::SignedIn, Service) => Some(Code::PermissionDenied),
        (Rule::SignedIn, _) => None,
        (Rule::OwnerOnly, Owner) => None,
        (Rule::OwnerOnly, Service) => Some(Code::PermissionDenied),
        (Rule::OwnerOnly, _) => Some(Code::NotFound),
        (Rule::Admin, Admin) => None,
        (Rule::Admin, _) => Some(Code::PermissionDenied),
        (Rule::AdminOrService, Admin | Service) => None,
        (Rule::AdminOrService, _) => Some(Code::PermissionDenied),
    }
}

struct Fixture {
    tokens: BTreeMap<Who, String>,
    owner_session: String,
}

fn body(path: &str, f: &Fixture) -> Vec<u8> {
    match path {
        "/timetravelers.identity.v1.AccountService/RevokeSession" => {
            pb::RevokeSessionRequest { session_id: f.owner_session.clone() }.encode_to_vec()
        }
        _ => Vec::new(),
    }
}

/// The rules. Methods that end the caller's own sessions run last.
fn rules() -> BTreeMap<&'static str, Rule> {
    use Rule::*;
    BTreeMap::from([
        ("/timetravelers.identity.v1.AuthService/Register", Public),
        ("/timetravelers.identity.v1.AuthService/Login", Public),
        ("/timetravelers.identity.v1.AuthService/RefreshToken", Public),
        ("/timetravelers.identity.v1.AuthService/Logout", Public),
        ("/timetravelers.identity.v1.AuthService/IssueServiceToken", Public),
        ("/timetravelers.identity.v1.AuthService/ListPublicKeys", Public),
        ("/timetravelers.identity.v1.AccountService/GetMe", SignedIn),
        ("/timetravelers.identity.v1.AccountService/UpdateMe", SignedIn),
        ("/timetravelers.identity.v1.AccountService/ChangePassword", SignedIn),
        ("/timetravelers.identity.v1.AccountService/ListSessions", SignedIn),
        ("/timetravelers.identity.v1.AccountService/RevokeSession", OwnerOnly),
        ("/timetravelers.identity.v1.AccountService/LogoutAll", SignedIn),
        ("/timetravelers.identity.v1.AdminService/ListUsers", Admin),
        ("/timetravelers.identity.v1.AdminService/GetUser", Admin),
        ("/timetravelers.identity.v1.AdminService/SetUserRoles", Admin),
        ("/timetravelers.identity.v1.AdminService/SuspendUser", Admin),
        ("/timetravelers.identity.v1.AdminService/ReinstateUser", Admin),
        ("/timetravelers.identity.v1.AdminService/DeleteUser", Admin),
        ("/timetravelers.identity.v1.AdminService/RotateSigningKey", Admin),
        ("/timetravelers.identity.v1.AdminService/CreateServiceAccount", Admin),
        ("/timetravelers.identity.v1.AdminService/ListServiceAccounts", Admin),
        ("/timetravelers.identity.v1.AdminService/DeleteServiceAccount", Admin),
        ("/timetravelers.identity.v1.AdminService/ListAuditEvents", Admin),
        ("/timetravelers.identity.v1.SettingsService/ListSettings", AdminOrService),
        ("/timetravelers.identity.v1.SettingsService/GetSetting", AdminOrService),
        ("/timetravelers.identity.v1.SettingsService/UpdateSetting", Admin),
    ])
}

const LAST: &[&str] = &["/timetravelers.identity.v1.AccountService/LogoutAll"];

/// Every method of every service the all-in-one server mounts, from their descriptors.
async fn registered_methods() -> anyhow::Result<Vec<String>> {
    let dir = tempfile::tempdir()?;
    let config = timetravelers::Config::for_tests(dir.path().to_path_buf());
    let (_, builder) =
        timetravelers::start(config, "127.0.0.1:0".parse()?).await.map_err(anyhow::Error::msg)?;
    let fds = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)?;
    let mut methods = Vec::new();
    for name in builder.service_names() {
        let (package, service) = name.rsplit_once('.').unwrap_or(("", name));
        let found = fds
            .file
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| f.service.iter())
            .find(|s| s.name() == service);
        let Some(svc) = found else { anyhow::bail!("no descriptor for registered service {name}") };
        methods.extend(svc.method.iter().map(|m| format!("/{name}/{}", m.name())));
    }
    Ok(methods)
}

async fn login(ch: &Channel, email: &str, password: &str) -> anyhow::Result<pb::TokenPair> {
    Ok(AuthServiceClient::new(ch.clone())
        .login(pb::LoginRequest { email: email.into(), password: password.into() })
        .await?
        .into_inner()
        .tokens
        .expect("tokens"))
}

async fn fixture(ch: &Channel) -> anyhow::Result<Fixture> {
    let mut auth = AuthServiceClient::new(ch.clone());
    let mut tokens = BTreeMap::new();
    let mut owner_session = String::new();
    for (who, email) in [(Who::User, "user"), (Who::Owner, "owner"), (Who::OtherUser, "other")] {
        let t = auth
            .register(pb::RegisterRequest {
                email: format!("{email}@matrix.test"),
                password: "matrix passphrase".into(),
                display_name: String::new(),
            })
            .await?
            .into_inner()
            .tokens
            .expect("tokens");
        if who == Who::Owner {
            owner_session = t.session_id.clone();
        }
        tokens.insert(who, t.access_token);
    }
    let admin = login(ch, ADMIN_EMAIL, ADMIN_PASSWORD).await?.access_token;
    let created = raw::call(
        ch.clone(),
        "/timetravelers.identity.v1.AdminService/CreateServiceAccount",
        pb::CreateServiceAccountRequest { name: "matrix".into(), description: String::new() }.encode_to_vec(),
        Some(&admin),
    )
    .await?;
    let created = pb::CreateServiceAccountResponse::decode(created.as_slice())?;
    let service = auth
        .issue_service_token(pb::IssueServiceTokenRequest {
            client_id: created.service_account.expect("account").id,
            client_secret: created.client_secret,
        })
        .await?
        .into_inner()
        .access_token;
    tokens.insert(Who::Admin, admin);
    tokens.insert(Who::Service, service);
    Ok(Fixture { tokens, owner_session })
}

#[tokio::test]
async fn every_rpc_has_a_rule_and_keeps_it() -> anyhow::Result<()> {
    let methods = registered_methods().await?;
    let rules = rules();
    let missing: Vec<_> = methods.iter().filter(|m| !rules.contains_key(m.as_str())).collect();
    assert!(missing.is_empty(), "RPCs without an authorization rule: {missing:?}");
    let stale: Vec<_> = rules.keys().filter(|k| !methods.iter().any(|m| m == *k)).collect();
    assert!(stale.is_empty(), "rules for RPCs that do not exist: {stale:?}");

    let server = AllInOne::start().await?;
    let ch = server.channel().await?;
    let f = fixture(&ch).await?;
    let mut ordered: Vec<&String> = methods.iter().filter(|m| !LAST.contains(&m.as_str())).collect();
    ordered.extend(methods.iter().filter(|m| LAST.contains(&m.as_str())));
    let mut failures = Vec::new();
    for method in ordered {
        let rule = rules[method.as_str()];
        for who in EVERYONE {
            let token = f.tokens.get(&who).map(String::as_str);
            let got = match raw::call(ch.clone(), method, body(method, &f), token).await {
                Ok(_) => Code::Ok,
                Err(s) => s.code(),
            };
            let ok = match expected(rule, who) {
                Some(code) => got == code,
                None => !matches!(got, Code::Unauthenticated | Code::PermissionDenied),
            };
            if !ok {
                failures.push(format!("{method} as {who:?}: got {got:?}, rule {rule:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "authorization matrix violations:\n{}", failures.join("\n"));
    server.stop().await
}
