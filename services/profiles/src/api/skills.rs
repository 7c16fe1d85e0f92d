//! SkillService: the taxonomy search and the learner's skill inventory.

use tonic::{Request, Response, Status};
use tt_common::{auth::principal, storage::Page};
use tt_proto::profiles::v1::{self as pb, skill_service_server::SkillService};

use super::{Api, violations};
use crate::convert;
use crate::{
    DOMAIN, Resource,
    domain::{self, taxonomy},
    store::skills::SelfAssessment,
};

/// Ids one BatchGetSkills may name.
const MAX_BATCH: usize = 200;

#[tonic::async_trait]
impl SkillService for Api {
    async fn search_skills(
        &self,
        request: Request<pb::SearchSkillsRequest>,
    ) -> Result<Response<pb::SearchSkillsResponse>, Status> {
        principal(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let query = req.query.trim();
        v.check((1..=100).contains(&query.chars().count()), "query", "must be 1 to 100 characters");
        v.check(
            req.track.is_empty() || taxonomy::is_track(&req.track),
            "track",
            format!("must be one of: {}", taxonomy::TRACKS.join(", ")),
        );
        let scope = format!("skills:{}:{query}", req.track);
        let page: Page<'_, usize> = self.pages.page(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let track = (!req.track.is_empty()).then_some(req.track.as_str());
        let hits = self.taxonomy.search(query, track);
        let start = page.after.unwrap_or(0).min(hits.len());
        let end = start.saturating_add(page.size()).min(hits.len());
        let next = (end < hits.len()).then(|| page.token(&end));
        Ok(Response::new(pb::SearchSkillsResponse {
            skills: hits[start..end].iter().map(|s| convert::skill_def(s)).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn batch_get_skills(
        &self,
        request: Request<pb::BatchGetSkillsRequest>,
    ) -> Result<Response<pb::BatchGetSkillsResponse>, Status> {
        principal(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        v.check(!req.ids.is_empty(), "ids", "must name at least one skill");
        if v.check_count("ids", req.ids.len(), MAX_BATCH) {
            for (i, id) in req.ids.iter().enumerate() {
                v.check(
                    taxonomy::is_skill_id(id),
                    &format!("ids[{i}]"),
                    format!("must be a kebab-case skill id of at most {} characters", taxonomy::MAX_SKILL_ID),
                );
            }
        }
        v.into_result()?;
        let mut seen = std::collections::HashSet::new();
        let (mut skills, mut missing_ids) = (Vec::new(), Vec::new());
        for id in req.ids.iter().filter(|id| seen.insert(id.as_str())) {
            match self.taxonomy.get(id) {
                Some(def) => skills.push(convert::skill_def(def)),
                None => missing_ids.push(id.clone()),
            }
        }
        Ok(Response::new(pb::BatchGetSkillsResponse { skills, missing_ids }))
    }

    async fn list_tracks(
        &self,
        request: Request<pb::ListTracksRequest>,
    ) -> Result<Response<pb::ListTracksResponse>, Status> {
        principal(&request)?;
        let tracks = taxonomy::TRACKS
            .iter()
            .map(|id| pb::Track {
                id: (*id).to_owned(),
                skill_count: i32::try_from(self.taxonomy.count_in(id)).unwrap_or(i32::MAX),
            })
            .collect();
        Ok(Response::new(pb::ListTracksResponse { tracks }))
    }

    async fn list_learner_skills(
        &self,
        request: Request<pb::ListLearnerSkillsRequest>,
    ) -> Result<Response<pb::ListLearnerSkillsResponse>, Status> {
        let (user_id, _) = self.reader(&request, &request.get_ref().user_id)?;
        let req = request.into_inner();
        let mut v = violations();
        let page: Page<'_, String> =
            self.pages.page(&mut v, format!("learner-skills:{user_id}"), req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows =
            self.store.list_skills(&user_id, page.after.as_deref().unwrap_or(""), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |s| s.skill_id.clone());
        Ok(Response::new(pb::ListLearnerSkillsResponse {
            skills: rows.iter().map(|s| convert::learner_skill(s, &self.taxonomy)).collect(),
            next_page_token,
        }))
    }

    async fn upsert_learner_skill(
        &self,
        request: Request<pb::UpsertLearnerSkillRequest>,
    ) -> Result<Response<pb::UpsertLearnerSkillResponse>, Status> {
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let mut v = violations();
        self.check_skill(&mut v, "skill_id", &req.skill_id, true);
        v.check((1..=5).contains(&req.proficiency), "proficiency", "must be 1 to 5");
        v.check(req.years.is_finite() && (0.0..=60.0).contains(&req.years), "years", "must be 0 to 60");
        let last_used = req
            .last_used
            .as_ref()
            .and_then(|m| v.take("last_used", domain::past_month(m.year, m.month, self.now())));
        v.into_result()?;
        let stated = SelfAssessment {
            proficiency: req.proficiency,
            // In range (checked above), so the conversion is exact.
            years_tenths: (req.years * 10.0).round() as i32,
            last_used_month: last_used,
        };
        let written = self.store.upsert_skill(&me, &req.skill_id, stated, self.now()).await;
        let (_, row) = self.wrote(&me, Resource::Skill, &req.skill_id, written).await?;
        Ok(Response::new(pb::UpsertLearnerSkillResponse {
            skill: Some(convert::learner_skill(&row, &self.taxonomy)),
        }))
    }

    async fn delete_learner_skill(
        &self,
        request: Request<pb::DeleteLearnerSkillRequest>,
    ) -> Result<Response<pb::DeleteLearnerSkillResponse>, Status> {
        let me = self.owner(&request).await?;
        let id = request.into_inner().skill_id;
        if !taxonomy::is_skill_id(&id) {
            return Err(DOMAIN.invalid_field("skill_id", "must be a skill id"));
        }
        let written = self.store.delete_skill(&me, &id, self.now()).await;
        self.wrote(&me, Resource::Skill, &id, written).await?;
        Ok(Response::new(pb::DeleteLearnerSkillResponse {}))
    }
}
