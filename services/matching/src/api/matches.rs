//! MatchService: the caller's mentors, ranked and explained.

use tonic::{Request, Response, Status};
use tt_common::auth::read_target;
use tt_proto::matching::v1::{self as pb, match_service_server::MatchService};

use super::{Api, check_filters, violations};
use crate::{
    DOMAIN,
    catalog::{Query, Ranked},
    convert,
    domain::score,
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
        // "v2": tokens of the earlier cursor (the score's bits as an integer) are refused rather
        // than misread as a score.
        let scope = format!(
            "FindMatches.v2:{user_id}:{}:{}:{}:{}:{size}",
            req.field, req.language, req.stage, req.include_full
        );
        let after: Option<(f64, String)> = self.pages.checked(&mut v, &scope, &req.page_token);
        // None: the whole mentor.
        let card = match pb::MentorView::try_from(req.view) {
            Ok(pb::MentorView::Full) => None,
            Ok(pb::MentorView::Basic) => Some(convert::Card::Basic),
            Ok(pb::MentorView::Unspecified | pb::MentorView::Summary) => Some(convert::Card::Summary),
            Err(_) => {
                v.add("view", "must be a MENTOR_VIEW_ value");
                None
            }
        };
        v.into_result()?;

        let known = self.learner(&user_id).await?;
        let prepared = known.prepared();
        let weights = self.weights();
        let catalog = self.catalog();
        let entries = catalog.entries();
        let query = Query {
            field: &req.field,
            language: &req.language,
            stage,
            include_full: req.include_full,
            after: after.as_ref().map(|(s, id)| (*s, id.as_str())),
            size: usize::try_from(size).unwrap_or(10),
        };
        let Ranked { page: ranked, total, more } = catalog.rank(&prepared, &weights, &known.left, &query);
        let total_size = i32::try_from(total).unwrap_or(i32::MAX);
        let next_page_token = match ranked.last() {
            Some((t, i)) if more => self.pages.encode(&scope, &(t, entries[*i].id())),
            _ => String::new(),
        };
        let mut matches = Vec::with_capacity(ranked.len());
        matches.extend(ranked.iter().filter_map(|(_, i)| {
            let e = &entries[*i];
            let public = e.public.as_deref()?;
            let why = known.left.get(e.id()).map(String::as_str);
            let c = score::explain(&prepared, catalog.features(*i)?, e.taken(), &weights, why);
            let mentor = match card {
                Some(which) => catalog.card(*i, which)?,
                None => convert::mentor(e, public, false),
            };
            Some(convert::matched(mentor, c, &weights))
        }));
        Ok(Response::new(pb::FindMatchesResponse { matches, next_page_token, total_size }))
    }
}
