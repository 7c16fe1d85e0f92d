//! GoalService: career goals and aspirations, in the learner's order.

use tonic::{Request, Response, Status};
use tt_common::{
    error::Violations,
    storage::{
        Page,
        update::{Fields, MaskedUpdate},
    },
};
use tt_proto::profiles::v1::{self as pb, goal_service_server::GoalService};

use super::{Api, checked_id, request_id, set, violations};
use crate::convert;
use crate::{
    DOMAIN, Error, Resource,
    domain::{self, MAX_GOAL_SKILLS},
    store::GoalRow,
};

/// What UpdateGoal changes.
const FIELDS: Fields = Fields {
    message: "Goal",
    kind: "goal",
    immutable: &["id", "rank", "create_time", "update_time", "achieve_time", "etag"],
    immutable_note: "",
};

impl Api {
    /// Applies one field of `src` to `row`, recording violations.
    fn apply_goal(&self, v: &mut Violations, path: &str, src: &pb::Goal, row: &mut GoalRow) -> bool {
        let field = format!("goal.{path}");
        match path {
            "kind" => match pb::GoalKind::try_from(src.kind) {
                Ok(k) if k != pb::GoalKind::Unspecified => row.kind = k.as_str_name().to_owned(),
                _ => {
                    v.add(&field, "must be SHORT_TERM, LONG_TERM or ASPIRATION");
                }
            },
            "status" => match pb::GoalStatus::try_from(src.status) {
                Ok(s) if s != pb::GoalStatus::Unspecified => row.status = s.as_str_name().to_owned(),
                _ => {
                    v.add(&field, "must be ACTIVE, ACHIEVED or ABANDONED");
                }
            },
            "title" => set(&mut row.title, v.take(&field, domain::text(&src.title, 200, true))),
            "target_role" => {
                set(&mut row.target_role, v.take(&field, domain::text(&src.target_role, 120, false)))
            }
            "target_field" => {
                if src.target_field.is_empty() {
                    row.target_field.clear();
                } else if let Some(f) = v.take(&field, domain::field_of_work(&src.target_field)) {
                    row.target_field = f;
                }
            }
            "target_date" => match &src.target_date {
                None => row.target_date.clear(),
                Some(d) => match domain::date(d.year, d.month, d.day) {
                    Ok(date) if date < domain::today(self.now()) => {
                        v.add(&field, "must not be in the past");
                    }
                    Ok(date) => row.target_date = date.to_string(),
                    Err(e) => {
                        v.add(&field, e);
                    }
                },
            },
            "priority" => {
                if (1..=5).contains(&src.priority) {
                    row.priority = src.priority;
                } else {
                    v.add(&field, "must be 1 (highest) to 5");
                }
            }
            "skill_ids" => {
                self.check_skills(v, &field, &src.skill_ids, MAX_GOAL_SKILLS);
                row.skill_ids = src.skill_ids.clone();
            }
            _ => return false,
        }
        true
    }
}

#[tonic::async_trait]
impl GoalService for Api {
    async fn create_goal(
        &self,
        request: Request<pb::CreateGoalRequest>,
    ) -> Result<Response<pb::CreateGoalResponse>, Status> {
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let mut src = req.goal.unwrap_or_default();
        // Defaults: priority 3, status ACTIVE.
        if src.priority == 0 {
            src.priority = 3;
        }
        if src.status == 0 {
            src.status = pb::GoalStatus::Active.into();
        }
        let now = self.now();
        let mut v = violations();
        let mut row = GoalRow {
            id: tt_common::new_id(),
            user_id: me.clone(),
            request_id: request_id(&mut v, &req.request_id),
            version: 1,
            created_at: now,
            updated_at: now,
            ..GoalRow::default()
        };
        for path in
            ["kind", "title", "target_role", "target_field", "target_date", "priority", "status", "skill_ids"]
        {
            self.apply_goal(&mut v, path, &src, &mut row);
        }
        v.into_result()?;
        let written = self.store.create_goal(&row).await;
        let goal = self.wrote(&me, Resource::Goal, &row.id, written).await?;
        Ok(Response::new(pb::CreateGoalResponse { goal: Some(convert::goal(&goal)) }))
    }

    async fn list_goals(
        &self,
        request: Request<pb::ListGoalsRequest>,
    ) -> Result<Response<pb::ListGoalsResponse>, Status> {
        let (user_id, _) = self.reader(&request, &request.get_ref().user_id)?;
        let req = request.into_inner();
        let mut v = violations();
        let status = match pb::GoalStatus::try_from(req.status) {
            Ok(pb::GoalStatus::Unspecified) => None,
            Ok(s) => Some(s.as_str_name()),
            Err(_) => {
                v.add("status", "unknown status");
                None
            }
        };
        let scope = format!("goals:{user_id}:{}", status.unwrap_or(""));
        let page: Page<'_, (i32, String)> = self.pages.page(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let (rank, id) = page.after.clone().unwrap_or((-1, String::new()));
        let mut rows = self.store.list_goals(&user_id, status, (rank, &id), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |g| (g.rank, g.id.clone()));
        Ok(Response::new(pb::ListGoalsResponse {
            goals: rows.iter().map(convert::goal).collect(),
            next_page_token,
        }))
    }

    async fn update_goal(
        &self,
        request: Request<pb::UpdateGoalRequest>,
    ) -> Result<Response<pb::UpdateGoalResponse>, Status> {
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let src = req.goal.unwrap_or_default();
        let update =
            MaskedUpdate::of_request(DOMAIN, req.update_mask, &src.etag, ("goal.id", &src.id), &FIELDS)?;
        let mut row =
            self.store.goal(&me, &src.id).await?.ok_or_else(|| DOMAIN.not_found("goal", &src.id))?;
        let set = |v: &mut Violations, path: &str, row: &mut GoalRow| self.apply_goal(v, path, &src, row);
        let expected = update.apply_checked(row.version, &mut row, set, |_, _| {})?;
        let written = self.store.update_goal(&row, expected, self.now()).await;
        let after = self.wrote(&me, Resource::Goal, &src.id, written).await?;
        Ok(Response::new(pb::UpdateGoalResponse { goal: Some(convert::goal(&after)) }))
    }

    async fn delete_goal(
        &self,
        request: Request<pb::DeleteGoalRequest>,
    ) -> Result<Response<pb::DeleteGoalResponse>, Status> {
        let me = self.owner(&request).await?;
        let id = checked_id("goal_id", request.into_inner().goal_id)?;
        let written = self.store.delete_goal(&me, &id, self.now()).await;
        self.wrote(&me, Resource::Goal, &id, written).await?;
        Ok(Response::new(pb::DeleteGoalResponse {}))
    }

    async fn reorder_goals(
        &self,
        request: Request<pb::ReorderGoalsRequest>,
    ) -> Result<Response<pb::ReorderGoalsResponse>, Status> {
        let me = self.owner(&request).await?;
        let ids = request.into_inner().goal_ids;
        let mut v = violations();
        v.check_ids("goal_ids", &ids, domain::MAX_GOALS);
        v.into_result()?;
        let goals = self.store.reorder_goals(&me, &ids, self.now()).await.map_err(|e| match e {
            crate::store::WriteError::Invalid(why) => DOMAIN.invalid_field("goal_ids", why),
            other => Error::write(Resource::Goal, "")(other).into(),
        })?;
        self.changed(&me).await;
        Ok(Response::new(pb::ReorderGoalsResponse { goals: goals.iter().map(convert::goal).collect() }))
    }
}
