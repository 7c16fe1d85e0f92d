//! ProfileService: the learner's profile, its completion and the JSON export.

use serde_json::json;
use tonic::{Request, Response, Status};
use tt_common::{
    error::Violations,
    storage::update::{Fields, MaskedUpdate},
};
use tt_proto::profiles::v1::{self as pb, profile_service_server::ProfileService};

use super::{Api, set, violations};
use crate::convert;
use crate::{
    DOMAIN,
    domain::{self, MAX_FIELDS, MAX_LANGUAGES},
    store::ProfileRow,
};

/// What UpdateProfile changes: not the output-only or identifying fields.
const FIELDS: Fields = Fields {
    message: "Profile",
    kind: "profile",
    immutable: &[
        "user_id",
        "career_stage",
        "derived_career_stage",
        "experience",
        "create_time",
        "update_time",
        "etag",
    ],
    immutable_note: "",
};

/// A known value of a proto enum as its stored name ("" for UNSPECIFIED when `clearable`).
fn enum_name<E: TryFrom<i32>>(
    v: &mut Violations,
    field: &str,
    value: i32,
    clearable: bool,
    name: fn(&E) -> &'static str,
) -> Option<String> {
    match E::try_from(value) {
        Ok(_) if value == 0 && clearable => Some(String::new()),
        Ok(e) if value != 0 => Some(name(&e).to_owned()),
        _ => {
            v.add(field, format!("{value} is not an allowed value"));
            None
        }
    }
}

/// Applies one update_mask path from `src` to `row`, recording violations.
fn apply(v: &mut Violations, path: &str, src: &pb::Profile, row: &mut ProfileRow) -> bool {
    let prefs = src.preferences.unwrap_or_default();
    let notes = prefs.notifications.unwrap_or_default();
    let field = format!("profile.{path}");
    match path {
        "headline" => set(&mut row.headline, v.take(&field, domain::text(&src.headline, 160, false))),
        "current_role" => {
            set(&mut row.current_role, v.take(&field, domain::text(&src.current_role, 120, false)))
        }
        "location" => set(&mut row.location, v.take(&field, domain::text(&src.location, 120, false))),
        "timezone" => set(&mut row.timezone, v.take(&field, domain::timezone(&src.timezone))),
        "fields_of_work" => set(
            &mut row.fields_of_work,
            v.take(&field, domain::list(&src.fields_of_work, MAX_FIELDS, domain::field_of_work)),
        ),
        "languages" => set(
            &mut row.languages,
            v.take(&field, domain::list(&src.languages, MAX_LANGUAGES, domain::language)),
        ),
        "career_stage_override" => set(
            &mut row.career_stage_override,
            enum_name(v, &field, src.career_stage_override, true, pb::CareerStage::as_str_name),
        ),
        "visibility" => {
            set(&mut row.visibility, enum_name(v, &field, src.visibility, false, pb::Visibility::as_str_name))
        }
        "preferences" => {
            for sub in ["session_cadence", "communication_style", "feedback_style", "notifications"] {
                apply(v, &format!("preferences.{sub}"), src, row);
            }
        }
        "preferences.session_cadence" => set(
            &mut row.session_cadence,
            enum_name(v, &field, prefs.session_cadence, true, pb::SessionCadence::as_str_name),
        ),
        "preferences.communication_style" => set(
            &mut row.communication_style,
            enum_name(v, &field, prefs.communication_style, true, pb::CommunicationStyle::as_str_name),
        ),
        "preferences.feedback_style" => set(
            &mut row.feedback_style,
            enum_name(v, &field, prefs.feedback_style, true, pb::FeedbackStyle::as_str_name),
        ),
        "preferences.notifications" => {
            row.notify_email = notes.email;
            row.notify_push = notes.push;
            row.notify_weekly_digest = notes.weekly_digest;
            row.notify_mission_reminders = notes.mission_reminders;
        }
        _ => return false,
    }
    true
}

#[tonic::async_trait]
impl ProfileService for Api {
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let (user_id, own) = self.reader(&request, &request.get_ref().user_id)?;
        let profile = self.profile_view(&user_id, own).await?;
        Ok(Response::new(pb::GetProfileResponse { profile: Some(profile) }))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let src = req.profile.unwrap_or_default();
        let mut v = violations();
        let update = MaskedUpdate::new(&mut v, req.update_mask, &src.etag, "", &FIELDS);
        let stale = || DOMAIN.etag_mismatch("profile");
        let mut row = self.store.profile(&me).await?.ok_or_else(stale)?;
        // A stale etag fails the conditional update below.
        let expected = update.expected_version(row.version)?;
        update.apply(&mut v, &mut row, |v, path, row| apply(v, path, &src, row));
        v.into_result()?;
        let paths = &update.paths;
        self.store.update_profile(&row, expected, self.now(), paths).await?.ok_or_else(stale)?;
        self.changed(&me).await;
        let profile = self.profile_view(&me, false).await?;
        Ok(Response::new(pb::UpdateProfileResponse { profile: Some(profile) }))
    }

    async fn get_completion(
        &self,
        request: Request<pb::GetCompletionRequest>,
    ) -> Result<Response<pb::GetCompletionResponse>, Status> {
        let (user_id, own) = self.reader(&request, &request.get_ref().user_id)?;
        let completion = self.completion_view(&user_id, own).await?;
        Ok(Response::new(pb::GetCompletionResponse { completion: Some(completion) }))
    }

    async fn export_profile(
        &self,
        request: Request<pb::ExportProfileRequest>,
    ) -> Result<Response<pb::ExportProfileResponse>, Status> {
        let (user_id, own) = self.reader(&request, &request.get_ref().user_id)?;
        if own {
            self.ensure(&user_id, &user_id).await?;
        }
        let learner = self.learner(&user_id).await?;
        let mut results = Vec::new();
        let mut before = "z".to_owned();
        loop {
            let page = self.store.list_results(&user_id, &before, 100).await?;
            let Some(last) = page.last() else { break };
            before = last.id.clone();
            results.extend(page);
        }
        let completion = convert::completion(&learner);
        let (months, stage) = convert::experience(&learner, self.now());
        let document = json!({
            "format": "timetravelers.profiles.export/v1",
            "exported_at_ms": self.now(),
            "profile": learner.profile,
            "derived": {
                "experience_months": months,
                "career_stage": convert::stage(stage).as_str_name(),
            },
            "goals": learner.goals,
            "positions": learner.positions,
            "skills": learner.skills,
            "assessment_results": results,
            "completion": {
                "percent": completion.percent,
                "next_step": completion.next_step,
            },
        });
        let json = serde_json::to_string_pretty(&document).map_err(|e| crate::DOMAIN.internal(&e))?;
        Ok(Response::new(pb::ExportProfileResponse { json }))
    }
}
