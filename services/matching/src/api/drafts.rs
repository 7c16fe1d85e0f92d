//! MentorService, admins' side (drafts): versions, publishing with every problem listed,
//! retiring.

use tonic::{Request, Status};
use tt_common::{
    auth::require_admin,
    error::{Reason, Violations},
    storage::{
        etag_version,
        update::{Fields, MaskedUpdate},
    },
};
use tt_proto::{
    matching::v1 as pb,
    profiles::v1::{BatchGetSkillsRequest, ListTracksRequest, skill_service_client::SkillServiceClient},
};

use super::{Api, check_mentor_id, violations};
use crate::{
    DOMAIN, Error,
    domain::catalog::{self, Content, Model, Style, Taxonomy},
    store::MentorRecord,
};

/// What UpdateMentor changes.
const FIELDS: Fields = Fields {
    message: "Mentor",
    kind: "mentor",
    immutable: &[
        "mentor_id",
        "version",
        "status",
        "seats_taken",
        "published_version",
        "create_time",
        "update_time",
        "etag",
    ],
    immutable_note: " (PublishMentor and RetireMentor change the status)",
};

/// Accepts every id: the shape checks of drafts (the taxonomy is checked when publishing).
struct AnyIds;

impl Taxonomy for AnyIds {
    fn is_track(&self, id: &str) -> bool {
        catalog::is_mentor_id(id)
    }
    fn is_skill(&self, id: &str) -> bool {
        catalog::is_mentor_id(id)
    }
}

/// The taxonomy as profiles has it, for the ids one mentor names.
struct Known {
    tracks: Vec<String>,
    missing_skills: Vec<String>,
}

impl Taxonomy for Known {
    fn is_track(&self, id: &str) -> bool {
        self.tracks.iter().any(|t| t == id)
    }
    fn is_skill(&self, id: &str) -> bool {
        !self.missing_skills.iter().any(|s| s == id)
    }
}

fn modality_name(m: i32) -> Option<&'static str> {
    use tt_proto::profiles::v1::LearningStyle as L;
    Some(match L::try_from(m).ok()? {
        L::Visual => "visual",
        L::Auditory => "auditory",
        L::ReadingWriting => "reading_writing",
        L::Kinesthetic => "kinesthetic",
        L::Unspecified => return None,
    })
}

/// Sets one field of `content` from `src` (`path` of the Mentor message); false for a path it
/// does not take.
fn set_field(v: &mut Violations, path: &str, src: &pb::Mentor, content: &mut Content) -> bool {
    use tt_proto::profiles::v1::CareerStage;
    match path {
        "name" => content.name = src.name.trim().to_owned(),
        "era" => content.era = src.era.trim().to_owned(),
        "background" => content.background = src.background.trim().to_owned(),
        "voice" => content.voice = src.voice.trim().to_owned(),
        "fields" => content.fields = src.fields.clone(),
        "specializations" => content.specializations = src.specializations.clone(),
        "stages" => {
            content.stages = Vec::new();
            for (i, s) in src.stages.iter().enumerate().take(7) {
                match CareerStage::try_from(*s) {
                    Ok(s) if s != CareerStage::Unspecified => content.stages.push(s.as_str_name().to_owned()),
                    _ => {
                        v.add(&format!("mentor.stages[{i}]"), "must be a CAREER_STAGE_ value");
                    }
                }
            }
        }
        "teaching_style" => {
            let style = src.teaching_style.unwrap_or_default();
            let modality = modality_name(style.modality);
            if modality.is_none() {
                v.add("mentor.teaching_style.modality", "must be a LEARNING_STYLE_ value");
            }
            content.style = Style {
                modality: modality.unwrap_or("visual").to_owned(),
                pace: style.pace,
                structure: style.structure,
                feedback: style.feedback,
            };
        }
        "languages" => content.languages = src.languages.clone(),
        "capacity" => content.capacity = u32::try_from(src.capacity).unwrap_or(0),
        "model" => {
            let m = src.model.clone().unwrap_or_default();
            content.model = Model {
                provider: m.provider.trim().to_owned(),
                model: m.model.trim().to_owned(),
                temperature: m.temperature,
                system_prompt: m.system_prompt_template,
            };
        }
        "content_language" => {
            content.content_language =
                if src.content_language.is_empty() { "en".to_owned() } else { src.content_language.clone() };
        }
        _ => return false,
    }
    true
}

/// The content paths, in the order of the message.
const CONTENT: [&str; 12] = [
    "name",
    "era",
    "background",
    "voice",
    "fields",
    "specializations",
    "stages",
    "teaching_style",
    "languages",
    "capacity",
    "model",
    "content_language",
];

/// Records every problem of `content` under `mentor.`.
fn check(v: &mut Violations, content: &Content, taxonomy: &dyn Taxonomy) {
    for p in catalog::problems(content, taxonomy) {
        v.add(&format!("mentor.{}", p.field), p.problem);
    }
    v.check(content.model.provider.chars().count() <= 40, "mentor.model.provider", "at most 40 characters");
    v.check(content.model.model.chars().count() <= 100, "mentor.model.model", "at most 100 characters");
}

