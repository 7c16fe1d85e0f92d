//! MatchService: the caller's mentors, ranked and explained.

use std::collections::HashMap;

use tonic::{Request, Response, Status};
use tt_common::auth::read_target;
use tt_proto::matching::v1::{self as pb, match_service_server::MatchService};

use super::{Api, check_filters, violations};
use crate::{
    DOMAIN,
    catalog::passes,
    convert,
    domain::{mentorship, score},
};

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
        v.into_result()?;

        let learner = self.learner(&user_id).await?;
        let history: HashMap<String, String> = self
            .store
            .history(&user_id)
            .await?
            .into_iter()
            .rev() // the newest reason wins
            .map(|(mentor, reason, note)| (mentor, mentorship::describe(reason, &note)))
            .collect();
        let weights = self.weights();
        let catalog = self.catalog();
        let mut ranked: Vec<(f64, usize, score::Compatibility)> = Vec::new();
        for (i, e) in catalog.entries().iter().enumerate() {
            let (Some(public), Some(features)) = (e.public.as_ref(), e.scored()) else { continue };
            if !e.is_active()
                || !passes(&public.content, &req.field, &req.language, stage)
                || (!req.include_full && e.free_seats() == 0)
            {
                continue;
            }
            let c =
                score::compatibility(&learner, &features, &weights, history.get(e.id()).map(String::as_str));
            ranked.push((c.total, i, c));
        }
        let entries = catalog.entries();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| entries[a.1].id().cmp(entries[b.1].id())));
        let total_size = i32::try_from(ranked.len()).unwrap_or(i32::MAX);
        let start = after.as_ref().map_or(0, |(s, id)| {
            ranked
                .iter()
                .position(|(t, i, _)| *t < *s || (*t == *s && entries[*i].id() > id.as_str()))
                .unwrap_or(ranked.len())
        });
        let size = usize::try_from(size).unwrap_or(10);
        let end = (start + size).min(ranked.len());
        let next_page_token = if end < ranked.len() {
            let (t, i, _) = &ranked[end - 1];
            self.pages.encode(&scope, &(*t, entries[*i].id()))
        } else {
            String::new()
        };
        let matches = ranked
            .drain(start..end)
            .filter_map(|(_, i, c)| {
                let e = &entries[i];
                Some(convert::matched(convert::mentor(e, e.public.as_ref()?, false), c, &weights))
            })
            .collect();
        Ok(Response::new(pb::FindMatchesResponse { matches, next_page_token, total_size }))
    }
}
