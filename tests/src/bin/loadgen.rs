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
//! GetMe while a login flood saturates password hashing; reports the p99 ratio).

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use tonic::transport::Channel;
use tt_common::{config::HumanDuration, testing::Bearer};
use tt_e2e::{
    AllInOne, echo,
    load::{self, Report},
    pb::loadtest::{EchoRequest, echo_service_client::EchoServiceClient},
};
use tt_proto::identity::v1::{
    GetMeRequest, LoginRequest, RegisterRequest, account_service_client::AccountServiceClient,
    auth_service_client::AuthServiceClient,
};

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "TimeTravelers load generator (ratios against a bare tonic echo baseline)"
)]
struct Args {
    /// echo | getme | login | getme-during-logins
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

    println!(
        "in flight {}, connections {}, duration {:?} per run, on {} CPUs",
        args.in_flight,
        args.connections,
        d,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    for r in &reports {
        println!("{}   ({:.2}x echo)", r.line(), r.rps() / baseline.rps());
    }
    Ok(())
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
