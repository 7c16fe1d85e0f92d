//! The canonical skill taxonomy (shipped as data in `data/skills.tsv`): lookup, ranked search
//! by prefix and alias, and "did you mean" suggestions for unknown skills.

use std::collections::HashMap;
use tt_common::error::Invalid;

/// The tracks skills belong to; also the fields of work a profile may name.
pub const TRACKS: &[&str] = &[
    "software",
    "data",
    "security-defender",
    "security-offensive",
    "security-grc",
    "product",
    "design",
    "leadership",
    "innovation",
];

/// One canonical skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillDef {
    pub id: String,
    pub name: String,
    pub track: String,
    pub category: String,
    pub aliases: Vec<String>,
}

/// The whole taxonomy, indexed.
#[derive(Debug)]
pub struct Taxonomy {
    skills: Vec<SkillDef>,
    by_id: HashMap<String, usize>,
    /// Lower-cased names and aliases, per skill.
    terms: Vec<Vec<String>>,
}

pub fn is_track(s: &str) -> bool {
    TRACKS.contains(&s)
}

impl Taxonomy {
    /// The taxonomy compiled into the binary.
    pub fn builtin() -> Result<Self, Invalid> {
        Self::parse(include_str!("../../data/skills.tsv"))
    }

    /// Parses and validates the TSV format described in `data/README.md`.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let mut skills = Vec::new();
        let mut by_id = HashMap::new();
        let mut seen_terms = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let [track, category, id, name, aliases] = cols.as_slice() else {
                return Err(format!("line {}: expected 5 tab-separated columns", n + 1).into());
            };
            if !is_track(track) {
                return Err(format!("line {}: unknown track {track:?}", n + 1).into());
            }
            if !is_skill_id(id) || name.is_empty() || category.is_empty() {
                return Err(format!("line {}: bad id, name or category", n + 1).into());
            }
            let skill = SkillDef {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
                track: (*track).to_owned(),
                category: (*category).to_owned(),
                aliases: aliases.split('|').filter(|a| !a.is_empty()).map(str::to_owned).collect(),
            };
            if by_id.insert(skill.id.clone(), skills.len()).is_some() {
                return Err(format!("line {}: duplicate id {id}", n + 1).into());
            }
            for term in std::iter::once(&skill.name).chain(&skill.aliases) {
                if seen_terms.insert(term.to_lowercase(), skill.id.clone()).is_some() {
                    return Err(format!("line {}: name or alias {term:?} used twice", n + 1).into());
                }
            }
            skills.push(skill);
        }
        let terms = skills
            .iter()
            .map(|s| std::iter::once(&s.name).chain(&s.aliases).map(|t| t.to_lowercase()).collect())
            .collect();
        Ok(Self { skills, by_id, terms })
    }

    pub fn len(&self) -> usize {
        self.skills.len()
    }

    pub fn is_empty(&self) -> bool {
        self.skills.is_empty()
    }

    /// Skills in `track`.
    pub fn count_in(&self, track: &str) -> usize {
        self.skills.iter().filter(|s| s.track == track).count()
    }

    pub fn get(&self, id: &str) -> Option<&SkillDef> {
        self.by_id.get(id).map(|&i| &self.skills[i])
    }

    /// Every skill matching `query`, best first: exact name or id, exact alias, name prefix,
    /// alias or id prefix, then a word of the name starting with the query. Ties go to the
    /// shorter, then alphabetically earlier, name.
    pub fn search(&self, query: &str, track: Option<&str>) -> Vec<&SkillDef> {
        let q = query.trim().to_lowercase();
        let mut hits: Vec<(u8, &SkillDef)> = self
            .skills
            .iter()
            .zip(&self.terms)
            .filter(|(s, _)| track.is_none_or(|t| s.track == t))
            .filter_map(|(s, terms)| Self::rank(&q, s, terms).map(|r| (r, s)))
            .collect();
        hits.sort_by(|(ra, a), (rb, b)| {
            ra.cmp(rb).then(a.name.len().cmp(&b.name.len())).then_with(|| a.name.cmp(&b.name))
        });
        hits.into_iter().map(|(_, s)| s).collect()
    }

    fn rank(q: &str, skill: &SkillDef, terms: &[String]) -> Option<u8> {
        let (name, aliases) = terms.split_first()?;
        if q.is_empty() {
            return None;
        }
        let id_match = skill.id == q || skill.id == q.replace(' ', "-");
        if name == q || id_match {
            Some(0)
        } else if aliases.iter().any(|a| a == q) {
            Some(1)
        } else if name.starts_with(q) {
            Some(2)
        } else if aliases.iter().any(|a| a.starts_with(q)) || skill.id.starts_with(q) {
            Some(3)
        } else if name.split(|c: char| !c.is_alphanumeric()).any(|w| w.starts_with(q)) {
            Some(4)
        } else {
            None
        }
    }

    /// Up to `n` skills closest to an unknown id or name: search hits first, then the smallest
    /// edit distance to a name, alias or id. Nothing for input longer than [`MAX_SKILL_ID`]:
    /// the edit distance costs its length times every term's, so it is kept to plausible ids.
    pub fn suggest(&self, unknown: &str, n: usize) -> Vec<&SkillDef> {
        if unknown.chars().count() > MAX_SKILL_ID {
            return Vec::new();
        }
        let q = unknown.trim().to_lowercase().replace('-', " ");
        let mut out = self.search(&q, None);
        out.truncate(n);
        if out.len() < n {
            let mut scored: Vec<(usize, &SkillDef)> = self
                .skills
                .iter()
                .zip(&self.terms)
                .filter(|(s, _)| !out.iter().any(|o| o.id == s.id))
                .map(|(s, terms)| {
                    let best = terms
                        .iter()
                        .chain(std::iter::once(&s.id.replace('-', " ")))
                        .map(|t| edit_distance(&q, t))
                        .min()
                        .unwrap_or(usize::MAX);
                    (best, s)
                })
                .collect();
            scored.sort_by(|(da, a), (db, b)| da.cmp(db).then_with(|| a.name.cmp(&b.name)));
            out.extend(scored.into_iter().take(n - out.len()).map(|(_, s)| s));
        }
        out
    }
}

