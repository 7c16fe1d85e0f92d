//! The load generator. One invocation measures the bare tonic echo baseline and then the named
//! scenario with the same in-flight calls, connections and duration, and prints both with their
//! ratio, so figures are comparable on any machine.
//!
//! ```text
//! cargo run --release -p tt-e2e --bin loadgen -- --scenario getme --in-flight 64 --connections 4 --duration 10s
//! ```
//!
//! Scenarios: `echo` (the baseline itself), `getme` (authenticated AccountService/GetMe),
//! `login` (AuthService/Login with the right password), `getme-during-logins` (GetMe idle, then
//! GetMe while a login flood saturates password hashing; reports the p99 ratio), `profiles`
//! (ProfileService/GetProfile for the caller and IntegrationService/GetLearnerView with a service
//! token, each on a server with the view cache and on one with it turned off: cache hit versus
//! miss in the same run), `analytics` (a synthetic month of events: inserted straight into
//! PostgreSQL with multi-row INSERTs as the baseline, then client-streamed through analytics
//! into a fresh database; then the 30-day DAU series over them, uncached, and every engagement
//! figure), `ai` (libs/ai, one call at a time: a governed chat call over an OpenAI-compatible
//! mock against the same HTTP request made raw, and the offline provider's time to its first
//! delta), `matching` (MatchService/FindMatches over the demo catalog for a learner with goals,
//! the hottest read, then ChooseMentor and EndMentorship in turn per learner, the hottest write,
//! on the all-in-one).
//!
//! Against running servers: `--target` is the profiles (or all-in-one) URL, `--identity` the
//! identity URL when it differs, and `--miss-target` a second profiles deployment on the same
//! database with `TT_PROFILES_CACHE_TTL=0s`.

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use tonic::transport::Channel;
use tt_common::config::HumanDuration;
use tt_e2e::{
    AllInOne, echo,
    load::{self, Report},
    pb::loadtest::{EchoRequest, echo_service_client::EchoServiceClient},
};
use tt_proto::identity::v1::{
    GetMeRequest, LoginRequest, RegisterRequest, account_service_client::AccountServiceClient,
    auth_service_client::AuthServiceClient,
};
use tt_testkit::Bearer;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "TimeTravelers load generator (ratios against a bare tonic echo baseline)"
)]
struct Args {
    /// echo | getme | login | getme-during-logins | profiles | analytics | ai | matching
    #[arg(long, default_value = "getme")]
    scenario: String,
    /// Calls in flight.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured time per run.
    #[arg(long, default_value = "10s")]
    duration: HumanDuration,
    /// Unmeasured warm-up per run.
    #[arg(long, default_value = "2s")]
    warmup: HumanDuration,
    /// Calls in flight of the login flood (getme-during-logins).
    #[arg(long, default_value_t = 16)]
    login_in_flight: usize,
    /// Measure a running server instead of one started in this process.
    #[arg(long)]
    target: Option<String>,
    /// Data directory of the in-process server (a temporary one when unset).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Identity's URL when --target is a standalone profiles service.
    #[arg(long)]
    identity: Option<String>,
    /// Profiles with its view cache off (scenario `profiles`; in process when unset).
    #[arg(long)]
    miss_target: Option<String>,
    /// PostgreSQL server the `analytics` scenario makes its scratch databases on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// Events of the `analytics` scenario.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Users those events are about.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Events per stream message (and rows per direct INSERT batch group).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent ingestion streams (and baseline connections).
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Matches per FindMatches page (scenario `matching`).
    #[arg(long, default_value_t = 10)]
    page_size: i32,
    /// Synthetic mentors added to the shipped ones (scenario `matching`; the write path is then
    /// skipped): the large-catalog FindMatches run.
    #[arg(long, default_value_t = 0)]
    mentors: usize,
    /// The admin's password on --target (creates the service account for GetLearnerView).
    #[arg(long, env = "TT_LOADGEN_ADMIN_PASSWORD", default_value = tt_e2e::ADMIN_PASSWORD)]
    admin_password: String,
}

