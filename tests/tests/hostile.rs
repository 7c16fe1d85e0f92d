//! The adversarial-input suite: every RPC of every service the all-in-one server registers gets
//! the hostile requests of [`tt_e2e::hostile`] (oversized, out of range, 10,000-element lists,
//! duplicates, malformed wire bytes, over the size limit), each built on a valid base request
//! of that RPC as a caller who may call it. Every answer must be OK or a client-error code
//! (never INTERNAL, UNKNOWN, CANCELLED or a hang), arrive within a bounded time, and carry a
//! status a gRPC C-core client accepts (well under 8 KiB of trailers). Malformed bytes must be
//! INVALID_ARGUMENT, an oversized message RESOURCE_EXHAUSTED, and a request list of 10,000
//! elements is never accepted (every repeated field has a documented maximum).
//!
//! A method without a base request here fails the test, so a new RPC cannot ship without being
//! attacked. Runs on SQLite, or on PostgreSQL and Redis when `TT_TEST_DATABASE_URL` and
//! `TT_TEST_REDIS_URL` are set.

use std::{collections::BTreeMap, time::Duration};

use prost::Message;
use tonic::{Code, transport::Channel};
use tt_common::clock::Clock;
use tt_e2e::{ADMIN_EMAIL, ADMIN_PASSWORD, AllInOne, raw};
use tt_proto::{
    analytics::v1 as apb,
    common::v1 as cpb,
    identity::v1::{self as pb, auth_service_client::AuthServiceClient},
    matching::v1 as mpb,
    profiles::v1 as ppb,
};
use tt_testkit::hostile::{Case, Class, Schema};

/// Who calls a method: someone it lets in, so the request reaches the handler's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// The learner owning the fixture's goal and position.
    Owner,
    /// A learner of this method's own (for methods that end the caller's sessions).
    Fresh,
    Admin,
    Service,
}

/// A generous bound that catches a hang, not a benchmark.
const HANG: Duration = Duration::from_secs(20);

/// What gRPC C-core clients warn at; the platform keeps statuses under half of it.
const C_CORE_WARNING: usize = 8 * 1024;

struct Fixture {
    owner: String,
    owner_id: String,
    owner_refresh: String,
    goal: String,
    position: String,
    /// The owner's running mentorship.
    mentorship: String,
    victim: String,
    admin: String,
    service: String,
    service_id: String,
    /// Learners for `Who::Fresh` methods, by method (registered before anything is attacked).
    fresh: BTreeMap<String, (String, String, String)>,
}

const FRESH: &[&str] = &[
    "/timetravelers.identity.v1.AccountService/UpdateMe",
    "/timetravelers.identity.v1.AccountService/ChangePassword",
    "/timetravelers.identity.v1.AccountService/RevokeSession",
    "/timetravelers.identity.v1.AccountService/LogoutAll",
];

fn today() -> String {
    jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC).date().to_string()
}

