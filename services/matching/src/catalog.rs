//! The catalog in memory: every mentor with its latest and published versions, the published
//! version's scoring features (its persona embedded) and its seats, warmed in `prepare` and
//! swapped whole when the catalog changes. Seats move in place.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
};

use tt_proto::matching::v1 as pb;

use crate::{
    convert,
    domain::{
        catalog::{self, Content},
        score,
    },
    store::{MentorRecord, MentorRow, VersionRow},
};

/// One mentor.
#[derive(Debug)]
pub struct Entry {
    pub row: MentorRow,
    pub latest: Arc<VersionRow>,
    /// The version learners see (None while never published): the latest itself, shared, when
    /// it is the published one.
    pub public: Option<Arc<VersionRow>>,
    /// Folded text of the public version (the latest while never published), for search.
    pub search: String,
    /// Active and published: learners find and may choose it.
    active: bool,
    seats: AtomicI64,
}

impl Entry {
    pub fn id(&self) -> &str {
        &self.row.mentor_id
    }

    pub fn seats_taken(&self) -> i64 {
        self.seats.load(Ordering::Relaxed)
    }

    /// Whether learners find and may choose it.
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn free_seats(&self) -> i64 {
        (self.row.capacity - self.seats_taken()).max(0)
    }

    /// The version a reader sees: the public one for learners, the latest for admins.
    pub fn shown(&self, admin: bool) -> Option<&VersionRow> {
        if admin { Some(&self.latest) } else { self.public.as_deref() }
    }

    /// Seats taken now, as scoring counts them.
    pub fn taken(&self) -> u32 {
        u32::try_from(self.seats_taken().max(0)).unwrap_or(u32::MAX)
    }
}

/// The whole catalog, by name then id.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
    by_id: HashMap<String, usize>,
    /// The scoring features of each active entry's public version, beside the entries (in
    /// their order) so a scan reads them densely; `active_mentees` unused: seats are the
    /// entry's.
    features: Vec<Option<score::Mentor>>,
    /// Each active entry's cards in a match (by [`convert::Card`]), each made when it is first
    /// shown and kept for the load (a large catalog makes few of them); [`Catalog::card`] sets
    /// its seats taken as they are now.
    cards: Vec<[OnceLock<pb::Mentor>; 2]>,
}

impl Catalog {
    /// Builds the catalog from the store's records; `personas[i]` is the embedded persona of the
    /// i-th record's public version ([`catalog::persona_text`]). Entries are sorted before their
    /// features are made, so a scan of the catalog reads memory in order.
    pub fn build(records: Vec<MentorRecord>, personas: Vec<score::Persona>) -> Self {
        let mut pairs: Vec<(MentorRecord, score::Persona)> = records
            .into_iter()
            .zip(personas.into_iter().chain(std::iter::repeat_with(Default::default)))
            .collect();
        let key = |r: &MentorRecord| {
            (r.public().unwrap_or(&r.latest).content.name.clone(), r.row.mentor_id.clone())
        };
        pairs.sort_by_cached_key(|(r, _)| key(r));
        let (records, personas): (Vec<MentorRecord>, Vec<score::Persona>) = pairs.into_iter().unzip();
        let packed = score::Embedding::pack(&personas);
        drop(personas);
        let mut entries: Vec<Entry> = Vec::with_capacity(records.len());
        let mut features = Vec::with_capacity(records.len());
        for (r, persona) in records.into_iter().zip(packed) {
            let active = r.is_active();
            let (row, latest, public) = r.into_shared();
            features.push(public.as_ref().filter(|_| active).map(|p| {
                let mut f = catalog::features(&p.content).with_embedding(persona);
                f.capacity = u32::try_from(row.capacity).unwrap_or(0);
                f
            }));
            let search = catalog::search_text(&public.as_ref().unwrap_or(&latest).content);
            let seats = AtomicI64::new(row.seats_taken);
            entries.push(Entry { row, latest, public, search, active, seats });
        }
        let by_id = entries.iter().enumerate().map(|(i, e)| (e.row.mentor_id.clone(), i)).collect();
        let cards = entries.iter().map(|_| Default::default()).collect();
        Self { entries, by_id, features, cards }
    }

    /// The persona embedded for `version` of mentor `id`, when this catalog holds it (the
    /// public version of an active mentor, embedded).
    pub fn persona(&self, id: &str, version: i64) -> Option<&score::Embedding> {
        let i = *self.by_id.get(id)?;
        self.entries[i].public.as_deref().filter(|p| p.version == version)?;
        // An empty one (an embedder that gave nothing) is embedded again at the next reload.
        self.features(i).map(score::Mentor::persona).filter(|e| !e.is_empty())
    }

    /// By name, then id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The `i`-th entry's card while it is active, its seats taken as now.
    pub fn card(&self, i: usize, which: convert::Card) -> Option<pb::Mentor> {
        // Features are made for active entries' public versions only.
        self.features(i)?;
        let e = &self.entries[i];
        let public = e.public.as_deref()?;
        let made = &self.cards[i][which as usize];
        let mut card = made.get_or_init(|| convert::card(e, public, which)).clone();
        card.seats_taken = i32::try_from(e.seats_taken()).unwrap_or(i32::MAX);
        Some(card)
    }

