//! Cohort assignment as a background operation: the learners' features read from profiles, the
//! scores computed, the optimal assignment (and greedy's, for comparison) found off the async
//! threads, the result stored for polling; applying it makes proposals in one transaction.

use std::{sync::Arc, time::Instant};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::{
    DOMAIN,
    domain::{
        cohort::{self, Cohort, Score},
        score,
    },
    service::Matching,
    store::settings::CohortRow,
};

/// Learners' views read from profiles at once.
const READ_AHEAD: usize = 16;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What an admin asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortRequest {
    pub user_ids: Vec<String>,
    /// Empty: every active mentor.
    pub mentor_ids: Vec<String>,
}

/// One pair of the assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub user_id: String,
    pub mentor_id: String,
    /// The compatibility total (0 to 1).
    pub score: f64,
    pub waited_days: i32,
}

/// A computed assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortResult {
    pub learners: usize,
    pub mentors: usize,
    pub seats: u64,
    pub pairs: Vec<Pair>,
    /// In units of 1 (the optimum's objective: scores with the waiting priority).
    pub total_score: f64,
    pub greedy_total_score: f64,
    pub greedy_seated: usize,
    pub unseated: Vec<String>,
    pub skipped: Vec<String>,
    pub compute_ms: u64,
}

/// Scores are kept in millionths in the assignment.
const SCALE: f64 = 1_000_000.0;

/// The scores of `learners` with `mentors` and the optimal and greedy assignments. `None` pairs:
/// no shared language (when the learner named languages), or a mentor the learner ended or
/// declined before.
pub fn compute(
    learners: &[CohortLearner],
    mentors: &[CohortMentor],
    weights: &score::Weights,
) -> (Vec<f64>, cohort::Assignment, cohort::Assignment) {
    let mut scores = Vec::with_capacity(learners.len() * mentors.len());
    let mut raw = Vec::with_capacity(learners.len() * mentors.len());
    for (learner, days, left) in learners {
        let p = score::prepare(learner);
        for m in mentors {
            let total = score::score(&p, &m.features, m.taken, weights, false);
            let allowed = score::may_talk(&p, &m.features) && !left.contains(&m.id);
            raw.push(total);
            // The total is 0..1, so the scaled score fits in an i64.
            #[allow(clippy::cast_possible_truncation)]
            let scaled = (total * SCALE).round() as Score;
            scores.push(allowed.then(|| cohort::prioritised(scaled, *days)));
        }
    }
    let cohort = Cohort { learners: learners.len(), seats: mentors.iter().map(|m| m.free).collect(), scores };
    let best = cohort::optimal(&cohort);
    let greedy = cohort::greedy(&cohort);
    (raw, best, greedy)
}

/// A learner in an assignment: their features, the days they waited, the mentors they left.
pub type CohortLearner = (score::Learner, i64, Vec<String>);

/// A mentor in an assignment: its features, seats taken and free.
#[derive(Debug, Clone)]
pub struct CohortMentor {
    pub id: String,
    pub features: score::Mentor,
    pub taken: u32,
    pub free: u32,
}

impl Matching {
    /// Records the assignment and computes it in the background (a retry with the same
    /// request id returns the first one).
    pub async fn start_cohort(
        self: &Arc<Self>,
        actor: &str,
        request: CohortRequest,
        request_id: Option<&str>,
    ) -> Result<CohortRow, Status> {
        let now = self.now();
        self.store.seen(&request.user_ids, now).await?;
        let (id, fresh) =
            self.store.create_cohort(&tt_common::new_id(), &request, request_id, actor, now).await?;
        if fresh {
            let me = self.clone();
            let job = id.clone();
            tokio::spawn(async move {
                let result = me.assign(&request).await;
                let stored =
                    me.store.finish_cohort(&job, result.as_ref().map_err(String::as_str), me.now()).await;
                if let Err(e) = stored {
                    tracing::error!(assignment = job, error = %e, "storing a cohort assignment failed");
                }
            });
        }
        self.store.cohort(&id).await?.ok_or_else(|| DOMAIN.not_found("cohort assignment", &id))
    }

    /// Computes an assignment (the error is the operation's, for the admin to read).
    pub async fn assign(&self, request: &CohortRequest) -> Result<CohortResult, String> {
        let now = self.now();
        let waiting = self.store.waiting(&request.user_ids).await.map_err(|e| e.to_string())?;
        let (skipped, considered): (Vec<String>, Vec<String>) =
            request.user_ids.iter().cloned().partition(|u| waiting.get(u).is_some_and(|w| w.1));
        let features: Vec<Arc<crate::service::Known>> = futures::stream::iter(considered.clone())
            .map(|u: String| async move { self.learner(&u).await })
            .buffered(READ_AHEAD)
            .try_collect()
            .await
            .map_err(|s: Status| format!("reading learner views from profiles: {}", s.message()))?;
        let mut learners = Vec::with_capacity(considered.len());
        for (user, known) in considered.iter().zip(features) {
            let since = waiting.get(user).and_then(|w| w.0).unwrap_or(now);
            let left: Vec<String> = known.left.keys().cloned().collect();
            learners.push((known.features.clone(), (now - since).max(0) / DAY_MS, left));
        }
        let catalog = self.catalog();
        let wanted: Option<&[String]> = (!request.mentor_ids.is_empty()).then_some(&request.mentor_ids);
        let mentors: Vec<CohortMentor> = catalog
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_active() && wanted.is_none_or(|w| w.iter().any(|id| id == e.id())))
            .filter_map(|(i, e)| {
                let free = u32::try_from(e.free_seats()).unwrap_or(0);
                let m = CohortMentor {
                    id: e.id().to_owned(),
                    features: catalog.features(i)?.clone(),
                    taken: e.taken(),
                    free,
                };
                Some(m).filter(|m| m.free > 0)
            })
            .collect();
        let weights = self.weights();
        let started = Instant::now();
        let (learners, mentors, (raw, best, greedy)) = tokio::task::spawn_blocking(move || {
            let computed = compute(&learners, &mentors, &weights);
            (learners, mentors, computed)
        })
        .await
        .map_err(|e| format!("the assignment stopped: {e}"))?;
        let compute_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let m = mentors.len();
        let mut pairs = Vec::new();
        let mut unseated = Vec::new();
        for (l, mentor) in best.mentor_of.iter().enumerate() {
            match mentor {
                Some(j) => pairs.push(Pair {
                    user_id: considered[l].clone(),
                    mentor_id: mentors[*j].id.clone(),
                    score: raw[l * m + j],
                    waited_days: i32::try_from(learners[l].1).unwrap_or(i32::MAX),
                }),
                None => unseated.push(considered[l].clone()),
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let unit = |s: Score| s as f64 / SCALE;
        Ok(CohortResult {
            learners: considered.len(),
            mentors: m,
            seats: mentors.iter().map(|x| u64::from(x.free)).sum(),
            pairs,
            total_score: unit(best.total),
            greedy_total_score: unit(greedy.total),
            greedy_seated: greedy.seated,
            unseated,
            skipped,
            compute_ms,
        })
    }
}
