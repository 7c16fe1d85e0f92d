//! The authorization matrix: every RPC of every service the all-in-one server registers, called
//! as {anonymous, user, owner, other user, admin, service}. A method without a row here fails the
//! test, so a new RPC cannot ship without its rule.

use std::collections::BTreeMap;

use prost::Message;
use tonic::{Code, transport::Channel};
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne, raw};
use tt_proto::{
    analytics::v1 as apb,
    identity::v1::{self as pb, auth_service_client::AuthServiceClient},
    matching::v1 as mpb,
    profiles::v1 as ppb,
};

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
    /// Any valid token (people and services).
    AnyToken,
    /// The owner's data, named by user id: the owner and admins.
    OwnerOrAdmin,
    ServiceOnly,
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
        (Rule::AnyToken, _) => None,
        (Rule::OwnerOrAdmin, Owner | Admin) => None,
        (Rule::OwnerOrAdmin, _) => Some(Code::PermissionDenied),
        (Rule::ServiceOnly, Service) => None,
        (Rule::ServiceOnly, _) => Some(Code::PermissionDenied),
    }
}

struct Fixture {
    tokens: BTreeMap<Who, String>,
    owner_session: String,
    owner_id: String,
    owner_goal: String,
    owner_position: String,
    owner_mentorship: String,
}

