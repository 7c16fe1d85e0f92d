//! Reports, timelines and exports over gRPC, with the access rules of each.

use tonic::Code;
use tt_common::{clock::Clock, outbox::EventBuilder};
use tt_proto::{analytics::v1 as pb, common::v1::Event, profiles::v1 as ppb};

use crate::support::{Learner, Stack, assert_bad_fields, code, range, today};

const DAY: i64 = 24 * 3600 * 1000;

async fn set_time_zone(s: &Stack, who: &Learner, zone: &str) {
    s.profile(&who.token)
        .update_profile(ppb::UpdateProfileRequest {
            profile: Some(ppb::Profile { timezone: zone.into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["timezone".into()] }),
        })
        .await
        .expect("update profile");
}

#[tokio::test]
async fn learners_read_their_own_timeline_and_heatmap_and_admins_read_everyone() {
    let s = Stack::start().await;
    let admin = s.admin_token().await;
    let (ann, bob) = (s.learner("ann").await, s.learner("bob").await);
    set_time_zone(&s, &ann, "Asia/Tokyo").await;
    let events = s.wait_for_events(&admin, &ann.id, 4).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "profiles.profile.updated",
            "profiles.profile.created",
            "identity.user.logged_in",
            "identity.user.registered"
        ]
    );
    let mine = s.timeline(&ann.token, "").await;
    assert_eq!(
        mine.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        events.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(mine[0].r#type, "profiles.profile.updated", "newest first");
    assert!(mine.iter().all(|e| e.subject == ann.id));
    let other = s
        .events(&ann.token)
        .await
        .list_timeline_events(pb::ListTimelineEventsRequest { user_id: bob.id.clone(), ..Default::default() })
        .await;
    assert_eq!(code(other), Code::PermissionDenied, "a learner never sees another learner's events");
    let paged = s
        .events(&ann.token)
        .await
        .list_timeline_events(pb::ListTimelineEventsRequest { page_size: 2, ..Default::default() })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(paged.events.len(), 2);
    let forged = pb::ListTimelineEventsRequest {
        page_token: format!("{}x", paged.next_page_token),
        ..Default::default()
    };
    assert_bad_fields(s.events(&ann.token).await.list_timeline_events(forged).await, &["page_token"]);
    let with_bob = pb::ListTimelineEventsRequest {
        page_token: paged.next_page_token,
        user_id: bob.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        code(s.events(&admin).await.list_timeline_events(with_bob).await),
        Code::InvalidArgument,
        "a token is bound to its query"
    );

    // Her heatmap is in her profile's time zone (the range too).
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").expect("tz");
    let day = tt_analytics::domain::calendar::local_date(s.clock.now_ms(), &tokyo).to_string();
    let heat = |user: &str, all: bool| pb::GetActivityHeatmapRequest {
        // A learner's own: no zone given, so theirs; everyone's: Tokyo's day, named.
        range: range(&day, &day, if all { "Asia/Tokyo" } else { "" }),
        user_id: user.into(),
        all_users: all,
    };
    let own = s
        .reports(&ann.token)
        .await
        .get_activity_heatmap(heat("", false))
        .await
        .expect("heatmap")
        .into_inner();
    assert_eq!((own.time_zone.as_str(), own.cells.len()), ("Asia/Tokyo", 168));
    let now = s.clock.now_ms();
    let (weekday, hour) = tt_analytics::domain::calendar::weekday_hour(now, &tokyo);
    let busy = own.cells.iter().find(|c| c.day_of_week == weekday && c.hour == hour).expect("cell");
    assert_eq!((busy.events, own.total_events), (4, 4), "all four now, Tokyo time");
    assert_eq!(
        code(s.reports(&ann.token).await.get_activity_heatmap(heat(&bob.id, false)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(s.reports(&ann.token).await.get_activity_heatmap(heat("", true)).await),
        Code::PermissionDenied
    );
    let all =
        s.reports(&admin).await.get_activity_heatmap(heat("", true)).await.expect("everyone").into_inner();
    assert!(all.total_events >= 7, "{}", all.total_events);
    assert_bad_fields(s.reports(&admin).await.get_activity_heatmap(heat(&bob.id, true)).await, &["user_id"]);
}

#[tokio::test]
async fn engagement_counts_active_users_per_local_day_and_dashboards_are_cached() {
    let s = Stack::start().await;
    let admin = s.admin_token().await;
    let service = s.service_token().await;
    let now = s.clock.now_ms();
    // u1 active today and 3 days ago, u2 10 days ago, u3 only registered today (by itself).
    let at = |user: &str, kind: &str, t: i64| -> Event {
        EventBuilder::new(kind.split('.').next().unwrap_or(""), kind, user, user, t).build()
    };
    let events = vec![
        at("u1", "identity.user.logged_in", now - 3 * DAY),
        at("u1", "identity.user.logged_in", now),
        at("u2", "identity.user.logged_in", now - 10 * DAY),
        at("u3", "identity.user.registered", now),
    ];
    s.ingest(&service)
        .await
        .ingest_events(pb::IngestEventsRequest { events, backlog: None })
        .await
        .expect("ingest");
    assert_eq!(s.wait_for_events(&admin, "", 1).await.len(), 1, "the admin's sign-in arrived");
    let day = today(&s.clock);
    let start =
        tt_analytics::domain::calendar::local_date(now - 3 * DAY, &jiff::tz::TimeZone::UTC).to_string();
    let engagement = s
        .reports(&admin)
        .await
        .get_engagement(pb::GetEngagementRequest { range: range(&start, &day, "") })
        .await
        .expect("engagement")
        .into_inner();
    assert_eq!(engagement.days.len(), 4);
    let first = &engagement.days[0];
    assert_eq!((first.daily_active_users, first.weekly_active_users, first.monthly_active_users), (1, 1, 2));
    let last = engagement.days.last().expect("today");
    // Today: u1, u3 and the admin (who logged in).
    assert_eq!((last.daily_active_users, last.weekly_active_users, last.monthly_active_users), (3, 3, 4));
    assert!((last.stickiness - 0.75).abs() < 1e-9);
    assert_eq!(last.new_users, 1);

    let learner = s.learner("lee").await;
    let request = || pb::GetEngagementRequest { range: range(&day, &day, "") };
    assert_eq!(code(s.reports(&learner.token).await.get_engagement(request()).await), Code::PermissionDenied);
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_engagement(pb::GetEngagementRequest { range: range("2026-13-01", &day, "Mars/Base") })
            .await,
        &["range.start_date", "range.time_zone"],
    );
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_engagement(pb::GetEngagementRequest { range: range("2024-01-01", "2025-12-31", "") })
            .await,
        &["range"],
    );

    // The dashboard serves the same figures, from the cache until its TTL passes.
    assert_eq!(s.wait_for_events(&admin, &learner.id, 2).await.len(), 2, "lee's sign-up arrived");
    let dash = || pb::GetDashboardRequest {
        dashboard: "engagement".into(),
        range: range(&day, &day, ""),
        series: vec!["dau".into()],
    };
    let first = s.reports(&admin).await.get_dashboard(dash()).await.expect("dashboard").into_inner();
    assert_eq!(first.series[0].points[0].value, 4.0, "u1, u3, the admin and lee (registered)");
    s.ingest(&service)
        .await
        .ingest_events(pb::IngestEventsRequest {
            events: vec![at("u9", "identity.user.logged_in", now)],
            backlog: None,
        })
        .await
        .expect("more");
    let cached = s.reports(&admin).await.get_dashboard(dash()).await.expect("cached").into_inner();
    assert_eq!(cached, first, "served from the cache");
    let all = s
        .reports(&admin)
        .await
        .get_dashboard(pb::GetDashboardRequest { series: vec![], ..dash() })
        .await
        .expect("all series")
        .into_inner();
    let names: Vec<&str> = all.series.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["dau", "wau", "mau", "stickiness", "new_users"]);
    assert_eq!(all.series[0].points[0].value, 5.0, "another key: computed now, with u9");
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_dashboard(pb::GetDashboardRequest { dashboard: "sales".into(), ..dash() })
            .await,
        &["dashboard"],
    );
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_dashboard(pb::GetDashboardRequest { series: vec!["revenue".into()], ..dash() })
            .await,
        &["series[0]"],
    );
    // Repeating a series means nothing; 10,000 of them is refused once, not per element.
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_dashboard(pb::GetDashboardRequest { series: vec!["dau".into(), "dau".into()], ..dash() })
            .await,
        &["series[1]"],
    );
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_dashboard(pb::GetDashboardRequest { series: vec!["dau".into(); 10_000], ..dash() })
            .await,
        &["series"],
    );
    let activity = s
        .reports(&admin)
        .await
        .get_dashboard(pb::GetDashboardRequest { dashboard: "activity".into(), series: vec![], ..dash() })
        .await
        .expect("activity")
        .into_inner();
    assert!(activity.series.iter().any(|x| x.name == "events.identity.user.logged_in"));
}

