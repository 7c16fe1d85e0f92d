//! Ranking a large catalog, in process: `Catalog::rank` over the shipped mentors and N synthetic
//! ones (personas embedded by the offline embedder), for a learner with a goal, one call at a
//! time; prints the p50 and p99 of the ranking alone (the load generator's `--mentors` run
//! measures the whole FindMatches call).
//! `cargo run --release -p tt-matching --example catalog_bench -- 100000`

use std::{collections::HashMap, time::Instant};

use tt_ai::LexicalEmbedder;
use tt_matching::{
    catalog::{Catalog, Query},
    domain::{
        catalog,
        score::{self, Goal, Stage},
    },
    store::{MentorRecord, MentorRow, VersionRow},
};

fn record(id: &str, content: catalog::Content) -> MentorRecord {
    let version = VersionRow {
        mentor_id: id.to_owned(),
        version: 1,
        content,
        created_by: "bench".into(),
        created_at: 0,
    };
    let row = MentorRow {
        mentor_id: id.to_owned(),
        status: tt_matching::store::mentors::ACTIVE.to_owned(),
        latest_version: 1,
        published_version: 1,
        capacity: i64::from(version.content.capacity),
        seats_taken: 0,
        demo: true,
        created_at: 0,
        updated_at: 0,
    };
    MentorRecord { row, latest: version, published: None }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let calls: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let started = Instant::now();
    let mut mentors = catalog::demo().expect("demo");
    mentors.extend(catalog::synthetic(n, 7).expect("synthetic"));
    let embedder = LexicalEmbedder::default();
    let personas: Vec<score::Persona> = mentors
        .iter()
        .map(|m| score::Persona::Vector(embedder.vector(&catalog::persona_text(&m.content))))
        .collect();
    let records = mentors.into_iter().map(|m| record(&m.id, m.content)).collect();
    let catalog = Catalog::build(records, personas);
    println!("{} mentors built in {:.1?}", catalog.len(), started.elapsed());

    let learner =
        score::Learner {
            fields: vec!["software".into()],
            goals: vec![Goal {
                field: "security-defender".into(),
                skills: vec!["incident-response".into(), "digital-forensics".into(), "python".into()],
                priority: 1,
            }],
            skills: vec![("python".into(), 2)],
            style: None,
            stage: Some(Stage::CareerChanger),
            languages: vec!["en".into()],
            goals_vector: score::Embedding::of(&embedder.vector(
                "incident responder in security defender: incident response, digital forensics, python",
            )),
        };
    let p = score::prepare(&learner);
    let weights = score::Weights::default();
    let left = HashMap::new();
    let query = Query { field: "", language: "", stage: None, include_full: false, after: None, size: 10 };
    let mut took = Vec::with_capacity(calls);
    let mut best = 0.0;
    for _ in 0..calls {
        let at = Instant::now();
        let ranked = catalog.rank(&p, &weights, &left, &query);
        took.push(at.elapsed());
        best = ranked.page.first().map_or(0.0, |r| r.0);
    }
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "rank over {} mentors, {calls} calls one at a time: p50 {:.2?}, p99 {:.2?}, max {:.2?} (best total {best:.3})",
        catalog.len(),
        at(0.5),
        at(0.99),
        took[took.len() - 1]
    );
}
