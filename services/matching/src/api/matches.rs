//! MatchService: the caller's mentors, ranked and explained.

use tonic::{Request, Response, Status};
use tt_common::auth::read_target;
use tt_proto::matching::v1::{self as pb, match_service_server::MatchService};

use super::{Api, check_filters, violations};
use crate::{DOMAIN, catalog::passes, convert, domain::score};

/// Matches per page: 0 means 10, at most 50.
const DEFAULT_PAGE: i32 = 10;
const MAX_PAGE: i32 = 50;

#[tonic::async_trait]
impl MatchService for Api {
    async fn find_matches(
        &self,
        request: Request<pb::FindMatchesRequest>,
    ) -> Result<Response<pb::FindMatchesResponse>, Status> {
        let (user_id, _) = read_target(&request, &request.get_ref().user_id, DOMAIN)?;
        let req = request.into_inner();
        let mut v = violations();
        let stage = check_filters(&mut v, &req.field, &req.language, req.stage);
        v.check(req.page_size >= 0, "page_size", "must not be negative");
        let size = match req.page_size {
            0 => DEFAULT_PAGE,
            n => n.clamp(1, MAX_PAGE),
        };
        let scope = format!(
            "FindMatches:{user_id}:{}:{}:{}:{}:{size}",
            req.field, req.language, req.stage, req.include_full
        );
        let after: Option<(f64, String)> = self.pages.checked(&mut v, &scope, &req.page_token);
        let full = match pb::MentorView::try_from(req.view) {
            Ok(view) => view == pb::MentorView::Full,
            Err(_) => {
                v.add("view", "must be a MENTOR_VIEW_ value");
                false
            }
        };
        v.into_result()?;

        let known = self.learner(&user_id).await?;
        let prepared = score::prepare(&known.features);
        let weights = self.weights();
        let catalog = self.catalog();
        let entries = catalog.entries();
        // Every candidate scored without reasons; only the page is explained.
        let mut ranked: Vec<(f64, usize)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let (Some(public), Some(features)) = (e.public.as_ref(), e.features.as_ref()) else { continue };
            if !e.is_active()
                || !passes(&public.content, &req.field, &req.language, stage)
                || (!req.include_full && e.free_seats() == 0)
            {
                continue;
            }
            let demoted = known.left.contains_key(e.id());
            ranked.push((score::score(&prepared, features, e.taken(), &weights, demoted), i));
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| entries[a.1].id().cmp(entries[b.1].id())));
        let total_size = i32::try_from(ranked.len()).unwrap_or(i32::MAX);
        let start = after.as_ref().map_or(0, |(s, id)| {
            ranked
                .iter()
                .position(|(t, i)| *t < *s || (*t == *s && entries[*i].id() > id.as_str()))
                .unwrap_or(ranked.len())
        });
        let size = usize::try_from(size).unwrap_or(10);
        let end = (start + size).min(ranked.len());
        let next_page_token = if end < ranked.len() {
            let (t, i) = &ranked[end - 1];
            self.pages.encode(&scope, &(*t, entries[*i].id()))
        } else {
            String::new()
        };
        let matches = ranked[start..end]
            .iter()
            .filter_map(|(_, i)| {
                let e = &entries[*i];
                let why = known.left.get(e.id()).map(String::as_str);
                let c = score::explain(&prepared, e.features.as_ref()?, e.taken(), &weights, why);
                let mut mentor = convert::mentor(e, e.public.as_ref()?, false);
                if !full {
                    mentor.background.clear();
                    mentor.voice.clear();
                }
                Some(convert::matched(mentor, c, &weights))
            })
            .collect();
        Ok(Response::new(pb::FindMatchesResponse { matches, next_page_token, total_size }))
    }
}