    /// The scoring features of the `i`-th entry while it is active.
    pub fn features(&self, i: usize) -> Option<&score::Mentor> {
        self.features.get(i).and_then(Option::as_ref)
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id).map(|i| &self.entries[*i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets the seats taken of mentors as the store has them now.
    pub fn set_seats(&self, seats: &[(String, i64)]) {
        for (id, taken) in seats {
            if let Some(e) = self.get(id) {
                e.seats.store(*taken, Ordering::Relaxed);
            }
        }
    }

    /// Moves a mentor's seats by `delta` after a write in this process.
    pub fn adjust_seats(&self, id: &str, delta: i64) {
        if let Some(e) = self.get(id) {
            e.seats.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

/// What FindMatches asks of the catalog: the filters, the page token's (score, id) to rank
/// after, and the page size.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub field: &'a str,
    pub language: &'a str,
    pub stage: Option<score::Stage>,
    pub include_full: bool,
    pub after: Option<(f64, &'a str)>,
    pub size: usize,
}

/// A page of ranked mentors: (total, entry index) best first, how many mentors passed the
/// filters, and whether more follow the page.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub page: Vec<(f64, usize)>,
    pub total: usize,
    pub more: bool,
}

/// Catalogs at least this large are scanned on every core.
const PARALLEL_FROM: usize = 20_000;

/// The cores this process may use, read once (it reads cgroup files on Linux).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

impl Catalog {
    /// Ranks the active mentors passing `q`'s filters for a prepared learner (`left`: the
    /// mentors they ended or declined, ranked down): every one scored without reasons, only the
    /// page selected (by total, then id) rather than the whole list sorted. Large catalogs are
    /// split over the cores.
    pub fn rank(
        &self,
        p: &score::Prepared<'_>,
        weights: &score::Weights,
        left: &HashMap<String, String>,
        q: &Query<'_>,
    ) -> Ranked {
        let scan = |range: std::ops::Range<usize>| self.scan(range, p, weights, left, q);
        let n = self.entries.len();
        let split = n >= PARALLEL_FROM
            && cores() > 1
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let (mut page, total) = if split {
            let cores = cores();
            let chunk = n.div_ceil(cores);
            tokio::task::block_in_place(|| {
                std::thread::scope(|s| {
                    let parts: Vec<_> = (0..n)
                        .step_by(chunk)
                        .map(|at| s.spawn(move || scan(at..(at + chunk).min(n))))
                        .collect();
                    parts.into_iter().filter_map(|h| h.join().ok()).fold(
                        (Vec::new(), 0),
                        |(mut all, t), (c, k)| {
                            all.extend(c);
                            (all, t + k)
                        },
                    )
                })
            })
        } else {
            scan(0..n)
        };
        let more = self.best(&mut page, q.size);
        Ranked { page, total, more }
    }

    /// The candidates of `range` after the page token (the best `q.size + 1` of them) and how
    /// many passed the filters.
    fn scan(
        &self,
        range: std::ops::Range<usize>,
        p: &score::Prepared<'_>,
        weights: &score::Weights,
        left: &HashMap<String, String>,
        q: &Query<'_>,
    ) -> (Vec<(f64, usize)>, usize) {
        let mut total = 0;
        let mut found: Vec<(f64, usize)> = Vec::new();
        let filtered = !q.field.is_empty() || !q.language.is_empty() || q.stage.is_some();
        for i in range {
            // Only active entries have features.
            let Some(features) = &self.features[i] else { continue };
            let e = &self.entries[i];
            let taken = e.taken();
            let shown = |v: &VersionRow| passes(&v.content, q.field, q.language, q.stage);
            if (filtered && !e.public.as_deref().is_some_and(shown))
                || (!q.include_full && taken >= features.capacity)
            {
                continue;
            }
            total += 1;
            let demoted = !left.is_empty() && left.contains_key(e.id());
            let s = score::score(p, features, taken, weights, demoted);
            // Keyset: only what ranks after the page token's (score, id).
            if q.after.is_none_or(|(t, id)| s < t || (s == t && e.id() > id)) {
                found.push((s, i));
            }
        }
        self.best(&mut found, q.size + 1);
        (found, total)
    }

    /// Keeps the best `size` of `ranked`, in order; whether there were more.
    fn best(&self, ranked: &mut Vec<(f64, usize)>, size: usize) -> bool {
        let order = |a: &(f64, usize), b: &(f64, usize)| {
            b.0.total_cmp(&a.0).then_with(|| self.entries[a.1].id().cmp(self.entries[b.1].id()))
        };
        if ranked.len() > size {
            ranked.select_nth_unstable_by(size, order);
        }
        let more = ranked.len() > size;
        ranked.truncate(size);
        ranked.sort_unstable_by(order);
        more
    }
}

/// Whether `content` passes the browsing filters.
pub fn passes(content: &Content, field: &str, language: &str, stage: Option<score::Stage>) -> bool {
    (field.is_empty() || content.fields.iter().any(|f| f == field))
        && (language.is_empty() || catalog::speaks(&content.languages, language))
        && stage.is_none_or(|s| content.stages.iter().any(|x| x == s.as_str_name()))
}