const PASSWORD: &str = "loadgen passphrase 123";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (d, w) = (args.duration.0, args.warmup.0);

    let (echo_addr, _echo) = echo::spawn_bare().await?;
    let echo_channels = load::connections(&format!("http://{echo_addr}"), args.connections).await?;
    let echo_call = |ch: Channel, _n: u64| async move {
        EchoServiceClient::new(ch).echo(EchoRequest { message: "ping".into(), delay_ms: 0 }).await.map(|_| ())
    };
    load::run("warmup", &echo_channels, args.in_flight, w, echo_call).await?;
    let baseline = load::run("echo (baseline)", &echo_channels, args.in_flight, d, echo_call).await?;
    drop(echo_channels);

    if args.scenario == "profiles" {
        return profiles::run(&args, baseline).await;
    }
    if args.scenario == "analytics" {
        return analytics::run(&args, baseline).await;
    }
    if args.scenario == "ai" {
        return ai::run(&args, baseline).await;
    }
    if args.scenario == "matching" {
        return matching::run(&args, baseline).await;
    }

    let (_server, url) = match &args.target {
        Some(url) => (None, url.clone()),
        None => {
            let server = match &args.data_dir {
                Some(dir) => AllInOne::start_in(dir.clone(), |_| {}).await?,
                None => AllInOne::start().await?,
            };
            let url = server.url();
            (Some(server), url)
        }
    };
    let channels = load::connections(&url, args.connections).await?;
    let email = format!("load-{}@example.com", tt_common::new_id());
    let token = register(&channels[0], &email).await?;
    // Logins spread over accounts: one identifier admits at most 10 password checks at a time
    // (brute-force protection), and a real flood comes from many users.
    let mut login_accounts = Vec::new();
    for _ in 0..args.login_in_flight.max(args.in_flight).min(64) {
        let e = format!("load-{}@example.com", tt_common::new_id());
        register(&channels[0], &e).await?;
        login_accounts.push(e);
    }

    let mut reports: Vec<Report> = vec![baseline.clone()];
    match args.scenario.as_str() {
        "echo" => {}
        "getme" => {
            run_getme(&channels, &token, args.in_flight, w, "warmup").await?;
            reports.push(run_getme(&channels, &token, args.in_flight, d, "GetMe").await?);
        }
        "login" => {
            reports.push(run_login(&channels, &login_accounts, args.in_flight, d, "Login").await?);
        }
        "getme-during-logins" => {
            run_getme(&channels, &token, args.in_flight, w, "warmup").await?;
            let idle = run_getme(&channels, &token, args.in_flight, d, "GetMe idle").await?;
            let flood_channels = load::connections(&url, 1).await?;
            let flood_in_flight = args.login_in_flight;
            let accounts = login_accounts.clone();
            let flood = tokio::spawn(async move {
                let flood_for = d + w + Duration::from_secs(1);
                run_login(&flood_channels, &accounts, flood_in_flight, flood_for, "Login flood").await
            });
            tokio::time::sleep(w).await;
            let loaded = run_getme(&channels, &token, args.in_flight, d, "GetMe during logins").await?;
            let flood = flood.await??;
            println!(
                "p99 during logins / p99 idle = {:.2} (target <= 1.5); logins completed: {:.0}/s",
                loaded.p99_us as f64 / idle.p99_us.max(1) as f64,
                flood.rps()
            );
            reports.extend([idle, loaded, flood]);
        }
        other => anyhow::bail!("unknown scenario {other:?}"),
    }

    print(&args, &reports, &baseline);
    Ok(())
}

fn print(args: &Args, reports: &[Report], baseline: &Report) {
    println!(
        "in flight {}, connections {}, duration {:?} per run, on {} CPUs",
        args.in_flight,
        args.connections,
        args.duration.0,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    for r in reports {
        println!("{}   ({:.2}x echo)", r.line(), r.rps() / baseline.rps());
    }
}

async fn register(channel: &Channel, email: &str) -> anyhow::Result<String> {
    let reply = AuthServiceClient::new(channel.clone())
        .register(RegisterRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: "Load".into(),
        })
        .await?
        .into_inner();
    Ok(reply.tokens.map(|t| t.access_token).unwrap_or_default())
}

