//! AssessmentService: the questionnaire, scoring, and the history of results.

use tonic::{Request, Response, Status};
use tt_common::{auth::principal, storage::Page};
use tt_proto::profiles::v1::{self as pb, assessment_service_server::AssessmentService};

use super::{Api, violations};
use crate::convert;
use crate::{Resource, store::ResultRow};

#[tonic::async_trait]
impl AssessmentService for Api {
    async fn get_assessment(
        &self,
        request: Request<pb::GetAssessmentRequest>,
    ) -> Result<Response<pb::GetAssessmentResponse>, Status> {
        principal(&request)?;
        let q = &self.questionnaire;
        let assessment = pb::Assessment {
            version: q.version,
            title: q.title.clone(),
            questions: q
                .questions
                .iter()
                .map(|x| pb::AssessmentQuestion {
                    id: x.id.clone(),
                    text: x.text.clone(),
                    options: x
                        .options
                        .iter()
                        .map(|o| pb::AssessmentOption { id: o.id.clone(), text: o.text.clone() })
                        .collect(),
                })
                .collect(),
        };
        Ok(Response::new(pb::GetAssessmentResponse { assessment: Some(assessment) }))
    }

    async fn submit_assessment(
        &self,
        request: Request<pb::SubmitAssessmentRequest>,
    ) -> Result<Response<pb::SubmitAssessmentResponse>, Status> {
        let me = self.owner(&request).await?;
        let req = request.into_inner();
        let mut v = violations();
        let current = self.questionnaire.version;
        v.check(req.version == current, "version", format!("must be the current version, {current}"));
        // One answer per question: a longer list is refused before any answer is looked at.
        let listed = v.check_count("answers", req.answers.len(), self.questionnaire.questions.len());
        let answers: Vec<(String, String)> =
            req.answers.into_iter().map(|a| (a.question_id, a.option_id)).collect();
        let scores = match listed.then(|| self.questionnaire.score(&answers)) {
            Some(Ok(scores)) => Some(scores),
            Some(Err(problems)) => {
                for (field, why) in problems {
                    v.add(&field, why);
                }
                None
            }
            None => None,
        };
        v.into_result()?;
        let Some(scores) = scores else {
            return Err(crate::DOMAIN.internal(&"answers neither scored nor refused"));
        };
        let result = ResultRow {
            id: tt_common::new_id(),
            user_id: me.clone(),
            version: current,
            answers: answers.into_iter().collect(),
            scores,
            created_at: self.now(),
        };
        let written = self.store.add_result(&result).await;
        self.wrote(&me, Resource::Assessment, &result.id, written).await?;
        Ok(Response::new(pb::SubmitAssessmentResponse { result: Some(convert::result(&result)) }))
    }

    async fn list_assessment_results(
        &self,
        request: Request<pb::ListAssessmentResultsRequest>,
    ) -> Result<Response<pb::ListAssessmentResultsResponse>, Status> {
        let (user_id, _) = self.reader(&request, &request.get_ref().user_id)?;
        let req = request.into_inner();
        let mut v = violations();
        let page: Page<'_, String> =
            self.pages.page(&mut v, format!("results:{user_id}"), req.page_size, &req.page_token);
        v.into_result()?;
        let mut rows =
            self.store.list_results(&user_id, page.after.as_deref().unwrap_or("z"), page.limit()).await?;
        let next_page_token = page.next(&mut rows, |r| r.id.clone());
        Ok(Response::new(pb::ListAssessmentResultsResponse {
            results: rows.iter().map(convert::result).collect(),
            next_page_token,
        }))
    }
}