#[tokio::test]
async fn weekly_cohorts_follow_their_members() {
    let s = Stack::start().await;
    let admin = s.admin_token().await;
    let service = s.service_token().await;
    let now = s.clock.now_ms();
    let today = tt_analytics::domain::calendar::local_date(now, &jiff::tz::TimeZone::UTC);
    let monday = tt_analytics::domain::calendar::monday_of(today);
    let weeks_ago = |w: i64| {
        tt_analytics::domain::calendar::start_of(
            tt_analytics::domain::calendar::add_days(monday, -7 * w).expect("date"),
            &jiff::tz::TimeZone::UTC,
        ) + 3_600_000
    };
    let at = |user: &str, kind: &str, t: i64| -> Event {
        EventBuilder::new(kind.split('.').next().unwrap_or(""), kind, user, user, t).build()
    };
    let events = vec![
        at("c1", "identity.user.registered", weeks_ago(3)),
        at("c2", "identity.user.registered", weeks_ago(3)),
        at("c1", "identity.user.logged_in", weeks_ago(2)),
        at("c1", "identity.user.logged_in", weeks_ago(1)),
        at("c2", "identity.user.logged_in", weeks_ago(1)),
        at("d1", "identity.user.registered", weeks_ago(2)),
    ];
    s.ingest(&service)
        .await
        .ingest_events(pb::IngestEventsRequest { events, backlog: None })
        .await
        .expect("ingest");
    let start = tt_analytics::domain::calendar::add_days(monday, -21).expect("date").to_string();
    let end = tt_analytics::domain::calendar::add_days(monday, -8).expect("date").to_string();
    let cohorts = s
        .reports(&admin)
        .await
        .get_retention_cohorts(pb::GetRetentionCohortsRequest { range: range(&start, &end, ""), weeks: 4 })
        .await
        .expect("cohorts")
        .into_inner()
        .cohorts;
    assert_eq!(cohorts.len(), 2);
    assert_eq!((cohorts[0].week_start.as_str(), cohorts[0].size), (start.as_str(), 2));
    let active: Vec<i64> = cohorts[0].weeks.iter().map(|w| w.active_users).collect();
    assert_eq!(active, vec![2, 1, 2, 0], "weeks 0 to 3 (this week has begun)");
    assert!((cohorts[0].weeks[1].retention - 0.5).abs() < 1e-9);
    assert_eq!((cohorts[1].size, cohorts[1].weeks.len()), (1, 3));
    assert_bad_fields(
        s.reports(&admin)
            .await
            .get_retention_cohorts(pb::GetRetentionCohortsRequest {
                range: range(&start, &end, ""),
                weeks: 27,
            })
            .await,
        &["weeks"],
    );
}