async fn run_getme(
    channels: &[Channel],
    token: &str,
    in_flight: usize,
    d: Duration,
    name: &str,
) -> anyhow::Result<Report> {
    let token = token.to_owned();
    load::run(name, channels, in_flight, d, move |ch, _| {
        let bearer = Bearer::new(token.clone());
        async move { AccountServiceClient::with_interceptor(ch, bearer).get_me(GetMeRequest {}).await.map(|_| ()) }
    })
    .await
}

async fn run_login(
    channels: &[Channel],
    accounts: &[String],
    in_flight: usize,
    d: Duration,
    name: &str,
) -> anyhow::Result<Report> {
    let accounts = accounts.to_vec();
    load::run(name, channels, in_flight, d, move |ch, n| {
        // The worker index is in the high bits of n: each worker signs in as its own account.
        let worker = usize::try_from(n >> 32).unwrap_or(0);
        let email = accounts[worker % accounts.len()].clone();
        let request = LoginRequest { email, password: PASSWORD.into() };
        async move { AuthServiceClient::new(ch).login(request).await.map(|_| ()) }
    })
    .await
}

mod profiles {
    //! Scenario `profiles`: cached reads of the profile and of the learner view, against the
    //! same reads with the cache turned off.

    use tt_e2e::AllInOne;
    use tt_proto::{
        identity::v1::{
            CreateServiceAccountRequest, IssueServiceTokenRequest, LoginRequest,
            admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
        },
        profiles::v1::{
            CreateGoalRequest, GetLearnerViewRequest, GetProfileRequest, Goal, GoalKind, Profile,
            UpdateProfileRequest, UpsertLearnerSkillRequest, goal_service_client::GoalServiceClient,
            integration_service_client::IntegrationServiceClient,
            profile_service_client::ProfileServiceClient, skill_service_client::SkillServiceClient,
        },
    };

    use super::*;

    /// One deployment to measure: profiles at `url`, identity at `identity`.
    struct Target {
        label: &'static str,
        url: String,
        identity: String,
        _server: Option<AllInOne>,
    }

    pub async fn run(args: &Args, baseline: Report) -> anyhow::Result<()> {
        let (d, w) = (args.duration.0, args.warmup.0);
        let hit = match &args.target {
            Some(url) => Target {
                label: "cache",
                url: url.clone(),
                identity: args.identity.clone().unwrap_or_else(|| url.clone()),
                _server: None,
            },
            None => in_process("cache", |_| {}).await?,
        };
        let miss = match &args.miss_target {
            Some(url) => {
                let identity = args.identity.clone().unwrap_or_else(|| url.clone());
                Target { label: "no cache", url: url.clone(), identity, _server: None }
            }
            None => {
                in_process("no cache", |c| {
                    c.set("profiles-cache-ttl", "0s");
                })
                .await?
            }
        };
        let mut reports = vec![baseline.clone()];
        let mut figures = Vec::new();
        for target in [&hit, &miss] {
            let (learner, service) = prepare(target, &args.admin_password).await?;
            let channels = load::connections(&target.url, args.connections).await?;
            let user_id = learner_id(&channels[0], &learner).await?;
            let profile = move |ch: Channel, _n: u64| {
                let bearer = Bearer::new(learner.clone());
                async move {
                    ProfileServiceClient::with_interceptor(ch, bearer)
                        .get_profile(GetProfileRequest::default())
                        .await
                        .map(|_| ())
                }
            };
            let view = move |ch: Channel, _n: u64| {
                let (bearer, user_id) = (Bearer::new(service.clone()), user_id.clone());
                async move {
                    IntegrationServiceClient::with_interceptor(ch, bearer)
                        .get_learner_view(GetLearnerViewRequest { user_id })
                        .await
                        .map(|_| ())
                }
            };
            load::run("warmup", &channels, args.in_flight, w, profile.clone()).await?;
            let p =
                load::run(&format!("GetProfile ({})", target.label), &channels, args.in_flight, d, profile)
                    .await?;
            load::run("warmup", &channels, args.in_flight, w, view.clone()).await?;
            let v =
                load::run(&format!("GetLearnerView ({})", target.label), &channels, args.in_flight, d, view)
                    .await?;
            figures.push((p.clone(), v.clone()));
            reports.extend([p, v]);
        }
        super::print(args, &reports, &baseline);
        if let [(hit_p, hit_v), (miss_p, miss_v)] = figures.as_slice() {
            for (name, hit, miss) in [("GetProfile", hit_p, miss_p), ("GetLearnerView", hit_v, miss_v)] {
                println!(
                    "{name}: cached {:.2}x echo (target >= 0.5), p99 {:.2} ms (target <= 5), \
                     hit/miss {:.2}x (target >= 2)",
                    hit.rps() / baseline.rps(),
                    hit.p99_us as f64 / 1000.0,
                    hit.rps() / miss.rps().max(1.0),
                );
            }
        }
        Ok(())
    }

