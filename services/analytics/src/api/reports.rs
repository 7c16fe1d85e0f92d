//! ReportService: engagement, cohorts, heatmaps, feature usage and dashboards.

use tonic::{Request, Response, Status};
use tt_common::{
    auth::{read_target, require_admin},
    cache::Codec,
};
use tt_proto::analytics::v1::{self as pb, report_service_server::ReportService};

use super::{Api, finish, range, violations};
use crate::{DOMAIN, domain::calendar::Range};

/// Longest range of a report.
const MAX_DAYS: i64 = 366;

/// The dashboards and their series.
const DASHBOARDS: &[(&str, &[&str])] = &[
    ("engagement", &["dau", "wau", "mau", "stickiness", "new_users"]),
    ("activity", &["events", "events.<type>"]),
];

fn points(range: &Range, values: impl IntoIterator<Item = f64>) -> Vec<pb::DataPoint> {
    range
        .days_from(0)
        .iter()
        .zip(values)
        .map(|(d, value)| pb::DataPoint { date: d.to_string(), value })
        .collect()
}

impl Api {
    /// Computes a dashboard's series (those in `wanted`, or all).
    async fn compute_dashboard(
        &self,
        name: &str,
        range: &Range,
        wanted: &[String],
    ) -> Result<pb::GetDashboardResponse, Status> {
        let want = |s: &str| wanted.is_empty() || wanted.iter().any(|w| w == s);
        let mut series = Vec::new();
        if name == "engagement" {
            if wanted.len() == 1 && want("dau") {
                let dau = self.daily_active(range).await?;
                series.push(pb::Series {
                    name: "dau".into(),
                    points: points(range, dau.iter().map(|n| *n as f64)),
                });
            } else {
                let days = self.engagement(range).await?;
                type Column = (&'static str, fn(&crate::reports::Day) -> f64);
                let columns: [Column; 5] = [
                    ("dau", |d| d.dau as f64),
                    ("wau", |d| d.wau as f64),
                    ("mau", |d| d.mau as f64),
                    ("stickiness", crate::reports::Day::stickiness),
                    ("new_users", |d| d.new_users as f64),
                ];
                for (column, value) in columns.into_iter().filter(|(c, _)| want(c)) {
                    series.push(pb::Series {
                        name: column.into(),
                        points: points(range, days.iter().map(value)),
                    });
                }
            }
        } else {
            for (column, values) in self.activity(range).await? {
                if want(&column) || (column != "events" && want("events.<type>")) {
                    series.push(pb::Series {
                        name: column,
                        points: points(range, values.iter().map(|n| *n as f64)),
                    });
                }
            }
        }
        Ok(pb::GetDashboardResponse {
            dashboard: name.to_owned(),
            series,
            compute_time: Some(tt_common::clock::to_timestamp(self.now())),
            time_zone: range.tz_name.clone(),
        })
    }
}

#[tonic::async_trait]
impl ReportService for Api {
    async fn get_engagement(
        &self,
        request: Request<pb::GetEngagementRequest>,
    ) -> Result<Response<pb::GetEngagementResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let r = range(&mut v, req.range.as_ref(), MAX_DAYS);
        let r = finish(v, r)?;
        let days = self.engagement(&r).await?;
        Ok(Response::new(pb::GetEngagementResponse {
            days: days
                .iter()
                .map(|d| pb::EngagementDay {
                    date: d.date.to_string(),
                    daily_active_users: d.dau,
                    weekly_active_users: d.wau,
                    monthly_active_users: d.mau,
                    stickiness: d.stickiness(),
                    new_users: d.new_users,
                })
                .collect(),
            time_zone: r.tz_name,
        }))
    }

