//! The load generator's large catalog: synthetic mentors
//! ([`tt_matching::domain::catalog::synthetic`]) written into matching's database before the
//! all-in-one starts on it.

use std::path::Path;

use tt_common::{
    clock::{Clock, SystemClock},
    storage::{Database, DatabaseOptions},
};
use tt_matching::{domain::catalog, store::Store};

/// Writes `n` synthetic mentors into matching's SQLite database under `data_dir` (as the
/// all-in-one names it), published and active.
pub async fn seed(data_dir: &Path, n: usize, seed: u64) -> anyhow::Result<()> {
    let url = Database::sqlite_url(&data_dir.join("matching.db"));
    let db = Database::connect_lazy(&DatabaseOptions::new(url))?;
    let store = Store::new(db.clone());
    store.migrate().await?;
    let mentors = catalog::synthetic(n, seed).map_err(|e| anyhow::anyhow!("{e}"))?;
    for chunk in mentors.chunks(10_000) {
        store.seed_demo(chunk, SystemClock.now_ms()).await?;
    }
    db.close().await;
    Ok(())
}