    async fn in_process(
        label: &'static str,
        tune: impl FnOnce(&mut timetravelers::Config),
    ) -> anyhow::Result<Target> {
        let dir = tempfile::tempdir()?.keep();
        let server = AllInOne::start_in(dir, tune).await?;
        let url = server.url();
        Ok(Target { label, identity: url.clone(), url, _server: Some(server) })
    }

    /// A learner with a filled-in profile, and a service token.
    async fn prepare(target: &Target, admin_password: &str) -> anyhow::Result<(String, String)> {
        let identity = load::connections(&target.identity, 1).await?.remove(0);
        let profiles = load::connections(&target.url, 1).await?.remove(0);
        let email = format!("load-{}@example.com", tt_common::new_id());
        let learner = register(&identity, &email).await?;
        let bearer = || Bearer::new(learner.clone());
        ProfileServiceClient::with_interceptor(profiles.clone(), bearer())
            .update_profile(UpdateProfileRequest {
                profile: Some(Profile {
                    headline: "Platform engineer".into(),
                    fields_of_work: vec!["software".into()],
                    timezone: "Europe/Paris".into(),
                    languages: vec!["en".into(), "fr".into()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: ["headline", "fields_of_work", "timezone", "languages"].map(String::from).to_vec(),
                }),
            })
            .await?;
        GoalServiceClient::with_interceptor(profiles.clone(), bearer())
            .create_goal(CreateGoalRequest {
                goal: Some(Goal {
                    kind: GoalKind::LongTerm.into(),
                    title: "Staff engineer".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?;
        for skill in ["rust", "kubernetes", "postgresql"] {
            SkillServiceClient::with_interceptor(profiles.clone(), bearer())
                .upsert_learner_skill(UpsertLearnerSkillRequest {
                    skill_id: skill.into(),
                    proficiency: 3,
                    years: 2.0,
                    last_used: None,
                })
                .await?;
        }
        let admin = AuthServiceClient::new(identity.clone())
            .login(LoginRequest { email: tt_e2e::ADMIN_EMAIL.into(), password: admin_password.into() })
            .await?
            .into_inner()
            .tokens
            .map(|t| t.access_token)
            .unwrap_or_default();
        let account = AdminServiceClient::with_interceptor(identity.clone(), Bearer::new(admin))
            .create_service_account(CreateServiceAccountRequest {
                name: format!("loadgen-{}", tt_common::new_id()),
                description: String::new(),
            })
            .await?
            .into_inner();
        let service = AuthServiceClient::new(identity)
            .issue_service_token(IssueServiceTokenRequest {
                client_id: account.service_account.map(|a| a.id).unwrap_or_default(),
                client_secret: account.client_secret,
            })
            .await?
            .into_inner()
            .access_token;
        Ok((learner, service))
    }

    async fn learner_id(profiles: &Channel, learner: &str) -> anyhow::Result<String> {
        Ok(ProfileServiceClient::with_interceptor(profiles.clone(), Bearer::new(learner))
            .get_profile(GetProfileRequest::default())
            .await?
            .into_inner()
            .profile
            .map(|p| p.user_id)
            .unwrap_or_default())
    }
}

mod analytics {
    //! Scenario `analytics`: ingestion throughput against the direct-INSERT baseline, then the
    //! 30-day DAU series over the ingested month.

    use tt_e2e::analytics_load::{analytics_server, direct_insert, stream_ingest, synthetic_events};
    use tt_proto::analytics::v1::{
        DateRange, GetDashboardRequest, GetEngagementRequest, GetUsageStatsRequest,
        admin_service_client::AdminServiceClient, report_service_client::ReportServiceClient,
    };
    use tt_testkit::TestDatabase;

    use super::*;

    pub async fn run(args: &Args, baseline: Report) -> anyhow::Result<()> {
        use tt_common::clock::Clock;
        let now = tt_common::clock::SystemClock.now_ms();
        const DAY_MS: i64 = 24 * 3600 * 1000;
        println!("generating {} events about {} users over 30 days", args.events, args.users);
        let events = synthetic_events(args.events, args.users, 30 * DAY_MS, now - 11 * 60_000, 7);
        // Then live traffic: a fifth as many events over the last ten minutes.
        let live = synthetic_events(args.events / 5, args.users, 10 * 60_000, now, 8);

        let direct = TestDatabase::postgres(args.database_url.clone()).await;
        let db = tt_common::storage::Database::connect_lazy(&tt_common::storage::DatabaseOptions::new(
            direct.url.clone(),
        ))?;
        db.migrate(tt_analytics::store::MIGRATIONS).await?;
        db.close().await;
        // The same 500-row statements analytics writes, over as many connections as streams.
        let direct_rate = direct_insert(&direct.url, &events, 500, args.streams).await?;
        println!("month, direct multi-row INSERT:        {direct_rate:>9.0} events/s");
        let direct_live = direct_insert(&direct.url, &live, 500, args.streams).await?;
        println!("live, direct multi-row INSERT:         {direct_live:>9.0} events/s");
        drop(direct);

        let target = std::sync::Arc::new(TestDatabase::postgres(args.database_url.clone()).await);
        let (server, service, admin) = analytics_server(target, "0s").await?;
        let channels = load::connections(&server.url(), args.streams).await?;
        let mut stats = AdminServiceClient::new(tonic::service::interceptor::InterceptedService::new(
            channels[0].clone(),
            Bearer::new(admin.clone()),
        ));
        for (name, batch, direct) in [("month", &events, direct_rate), ("live", &live, direct_live)] {
            let started = std::time::Instant::now();
            let (rate, summary) = stream_ingest(&channels, &service, batch, args.batch, args.streams).await?;
            println!(
                "{name}, client-streaming ingestion:    {rate:>9.0} events/s   ({:.2}x direct; accepted {}, duplicates {}, dead letters {})",
                rate / direct,
                summary.accepted,
                summary.duplicates,
                summary.dead_lettered
            );
            // The rollups fold accepted events in behind ingestion: how long until they hold all.
            let mut backlog = i64::MAX;
            while backlog > 0 {
                backlog = stats.get_usage_stats(GetUsageStatsRequest {}).await?.into_inner().rollup_backlog;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let all_in = started.elapsed().as_secs_f64();
            println!(
                "{name}, rollups complete after {all_in:.1} s:  {:>9.0} events/s ingested and rolled up",
                batch.len() as f64 / all_in
            );
        }

        let end = tt_analytics::domain::calendar::local_date(now, &jiff::tz::TimeZone::UTC);
        let start = tt_analytics::domain::calendar::add_days(end, -29).unwrap_or(end);
        let range =
            DateRange { start_date: start.to_string(), end_date: end.to_string(), time_zone: String::new() };
        let authed = |ch: Channel, token: String| {
            ReportServiceClient::new(tonic::service::interceptor::InterceptedService::new(
                ch,
                Bearer::new(token),
            ))
        };
        let (t, r) = (admin.clone(), range.clone());
        let dau = move |ch: Channel, _n: u64| {
            let (token, range) = (t.clone(), r.clone());
            async move {
                authed(ch, token)
                    .get_dashboard(GetDashboardRequest {
                        dashboard: "engagement".into(),
                        range: Some(range),
                        series: vec!["dau".into()],
                    })
                    .await
                    .map(|_| ())
            }
        };
        let (t, r) = (admin.clone(), range.clone());
        let engagement = move |ch: Channel, _n: u64| {
            let (token, range) = (t.clone(), r.clone());
            async move {
                authed(ch, token)
                    .get_engagement(GetEngagementRequest { range: Some(range) })
                    .await
                    .map(|_| ())
            }
        };
        let (d, w) = (args.duration.0, args.warmup.0);
        load::run("warmup", &channels, 1, w, dau.clone()).await?;
        let reports = vec![
            baseline.clone(),
            load::run("30-day DAU, 1 in flight", &channels, 1, d, dau.clone()).await?,
            load::run("30-day DAU, 4 in flight", &channels, 4, d, dau).await?,
            load::run("GetEngagement 30 days, 1", &channels, 1, d, engagement).await?,
        ];
        println!("dashboards uncached (TT_ANALYTICS_DASHBOARD_TTL=0s); target: DAU p50 <= 50 ms");
        print(args, &reports, &baseline);
        drop(channels);
        server.stop().await;
        Ok(())
    }
}

mod ai {
    //! Scenario `ai`: what the governed call adds to a model call (redaction, moderation, quota
    //! reservation and settlement in the in-process cache, model choice, the retry loop, SSE
    //! parsing, the report written to a SQLite outbox) over the same HTTP request to the same
    //! mock made with a bare client; and how soon the offline provider's first delta arrives
    //! through the governed call. One call at a time, so the figures are latencies.

    use std::sync::Arc;

    use clap::Parser as _;
    use futures::StreamExt;
    use hdrhistogram::Histogram;
    use tt_ai::{AiArgs, AiCall, ChatEvent, ChatRequest, Message, Opening, OutboxReport, Tier};
    use tt_common::{
        cache::Cache,
        outbox::{Outbox, Routes},
        storage::{Database, DatabaseOptions},
    };
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::path};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        ai: AiArgs,
    }

    /// A streamed reply of 24 deltas with its usage, as OpenAI sends it.
    fn reply() -> String {
        let mut body = String::new();
        for i in 0..24 {
            body.push_str(&format!(
                "data: {{\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
            ));
        }
        body.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        body.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":24}}\n\ndata: [DONE]\n\n");
        body
    }

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user("How do I move from support into data engineering?")],
            max_tokens: Some(256),
            ..ChatRequest::default()
        }
    }