/// The longest skill id.
pub const MAX_SKILL_ID: usize = 64;

/// A kebab-case skill id.
pub fn is_skill_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SKILL_ID
        && s.split('-').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taxonomy() -> Taxonomy {
        Taxonomy::builtin().expect("the shipped taxonomy is valid")
    }

    #[test]
    fn shipped_taxonomy_is_large_and_covers_every_track() {
        let t = taxonomy();
        assert!(t.len() >= 300, "{} skills", t.len());
        for track in TRACKS {
            let n = t.skills.iter().filter(|s| s.track == *track).count();
            assert!(n >= 20, "track {track} has {n} skills");
        }
    }

    #[test]
    fn exact_alias_beats_prefix_and_word_matches() {
        let t = taxonomy();
        assert_eq!(t.search("k8s", None)[0].id, "kubernetes");
        assert_eq!(t.search("Rust", None)[0].id, "rust");
        let py = t.search("py", None);
        assert_eq!(
            py[0].id,
            "python",
            "exact alias first: {:?}",
            py.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
        assert!(t.search("hunting", None).iter().any(|s| s.id == "threat-hunting"), "word prefix");
    }

    #[test]
    fn track_filter_and_no_match() {
        let t = taxonomy();
        assert!(t.search("a", Some("design")).iter().all(|s| s.track == "design"));
        assert!(t.search("zzzzqqq", None).is_empty());
    }

    #[test]
    fn suggestions_for_typos() {
        let t = taxonomy();
        let s = t.suggest("kubernets", 3);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].id, "kubernetes");
        assert_eq!(t.suggest("pythn", 3)[0].id, "python");
        assert!(t.suggest(&"k".repeat(MAX_SKILL_ID + 1), 3).is_empty(), "no work for implausible ids");
    }

    #[test]
    fn rejects_duplicates_and_bad_rows() {
        assert!(Taxonomy::parse("software\tx\trust\tRust\t\nsoftware\tx\trust\tRust2\t").is_err());
        assert!(Taxonomy::parse("software\tx\trust\tRust\trs\ndata\tx\tr\tR\trs").is_err());
        assert!(Taxonomy::parse("cooking\tx\tsoup\tSoup\t").is_err());
        assert!(Taxonomy::parse("software\tx\tRust\tRust\t").is_err());
        assert!(Taxonomy::parse("software\tx\trust").is_err());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
