//! The core the handlers share: who may read whose data, the cached views (profile,
//! completion, learner view) and their invalidation, and the mapping of store errors.

use std::{sync::Arc, time::Duration};
use tt_common::error::Reason;

use tonic::{Code, Request, Status};
use tt_common::{
    auth::require_user,
    cache::{Cache, Codec},
    clock::{Millis, SharedClock},
    error::{self, Violations},
    storage::{PageTokens, StorageError},
};
use tt_proto::profiles::v1 as pb;

use crate::{
    DOMAIN, convert,
    domain::{
        assessment::Questionnaire,
        taxonomy::{self, Taxonomy},
    },
    store::{Learner, Store},
};

/// The profiles service core.
#[derive(Debug)]
pub struct Profiles {
    pub store: Store,
    pub cache: Cache,
    pub taxonomy: Taxonomy,
    pub questionnaire: Questionnaire,
    pub clock: SharedClock,
    pub pages: PageTokens,
    /// Lifetime of cached views; zero turns caching off.
    pub cache_ttl: Duration,
}

fn key(kind: &str, user_id: &str) -> String {
    format!("{kind}:{user_id}")
}

const VIEWS: &[&str] = &["profile", "completion", "view"];

impl Profiles {
    pub fn new(
        store: Store,
        cache: Cache,
        clock: SharedClock,
        pages: PageTokens,
        cache_ttl: Duration,
    ) -> Result<Arc<Self>, tt_common::error::BoxError> {
        Ok(Arc::new(Self {
            store,
            cache,
            taxonomy: Taxonomy::builtin().map_err(|e| format!("skill taxonomy: {e}"))?,
            questionnaire: Questionnaire::builtin().map_err(|e| format!("assessment: {e}"))?,
            clock,
            pages,
            cache_ttl,
        }))
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The user whose data a read names: `user_id`, or the caller when empty. Reading
    /// someone else's data needs the admin role.
    /// Services use IntegrationService instead (PERMISSION_DENIED).
    pub fn reader<T>(&self, request: &Request<T>, user_id: &str) -> Result<(String, bool), Status> {
        tt_common::auth::read_target(request, user_id, DOMAIN)
    }

    /// The caller, for writes to their own data (their profile is created on first access).
    pub async fn owner<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let me = require_user(request)?.subject.clone();
        self.ensure(&me, &me).await?;
        Ok(me)
    }

    /// Creates the profile of `user_id` on first access (by `actor`); FAILED_PRECONDITION for
    /// a deleted user.
    pub async fn ensure(&self, user_id: &str, actor: &str) -> Result<(), Status> {
        if self.store.ensure_profile(user_id, actor, self.now()).await? {
            return Ok(());
        }
        if self.store.is_purged(user_id).await? {
            return Err(DOMAIN.status(
                Code::FailedPrecondition,
                Reason::new("USER_DELETED"),
                "this user was deleted",
            ));
        }
        Ok(())
    }

    /// Everything about a learner (NOT_FOUND without a profile).
    pub async fn learner(&self, user_id: &str) -> Result<Learner, Status> {
        self.store.learner(user_id).await?.ok_or_else(|| DOMAIN.not_found("profile", user_id))
    }

    /// A view of `user_id` from the cache, else built from the database and cached.
    async fn cached<T>(
        &self,
        kind: &str,
        user_id: &str,
        create: bool,
        build: fn(&Self, &Learner) -> T,
    ) -> Result<T, Status>
    where
        T: prost::Message + Default,
    {
        let load = || async {
            if create {
                self.ensure(user_id, user_id).await?;
            }
            let learner = self.learner(user_id).await?;
            Ok::<_, Status>(build(self, &learner))
        };
        if self.cache_ttl.is_zero() {
            return load().await;
        }
        self.cache.get_or_load_with(&key(kind, user_id), self.cache_ttl, Codec::protobuf(), load).await
    }

