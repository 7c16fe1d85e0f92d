//! The catalog in memory: every mentor with its latest and published versions, the published
//! version's scoring features (its persona embedded) and its seats, warmed in `prepare` and
//! swapped whole when the catalog changes. Seats move in place.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicI64, Ordering},
};

use crate::{
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
    pub latest: VersionRow,
    /// The version learners see (None while never published).
    pub public: Option<VersionRow>,
    /// The public version's features (persona vector of unit length; `active_mentees` unused:
    /// seats are read from `seats`).
    pub features: Option<score::Mentor>,
    /// Folded text of the public version (the latest while never published), for search.
    pub search: String,
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
        self.row.status == crate::store::mentors::ACTIVE && self.public.is_some()
    }

    pub fn free_seats(&self) -> i64 {
        (self.row.capacity - self.seats_taken()).max(0)
    }

    /// The version a reader sees: the public one for learners, the latest for admins.
    pub fn shown(&self, admin: bool) -> Option<&VersionRow> {
        if admin { Some(&self.latest) } else { self.public.as_ref() }
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
}

impl Catalog {
    /// Builds the catalog from the store's records; `vectors[i]` embeds the persona of the i-th
    /// record's public version (see [`Catalog::persona_texts`]).
    pub fn build(records: Vec<MentorRecord>, mut vectors: Vec<Vec<f32>>) -> Self {
        let mut entries: Vec<Entry> = Vec::with_capacity(records.len());
        for (i, r) in records.into_iter().enumerate() {
            let public = match (r.row.published_version, r.published) {
                (0, _) => None,
                (v, _) if v == r.latest.version => Some(r.latest.clone()),
                (_, p) => p,
            };
            let features = public.as_ref().map(|p| {
                let mut f = catalog::features(&p.content);
                f.capacity = u32::try_from(r.row.capacity).unwrap_or(0);
                f.persona_vector = score::unit(&vectors.get_mut(i).map(std::mem::take).unwrap_or_default());
                f
            });
            let search = catalog::search_text(&public.as_ref().unwrap_or(&r.latest).content);
            let seats = AtomicI64::new(r.row.seats_taken);
            entries.push(Entry { row: r.row, latest: r.latest, public, features, search, seats });
        }
        entries.sort_by(|a, b| (name(a), a.id()).cmp(&(name(b), b.id())));
        let by_id = entries.iter().enumerate().map(|(i, e)| (e.row.mentor_id.clone(), i)).collect();
        Self { entries, by_id }
    }

    /// The persona texts to embed for `records`, in their order (empty for a mentor never
    /// published).
    pub fn persona_texts(records: &[MentorRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| {
                let public = if r.row.published_version == r.latest.version {
                    Some(&r.latest)
                } else {
                    r.published.as_ref()
                };
                public.map(|p| catalog::persona_text(&p.content)).unwrap_or_default()
            })
            .collect()
    }

    /// By name, then id.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
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

fn name(e: &Entry) -> &str {
    &e.public.as_ref().unwrap_or(&e.latest).content.name
}

/// Whether `content` passes the browsing filters.
pub fn passes(content: &Content, field: &str, language: &str, stage: Option<score::Stage>) -> bool {
    (field.is_empty() || content.fields.iter().any(|f| f == field))
        && (language.is_empty() || catalog::speaks(&content.languages, language))
        && stage.is_none_or(|s| content.stages.iter().any(|x| x == s.as_str_name()))
}