fn blank() -> Content {
    Content {
        name: String::new(),
        era: String::new(),
        background: String::new(),
        voice: String::new(),
        fields: Vec::new(),
        specializations: Vec::new(),
        stages: Vec::new(),
        languages: Vec::new(),
        capacity: 0,
        style: Style { modality: "visual".into(), pace: 0.0, structure: 0.0, feedback: 0.0 },
        model: Model {
            provider: String::new(),
            model: String::new(),
            temperature: 0.0,
            system_prompt: String::new(),
        },
        content_language: "en".into(),
    }
}

impl Api {
    /// The mentor as admins see it after a catalog write (the catalog is reloaded first).
    async fn written(&self, record: MentorRecord) -> Result<pb::Mentor, Status> {
        self.reload().await.map_err(|e| DOMAIN.internal(&e))?;
        let catalog = self.catalog();
        let entry = catalog
            .get(&record.row.mentor_id)
            .ok_or_else(|| DOMAIN.not_found("mentor", &record.row.mentor_id))?;
        Ok(crate::convert::mentor(entry, &entry.latest, true))
    }

    /// The taxonomy ids `content` names, checked at profiles.
    async fn known(&self, content: &Content) -> Result<Known, Status> {
        let peer = self.profiles_peer()?;
        let ids: Vec<String> = content.specializations.iter().take(200).cloned().collect();
        let missing = peer
            .call(|ch| {
                let request = BatchGetSkillsRequest { ids: ids.clone() };
                async move { SkillServiceClient::new(ch).batch_get_skills(request).await }
            })
            .await
            .map_err(|s| Status::from(Error::Profiles(s)))?
            .missing_ids;
        let tracks = peer
            .call(|ch| async move { SkillServiceClient::new(ch).list_tracks(ListTracksRequest {}).await })
            .await
            .map_err(|s| Status::from(Error::Profiles(s)))?
            .tracks
            .into_iter()
            .map(|t| t.id)
            .collect();
        Ok(Known { tracks, missing_skills: missing })
    }

    pub(super) async fn create_mentor_checked(
        &self,
        request: Request<pb::CreateMentorRequest>,
    ) -> Result<pb::Mentor, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let src = request.into_inner().mentor.unwrap_or_default();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor.mentor_id", &src.mentor_id);
        let mut content = blank();
        for path in CONTENT {
            set_field(&mut v, path, &src, &mut content);
        }
        check(&mut v, &content, &AnyIds);
        v.into_result()?;
        let record = self
            .store
            .create_mentor(&src.mentor_id, &content, &admin, self.now())
            .await
            .map_err(Error::from)?;
        self.written(record).await
    }

    pub(super) async fn update_mentor_checked(
        &self,
        request: Request<pb::UpdateMentorRequest>,
    ) -> Result<pb::Mentor, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let src = req.mentor.unwrap_or_default();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor.mentor_id", &src.mentor_id);
        let update = MaskedUpdate::new(&mut v, req.update_mask, &src.etag, "", &FIELDS);
        v.into_result()?;
        let record = self.store.record(&src.mentor_id).await.map_err(Error::from)?;
        let mut content = record.latest.content.clone();
        let expected = update.apply_checked(
            record.row.latest_version,
            &mut content,
            |v, path, c| set_field(v, path, &src, c),
            |v, c| check(v, c, &AnyIds),
        )?;
        let record = self
            .store
            .update_mentor(&src.mentor_id, expected, &content, &admin, self.now())
            .await
            .map_err(Error::from)?;
        self.written(record).await
    }

    pub(super) async fn publish_mentor_checked(
        &self,
        request: Request<pb::PublishMentorRequest>,
    ) -> Result<pb::Mentor, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        let expected = etag_version(&req.etag);
        v.check(req.etag.is_empty() || expected.is_some(), "etag", "must be an etag this service gave");
        v.into_result()?;
        let record = self.store.record(&req.mentor_id).await.map_err(Error::from)?;
        let latest = record.row.latest_version;
        if expected.is_some_and(|e| e != latest) {
            return Err(DOMAIN.etag_mismatch("mentor"));
        }
        let known = self.known(&record.latest.content).await?;
        let mut problems = violations();
        check(&mut problems, &record.latest.content, &known);
        problems.into_failed_precondition(
            Reason::new("MENTOR_INVALID"),
            "the mentor cannot be published as it is",
        )?;
        let capacity = record.latest.content.capacity;
        let record = self
            .store
            .publish_mentor(&req.mentor_id, latest, capacity, &admin, self.now())
            .await
            .map_err(Error::from)?;
        self.written(record).await
    }

    pub(super) async fn retire_mentor_checked(
        &self,
        request: Request<pb::RetireMentorRequest>,
    ) -> Result<pb::Mentor, Status> {
        let admin = require_admin(&request)?.subject.clone();
        let req = request.into_inner();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        v.into_result()?;
        let record =
            self.store.retire_mentor(&req.mentor_id, &admin, self.now()).await.map_err(Error::from)?;
        self.written(record).await
    }
}