fn range() -> Option<apb::DateRange> {
    Some(apb::DateRange { start_date: today(), end_date: today(), time_zone: "Europe/Paris".into() })
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

fn event(f: &Fixture) -> cpb::Event {
    cpb::Event {
        id: tt_common::new_id(),
        r#type: "profiles.goal.created".into(),
        version: 1,
        time: Some(tt_common::clock::to_timestamp(tt_common::clock::SystemClock.now_ms())),
        actor: f.owner_id.clone(),
        subject: f.owner_id.clone(),
        source: "profiles".into(),
        attributes: [(
            "goal_id".to_owned(),
            cpb::AttributeValue { kind: Some(cpb::attribute_value::Kind::StringValue(f.goal.clone())) },
        )]
        .into(),
    }
}

/// A well-formed mentor (a draft admins may create).
fn mentor(id: &str) -> mpb::Mentor {
    use ppb::{CareerStage, LearningStyle};
    mpb::Mentor {
        mentor_id: id.into(),
        name: "Hostile Persona".into(),
        era: "the present".into(),
        background: "Built to be attacked.".into(),
        voice: "Terse.".into(),
        fields: vec!["software".into()],
        specializations: vec!["rust".into()],
        stages: vec![CareerStage::Senior.into()],
        teaching_style: Some(mpb::TeachingStyle {
            modality: LearningStyle::Visual.into(),
            ..Default::default()
        }),
        languages: vec!["en".into()],
        capacity: 3,
        model: Some(mpb::ModelConfig {
            temperature: 0.3,
            system_prompt_template: "You are {{name}}; help {{learner_name}}.".into(),
            ..Default::default()
        }),
        content_language: "en".into(),
        ..Default::default()
    }
}

/// The base request and caller of every method. A method missing here fails the suite.
fn base(method: &str, f: &Fixture) -> Option<(Who, Vec<u8>)> {
    use Who::*;
    let fresh = f.fresh.get(method);
    let name = method.rsplit('/').next().unwrap_or_default();
    let service = method.trim_start_matches('/').split('/').next().unwrap_or_default();
    Some(match (service.rsplit('.').next().unwrap_or_default(), name) {
        ("Health", "Check") => (Anonymous, Vec::new()),
        ("AuthService", "Register") => (
            Anonymous,
            pb::RegisterRequest {
                email: "hostile-base@example.com".into(),
                password: "a long enough passphrase".into(),
                display_name: "Hostile".into(),
            }
            .encode_to_vec(),
        ),
        ("AuthService", "Login") => (
            Anonymous,
            pb::LoginRequest { email: "owner@hostile.test".into(), password: "not the password".into() }
                .encode_to_vec(),
        ),
        ("AuthService", "RefreshToken") => {
            (Anonymous, pb::RefreshTokenRequest { refresh_token: f.owner_refresh.clone() }.encode_to_vec())
        }
        ("AuthService", "Logout") => {
            (Anonymous, pb::LogoutRequest { refresh_token: f.owner_refresh.clone() }.encode_to_vec())
        }
        ("AuthService", "IssueServiceToken") => (
            Anonymous,
            pb::IssueServiceTokenRequest { client_id: f.service_id.clone(), client_secret: "wrong".into() }
                .encode_to_vec(),
        ),
        ("AuthService", "ListPublicKeys") | ("RevocationService", "WatchRevocations") => {
            (Anonymous, Vec::new())
        }
        ("AccountService", "GetMe" | "ListSessions") => (Owner, Vec::new()),
        ("AccountService", "UpdateMe") => (
            Fresh,
            pb::UpdateMeRequest {
                user: Some(pb::User { display_name: "New name".into(), ..Default::default() }),
                update_mask: mask(&["display_name"]),
            }
            .encode_to_vec(),
        ),
        ("AccountService", "ChangePassword") => (
            Fresh,
            pb::ChangePasswordRequest {
                current_password: "not the password".into(),
                new_password: "another long passphrase".into(),
            }
            .encode_to_vec(),
        ),
        ("AccountService", "RevokeSession") => (
            Fresh,
            pb::RevokeSessionRequest { session_id: fresh.map(|x| x.2.clone()).unwrap_or_default() }
                .encode_to_vec(),
        ),
        ("AccountService", "LogoutAll") => (Fresh, Vec::new()),
        ("AdminService", "ListUsers") => {
            (Admin, pb::ListUsersRequest { page_size: 10, ..Default::default() }.encode_to_vec())
        }
        ("AdminService", "GetUser" | "ReinstateUser" | "DeleteUser") => {
            (Admin, pb::GetUserRequest { user_id: f.victim.clone() }.encode_to_vec())
        }
        ("AdminService", "SuspendUser") => (
            Admin,
            pb::SuspendUserRequest { user_id: f.victim.clone(), reason: "hostile suite".into() }
                .encode_to_vec(),
        ),
        ("AdminService", "SetUserRoles") => (
            Admin,
            pb::SetUserRolesRequest { user_id: f.victim.clone(), roles: vec![pb::Role::Learner.into()] }
                .encode_to_vec(),
        ),
        ("AdminService", "RotateSigningKey" | "ListServiceAccounts") => (Admin, Vec::new()),
        ("AdminService", "CreateServiceAccount") => (
            Admin,
            pb::CreateServiceAccountRequest { name: "hostile".into(), description: "suite".into() }
                .encode_to_vec(),
        ),
        ("AdminService", "DeleteServiceAccount") => (
            Admin,
            pb::DeleteServiceAccountRequest { service_account_id: tt_common::new_id() }.encode_to_vec(),
        ),
        ("AdminService", "GetAiQuota") => {
            (Admin, pb::GetAiQuotaRequest { user_id: f.victim.clone() }.encode_to_vec())
        }
        ("AdminService", "SetAiQuota") => (
            Admin,
            pb::SetAiQuotaRequest { user_id: f.victim.clone(), daily_tokens: Some(20_000) }.encode_to_vec(),
        ),
        ("AdminService", "ListAuditEvents") => {
            (Admin, pb::ListAuditEventsRequest { page_size: 10, ..Default::default() }.encode_to_vec())
        }
        ("SettingsService", "ListSettings") => (Admin, Vec::new()),
        ("SettingsService", "GetSetting") => {
            (Admin, pb::GetSettingRequest { key: "default_daily_ai_token_quota".into() }.encode_to_vec())
        }
        ("SettingsService", "UpdateSetting") => (
            Admin,
            pb::UpdateSettingRequest {
                setting: Some(pb::Setting {
                    key: "default_daily_ai_token_quota".into(),
                    value: Some(pb::setting::Value::IntValue(50_000)),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
        ),
        ("ProfileService", "GetProfile" | "GetCompletion" | "ExportProfile") => {
            (Owner, ppb::GetProfileRequest { user_id: f.owner_id.clone() }.encode_to_vec())
        }
        ("ProfileService", "UpdateProfile") => (
            Owner,
            ppb::UpdateProfileRequest {
                profile: Some(ppb::Profile {
                    headline: "Backend developer".into(),
                    fields_of_work: vec!["software".into()],
                    languages: vec!["en".into()],
                    timezone: "Europe/Lisbon".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["headline", "fields_of_work", "languages", "timezone"]),
            }
            .encode_to_vec(),
        ),
        ("GoalService", "CreateGoal") => (
            Owner,
            ppb::CreateGoalRequest {
                goal: Some(ppb::Goal {
                    kind: ppb::GoalKind::LongTerm.into(),
                    title: "Become a security engineer".into(),
                    skill_ids: vec!["rust".into(), "threat-modeling".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            }
            .encode_to_vec(),
        ),
        ("GoalService", "ListGoals") => (
            Owner,
            ppb::ListGoalsRequest { user_id: f.owner_id.clone(), ..Default::default() }.encode_to_vec(),
        ),
        ("GoalService", "UpdateGoal") => (
            Owner,
            ppb::UpdateGoalRequest {
                goal: Some(ppb::Goal {
                    id: f.goal.clone(),
                    title: "Renamed".into(),
                    skill_ids: vec!["rust".into()],
                    ..Default::default()
                }),
                update_mask: mask(&["title", "skill_ids"]),
            }
            .encode_to_vec(),
        ),
        ("GoalService", "DeleteGoal") => {
            (Owner, ppb::DeleteGoalRequest { goal_id: f.goal.clone() }.encode_to_vec())
        }
        ("GoalService", "ReorderGoals") => {
            (Owner, ppb::ReorderGoalsRequest { goal_ids: vec![f.goal.clone()] }.encode_to_vec())
        }
        ("AssessmentService", "GetAssessment") => (Owner, Vec::new()),
        ("AssessmentService", "SubmitAssessment") => (
            Owner,
            ppb::SubmitAssessmentRequest {
                version: 1,
                answers: vec![ppb::Answer { question_id: "q1".into(), option_id: "a".into() }],
            }
            .encode_to_vec(),
        ),
        ("AssessmentService", "ListAssessmentResults") => (
            Owner,
            ppb::ListAssessmentResultsRequest { user_id: f.owner_id.clone(), ..Default::default() }
                .encode_to_vec(),
        ),
        ("ExperienceService", "CreatePosition") => (
            Owner,
            ppb::CreatePositionRequest {
                position: Some(ppb::Position {
                    title: "Engineer".into(),
                    organization: "Acme".into(),
                    start: Some(ppb::YearMonth { year: 2020, month: 1 }),
                    current: true,
                    skill_ids: vec!["rust".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            }
            .encode_to_vec(),
        ),
        ("ExperienceService", "ListPositions") => (
            Owner,
            ppb::ListPositionsRequest { user_id: f.owner_id.clone(), ..Default::default() }.encode_to_vec(),
        ),
        ("ExperienceService", "UpdatePosition") => (
            Owner,
            ppb::UpdatePositionRequest {
                position: Some(ppb::Position {
                    id: f.position.clone(),
                    title: "Senior engineer".into(),
                    end: Some(ppb::YearMonth { year: 2024, month: 6 }),
                    ..Default::default()
                }),
                update_mask: mask(&["title", "end"]),
            }
            .encode_to_vec(),
        ),
        ("ExperienceService", "DeletePosition") => {
            (Owner, ppb::DeletePositionRequest { position_id: f.position.clone() }.encode_to_vec())
        }
        ("SkillService", "SearchSkills") => {
            (Owner, ppb::SearchSkillsRequest { query: "rust".into(), ..Default::default() }.encode_to_vec())
        }
        ("SkillService", "BatchGetSkills") => {
            (Owner, ppb::BatchGetSkillsRequest { ids: vec!["rust".into(), "sql".into()] }.encode_to_vec())
        }
        ("SkillService", "ListTracks") => (Owner, ppb::ListTracksRequest {}.encode_to_vec()),
        ("SkillService", "ListLearnerSkills") => (
            Owner,
            ppb::ListLearnerSkillsRequest { user_id: f.owner_id.clone(), ..Default::default() }
                .encode_to_vec(),
        ),
        ("SkillService", "UpsertLearnerSkill") => (
            Owner,
            ppb::UpsertLearnerSkillRequest {
                skill_id: "rust".into(),
                proficiency: 3,
                years: 2.5,
                last_used: Some(ppb::YearMonth { year: 2024, month: 1 }),
            }
            .encode_to_vec(),
        ),
        ("SkillService", "DeleteLearnerSkill") => {
            (Owner, ppb::DeleteLearnerSkillRequest { skill_id: "python".into() }.encode_to_vec())
        }
        ("IntegrationService", "GetLearnerView") => {
            (Service, ppb::GetLearnerViewRequest { user_id: f.owner_id.clone() }.encode_to_vec())
        }
        ("IntegrationService", "VerifyLearnerSkill") => (
            Service,
            ppb::VerifyLearnerSkillRequest {
                user_id: f.owner_id.clone(),
                skill_id: "rust".into(),
                proficiency: 4,
                source: "hostile suite".into(),
            }
            .encode_to_vec(),
        ),
        ("IntegrationService", "ConsumeEvents") => (
            Service,
            ppb::ConsumeEventsRequest {
                events: vec![cpb::Event { r#type: "identity.user.registered".into(), ..event(f) }],
            }
            .encode_to_vec(),
        ),
        ("IngestService", "IngestEvents") => {
            (Service, apb::IngestEventsRequest { events: vec![event(f)], backlog: None }.encode_to_vec())
        }
        ("IngestService", "StreamEvents") => {
            (Service, apb::StreamEventsRequest { events: vec![event(f)] }.encode_to_vec())
        }
        ("ReportService", "GetEngagement" | "GetFeatureUsage") => {
            (Admin, apb::GetEngagementRequest { range: range() }.encode_to_vec())
        }
        ("ReportService", "GetRetentionCohorts") => {
            (Admin, apb::GetRetentionCohortsRequest { range: range(), weeks: 4 }.encode_to_vec())
        }
        ("ReportService", "GetActivityHeatmap") => (
            Owner,
            apb::GetActivityHeatmapRequest { range: range(), user_id: f.owner_id.clone(), all_users: false }
                .encode_to_vec(),
        ),
        ("ReportService", "GetDashboard") => (
            Admin,
            apb::GetDashboardRequest {
                dashboard: "engagement".into(),
                range: range(),
                series: vec!["dau".into(), "wau".into()],
            }
            .encode_to_vec(),
        ),
        ("EventService", "ListTimelineEvents") => (
            Owner,
            apb::ListTimelineEventsRequest {
                user_id: f.owner_id.clone(),
                page_size: 5,
                page_token: String::new(),
                types: vec!["profiles.goal.created".into()],
            }
            .encode_to_vec(),
        ),
        ("EventService", "ExportEvents") => (
            Owner,
            apb::ExportEventsRequest {
                format: apb::ExportFormat::Jsonl.into(),
                types: vec!["profiles.goal.created".into()],
                user_id: f.owner_id.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("AdminService", "GetUsageStats" | "GetUsage") => (Admin, Vec::new()),
        ("MentorService", "ListMentors") => (
            Owner,
            mpb::ListMentorsRequest {
                page_size: 5,
                field: "software".into(),
                language: "en".into(),
                query: "code".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("MentorService", "CreateMentor") => {
            (Admin, mpb::CreateMentorRequest { mentor: Some(mentor("hostile-draft")) }.encode_to_vec())
        }
        ("MentorService", "UpdateMentor") => (
            Admin,
            mpb::UpdateMentorRequest {
                mentor: Some(mentor("ren-takamatsu")),
                update_mask: mask(&["voice", "languages"]),
            }
            .encode_to_vec(),
        ),
        ("MentorService", "PublishMentor") => (
            Admin,
            mpb::PublishMentorRequest { mentor_id: "ren-takamatsu".into(), etag: String::new() }
                .encode_to_vec(),
        ),
        ("MentorService", "RetireMentor") => {
            (Admin, mpb::RetireMentorRequest { mentor_id: "ren-takamatsu".into() }.encode_to_vec())
        }
        ("MentorService", "ListMentorVersions") => (
            Service,
            mpb::ListMentorVersionsRequest {
                mentor_id: "odessa-tan".into(),
                page_size: 5,
                page_token: String::new(),
            }
            .encode_to_vec(),
        ),
        ("MentorService", "GetMentor") => {
            (Admin, mpb::GetMentorRequest { mentor_id: "odessa-tan".into(), version: 1 }.encode_to_vec())
        }
        ("MatchService", "FindMatches") => (
            Owner,
            mpb::FindMatchesRequest {
                user_id: f.owner_id.clone(),
                page_size: 5,
                field: "product".into(),
                language: "en".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("MentorshipService", "ChooseMentor") => (
            Owner,
            mpb::ChooseMentorRequest { mentor_id: "walter-pruitt".into(), request_id: "hostile-1".into() }
                .encode_to_vec(),
        ),
        ("MentorshipService", "EndMentorship") => (
            Owner,
            mpb::EndMentorshipRequest {
                mentorship_id: f.mentorship.clone(),
                reason: mpb::EndReason::Other.into(),
                note: "hostile suite".into(),
            }
            .encode_to_vec(),
        ),
        ("MentorshipService", "Rematch") => (
            Owner,
            mpb::RematchRequest {
                mentorship_id: f.mentorship.clone(),
                reason: mpb::EndReason::NotAFit.into(),
                note: "hostile suite".into(),
                mentor_id: "walter-pruitt".into(),
                request_id: "hostile-2".into(),
            }
            .encode_to_vec(),
        ),
        ("MentorshipService", "GetMentorship") => {
            (Owner, mpb::GetMentorshipRequest { mentorship_id: f.mentorship.clone() }.encode_to_vec())
        }
        ("MentorshipService", "ListMentorships") => (
            Owner,
            mpb::ListMentorshipsRequest {
                user_id: f.owner_id.clone(),
                page_size: 5,
                state: mpb::MentorshipState::Active.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        ("MentorshipService", "SubmitFeedback") => (
            Owner,
            mpb::SubmitFeedbackRequest {
                mentorship_id: f.mentorship.clone(),
                rating: 4,
                reason: "clear".into(),
            }
            .encode_to_vec(),
        ),
        ("MentorshipService", "AcceptProposal") => {
            (Owner, mpb::AcceptProposalRequest { mentorship_id: f.mentorship.clone() }.encode_to_vec())
        }
        ("MentorshipService", "DeclineProposal") => (
            Owner,
            mpb::DeclineProposalRequest {
                mentorship_id: f.mentorship.clone(),
                reason: mpb::EndReason::Other.into(),
                note: "hostile suite".into(),
            }
            .encode_to_vec(),
        ),
        ("AdminService", "GetMatchingWeights") => (Admin, Vec::new()),
        ("AdminService", "UpdateMatchingWeights") => (
            Admin,
            mpb::UpdateMatchingWeightsRequest {
                weights: Some(mpb::MatchingWeights { focus: 1.0, meaning: 0.5, ..Default::default() }),
                etag: String::new(),
                reason: "hostile suite".into(),
            }
            .encode_to_vec(),
        ),
        ("AdminService", "ListWeightChanges") => {
            (Admin, mpb::ListWeightChangesRequest { page_size: 5, page_token: String::new() }.encode_to_vec())
        }
        ("AdminService", "ProposeMentorship") => (
            Admin,
            mpb::ProposeMentorshipRequest {
                user_id: f.victim.clone(),
                mentor_id: "walter-pruitt".into(),
                request_id: "hostile-3".into(),
            }
            .encode_to_vec(),
        ),
        ("AdminService", "StartCohortAssignment") => (
            Admin,
            mpb::StartCohortAssignmentRequest {
                user_ids: vec![f.victim.clone()],
                mentor_ids: vec!["odessa-tan".into()],
                request_id: "hostile-4".into(),
            }
            .encode_to_vec(),
        ),
        ("AdminService", "GetCohortAssignment" | "ApplyCohortAssignment") => {
            (Admin, mpb::GetCohortAssignmentRequest { assignment_id: tt_common::new_id() }.encode_to_vec())
        }
        ("MentorshipService", "ExportMatchingData") => {
            (Owner, mpb::ExportMatchingDataRequest { user_id: f.owner_id.clone() }.encode_to_vec())
        }
        ("AdminService", "ListDeadLetters") => {
            (Admin, apb::ListDeadLettersRequest { page_size: 10, ..Default::default() }.encode_to_vec())
        }
        ("AdminService", "ReplayDeadLetters") => (
            Admin,
            apb::ReplayDeadLettersRequest { dead_letter_ids: vec![tt_common::new_id()], all: false }
                .encode_to_vec(),
        ),
        ("OutboxAdminService", "ListOutboxes") => (Admin, Vec::new()),
        ("OutboxAdminService", "ListOutboxDeadLetters") => (
            Admin,
            cpb::ListOutboxDeadLettersRequest {
                service: "identity".into(),
                destination: "analytics".into(),
                page_size: 10,
                page_token: String::new(),
            }
            .encode_to_vec(),
        ),
        ("OutboxAdminService", "ReplayOutboxDeadLetters") => (
            Admin,
            cpb::ReplayOutboxDeadLettersRequest {
                service: "profiles".into(),
                dead_letter_ids: vec![tt_common::new_id()],
                all: false,
            }
            .encode_to_vec(),
        ),
        ("OutboxAdminService", "DiscardOutboxDeadLetters") => (
            Admin,
            cpb::DiscardOutboxDeadLettersRequest {
                service: "identity".into(),
                dead_letter_ids: vec![tt_common::new_id()],
            }
            .encode_to_vec(),
        ),
        _ => return None,
    })
}

async fn register(
    auth: &mut AuthServiceClient<Channel>,
    email: &str,
) -> anyhow::Result<pb::RegisterResponse> {
    Ok(auth
        .register(pb::RegisterRequest {
            email: email.into(),
            password: "hostile suite passphrase".into(),
            display_name: String::new(),
        })
        .await?
        .into_inner())
}

async fn fixture(ch: &Channel, methods: &[tt_e2e::fixtures::Method]) -> anyhow::Result<Fixture> {
    let mut auth = AuthServiceClient::new(ch.clone());
    let owner = register(&mut auth, "owner@hostile.test").await?;
    let owner_tokens = owner.tokens.clone().unwrap_or_default();
    let owner_id = owner.user.map(|u| u.id).unwrap_or_default();
    let victim = register(&mut auth, "victim@hostile.test").await?.user.map(|u| u.id).unwrap_or_default();
    let mut fresh = BTreeMap::new();
    for (i, method) in methods.iter().map(|m| &m.path).filter(|m| FRESH.contains(&m.as_str())).enumerate() {
        let r = register(&mut auth, &format!("fresh{i}@hostile.test")).await?;
        let t = r.tokens.unwrap_or_default();
        fresh.insert(method.clone(), (t.access_token, t.refresh_token, t.session_id));
    }
    let admin = auth
        .login(pb::LoginRequest { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.into() })
        .await?
        .into_inner()
        .tokens
        .unwrap_or_default()
        .access_token;
    let (service_id, service) = tt_e2e::fixtures::service_account(ch, &admin, "hostile-suite").await?;
    let (goal, position) = tt_e2e::fixtures::goal_and_position(ch, &owner_tokens.access_token).await?;
    let mentorship = tt_e2e::fixtures::mentorship(ch, &owner_tokens.access_token).await?;
    Ok(Fixture {
        owner: owner_tokens.access_token,
        owner_id,
        owner_refresh: owner_tokens.refresh_token,
        goal,
        position,
        mentorship,
        victim,
        admin,
        service,
        service_id,
        fresh,
    })
}

/// Bytes a status takes in the trailers: `grpc-message` percent-encoded, details in base64.
fn status_bytes(status: &tonic::Status) -> usize {
    let message: usize =
        status.message().bytes().map(|b| if (0x20..0x7f).contains(&b) && b != b'%' { 1 } else { 3 }).sum();
    message + status.details().len().div_ceil(3) * 4
}

/// What is wrong with one answer, if anything.
fn judge(
    case: &Case,
    answer: Result<Result<usize, tonic::Status>, tokio::time::error::Elapsed>,
) -> Option<String> {
    let status = match answer {
        Err(_) => return Some(format!("no answer within {HANG:?}")),
        Ok(Ok(_)) => {
            return match case.class {
                Class::Malformed => Some("malformed bytes were accepted".into()),
                Class::TooLarge => Some("a message over the limit was accepted".into()),
                _ if case.over_any_limit => Some("a list of 10,000 elements was accepted".into()),
                _ => None,
            };
        }
        Ok(Err(status)) => status,
    };
    let code = status.code();
    let size = status_bytes(&status);
    if size >= C_CORE_WARNING {
        return Some(format!("{code:?} with a status of {size} bytes"));
    }
    let client_error = matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::ResourceExhausted
    );
    let expected = match case.class {
        Class::Malformed => code == Code::InvalidArgument,
        Class::TooLarge => code == Code::ResourceExhausted,
        _ => client_error,
    };
    (!expected).then(|| format!("{code:?}: {}", tt_common::error::clip(status.message(), 200)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_survives_hostile_input() -> anyhow::Result<()> {
    let methods = tt_e2e::fixtures::registered_methods(&["grpc.health.v1.Health"]).await?;
    let schema = Schema::new(&tt_e2e::fixtures::descriptor_sets())?;

    let server = AllInOne::start_isolated().await?;
    let ch = server.channel().await?;
    let f = fixture(&ch, &methods).await?;

    let mut failures = Vec::new();
    let mut uncovered = Vec::new();
    let mut calls = 0usize;
    for tt_e2e::fixtures::Method { path: method, input, shape } in &methods {
        // Watch streams until the client leaves: its request is the same as Check's.
        if method == "/grpc.health.v1.Health/Watch" {
            continue;
        }
        let Some((who, body)) = base(method, &f) else {
            uncovered.push(method.clone());
            continue;
        };
        let token = match who {
            Who::Anonymous => None,
            Who::Owner => Some(f.owner.clone()),
            Who::Fresh => f.fresh.get(method).map(|t| t.0.clone()),
            Who::Admin => Some(f.admin.clone()),
            Who::Service => Some(f.service.clone()),
        };
        let cases = schema.cases(input, &body);
        assert!(!cases.is_empty(), "no cases for {method} ({input})");
        for case in &cases {
            let answer = tokio::time::timeout(
                HANG,
                raw::call_shaped(ch.clone(), method, *shape, case.body.clone(), token.as_deref()),
            )
            .await;
            calls += 1;
            if let Some(why) = judge(case, answer) {
                failures.push(format!("{method} [{}]: {why}", case.label));
            }
        }
    }
    assert!(uncovered.is_empty(), "RPCs without a base request in the hostile suite: {uncovered:?}");
    let shown: Vec<&String> = failures.iter().take(60).collect();
    assert!(
        failures.is_empty(),
        "{} of {calls} hostile calls were mishandled:\n{}",
        failures.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    // The server is still healthy and the owner still served after all of it.
    let me =
        raw::call(ch.clone(), "/timetravelers.identity.v1.AccountService/GetMe", Vec::new(), Some(&f.owner))
            .await;
    assert!(me.is_ok(), "GetMe after the suite: {me:?}");
    server.stop().await
}