    fn call() -> AiCall {
        AiCall {
            user: "load".into(),
            time_zone: "Europe/Paris".into(),
            mentor: None,
            purpose: "loadgen".into(),
            tier: Tier::Basic,
            deadline: None,
        }
    }

    struct Figures {
        name: &'static str,
        histogram: Histogram<u64>,
        calls: u64,
    }

    impl Figures {
        fn new(name: &'static str) -> anyhow::Result<Self> {
            Ok(Self { name, histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?, calls: 0 })
        }

        fn record(&mut self, took: Duration) -> anyhow::Result<()> {
            self.calls += 1;
            self.histogram.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1))?;
            Ok(())
        }

        fn p50(&self) -> f64 {
            self.histogram.value_at_quantile(0.5) as f64 / 1000.0
        }

        fn line(&self) -> String {
            let q = |x: f64| self.histogram.value_at_quantile(x) as f64 / 1000.0;
            format!(
                "{:<34} {:>7} calls  p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms",
                self.name,
                self.calls,
                q(0.5),
                q(0.9),
                q(0.99)
            )
        }
    }

    /// Runs `one` back to back for `time`, recording what each call returned as its latency.
    async fn measure<F, Fut>(figures: &mut Figures, time: Duration, mut one: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Duration>>,
    {
        let end = std::time::Instant::now() + time;
        while std::time::Instant::now() < end {
            let took = one().await?;
            figures.record(took)?;
        }
        Ok(())
    }

    pub async fn run(args: &Args, baseline: Report) -> anyhow::Result<()> {
        let (d, w) = (args.duration.0, args.warmup.0);
        let server = MockServer::start().await;
        let sse = ResponseTemplate::new(200)
            .insert_header("content-type", "text/event-stream")
            .set_body_string(reply());
        Mock::given(path("/v1/chat/completions")).respond_with(sse).mount(&server).await;
        let url = format!("{}/v1/chat/completions", server.uri());

        let dir = tempfile::tempdir()?;
        let db = Database::connect_lazy(&DatabaseOptions::new(Database::sqlite_url(
            &dir.path().join("outbox.db"),
        )))?;
        db.migrate(&[tt_common::outbox::migration(1)]).await?;
        let report = Arc::new(OutboxReport { db, outbox: Outbox::new(Routes::new()) });
        let cache = Cache::memory(100_000, "loadgen:");
        let clock: tt_common::clock::SharedClock = Arc::new(tt_common::clock::SystemClock);
        let base = format!("{}/v1", server.uri());
        let quotas = ["--ai-requests-per-minute", "4000000000", "--ai-daily-tokens", "1000000000000"];
        let external = Cli::try_parse_from(
            ["loadgen", "--ai-provider", "openai", "--ai-base-url", &base].iter().chain(quotas.iter()),
        )?
        .ai;
        let offline = Cli::try_parse_from(["loadgen"].iter().chain(quotas.iter()))?.ai;
        let open = |settings: &AiArgs| {
            settings.open(Opening {
                service: "loadgen",
                cache: &cache,
                identity: None,
                report: report.clone(),
                clock: clock.clone(),
            })
        };
        let (governed, local) = (open(&external)?, open(&offline)?);

        let http = reqwest::Client::new();
        let body = serde_json::json!({
            "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "How do I move from support into data engineering?"}],
        });
        let raw = || async {
            let started = std::time::Instant::now();
            let response = http.post(&url).json(&body).send().await?.error_for_status()?;
            response.bytes().await?;
            Ok(started.elapsed())
        };
        let library = || async {
            let started = std::time::Instant::now();
            governed.complete(&call(), request()).await.map_err(|s| anyhow::anyhow!("{s}"))?;
            Ok(started.elapsed())
        };
        let first_delta = || async {
            let started = std::time::Instant::now();
            let mut stream = local.chat(&call(), request()).await.map_err(|s| anyhow::anyhow!("{s}"))?;
            let first = stream.next().await;
            let took = started.elapsed();
            anyhow::ensure!(matches!(first, Some(Ok(ChatEvent::Delta(_)))), "no first delta: {first:?}");
            while let Some(event) = stream.next().await {
                event.map_err(|s| anyhow::anyhow!("{s}"))?;
            }
            Ok(took)
        };

        let mut scratch = Figures::new("warmup")?;
        measure(&mut scratch, w, raw).await?;
        measure(&mut scratch, w, library).await?;
        measure(&mut scratch, w, first_delta).await?;
        let mut raw_figures = Figures::new("raw HTTP call to the mock")?;
        let mut library_figures = Figures::new("governed call (libs/ai)")?;
        // Alternating halves, so a drift of the machine weighs on both alike.
        for _ in 0..2 {
            measure(&mut raw_figures, d / 2, raw).await?;
            measure(&mut library_figures, d / 2, library).await?;
        }
        let mut offline_figures = Figures::new("offline: time to first delta")?;
        measure(&mut offline_figures, d, first_delta).await?;

        println!("{}", baseline.line());
        for figures in [&raw_figures, &library_figures, &offline_figures] {
            println!("{}", figures.line());
        }
        let added = library_figures.p50() - raw_figures.p50();
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "library overhead (p50, governed - raw): {added:.3} ms (target <= 1 ms: {})",
            verdict(added <= 1.0)
        );
        let ttfd = offline_figures.p50();
        println!(
            "offline time to first delta (p50): {ttfd:.3} ms (target <= 5 ms: {})",
            verdict(ttfd <= 5.0)
        );
        Ok(())
    }
}

