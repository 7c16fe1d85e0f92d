//! The core the handlers share: the catalog in memory, the learner's features (profiles' view
//! over gRPC with the goals embedded, cached and dropped on profiles' change notices), and the
//! weights.

use std::{
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use tonic::{Code, Status};
use tt_ai::Embedder;
use tt_common::{
    cache::{Cache, Codec},
    client::Peer,
    clock::{Millis, SharedClock},
    platform::Platform,
    storage::PageTokens,
};
use tt_proto::profiles::v1::{
    GetLearnerViewRequest, LearnerView, integration_service_client::IntegrationServiceClient,
};

use crate::{
    DOMAIN, Error,
    catalog::Catalog,
    convert,
    domain::{catalog, mentorship, score},
    store::Store,
};

/// Learners whose decoded copy is kept in process.
const DECODED_LEARNERS: u64 = 10_000;

/// Texts embedded per call when warming the catalog.
const EMBED_BATCH: usize = 64;

/// The matching service core.
pub struct Matching {
    pub store: Store,
    pub cache: Cache,
    pub clock: SharedClock,
    pub pages: PageTokens,
    pub embedder: Arc<dyn Embedder>,
    platform: Arc<Platform>,
    /// Profiles' IntegrationService, resolved on first use (identity's in-process token issuer
    /// exists once the platform mounted it); None while its URL or matching's service account is
    /// not configured: matches then answer UNAVAILABLE.
    profiles: OnceLock<Option<Peer>>,
    catalog: RwLock<Arc<Catalog>>,
    /// The weights in force and their version.
    weights: RwLock<(i64, score::Weights)>,
    /// Lifetime of cached learner features; zero turns caching off.
    pub view_ttl: Duration,
    /// Learners' copies as decoded, with the bytes they were decoded from (see
    /// [`Matching::learner`]).
    decoded: moka::sync::Cache<String, Arc<Decoded>>,
    pub seats_refresh: Duration,
}

impl std::fmt::Debug for Matching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matching")
            .field("store", &self.store)
            .field("embedder", &self.embedder.model())
            .finish()
    }
}

/// What matching keeps of a learner between calls: profiles' view and its goals embedded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LearnerCopy {
    #[prost(message, optional, tag = "1")]
    pub view: Option<LearnerView>,
    #[prost(float, repeated, tag = "2")]
    pub goals_vector: Vec<f32>,
    /// The embedder's model (a change of model re-embeds).
    #[prost(string, tag = "3")]
    pub model: String,
    /// Mentors the learner ended or declined, with why (newest first); a change drops the copy.
    #[prost(message, repeated, tag = "4")]
    pub history: Vec<LeftMentor>,
}

/// A mentor the learner ended or declined, and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeftMentor {
    #[prost(string, tag = "1")]
    pub mentor_id: String,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// What matching knows of a learner for ranking: their features, and why they left mentors.
#[derive(Debug, Clone)]
pub struct Known {
    pub features: score::Learner,
    /// Mentor id -> the reason shown in the demotion (the newest one).
    pub left: std::collections::HashMap<String, String>,
}

impl Known {
    /// The learner prepared for ranking.
    pub fn prepared(&self) -> score::Prepared<'_> {
        score::prepare(&self.features)
    }
}

/// A learner's copy as decoded, with the bytes it was decoded from.
type Decoded = (Vec<u8>, Arc<Known>);

/// What matching knows of a learner from their copy.
fn known(copy: LearnerCopy) -> Known {
    let mut left = std::collections::HashMap::new();
    for h in copy.history {
        left.entry(h.mentor_id).or_insert(h.reason);
    }
    // Quantized once per copy, as scoring compares it.
    let goals = score::Embedding::of(&copy.goals_vector);
    Known { features: convert::learner(copy.view.as_ref(), goals), left }
}

fn learner_key(user_id: &str) -> String {
    format!("learner:{user_id}")
}

/// The parts [`Matching::new`] takes.
pub struct Parts {
    pub store: Store,
    pub cache: Cache,
    pub clock: SharedClock,
    pub pages: PageTokens,
    pub embedder: Arc<dyn Embedder>,
    pub platform: Arc<Platform>,
    pub view_ttl: Duration,
    pub seats_refresh: Duration,
}