#[tokio::test]
async fn exports_stream_in_bounded_chunks_and_learners_export_only_their_own() {
    let s = Stack::start().await;
    let admin = s.admin_token().await;
    let service = s.service_token().await;
    let ann = s.learner("ann").await;
    let now = s.clock.now_ms();
    let bulk = tt_common::new_id();
    let events: Vec<Event> = (0..3000)
        .map(|i| {
            EventBuilder::new("identity", "identity.user.logged_in", &bulk, &bulk, now - i)
                .string("client", format!("client, \"number\" {i}"))
                .build()
        })
        .collect();
    s.ingest(&service)
        .await
        .ingest_events(pb::IngestEventsRequest { events, backlog: None })
        .await
        .expect("ingest");
    let export = |user: &str, format: pb::ExportFormat| pb::ExportEventsRequest {
        format: format.into(),
        types: vec!["identity.user.logged_in".into()],
        user_id: user.into(),
        start_time: None,
        end_time: None,
    };
    let mut stream = s
        .events(&admin)
        .await
        .export_events(export(&bulk, pb::ExportFormat::Csv))
        .await
        .expect("export")
        .into_inner();
    let (mut bytes, mut chunks, mut rows) = (Vec::new(), 0, 0);
    while let Some(m) = stream.message().await.expect("chunk") {
        assert!(m.chunk.len() <= 64 * 1024, "chunk of {} bytes", m.chunk.len());
        bytes.extend(m.chunk);
        chunks += 1;
        rows = m.rows;
    }
    let text = String::from_utf8(bytes).expect("utf-8");
    assert_eq!(rows, 3000);
    assert!(chunks > 3, "{chunks} chunks");
    assert!(text.starts_with("id,type,version,time,actor,subject,source,attributes\r\n"));
    assert_eq!(text.matches("\r\n").count(), 3001, "a header and one line per event");

    // A learner gets their own events, even when they name nobody.
    assert_eq!(
        code(s.events(&ann.token).await.export_events(export(&bulk, pb::ExportFormat::Jsonl)).await),
        Code::PermissionDenied
    );
    let own = pb::ExportEventsRequest { types: vec![], ..export("", pb::ExportFormat::Jsonl) };
    let expected = s.wait_for_events(&admin, &ann.id, 1).await.len();
    let mut stream = s.events(&ann.token).await.export_events(own).await.expect("own").into_inner();
    let mut text = String::new();
    while let Some(m) = stream.message().await.expect("chunk") {
        text.push_str(std::str::from_utf8(&m.chunk).expect("utf-8"));
    }
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), expected);
    assert!(lines.iter().all(|l| l["subject"] == ann.id.as_str()));
    assert_bad_fields(
        s.events(&admin)
            .await
            .export_events(pb::ExportEventsRequest { format: 0, ..export("", pb::ExportFormat::Csv) })
            .await,
        &["format"],
    );
}