mod matching {
    //! Scenario `matching`: FindMatches (a page of 10 over the demo catalog, the learner's view
    //! cached; with `--mentors N` over N synthetic mentors more, and nothing else) and the
    //! mentorship write path (ChooseMentor and EndMentorship in turn, one learner
    //! per worker, each write a seat taken or freed with its outbox event).

    use std::sync::{Arc, Mutex};

    use tt_proto::{
        matching::v1::{
            ChooseMentorRequest, EndMentorshipRequest, EndReason, FindMatchesRequest,
            match_service_client::MatchServiceClient, mentorship_service_client::MentorshipServiceClient,
        },
        profiles::v1::{CreateGoalRequest, Goal, GoalKind, goal_service_client::GoalServiceClient},
    };

    use super::*;

    /// Mentors the writers spread over (each has at least 5 seats).
    const MENTORS: [&str; 8] = [
        "dorothea-wilmarth",
        "tomasz-wierzbicki",
        "adaeze-nwosu",
        "rukmini-iyer",
        "helga-brandvold",
        "kofi-mensah-larbi",
        "walter-pruitt",
        "odessa-tan",
    ];

    async fn learner(channel: &Channel) -> anyhow::Result<String> {
        let token = register(channel, &format!("load-{}@example.com", tt_common::new_id())).await?;
        let goal = Goal {
            kind: GoalKind::ShortTerm.into(),
            title: "Move into incident response".into(),
            target_role: "incident responder".into(),
            target_field: "security-defender".into(),
            priority: 1,
            skill_ids: vec!["incident-response".into(), "digital-forensics".into(), "python".into()],
            ..Default::default()
        };
        GoalServiceClient::with_interceptor(channel.clone(), Bearer::new(token.clone()))
            .create_goal(CreateGoalRequest { goal: Some(goal), request_id: String::new() })
            .await?;
        Ok(token)
    }

