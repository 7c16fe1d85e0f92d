//! The analytics load scenario's building blocks: a synthetic month of platform events, the
//! plain-client baseline (the same rows inserted with multi-row INSERTs straight into an
//! analytics `events` table), client-streaming ingestion through the service, and an
//! in-process analytics server on a database of the caller's choosing.

use std::{sync::Arc, time::Instant};

use futures::future::try_join_all;
use rand::{Rng, SeedableRng, rngs::StdRng};
use tonic::transport::Channel;
use tt_common::{auth::Role, outbox::EventBuilder};
use tt_proto::{
    analytics::v1::{IngestSummary, StreamEventsRequest, ingest_service_client::IngestServiceClient},
    common::v1::Event,
};
use tt_testkit::{Bearer, Kit, TestDatabase, TestPlatform};

/// `n` events over the `span_ms` before `end_ms`, from `users` users: each user signs up once
/// (early in the span), then signs in, edits their profile, sets goals and adds skills, some
/// users often, most now and then. A month is a backfill; the last minutes are live traffic.
pub fn synthetic_events(n: usize, users: usize, span_ms: i64, end_ms: i64, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let ids: Vec<String> = (0..users).map(|_| tt_common::new_id()).collect();
    // A user's activity level: how likely they are active on a given day.
    let levels: Vec<f64> = (0..users).map(|_| rng.random_range(0.05..0.9f64).powi(2)).collect();
    let start = end_ms - span_ms;
    let mut out = Vec::with_capacity(n);
    for id in &ids {
        let at = start + rng.random_range(0..(span_ms / 30).max(1));
        out.push(EventBuilder::new("identity", "identity.user.registered", id, id, at).build());
    }
    while out.len() < n {
        let u = rng.random_range(0..users);
        if !rng.random_bool(levels[u]) {
            continue;
        }
        let id = &ids[u];
        let at = start + rng.random_range(0..span_ms.max(1));
        let event = match rng.random_range(0..10) {
            0..=4 => {
                EventBuilder::new("identity", "identity.user.logged_in", id, id, at).string("client", "web")
            }
            5..=6 => EventBuilder::new("profiles", "profiles.profile.updated", id, id, at)
                .string("fields", "headline"),
            7 => EventBuilder::new("profiles", "profiles.goal.created", id, id, at)
                .string("goal_id", tt_common::new_id())
                .string("kind", "GOAL_KIND_SHORT_TERM"),
            8 => EventBuilder::new("profiles", "profiles.skill.added", id, id, at)
                .string("skill_id", "rust")
                .int("level", rng.random_range(1..=5)),
            _ => EventBuilder::new("profiles", "profiles.completion.changed", id, "", at)
                .int("percent", rng.random_range(0..=100))
                .int("previous", rng.random_range(0..=100)),
        };
        out.push(event.build());
    }
    out
}

/// Inserts `events` into the `events` table of `url` (a database with analytics' schema) with
/// multi-row INSERTs of `rows` rows over `connections` plain PostgreSQL connections: the
/// baseline ingestion is compared with. Returns events per second.
pub async fn direct_insert(
    url: &str,
    events: &[Event],
    rows: usize,
    connections: usize,
) -> anyhow::Result<f64> {
    use sqlx::postgres::PgPoolOptions;
    let pool = PgPoolOptions::new().max_connections(connections as u32).connect(url).await?;
    let started = Instant::now();
    let chunks: Vec<&[Event]> = events.chunks(rows).collect();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..connections).map(|_| {
        let (pool, next, chunks) = (pool.clone(), next.clone(), &chunks);
        async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { return anyhow::Ok(()) };
                let mut sql = String::from(
                    "INSERT INTO events (id, type, version, time, actor, subject, source, attributes, received_at) VALUES ",
                );
                for r in 0..chunk.len() {
                    let b = r * 9;
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9
                    ));
                }
                sql.push_str(" ON CONFLICT (id) DO NOTHING");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                let now = tt_common::clock::Clock::now_ms(&tt_common::clock::SystemClock);
                for e in chunk.iter() {
                    q = q
                        .bind(e.id.clone())
                        .bind(e.r#type.clone())
                        .bind(i64::from(e.version))
                        .bind(e.time.as_ref().map_or(0, tt_common::clock::from_timestamp))
                        .bind(e.actor.clone())
                        .bind(e.subject.clone())
                        .bind(e.source.clone())
                        .bind(tt_analytics::domain::schema::attributes_json(&e.attributes))
                        .bind(now);
                }
                q.execute(&pool).await?;
            }
        }
    });
    try_join_all(workers).await?;
    let rate = events.len() as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(rate)
}

/// Streams `events` to analytics in messages of `batch` events over `streams` concurrent
/// client streams (one per channel, round robin). Returns events per second and the summary.
pub async fn stream_ingest(
    channels: &[Channel],
    token: &str,
    events: &[Event],
    batch: usize,
    streams: usize,
) -> anyhow::Result<(f64, IngestSummary)> {
    let messages: Vec<StreamEventsRequest> =
        events.chunks(batch).map(|c| StreamEventsRequest { events: c.to_vec() }).collect();
    let per_stream = messages.len().div_ceil(streams.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, part) in messages.chunks(per_stream.max(1)).enumerate() {
        let channel = tonic::service::interceptor::InterceptedService::new(
            channels[i % channels.len()].clone(),
            Bearer::new(token),
        );
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut client = IngestServiceClient::new(channel).max_encoding_message_size(64 << 20);
            let reply = client.stream_events(tokio_stream::iter(part)).await?.into_inner();
            anyhow::Ok(reply.summary.unwrap_or_default())
        }));
    }
    let mut total = IngestSummary::default();
    for t in tasks {
        let s = t.await??;
        total.accepted += s.accepted;
        total.duplicates += s.duplicates;
        total.dead_lettered += s.dead_lettered;
    }
    Ok((events.len() as f64 / started.elapsed().as_secs_f64(), total))
}

/// Analytics served in this process on `analytics_db`, with identity for tokens, on the system
/// clock. Returns the server, a service token and an admin token.
pub async fn analytics_server(
    analytics_db: Arc<TestDatabase>,
    dashboard_ttl: &str,
) -> anyhow::Result<(Kit, String, String)> {
    let kit = TestPlatform::new()
        .module(&tt_analytics::MODULE)
        .set("analytics-dashboard-ttl", dashboard_ttl)
        .database("analytics", analytics_db)
        .real_time()
        .start()
        .await;
    let identity = kit.identity();
    let ttl = std::time::Duration::from_secs(3600);
    let service = identity.access_token("loadgen", &[Role::Service], None, ttl).await?.0;
    let admin = identity.access_token("loadgen-admin", &[Role::Admin], None, ttl).await?.0;
    Ok((kit, service, admin))
}
