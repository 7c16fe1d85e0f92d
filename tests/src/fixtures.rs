//! What the cross-service suites over every RPC (the authorization matrix, the hostile suite)
//! share: the methods the all-in-one registers, read from its descriptors, and the resources a
//! learner owns so that calls naming them reach their handlers.

use prost::Message;
use tonic::transport::Channel;
use tt_proto::{identity::v1 as pb, profiles::v1 as ppb};

use crate::raw::{self, Shape};

/// One registered method.
#[derive(Debug, Clone)]
pub struct Method {
    /// `/pkg.Service/Method`
    pub path: String,
    /// The request's full message name (`.pkg.Request`).
    pub input: String,
    pub shape: Shape,
}

/// The descriptor sets of every package the all-in-one serves (and health's).
pub fn descriptor_sets() -> Vec<&'static [u8]> {
    let mut sets = tt_proto::FILE_DESCRIPTOR_SETS.to_vec();
    sets.push(tonic_health::pb::FILE_DESCRIPTOR_SET);
    sets
}

/// Every method of every service the all-in-one server mounts, from the descriptors, plus the
/// services named in `also` (health, for instance).
pub async fn registered_methods(also: &[&str]) -> anyhow::Result<Vec<Method>> {
    let dir = tempfile::tempdir()?;
    let config = timetravelers::Config::for_tests(dir.path().to_path_buf());
    let (_, assembled) = timetravelers::start(config, "127.0.0.1:0".parse()?).await?;
    let mut files = Vec::new();
    for set in descriptor_sets() {
        files.extend(prost_types::FileDescriptorSet::decode(set)?.file);
    }
    let mut names: Vec<String> = assembled.builder.service_names().to_vec();
    names.extend(also.iter().map(|s| (*s).to_owned()));
    let mut methods = Vec::new();
    for name in names {
        let (package, service) = name.rsplit_once('.').unwrap_or(("", &name));
        let Some(svc) = files
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| f.service.iter())
            .find(|s| s.name() == service)
        else {
            anyhow::bail!("no descriptor for registered service {name}")
        };
        for m in &svc.method {
            let Some(shape) = Shape::of(m) else {
                anyhow::bail!("no bidirectional methods are expected: {name}/{}", m.name())
            };
            methods.push(Method {
                path: format!("/{name}/{}", m.name()),
                input: m.input_type().to_owned(),
                shape,
            });
        }
    }
    Ok(methods)
}

/// A service account created by `admin`: (client id, service token).
pub async fn service_account(ch: &Channel, admin: &str, name: &str) -> anyhow::Result<(String, String)> {
    let created = raw::call(
        ch.clone(),
        "/timetravelers.identity.v1.AdminService/CreateServiceAccount",
        pb::CreateServiceAccountRequest { name: name.into(), description: String::new() }.encode_to_vec(),
        Some(admin),
    )
    .await?;
    let created = pb::CreateServiceAccountResponse::decode(created.as_slice())?;
    let id = created.service_account.map(|a| a.id).unwrap_or_default();
    let token = pb::auth_service_client::AuthServiceClient::new(ch.clone())
        .issue_service_token(pb::IssueServiceTokenRequest {
            client_id: id.clone(),
            client_secret: created.client_secret,
        })
        .await?
        .into_inner()
        .access_token;
    Ok((id, token))
}

/// A goal and a position of the learner whose token is `owner`: (goal id, position id).
pub async fn goal_and_position(ch: &Channel, owner: &str) -> anyhow::Result<(String, String)> {
    let goal = raw::call(
        ch.clone(),
        "/timetravelers.profiles.v1.GoalService/CreateGoal",
        ppb::CreateGoalRequest {
            goal: Some(ppb::Goal {
                kind: ppb::GoalKind::ShortTerm.into(),
                title: "Ship a Rust service".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
        .encode_to_vec(),
        Some(owner),
    )
    .await?;
    let goal = ppb::CreateGoalResponse::decode(goal.as_slice())?.goal.map(|g| g.id).unwrap_or_default();
    let position = raw::call(
        ch.clone(),
        "/timetravelers.profiles.v1.ExperienceService/CreatePosition",
        ppb::CreatePositionRequest {
            position: Some(ppb::Position {
                title: "Engineer".into(),
                organization: "Acme".into(),
                start: Some(ppb::YearMonth { year: 2020, month: 1 }),
                current: true,
                ..Default::default()
            }),
            request_id: String::new(),
        }
        .encode_to_vec(),
        Some(owner),
    )
    .await?;
    let position =
        ppb::CreatePositionResponse::decode(position.as_slice())?.position.map(|p| p.id).unwrap_or_default();
    Ok((goal, position))
}

/// A running mentorship of `owner`'s (with the demo mentor Odessa Tan): its id.
pub async fn mentorship(ch: &Channel, owner: &str) -> anyhow::Result<String> {
    use tt_proto::matching::v1 as mpb;
    let chosen = raw::call(
        ch.clone(),
        "/timetravelers.matching.v1.MentorshipService/ChooseMentor",
        mpb::ChooseMentorRequest { mentor_id: "odessa-tan".into(), request_id: String::new() }
            .encode_to_vec(),
        Some(owner),
    )
    .await?;
    Ok(mpb::ChooseMentorResponse::decode(chosen.as_slice())?
        .mentorship
        .map(|m| m.mentorship_id)
        .unwrap_or_default())
}