    pub async fn run(args: &Args, baseline: Report) -> anyhow::Result<()> {
        let (d, w) = (args.duration.0, args.warmup.0);
        let dir = tempfile::tempdir()?;
        let (_server, url) = match &args.target {
            Some(url) => (None, url.clone()),
            None => {
                if args.mentors > 0 {
                    let started = std::time::Instant::now();
                    tt_e2e::bench_catalog::seed(dir.path(), args.mentors, 7).await?;
                    println!("{} synthetic mentors written in {:.1?}", args.mentors, started.elapsed());
                }
                let started = std::time::Instant::now();
                let server = AllInOne::start_in(dir.path().to_path_buf(), |_| {}).await?;
                println!(
                    "all-in-one serving in {:.1?} (personas embedded, catalog loaded)",
                    started.elapsed()
                );
                let url = server.url();
                (Some(server), url)
            }
        };
        let channels = load::connections(&url, args.connections).await?;
        let reader = learner(&channels[0]).await?;
        let page_size = args.page_size;
        let find = move |ch: Channel, _n: u64| {
            let bearer = Bearer::new(reader.clone());
            async move {
                let page = FindMatchesRequest { page_size, ..Default::default() };
                MatchServiceClient::with_interceptor(ch, bearer).find_matches(page).await.map(|_| ())
            }
        };
        load::run("warmup", &channels, args.in_flight, w, find.clone()).await?;
        let name = match args.mentors {
            0 => format!("FindMatches (page of {page_size})"),
            n => format!("FindMatches (page of {page_size}, the shipped mentors and {n} more)"),
        };
        let read = load::run(&name, &channels, args.in_flight, d, find).await?;
        if args.mentors > 0 {
            print(args, &[baseline.clone(), read], &baseline);
            return Ok(());
        }

        let mut writers = Vec::new();
        for _ in 0..args.in_flight {
            writers.push(learner(&channels[0]).await?);
        }
        // Per worker: its learner and its running mentorship (empty: choose next).
        let slots: Arc<Vec<(String, Mutex<String>)>> =
            Arc::new(writers.into_iter().map(|t| (t, Mutex::new(String::new()))).collect());
        let write = move |ch: Channel, n: u64| {
            let slots = slots.clone();
            async move {
                let worker = usize::try_from(n >> 32).unwrap_or(0) % slots.len();
                let (token, running) = &slots[worker];
                let current = running.lock().map(|r| r.clone()).unwrap_or_default();
                let mut client = MentorshipServiceClient::with_interceptor(ch, Bearer::new(token.clone()));
                if current.is_empty() {
                    let mentor_id = MENTORS[worker % MENTORS.len()].to_owned();
                    let chosen = client
                        .choose_mentor(ChooseMentorRequest { mentor_id, request_id: String::new() })
                        .await?;
                    let id = chosen.into_inner().mentorship.map(|m| m.mentorship_id).unwrap_or_default();
                    if let Ok(mut r) = running.lock() {
                        *r = id;
                    }
                } else {
                    let end = EndMentorshipRequest {
                        mentorship_id: current,
                        reason: EndReason::NoTime.into(),
                        note: String::new(),
                    };
                    client.end_mentorship(end).await?;
                    if let Ok(mut r) = running.lock() {
                        r.clear();
                    }
                }
                Ok(())
            }
        };
        let written = load::run("ChooseMentor / EndMentorship", &channels, args.in_flight, d, write).await?;
        print(args, &[baseline.clone(), read, written], &baseline);
        Ok(())
    }
}