fn body(path: &str, f: &Fixture) -> Vec<u8> {
    let owner = f.owner_id.clone();
    let title = || Some(prost_types::FieldMask { paths: vec!["title".into()] });
    match path.rsplit('/').next().unwrap_or_default() {
        "RevokeSession" => pb::RevokeSessionRequest { session_id: f.owner_session.clone() }.encode_to_vec(),
        "GetProfile" => ppb::GetProfileRequest { user_id: owner }.encode_to_vec(),
        "GetCompletion" => ppb::GetCompletionRequest { user_id: owner }.encode_to_vec(),
        "ExportProfile" => ppb::ExportProfileRequest { user_id: owner }.encode_to_vec(),
        "ListGoals" => ppb::ListGoalsRequest { user_id: owner, ..Default::default() }.encode_to_vec(),
        "ListPositions" => ppb::ListPositionsRequest { user_id: owner, ..Default::default() }.encode_to_vec(),
        "ListLearnerSkills" => {
            ppb::ListLearnerSkillsRequest { user_id: owner, ..Default::default() }.encode_to_vec()
        }
        "ListAssessmentResults" => {
            ppb::ListAssessmentResultsRequest { user_id: owner, ..Default::default() }.encode_to_vec()
        }
        "UpdateGoal" => ppb::UpdateGoalRequest {
            goal: Some(ppb::Goal { id: f.owner_goal.clone(), title: "renamed".into(), ..Default::default() }),
            update_mask: title(),
        }
        .encode_to_vec(),
        "DeleteGoal" => ppb::DeleteGoalRequest { goal_id: f.owner_goal.clone() }.encode_to_vec(),
        "UpdatePosition" => ppb::UpdatePositionRequest {
            position: Some(ppb::Position {
                id: f.owner_position.clone(),
                title: "renamed".into(),
                ..Default::default()
            }),
            update_mask: title(),
        }
        .encode_to_vec(),
        "DeletePosition" => {
            ppb::DeletePositionRequest { position_id: f.owner_position.clone() }.encode_to_vec()
        }
        "GetActivityHeatmap" => {
            apb::GetActivityHeatmapRequest { user_id: owner, ..Default::default() }.encode_to_vec()
        }
        "ListTimelineEvents" => {
            apb::ListTimelineEventsRequest { user_id: owner, ..Default::default() }.encode_to_vec()
        }
        "ExportEvents" => apb::ExportEventsRequest {
            user_id: owner,
            format: apb::ExportFormat::Csv.into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "SearchSkills" => {
            ppb::SearchSkillsRequest { query: "rust".into(), ..Default::default() }.encode_to_vec()
        }
        "BatchGetSkills" => ppb::BatchGetSkillsRequest { ids: vec!["rust".into()] }.encode_to_vec(),
        "GetMentor" => mpb::GetMentorRequest { mentor_id: "odessa-tan".into(), version: 0 }.encode_to_vec(),
        "FindMatches" => mpb::FindMatchesRequest { user_id: owner, ..Default::default() }.encode_to_vec(),
        "ChooseMentor" => {
            mpb::ChooseMentorRequest { mentor_id: "kofi-mensah-larbi".into(), request_id: String::new() }
                .encode_to_vec()
        }
        "EndMentorship" => mpb::EndMentorshipRequest {
            mentorship_id: f.owner_mentorship.clone(),
            reason: mpb::EndReason::NoTime.into(),
            note: String::new(),
        }
        .encode_to_vec(),
        "Rematch" => mpb::RematchRequest {
            mentorship_id: f.owner_mentorship.clone(),
            reason: mpb::EndReason::NotAFit.into(),
            mentor_id: "yusuf-demirtas".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "AcceptProposal" => {
            mpb::AcceptProposalRequest { mentorship_id: f.owner_mentorship.clone() }.encode_to_vec()
        }
        "DeclineProposal" => mpb::DeclineProposalRequest {
            mentorship_id: f.owner_mentorship.clone(),
            reason: mpb::EndReason::NotAFit.into(),
            note: String::new(),
        }
        .encode_to_vec(),
        "GetMentorship" => {
            mpb::GetMentorshipRequest { mentorship_id: f.owner_mentorship.clone() }.encode_to_vec()
        }
        "ListMentorships" => {
            mpb::ListMentorshipsRequest { user_id: owner, ..Default::default() }.encode_to_vec()
        }
        "SubmitFeedback" => mpb::SubmitFeedbackRequest {
            mentorship_id: f.owner_mentorship.clone(),
            rating: 4,
            reason: "clear".into(),
        }
        .encode_to_vec(),
        "ExportMatchingData" => mpb::ExportMatchingDataRequest { user_id: owner }.encode_to_vec(),
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
        ("/timetravelers.identity.v1.RevocationService/WatchRevocations", Public),
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
        ("/timetravelers.identity.v1.AdminService/GetAiQuota", AdminOrService),
        ("/timetravelers.identity.v1.AdminService/SetAiQuota", Admin),
        ("/timetravelers.identity.v1.SettingsService/ListSettings", AdminOrService),
        ("/timetravelers.identity.v1.SettingsService/GetSetting", AdminOrService),
        ("/timetravelers.identity.v1.SettingsService/UpdateSetting", Admin),
        ("/timetravelers.profiles.v1.ProfileService/GetProfile", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.ProfileService/UpdateProfile", SignedIn),
        ("/timetravelers.profiles.v1.ProfileService/GetCompletion", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.ProfileService/ExportProfile", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.GoalService/CreateGoal", SignedIn),
        ("/timetravelers.profiles.v1.GoalService/ListGoals", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.GoalService/UpdateGoal", OwnerOnly),
        ("/timetravelers.profiles.v1.GoalService/DeleteGoal", OwnerOnly),
        ("/timetravelers.profiles.v1.GoalService/ReorderGoals", SignedIn),
        ("/timetravelers.profiles.v1.AssessmentService/GetAssessment", AnyToken),
        ("/timetravelers.profiles.v1.AssessmentService/SubmitAssessment", SignedIn),
        ("/timetravelers.profiles.v1.AssessmentService/ListAssessmentResults", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.ExperienceService/CreatePosition", SignedIn),
        ("/timetravelers.profiles.v1.ExperienceService/ListPositions", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.ExperienceService/UpdatePosition", OwnerOnly),
        ("/timetravelers.profiles.v1.ExperienceService/DeletePosition", OwnerOnly),
        ("/timetravelers.profiles.v1.SkillService/SearchSkills", AnyToken),
        ("/timetravelers.profiles.v1.SkillService/BatchGetSkills", AnyToken),
        ("/timetravelers.profiles.v1.SkillService/ListTracks", AnyToken),
        ("/timetravelers.profiles.v1.SkillService/ListLearnerSkills", OwnerOrAdmin),
        ("/timetravelers.profiles.v1.SkillService/UpsertLearnerSkill", SignedIn),
        ("/timetravelers.profiles.v1.SkillService/DeleteLearnerSkill", SignedIn),
        ("/timetravelers.profiles.v1.IntegrationService/GetLearnerView", ServiceOnly),
        ("/timetravelers.profiles.v1.IntegrationService/VerifyLearnerSkill", ServiceOnly),
        ("/timetravelers.profiles.v1.IntegrationService/ConsumeEvents", ServiceOnly),
        ("/timetravelers.analytics.v1.IngestService/IngestEvents", ServiceOnly),
        ("/timetravelers.analytics.v1.IngestService/StreamEvents", ServiceOnly),
        ("/timetravelers.analytics.v1.ReportService/GetEngagement", Admin),
        ("/timetravelers.analytics.v1.ReportService/GetRetentionCohorts", Admin),
        ("/timetravelers.analytics.v1.ReportService/GetActivityHeatmap", OwnerOrAdmin),
        ("/timetravelers.analytics.v1.ReportService/GetFeatureUsage", Admin),
        ("/timetravelers.analytics.v1.ReportService/GetDashboard", Admin),
        ("/timetravelers.analytics.v1.EventService/ListTimelineEvents", OwnerOrAdmin),
        ("/timetravelers.analytics.v1.EventService/ExportEvents", OwnerOrAdmin),
        ("/timetravelers.analytics.v1.AdminService/GetUsageStats", Admin),
        ("/timetravelers.analytics.v1.AdminService/ListDeadLetters", Admin),
        ("/timetravelers.analytics.v1.AdminService/ReplayDeadLetters", Admin),
        ("/timetravelers.matching.v1.MentorService/ListMentors", AnyToken),
        ("/timetravelers.matching.v1.MentorService/GetMentor", AnyToken),
        ("/timetravelers.matching.v1.MentorService/CreateMentor", Admin),
        ("/timetravelers.matching.v1.MentorService/UpdateMentor", Admin),
        ("/timetravelers.matching.v1.MentorService/PublishMentor", Admin),
        ("/timetravelers.matching.v1.MentorService/RetireMentor", Admin),
        ("/timetravelers.matching.v1.MentorService/ListMentorVersions", AdminOrService),
        ("/timetravelers.matching.v1.MatchService/FindMatches", OwnerOrAdmin),
        ("/timetravelers.matching.v1.MentorshipService/ChooseMentor", SignedIn),
        ("/timetravelers.matching.v1.MentorshipService/EndMentorship", OwnerOnly),
        ("/timetravelers.matching.v1.MentorshipService/Rematch", OwnerOnly),
        ("/timetravelers.matching.v1.MentorshipService/GetMentorship", OwnerOnly),
        ("/timetravelers.matching.v1.MentorshipService/ListMentorships", OwnerOrAdmin),
        ("/timetravelers.matching.v1.MentorshipService/SubmitFeedback", OwnerOnly),
        ("/timetravelers.matching.v1.MentorshipService/ExportMatchingData", OwnerOrAdmin),
        ("/timetravelers.matching.v1.MentorshipService/AcceptProposal", OwnerOnly),
        ("/timetravelers.matching.v1.MentorshipService/DeclineProposal", OwnerOnly),
        ("/timetravelers.matching.v1.AdminService/GetUsage", Admin),
        ("/timetravelers.matching.v1.AdminService/GetMatchingWeights", Admin),
        ("/timetravelers.matching.v1.AdminService/UpdateMatchingWeights", Admin),
        ("/timetravelers.matching.v1.AdminService/ListWeightChanges", Admin),
        ("/timetravelers.matching.v1.AdminService/ProposeMentorship", Admin),
        ("/timetravelers.matching.v1.AdminService/StartCohortAssignment", Admin),
        ("/timetravelers.matching.v1.AdminService/GetCohortAssignment", Admin),
        ("/timetravelers.matching.v1.AdminService/ApplyCohortAssignment", Admin),
        ("/timetravelers.matching.v1.IntegrationService/ConsumeEvents", ServiceOnly),
        ("/timetravelers.common.v1.OutboxAdminService/ListOutboxes", Admin),
        ("/timetravelers.common.v1.OutboxAdminService/ListOutboxDeadLetters", Admin),
        ("/timetravelers.common.v1.OutboxAdminService/ReplayOutboxDeadLetters", Admin),
        ("/timetravelers.common.v1.OutboxAdminService/DiscardOutboxDeadLetters", Admin),
    ])
}

const LAST: &[&str] = &["/timetravelers.identity.v1.AccountService/LogoutAll"];

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
    let mut owner_id = String::new();
    for (who, email) in [(Who::User, "user"), (Who::Owner, "owner"), (Who::OtherUser, "other")] {
        let registered = auth
            .register(pb::RegisterRequest {
                email: format!("{email}@matrix.test"),
                password: "matrix passphrase".into(),
                display_name: String::new(),
            })
            .await?
            .into_inner();
        let t = registered.tokens.expect("tokens");
        if who == Who::Owner {
            owner_session = t.session_id.clone();
            owner_id = registered.user.expect("user").id;
        }
        tokens.insert(who, t.access_token);
    }
    let admin = login(ch, ADMIN_EMAIL, ADMIN_PASSWORD).await?.access_token;
    let (_, service) = tt_e2e::fixtures::service_account(ch, &admin, "matrix").await?;
    tokens.insert(Who::Admin, admin);
    tokens.insert(Who::Service, service);
    let owner = tokens.get(&Who::Owner).cloned().unwrap_or_default();
    let (owner_goal, owner_position) = tt_e2e::fixtures::goal_and_position(ch, &owner).await?;
    let owner_mentorship = tt_e2e::fixtures::mentorship(ch, &owner).await?;
    Ok(Fixture { tokens, owner_session, owner_id, owner_goal, owner_position, owner_mentorship })
}

#[tokio::test]
async fn every_rpc_has_a_rule_and_keeps_it() -> anyhow::Result<()> {
    let shaped = tt_e2e::fixtures::registered_methods(&[]).await?;
    let shapes: BTreeMap<&str, raw::Shape> = shaped.iter().map(|m| (m.path.as_str(), m.shape)).collect();
    let methods: Vec<String> = shaped.iter().map(|m| m.path.clone()).collect();
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
            let got =
                match raw::call_shaped(ch.clone(), method, shapes[method.as_str()], body(method, &f), token)
                    .await
                {
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
