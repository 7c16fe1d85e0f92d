//! ExperienceService: professional positions.

use tonic::{Request, Response, Status};
use tt_common::{
    error::Violations,
    storage::{
        Page,
        update::{Fields, MaskedUpdate},
    },
};
use tt_proto::profiles::v1::{self as pb, experience_service_server::ExperienceService};

use super::{Api, checked_id, request_id, set, violations};
use crate::convert;
use crate::{
    DOMAIN, Resource,
    domain::{self, MAX_POSITION_SKILLS, career},
    store::PositionRow,
};

/// What UpdatePosition changes.
const FIELDS: Fields = Fields {
    message: "Position",
    kind: "position",
    immutable: &["id", "create_time", "update_time", "etag"],
    immutable_note: "",
};

impl Api {
    fn apply_position(
        &self,
        v: &mut Violations,
        path: &str,
        src: &pb::Position,
        row: &mut PositionRow,
    ) -> bool {
        let field = format!("position.{path}");
        let now = self.now();
        // Some(None): not given; None: invalid (recorded).
        let month = |v: &mut Violations, m: &Option<pb::YearMonth>| -> Option<Option<career::MonthIndex>> {
            match m {
                None => Some(None),
                Some(m) => v.take(&field, domain::past_month(m.year, m.month, now)).map(Some),
            }
        };
        match path {
            "title" => set(&mut row.title, v.take(&field, domain::text(&src.title, 120, true))),
            "organization" => {
                set(&mut row.organization, v.take(&field, domain::text(&src.organization, 120, true)))
            }
            "description" => {
                set(&mut row.description, v.take(&field, domain::text(&src.description, 2000, false)))
            }
            "start" => match month(v, &src.start) {
                Some(Some(i)) => row.start_month = i,
                Some(None) => {
                    v.add(&field, "is required");
                }
                None => {}
            },
            "end" => set(&mut row.end_month, month(v, &src.end)),
            "current" => row.current = src.current,
            "skill_ids" => {
                self.check_skills(v, &field, &src.skill_ids, MAX_POSITION_SKILLS);
                row.skill_ids = src.skill_ids.clone();
            }
            _ => return false,
        }
        true
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
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let src = req.position.unwrap_or_default();
        let now = self.now();
        let mut v = violations();
        let mut row = PositionRow {
            id: tt_common::new_id(),
            user_id: me.clone(),
            request_id: request_id(&mut v, &req.request_id),
            version: 1,
            created_at: now,
            updated_at: now,
            ..PositionRow::default()
        };
        for path in ALL {
            self.apply_position(&mut v, path, &src, &mut row);
        }
        if v.is_empty() {
            check_period(&mut v, &row);
        }
        v.into_result()?;
        let written = self.store.create_position(&row).await;
        let created = self.wrote(&me, Resource::Position, &row.id, written).await?;
        Ok(Response::new(pb::CreatePositionResponse { position: Some(convert::position(&created)) }))
    }

    async fn list_positions(
        &self,
        request: Request<pb::ListPositionsRequest>,
    ) -> Result<Response<pb::ListPositionsResponse>, Status> {
        let (user_id, _) = self.reader(&request, &request.get_ref().user_id)?;
        let req = request.into_inner();
        let mut v = violations();
        let page: Page<'_, (i32, String)> =
            self.pages.page(&mut v, format!("positions:{user_id}"), req.page_size, &req.page_token);
        v.into_result()?;
        let (month, id) = page.after.clone().unwrap_or((i32::MAX, String::new()));
        let mut rows = self.store.list_positions(&user_id, (month, &id), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |p| (p.start_month, p.id.clone()));
        Ok(Response::new(pb::ListPositionsResponse {
            positions: rows.iter().map(convert::position).collect(),
            next_page_token,
        }))
    }

    async fn update_position(
        &self,
        request: Request<pb::UpdatePositionRequest>,
    ) -> Result<Response<pb::UpdatePositionResponse>, Status> {
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let src = req.position.unwrap_or_default();
        let id = ("position.id", src.id.as_str());
        let update = MaskedUpdate::of_request(DOMAIN, req.update_mask, &src.etag, id, &FIELDS)?;
        let not_found = || DOMAIN.not_found("position", &src.id);
        let mut row = self.store.position(&me, &src.id).await?.ok_or_else(not_found)?;
        let set =
            |v: &mut Violations, path: &str, row: &mut PositionRow| self.apply_position(v, path, &src, row);
        let expected = update.apply_checked(row.version, &mut row, set, check_period)?;
        let written = self.store.update_position(&row, expected, self.now()).await;
        let updated = self.wrote(&me, Resource::Position, &src.id, written).await?;
        Ok(Response::new(pb::UpdatePositionResponse { position: Some(convert::position(&updated)) }))
    }

    async fn delete_position(
        &self,
        request: Request<pb::DeletePositionRequest>,
    ) -> Result<Response<pb::DeletePositionResponse>, Status> {
        let me = self.owner(&request).await?;
        let id = checked_id("position_id", request.into_inner().position_id)?;
        let written = self.store.delete_position(&me, &id, self.now()).await;
        self.wrote(&me, Resource::Position, &id, written).await?;
        Ok(Response::new(pb::DeletePositionResponse {}))
    }
}