    async fn get_retention_cohorts(
        &self,
        request: Request<pb::GetRetentionCohortsRequest>,
    ) -> Result<Response<pb::GetRetentionCohortsResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let r = range(&mut v, req.range.as_ref(), MAX_DAYS);
        v.check((0..=26).contains(&req.weeks), "weeks", "must be 1 to 26 (0 means 8)");
        let r = finish(v, r)?;
        let weeks = if req.weeks == 0 { 8 } else { req.weeks as usize };
        let cohorts = self.cohorts(&r, weeks).await?;
        Ok(Response::new(pb::GetRetentionCohortsResponse { cohorts, time_zone: r.tz_name }))
    }

    async fn get_activity_heatmap(
        &self,
        request: Request<pb::GetActivityHeatmapRequest>,
    ) -> Result<Response<pb::GetActivityHeatmapResponse>, Status> {
        let user = if request.get_ref().all_users {
            require_admin(&request)?;
            let mut v = violations();
            v.check(request.get_ref().user_id.is_empty(), "user_id", "must be empty with all_users");
            v.into_result()?;
            None
        } else {
            Some(read_target(&request, &request.get_ref().user_id, DOMAIN)?.0)
        };
        let mut req = request.into_inner();
        // A learner's own heatmap is in their profile's time zone unless one is asked for.
        if let (Some(user), Some(r)) = (&user, req.range.as_mut())
            && r.time_zone.is_empty()
        {
            self.catch_up().await?;
            r.time_zone = self.store.time_zone_of(user).await?;
        }
        let mut v = violations();
        let r = range(&mut v, req.range.as_ref(), MAX_DAYS);
        let r = finish(v, r)?;
        let grid = self.heatmap(&r, user.as_deref()).await?;
        let mut cells = Vec::with_capacity(168);
        for (d, hours) in grid.iter().enumerate() {
            for (h, events) in hours.iter().enumerate() {
                cells.push(pb::HeatmapCell { day_of_week: d as i32 + 1, hour: h as i32, events: *events });
            }
        }
        let total_events = cells.iter().map(|c| c.events).sum();
        Ok(Response::new(pb::GetActivityHeatmapResponse { cells, time_zone: r.tz_name, total_events }))
    }

    async fn get_feature_usage(
        &self,
        request: Request<pb::GetFeatureUsageRequest>,
    ) -> Result<Response<pb::GetFeatureUsageResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let r = range(&mut v, req.range.as_ref(), MAX_DAYS);
        let r = finish(v, r)?;
        let usage = self.feature_usage(&r).await?;
        let total_events: i64 = usage.iter().map(|(_, n)| n).sum();
        let features = usage
            .into_iter()
            .map(|(event_type, events)| pb::FeatureUsage {
                event_type,
                events,
                share: if total_events == 0 { 0.0 } else { events as f64 / total_events as f64 },
            })
            .collect();
        Ok(Response::new(pb::GetFeatureUsageResponse { features, total_events }))
    }

    async fn get_dashboard(
        &self,
        request: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::GetDashboardResponse>, Status> {
        require_admin(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let known = DASHBOARDS.iter().find(|(name, _)| *name == req.dashboard);
        match known {
            None => {
                v.add("dashboard", "must be one of: engagement, activity");
            }
            Some((_, series)) if v.check_count("series", req.series.len(), super::MAX_SERIES) => {
                for (i, s) in req.series.iter().enumerate() {
                    let ok = series.contains(&s.as_str())
                        || (req.dashboard == "activity" && s.starts_with("events.") && s.len() <= 110);
                    v.check(ok, &format!("series[{i}]"), format!("must be one of: {}", series.join(", ")));
                }
                v.check_unique("series", &req.series);
            }
            Some(_) => {}
        }
        let r = range(&mut v, req.range.as_ref(), MAX_DAYS);
        let r = finish(v, r)?;
        let mut wanted = req.series.clone();
        wanted.sort();
        wanted.dedup();
        if self.dashboard_ttl.is_zero() {
            return Ok(Response::new(self.compute_dashboard(&req.dashboard, &r, &wanted).await?));
        }
        let key =
            format!("dashboard:{}:{}:{}:{}:{}", req.dashboard, r.start, r.end, r.tz_name, wanted.join(","));
        let response = self
            .cache
            .get_or_load_with(&key, self.dashboard_ttl, Codec::protobuf(), || {
                self.compute_dashboard(&req.dashboard, &r, &wanted)
            })
            .await?;
        Ok(Response::new(response))
    }
}
