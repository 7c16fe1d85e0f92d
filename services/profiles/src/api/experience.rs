//! ExperienceService: professional positions.

use tonic::{Request, Response, Status};
use tt_common::{
    auth::principal,
    error::{self, Violations},
    storage::PageSize,
};
use tt_proto::profiles::v1::{self as pb, experience_service_server::ExperienceService};

use super::{Api, check_id, convert, expected_version, request_id, violations};
use crate::{
    DOMAIN,
    domain::{self, MAX_POSITION_SKILLS, career},
    service::{db, write},
    store::PositionRow,
};

const IMMUTABLE: &[&str] = &["id", "create_time", "update_time", "etag"];

impl Api {
    fn apply_position(&self, v: &mut Violations, path: &str, src: &pb::Position, row: &mut PositionRow) {
        let field = format!("position.{path}");
        let this_month = career::current_month(self.now());
        let month = |v: &mut Violations, m: &Option<pb::YearMonth>| -> Option<Option<career::MonthIndex>> {
            match m {
                None => Some(None),
                Some(m) => match domain::month(m.year, m.month) {
                    Ok(i) if i > this_month => {
                        v.add(&field, "must not be in the future");
                        None
                    }
                    Ok(i) => Some(Some(i)),
                    Err(e) => {
                        v.add(&field, e);
                        None
                    }
                },
            }
        };
        match path {
            "title" => {
                if let Some(t) = v.take(&field, domain::text(&src.title, 120, true)) {
                    row.title = t;
                }
            }
            "organization" => {
                if let Some(t) = v.take(&field, domain::text(&src.organization, 120, true)) {
                    row.organization = t;
                }
            }
            "description" => {
                if let Some(t) = v.take(&field, domain::text(&src.description, 2000, false)) {
                    row.description = t;
                }
            }
            "start" => match month(v, &src.start) {
                Some(Some(i)) => row.start_month = i,
                Some(None) => {
                    v.add(&field, "is required");
                }
                None => {}
            },
            "end" => {
                if let Some(end) = month(v, &src.end) {
                    row.end_month = end;
                }
            }
            "current" => row.current = src.current,
            "skill_ids" => {
                self.check_skills(v, &field, &src.skill_ids, MAX_POSITION_SKILLS);
                row.skill_ids = src.skill_ids.clone();
            }
            p if IMMUTABLE.contains(&p) => {
                v.add("update_mask", format!("{p:?} cannot be changed"));
            }
            p => {
                v.add("update_mask", format!("{p:?} is not a field of Position"));
            }
        }
    }
}

/// The rules between fields: a current position has no end; a past one ends, not before it began.
fn check_period(v: &mut Violations, row: &PositionRow) {
    match (row.current, row.end_month) {
        (true, Some(_)) => {
            v.add("position.end", "must be unset for a current position");
        }
        (false, None) => {
            v.add("position.end", "is required unless the position is current");
        }
        (false, Some(end)) if end < row.start_month => {
            v.add("position.end", "must not be before the start");
        }
        _ => {}
    }
}

const ALL: &[&str] = &["title", "organization", "start", "end", "current", "description", "skill_ids"];

#[tonic::async_trait]
impl ExperienceService for Api {
    async fn create_position(
        &self,
        request: Request<pb::CreatePositionRequest>,
    ) -> Result<Response<pb::CreatePositionResponse>, Status> {
        let me = self.owner(principal(&request)?).await?;
        let req = request.into_inner();
        let src = req.position.unwrap_or_default();
        let now = self.now();
        let mut v = violations();
        let mut row = PositionRow {
            id: tt_common::new_id(),
            user_id: me.clone(),
            title: String::new(),
            organization: String::new(),
            start_month: 0,
            end_month: None,
            current: false,
            description: String::new(),
            skill_ids: Vec::new(),
            request_id: request_id(&mut v, &req.request_id),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        for path in ALL {
            self.apply_position(&mut v, path, &src, &mut row);
        }
        if v.is_empty() {
            check_period(&mut v, &row);
        }
        v.into_result()?;
        let created = self.store.create_position(&row).await.map_err(|e| write(e, "position", &row.id))?;
        self.changed(&me).await;
        Ok(Response::new(pb::CreatePositionResponse { position: Some(convert::position(&created)) }))
    }

    async fn list_positions(
        &self,
        request: Request<pb::ListPositionsRequest>,
    ) -> Result<Response<pb::ListPositionsResponse>, Status> {
        let (user_id, _) = self.reader(&request, &request.get_ref().user_id)?;
        let req = request.into_inner();
        let mut v = violations();
        let size = PageSize::checked(&mut v, req.page_size);
        let scope = format!("positions:{user_id}");
        let before: Option<(i32, String)> = self.pages.checked(&mut v, &scope, &req.page_token);
        v.into_result()?;
        let (month, id) = before.unwrap_or((i32::MAX, String::new()));
        let mut rows =
            self.store.list_positions(&user_id, (month, &id), size.limit_plus_one()).await.map_err(db)?;
        let next = size
            .split_next(&mut rows, |p| (p.start_month, p.id.clone()))
            .map(|c| self.pages.encode(&scope, &c));
        Ok(Response::new(pb::ListPositionsResponse {
            positions: rows.iter().map(convert::position).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn update_position(
        &self,
        request: Request<pb::UpdatePositionRequest>,
    ) -> Result<Response<pb::UpdatePositionResponse>, Status> {
        let me = self.owner(principal(&request)?).await?;
        let req = request.into_inner();
        let src = req.position.unwrap_or_default();
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut v = violations();
        check_id(&mut v, "position.id", &src.id);
        v.check(!paths.is_empty(), "update_mask", "must name the fields to change");
        v.into_result()?;
        let expected = expected_version(&src.etag, "position")?;
        let learner = self.learner(&me).await?;
        let current = learner
            .positions
            .iter()
            .find(|p| p.id == src.id)
            .ok_or_else(|| error::not_found(DOMAIN, "position", &src.id))?;
        let mut row = current.clone();
        let mut v = violations();
        for path in &paths {
            self.apply_position(&mut v, path, &src, &mut row);
        }
        if v.is_empty() {
            check_period(&mut v, &row);
        }
        v.into_result()?;
        let version = expected.unwrap_or(current.version);
        let updated = self
            .store
            .update_position(&me, &src.id, Some(version), self.now(), |p| {
                *p = PositionRow { version: p.version, ..row };
                Ok(())
            })
            .await
            .map_err(|e| write(e, "position", &src.id))?;
        self.changed(&me).await;
        Ok(Response::new(pb::UpdatePositionResponse { position: Some(convert::position(&updated)) }))
    }

    async fn delete_position(
        &self,
        request: Request<pb::DeletePositionRequest>,
    ) -> Result<Response<pb::DeletePositionResponse>, Status> {
        let me = self.owner(principal(&request)?).await?;
        let id = request.into_inner().position_id;
        let mut v = violations();
        check_id(&mut v, "position_id", &id);
        v.into_result()?;
        self.store.delete_position(&me, &id).await.map_err(|e| write(e, "position", &id))?;
        self.changed(&me).await;
        Ok(Response::new(pb::DeletePositionResponse {}))
    }
}