impl Matching {
    pub fn new(p: Parts) -> Self {
        Self {
            store: p.store,
            cache: p.cache,
            clock: p.clock,
            pages: p.pages,
            embedder: p.embedder,
            platform: p.platform,
            profiles: OnceLock::new(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            weights: RwLock::new((0, score::Weights::default())),
            decoded: moka::sync::Cache::builder()
                .max_capacity(DECODED_LEARNERS)
                .time_to_live(p.view_ttl.max(Duration::from_secs(1)))
                .build(),
            view_ttl: p.view_ttl,
            seats_refresh: p.seats_refresh,
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The catalog as it is now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn weights(&self) -> score::Weights {
        self.weights.read().unwrap_or_else(|e| e.into_inner()).1
    }

    fn weights_version(&self) -> i64 {
        self.weights.read().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Puts weights in force (a newer version only).
    pub fn set_weights(&self, version: i64, weights: score::Weights) {
        let mut w = self.weights.write().unwrap_or_else(|e| e.into_inner());
        if version >= w.0 {
            *w = (version, weights);
        }
    }

    /// Migrations, the demo mentors, then the catalog warmed (personas embedded).
    pub async fn prepare(&self) -> Result<(), tt_common::error::BoxError> {
        self.store.migrate().await?;
        let demo = catalog::demo().map_err(|e| e.to_string())?;
        let changed = self.store.seed_demo(&demo, self.now()).await?;
        if changed > 0 {
            tracing::info!(mentors = changed, "demo mentors loaded");
        }
        let interrupted = self.store.interrupt_cohorts(self.now()).await?;
        if interrupted > 0 {
            tracing::warn!(
                assignments = interrupted,
                "cohort assignments interrupted by a restart marked failed"
            );
        }
        self.reload().await
    }

    /// Reads the catalog (and the weights) again and swaps it in. Personas are embedded once per
    /// (mentor, version, model): a version the catalog in memory holds keeps its embedding, the
    /// store is read only for the others, and only those it lacks are embedded.
    pub async fn reload(&self) -> Result<(), tt_common::error::BoxError> {
        let weights = self.store.weights().await?;
        self.set_weights(weights.version, weights.weights);
        let records = self.store.catalog().await?;
        let model = self.embedder.model().to_owned();
        let held = self.catalog();
        let mut personas = Vec::with_capacity(records.len());
        let (mut wanted, mut keys) = (Vec::new(), Vec::new());
        for (i, r) in records.iter().enumerate() {
            // Only active mentors are scored: the others' personas are neither read nor embedded.
            let public = r.public().filter(|_| r.is_active());
            match public.and_then(|p| held.persona(&p.mentor_id, p.version)) {
                Some(kept) => personas.push(score::Persona::Packed(kept.clone())),
                None => {
                    personas.push(score::Persona::default());
                    if let Some(p) = public {
                        wanted.push(i);
                        keys.push((p.mentor_id.clone(), p.version));
                    }
                }
            }
        }
        // On a first load nothing is held: every stored vector is read at once.
        let all = held.is_empty();
        drop(held);
        let mut stored = self.store.persona_vectors(&model, (!all).then_some(keys.as_slice())).await?;
        let mut missing = Vec::new();
        for (i, key) in wanted.into_iter().zip(keys) {
            match stored.remove(&key) {
                Some(vector) => personas[i] = score::Persona::Vector(vector),
                None => missing.push(i),
            }
        }
        drop(stored);
        let mut new: Vec<(usize, Vec<f32>)> = Vec::with_capacity(missing.len());
        for chunk in missing.chunks(EMBED_BATCH) {
            let texts: Vec<String> = chunk
                .iter()
                .filter_map(|i| records[*i].public())
                .map(|p| catalog::persona_text(&p.content))
                .collect();
            new.extend(chunk.iter().copied().zip(self.embedder.embed(texts).await?));
        }
        if !new.is_empty() {
            let rows: Vec<(&str, i64, &[f32])> = new
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .filter_map(|(i, v)| {
                    records[*i].public().map(|p| (p.mentor_id.as_str(), p.version, v.as_slice()))
                })
                .collect();
            // The first save of a version wins: this replica scores with what was kept.
            let mut kept = self.store.save_persona_vectors(&model, &rows, self.now()).await?;
            tracing::info!(personas = rows.len(), model, "personas embedded");
            for (i, vector) in new {
                let key = records[i].public().map(|p| (p.mentor_id.clone(), p.version));
                personas[i] = score::Persona::Vector(key.and_then(|k| kept.remove(&k)).unwrap_or(vector));
            }
        }
        let catalog = Arc::new(Catalog::build(records, personas));
        tracing::debug!(mentors = catalog.len(), "catalog loaded");
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
        Ok(())
    }

    /// Reads every mentor's seats again, and the whole catalog when another replica changed it,
    /// forever (a job): other replicas' writes show up within `seats_refresh`.
    pub async fn refresh(self: Arc<Self>) {
        let mut stamp = self.store.catalog_stamp().await.ok();
        loop {
            tokio::time::sleep(self.seats_refresh).await;
            let now = match self.store.catalog_stamp().await {
                Ok(now) => now,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the catalog's stamp failed");
                    continue;
                }
            };
            let weights = self.store.weights().await;
            let result = if stamp != Some(now) {
                self.reload().await.map(|()| stamp = Some(now))
            } else if weights.as_ref().is_ok_and(|w| w.version != self.weights_version()) {
                weights.map(|w| self.set_weights(w.version, w.weights)).map_err(Into::into)
            } else {
                self.store.seats().await.map(|seats| self.catalog().set_seats(&seats)).map_err(Into::into)
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "refreshing the catalog failed");
            }
        }
    }

    /// The learner's features: profiles' view (an empty one when they have no profile yet) and
    /// their goals embedded, with the mentors they left, from the cache when there. The shared
    /// cache holds the encoded copy (invalidated on every replica); the decoded one is kept in
    /// process beside it and used while the shared cache holds the same bytes.
    pub async fn learner(&self, user_id: &str) -> Result<Arc<Known>, Status> {
        let load = || async {
            let view = self.learner_view(user_id).await?;
            // Their wait for a mentor starts when matching first sees them.
            self.store.seen(&[user_id.to_owned()], self.now()).await?;
            let text = convert::goals_text(&view);
            let goals_vector = if text.is_empty() {
                Vec::new()
            } else {
                self.embedder.embed(vec![text]).await.map_err(Error::from)?.pop().unwrap_or_default()
            };
            let history = self
                .store
                .history(user_id)
                .await?
                .into_iter()
                .map(|(mentor_id, reason, note)| LeftMentor {
                    mentor_id,
                    reason: mentorship::describe(reason, &note),
                })
                .collect();
            Ok::<_, Status>(LearnerCopy {
                view: Some(view),
                goals_vector,
                model: self.embedder.model().to_owned(),
                history,
            })
        };
        if self.view_ttl.is_zero() {
            return Ok(Arc::new(known(load().await?)));
        }
        let key = learner_key(user_id);
        let bytes: Vec<u8> = self
            .cache
            .get_or_load_with(&key, self.view_ttl, Codec::raw(), || async {
                load().await.map(|c| prost::Message::encode_to_vec(&c))
            })
            .await?;
        if let Some(hit) = self.decoded.get(user_id).filter(|d| d.0 == bytes) {
            return Ok(hit.1.clone());
        }
        let copy = <LearnerCopy as prost::Message>::decode(bytes.as_slice()).ok();
        match copy {
            Some(copy) if copy.model == self.embedder.model() => {
                let decoded = Arc::new(known(copy));
                self.decoded.insert(user_id.to_owned(), Arc::new((bytes, decoded.clone())));
                Ok(decoded)
            }
            // Another embedder's copy (a model change), or an undecodable one: made again.
            _ => {
                self.forget_learner(user_id).await;
                Ok(Arc::new(known(load().await?)))
            }
        }
    }

    /// Profiles, with matching's service token (UNAVAILABLE while not configured).
    pub fn profiles_peer(&self) -> Result<&Peer, Status> {
        let peer = self.profiles.get_or_init(|| {
            self.platform.service_peer("profiles", "matching").unwrap_or_else(|e| {
                tracing::error!(error = %e, "profiles cannot be reached");
                None
            })
        });
        peer.as_ref().ok_or_else(|| {
            DOMAIN.unavailable("profiles", &"TT_PROFILES_URL or matching's service account is not set")
        })
    }

    async fn learner_view(&self, user_id: &str) -> Result<LearnerView, Status> {
        let peer = self.profiles_peer()?;
        let request = GetLearnerViewRequest { user_id: user_id.to_owned() };
        let answer = peer
            .call(|ch| {
                let request = request.clone();
                async move { IntegrationServiceClient::new(ch).get_learner_view(request).await }
            })
            .await;
        match answer {
            Ok(r) => Ok(r.view.unwrap_or_default()),
            // No profile yet: matched on nothing but the catalog.
            Err(s) if s.code() == Code::NotFound => {
                Ok(LearnerView { user_id: user_id.to_owned(), ..Default::default() })
            }
            Err(s) => Err(Error::Profiles(s).into()),
        }
    }

    /// Expires proposals whose 7 days are over, every minute, forever (a job).
    pub async fn expire_proposals(self: Arc<Self>) {
        const EVERY: Duration = Duration::from_secs(60);
        loop {
            tokio::time::sleep(EVERY).await;
            self.expire_due().await;
        }
    }

    /// Expires the proposals due now; their seats come back.
    pub async fn expire_due(&self) -> usize {
        match self.store.expire_proposals(self.now()).await {
            Ok(moved) => {
                let catalog = self.catalog();
                for mentor in &moved {
                    catalog.adjust_seats(mentor, -1);
                }
                moved.len()
            }
            Err(e) => {
                tracing::warn!(error = %e, "expiring proposals failed");
                0
            }
        }
    }

    /// Drops the copy of a learner's view (profiles told us it changed, or the user is gone).
    pub async fn forget_learner(&self, user_id: &str) {
        self.cache.invalidate(&learner_key(user_id)).await;
    }
}
