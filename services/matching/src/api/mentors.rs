//! MentorService: browsing the catalog.

use tonic::{Request, Response, Status};
use tt_common::auth::{principal, require_admin_or_service};
use tt_proto::matching::v1::{self as pb, mentor_service_server::MentorService};

use super::{Api, check_filters, check_mentor_id, violations};
use crate::{DOMAIN, catalog::passes, convert, domain::catalog::fold};

/// Whether the caller is an admin or a service (they see drafts, versions and model settings).
fn privileged<T>(request: &Request<T>) -> Result<bool, Status> {
    principal(request).map(|p| p.is_admin() || p.is_service())
}

/// The longest search query.
const MAX_QUERY: usize = 200;

#[tonic::async_trait]
impl MentorService for Api {
    async fn list_mentors(
        &self,
        request: Request<pb::ListMentorsRequest>,
    ) -> Result<Response<pb::ListMentorsResponse>, Status> {
        let privileged = privileged(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        let stage = check_filters(&mut v, &req.field, &req.language, req.stage);
        v.check_text("query", &req.query, MAX_QUERY);
        let status = pb::MentorStatus::try_from(req.status);
        v.check(status.is_ok(), "status", "must be a MENTOR_STATUS_ value");
        let status = status.unwrap_or_default();
        v.check(
            privileged || status == pb::MentorStatus::Unspecified,
            "status",
            "only admins filter by status",
        );
        let scope = format!(
            "ListMentors:{}:{}:{}:{}:{}:{}",
            privileged, req.field, req.language, req.stage, req.status, req.query
        );
        let page = self.pages.page::<(String, String)>(&mut v, scope, req.page_size, &req.page_token);
        v.into_result()?;
        let words: Vec<String> = fold(&req.query).split_whitespace().map(str::to_owned).collect();
        let catalog = self.catalog();
        let mut found: Vec<(String, pb::Mentor)> = Vec::new();
        for e in catalog.entries() {
            let listed = if privileged {
                status == pb::MentorStatus::Unspecified || e.row.status == status.as_str_name()
            } else {
                e.is_active()
            };
            let Some(version) = e.shown(privileged).filter(|_| listed) else { continue };
            if !passes(&version.content, &req.field, &req.language, stage)
                || !words.iter().all(|w| e.search.contains(w.as_str()))
            {
                continue;
            }
            let key = (version.content.name.clone(), e.id().to_owned());
            if page.after.as_ref().is_some_and(|after| &key <= after) {
                continue;
            }
            found.push((key.1, convert::mentor(e, version, privileged)));
            if found.len() as i64 >= page.limit() {
                break;
            }
        }
        let next_page_token = page.next(&mut found, |(id, m)| (m.name.clone(), id.clone()));
        Ok(Response::new(pb::ListMentorsResponse {
            mentors: found.into_iter().map(|(_, m)| m).collect(),
            next_page_token,
        }))
    }

    async fn get_mentor(
        &self,
        request: Request<pb::GetMentorRequest>,
    ) -> Result<Response<pb::GetMentorResponse>, Status> {
        let privileged = privileged(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        if req.version < 0 {
            v.add("version", "must not be negative");
        } else {
            v.check(privileged || req.version == 0, "version", "only admins and services ask for a version");
        }
        v.into_result()?;
        let catalog = self.catalog();
        let not_found = || DOMAIN.not_found("mentor", &req.mentor_id);
        let entry = catalog.get(&req.mentor_id).ok_or_else(not_found)?;
        let mentor = if req.version > 0 {
            let version =
                self.store.version(&req.mentor_id, i64::from(req.version)).await?.ok_or_else(|| {
                    DOMAIN.not_found("mentor version", &format!("{}@{}", req.mentor_id, req.version))
                })?;
            convert::mentor(entry, &version, true)
        } else {
            // Learners see published mentors, retired ones included (their running mentorships go on).
            let version = entry.shown(privileged).ok_or_else(not_found)?;
            convert::mentor(entry, version, privileged)
        };
        Ok(Response::new(pb::GetMentorResponse { mentor: Some(mentor) }))
    }

    async fn create_mentor(
        &self,
        request: Request<pb::CreateMentorRequest>,
    ) -> Result<Response<pb::CreateMentorResponse>, Status> {
        let mentor = self.create_mentor_checked(request).await?;
        Ok(Response::new(pb::CreateMentorResponse { mentor: Some(mentor) }))
    }

    async fn update_mentor(
        &self,
        request: Request<pb::UpdateMentorRequest>,
    ) -> Result<Response<pb::UpdateMentorResponse>, Status> {
        let mentor = self.update_mentor_checked(request).await?;
        Ok(Response::new(pb::UpdateMentorResponse { mentor: Some(mentor) }))
    }

    async fn publish_mentor(
        &self,
        request: Request<pb::PublishMentorRequest>,
    ) -> Result<Response<pb::PublishMentorResponse>, Status> {
        let mentor = self.publish_mentor_checked(request).await?;
        Ok(Response::new(pb::PublishMentorResponse { mentor: Some(mentor) }))
    }

    async fn retire_mentor(
        &self,
        request: Request<pb::RetireMentorRequest>,
    ) -> Result<Response<pb::RetireMentorResponse>, Status> {
        let mentor = self.retire_mentor_checked(request).await?;
        Ok(Response::new(pb::RetireMentorResponse { mentor: Some(mentor) }))
    }

    async fn list_mentor_versions(
        &self,
        request: Request<pb::ListMentorVersionsRequest>,
    ) -> Result<Response<pb::ListMentorVersionsResponse>, Status> {
        require_admin_or_service(&request)?;
        let req = request.into_inner();
        let mut v = violations();
        check_mentor_id(&mut v, "mentor_id", &req.mentor_id);
        let page = self.pages.page::<i64>(
            &mut v,
            format!("ListMentorVersions:{}", req.mentor_id),
            req.page_size,
            &req.page_token,
        );
        v.into_result()?;
        let catalog = self.catalog();
        let entry = catalog.get(&req.mentor_id).ok_or_else(|| DOMAIN.not_found("mentor", &req.mentor_id))?;
        let mut rows = self.store.versions(&req.mentor_id, page.after, page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| r.version);
        Ok(Response::new(pb::ListMentorVersionsResponse {
            versions: rows.iter().map(|r| convert::mentor(entry, r, true)).collect(),
            next_page_token,
        }))
    }
}