    /// The profile (created on first access when `create`, i.e. for its owner).
    pub async fn profile_view(&self, user_id: &str, create: bool) -> Result<pb::Profile, Status> {
        self.cached("profile", user_id, create, |s, l| convert::profile(l, s.now())).await
    }

    pub async fn completion_view(&self, user_id: &str, create: bool) -> Result<pb::Completion, Status> {
        self.cached("completion", user_id, create, |_, l| convert::completion(l)).await
    }

    pub async fn learner_view(&self, user_id: &str) -> Result<pb::LearnerView, Status> {
        self.cached("view", user_id, false, |s, l| convert::learner_view(l, &s.taxonomy, s.now())).await
    }

    /// The outcome of a write of `user_id`'s `resource` `id`: the store's refusal as a status, or
    /// the written value once the views are refreshed ([`Profiles::changed`]).
    pub async fn wrote<T>(
        &self,
        user_id: &str,
        resource: crate::Resource,
        id: &str,
        written: Result<T, crate::store::WriteError>,
    ) -> Result<T, Status> {
        let value = written.map_err(crate::Error::write(resource, id))?;
        self.changed(user_id).await;
        Ok(value)
    }

    /// After a write: drops every cached view of `user_id` and tells analytics when the
    /// completion percentage moved. A failed report is logged (the write stands) and caught up
    /// by the learner's next write.
    pub async fn changed(&self, user_id: &str) {
        let keys: Vec<String> = VIEWS.iter().map(|kind| key(kind, user_id)).collect();
        self.cache.invalidate_many(&keys.iter().map(String::as_str).collect::<Vec<_>>()).await;
        if let Err(e) = self.report_completion(user_id).await {
            tracing::warn!(user_id, error = %e, "reporting the completion change failed");
        }
    }

    async fn report_completion(&self, user_id: &str) -> Result<(), StorageError> {
        let Some(learner) = self.store.learner(user_id).await? else { return Ok(()) };
        let percent = i64::from(convert::completion(&learner).percent);
        let previous = learner.profile.reported_completion;
        if percent != previous {
            self.store.report_completion(user_id, previous, percent, self.now()).await?;
        }
        Ok(())
    }

    /// Records a violation of `field` unless `id` is a skill of the taxonomy. Only a plausible
    /// id (at most [`taxonomy::MAX_SKILL_ID`] characters) gets "did you mean" suggestions, and
    /// only while `suggest` is true: the edit-distance pass is bounded work per request.
    pub fn check_skill(&self, v: &mut Violations, field: &str, id: &str, suggest: bool) -> bool {
        if self.taxonomy.get(id).is_some() {
            return true;
        }
        if id.chars().count() > taxonomy::MAX_SKILL_ID {
            v.add(field, format!("must be a skill id of at most {} characters", taxonomy::MAX_SKILL_ID));
        } else if suggest {
            let suggestions: Vec<String> =
                self.taxonomy.suggest(id, 3).iter().map(|s| format!("{} ({})", s.id, s.name)).collect();
            v.add(
                field,
                format!("unknown skill {}; did you mean: {}", error::quote(id), suggestions.join(", ")),
            );
        } else {
            v.add(field, format!("unknown skill {}", error::quote(id)));
        }
        false
    }

    /// Checks a list of skill ids: its length first (a list over `max` is not checked element
    /// by element), then each id against the taxonomy (suggestions for the first few unknown
    /// ones), then duplicates.
    pub fn check_skills(&self, v: &mut Violations, field: &str, ids: &[String], max: usize) {
        const SUGGESTED: usize = 3;
        if !v.check_count(field, ids.len(), max) {
            return;
        }
        let mut unknown = 0;
        for (i, id) in ids.iter().enumerate() {
            let item = format!("{field}[{i}]");
            if !self.check_skill(v, &item, id, unknown < SUGGESTED) {
                unknown += 1;
            } else if ids[..i].contains(id) {
                v.add(&item, format!("{} is listed twice", error::quote(id)));
            }
        }
    }
}
