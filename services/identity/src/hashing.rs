//! Password hashing: Argon2id (m = 19456 KiB, t = 2, p = 1, OWASP's recommendation) on a pool of
//! dedicated threads running at the lowest CPU priority (nice 19), fed by a bounded queue.
//!
//! Hashing is the only CPU-bound work identity does, and a login flood could otherwise take every
//! core from the cheap RPCs. The hashing threads run under SCHED_IDLE (nice 19 where that is
//! refused): they get the CPU the other threads leave, all of it when idle, little under load,
//! and a thread that wakes to serve an RPC takes the core from them at once (at nice 19 alone,
//! Linux's scheduler still gave them slices that held ready RPC threads back: GetMe's p99 during
//! a login flood was 1.5-2.5x its idle value, 0.7-1.3x with SCHED_IDLE on the same day). The queue
//! bounds memory; callers wait on it (and their deadline) when it is full.
//!
//! The 19 MiB block buffers are pooled: a hash takes a spare one (or allocates one) and puts it
//! back, so a burst of logins reuses at most one buffer per thread instead of allocating per hash
//! (which let the allocator's per-thread arenas keep freed buffers around: 113 MB of RSS after a
//! handful of logins). When no hash has been asked for `IDLE_RELEASE`, the spares are freed, so
//! an idle process holds none (keeping them for the threads' life kept 19 MiB per thread that had
//! ever hashed: about 70 MB idle for the all-in-one after one sign-in, over its budget).
//! Hashes are PHC strings (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`), so stored hashes stay
//! portable.

use std::{
    sync::{Arc, Mutex, PoisonError, mpsc},
    time::Duration,
};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, oneshot};

use crate::Error;

/// The parameters new hashes use; anything else is upgraded at the next successful login.
const M_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
/// Jobs waiting at most; callers wait for room beyond.
const QUEUE: usize = 1024;
/// How long the pool keeps its spare block buffers with no hash asked for.
const IDLE_RELEASE: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce(&Buffers) + Send>;

/// The spare block buffers, shared by the hashing threads.
#[derive(Default)]
struct Buffers(Mutex<Vec<Vec<Block>>>);

impl Buffers {
    /// Runs `f` on a buffer of at least `blocks` blocks, taken from the spares or allocated, and
    /// keeps the buffer as a spare afterwards.
    fn with<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let spare = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut buffer = spare.unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::new());
        }
        let out = f(&mut buffer[..blocks]);
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(buffer);
        out
    }

    /// Frees every spare buffer.
    fn release(&self) {
        let spares = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        drop(spares);
    }

    fn spares(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Hashes and verifies passwords on the low-priority pool.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    /// Room in the queue: a job holds a permit until it has run.
    room: Arc<Semaphore>,
    buffers: Arc<Buffers>,
    /// A hash of a random password, verified against when the account does not exist so both
    /// paths cost the same.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("queue_room", &self.room.available_permits())
            .field("spare_buffers", &self.buffers.spares())
            .finish()
    }
}

impl Hasher {
    /// Starts `parallelism` hashing threads (they stop when every `Hasher` clone is dropped).
    pub async fn new(parallelism: usize) -> Result<Self, Error> {
        Self::with_idle_release(parallelism, IDLE_RELEASE).await
    }

    async fn with_idle_release(parallelism: usize, idle: Duration) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let buffers = Arc::new(Buffers::default());
        for i in 0..parallelism.max(1) {
            let (rx, buffers) = (rx.clone(), buffers.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx, &buffers, idle))
                .map_err(|e| Error::Hashing(e.to_string()))?;
        }
        let room = Arc::new(Semaphore::new(QUEUE));
        let mut hasher = Self { jobs: tx, room, buffers, dummy: Arc::from("") };
        let random = tt_common::secrets::random_bytes::<24>().map_err(|e| Error::Hashing(e.to_string()))?;
        hasher.dummy = Arc::from(hasher.hash(&hex(&random)).await?);
        Ok(hasher)
    }

    /// A PHC string for `password` with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let password = password.to_owned();
        self.run(move |buffers| hash_in(buffers, &password, M_KIB, T_COST)).await
    }

    /// Whether `password` matches `hash`; with `None`, verifies against the dummy hash and
    /// returns false (same cost as a real check).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, Error> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.to_string(), false),
        };
        let ok = self.run(move |buffers| verify(buffers, &password, &hash)).await?;
        Ok(ok && real)
    }

    /// True when `hash` was made with other parameters than the current ones.
    pub fn needs_upgrade(hash: &str) -> bool {
        !hash.starts_with(&format!("$argon2id$v=19$m={M_KIB},t={T_COST},p={P_COST}$"))
    }

    /// Hashes with explicit (older) parameters on the calling thread: for tests of the upgrade
    /// path.
    pub fn hash_with(password: &str, m_kib: u32, t: u32) -> Result<String, Error> {
        hash_in(&Buffers::default(), password, m_kib, t)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Buffers) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let stopped = || Error::Hashing("hashing pool stopped".into());
        let permit = self.room.clone().acquire_owned().await.map_err(|_| stopped())?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |buffers| {
            let _ = done.send(work(buffers));
            drop(permit);
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        result.await.map_err(|_| Error::Hashing("hashing job lost".into()))?
    }
}

/// Argon2id of `password` and `salt` into `out`, on a pooled buffer.
fn compute(
    buffers: &Buffers,
    password: &[u8],
    salt: &[u8],
    m_kib: u32,
    t: u32,
    out: &mut [u8],
) -> Result<(), Error> {
    let params = Params::new(m_kib, t, P_COST, Some(out.len())).map_err(|e| Error::Hashing(e.to_string()))?;
    let blocks = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    buffers.with(blocks, |memory| {
        argon
            .hash_password_into_with_memory(password, salt, out, memory)
            .map_err(|e| Error::Hashing(e.to_string()))
    })
}

fn hash_in(buffers: &Buffers, password: &str, m_kib: u32, t: u32) -> Result<String, Error> {
    let salt = tt_common::secrets::random_bytes::<16>().map_err(|e| Error::Hashing(e.to_string()))?;
    let mut out = [0u8; OUTPUT_LEN];
    compute(buffers, password.as_bytes(), &salt, m_kib, t, &mut out)?;
    Ok(format!(
        "$argon2id$v=19$m={m_kib},t={t},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Checks `password` against a PHC string; a malformed or foreign hash never matches.
fn verify(buffers: &Buffers, password: &str, phc: &str) -> Result<bool, Error> {
    let Some((m_kib, t, salt, expected)) = parse(phc) else {
        return Ok(false);
    };
    let mut out = vec![0u8; expected.len()];
    compute(buffers, password.as_bytes(), &salt, m_kib, t, &mut out)?;
    Ok(out.ct_eq(&expected).into())
}

/// Splits `$argon2id$v=19$m=M,t=T,p=1$salt$hash`.
fn parse(phc: &str) -> Option<(u32, u32, Vec<u8>, Vec<u8>)> {
    let mut parts = phc.split('$');
    let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in params.split(',') {
        match kv.split_once('=')? {
            ("m", v) => m = v.parse::<u32>().ok(),
            ("t", v) => t = v.parse::<u32>().ok(),
            ("p", v) => p = v.parse::<u32>().ok(),
            _ => return None,
        }
    }
    if p? != P_COST {
        return None;
    }
    let salt = STANDARD_NO_PAD.decode(salt).ok()?;
    let hash = STANDARD_NO_PAD.decode(hash).ok()?;
    (!hash.is_empty()).then_some((m?, t?, salt, hash))
}

/// A hashing thread: lowers its own priority, then runs jobs until the queue closes, freeing
/// the spare buffers whenever no job came for `idle`.
fn worker(jobs: &Mutex<mpsc::Receiver<Job>>, buffers: &Buffers, idle: Duration) {
    lower_priority();
    loop {
        // Holds no buffer while waiting: a thread waiting for the lock keeps nothing alive.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv_timeout(idle);
        match job {
            Ok(job) => job(buffers),
            Err(mpsc::RecvTimeoutError::Timeout) => buffers.release(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Puts the calling thread under SCHED_IDLE, else at nice 19 (both apply to this thread only).
/// Failure of both leaves normal priority.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) else {
        return;
    };
    tracing::debug!(error = ?e, "SCHED_IDLE refused; hashing at nice 19");
    if let Err(e) = rustix::process::nice(19) {
        tracing::warn!(error = %e, "could not lower the hashing thread's priority");
    }
}

pub use tt_common::secrets::hex;

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_upgrade_detection() {
        let h = Hasher::new(2).await.expect("hasher");
        let hash = h.hash("correct horse battery").await.expect("hash");
        assert!(!Hasher::needs_upgrade(&hash), "{hash}");
        assert!(h.verify("correct horse battery", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("correct horse batterY", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("anything", None).await.expect("dummy"));
        assert!(!h.verify("anything", Some("$argon2id$v=19$garbage")).await.expect("malformed"));
        let old = Hasher::hash_with("pw-old-params", 4096, 3).expect("old");
        assert!(Hasher::needs_upgrade(&old));
        assert!(h.verify("pw-old-params", Some(&old)).await.expect("verify old"));
    }

    #[test]
    fn hashes_are_standard_phc_strings() {
        // The argon2 crate's own PHC implementation verifies ours, and we verify its.
        let buffers = Buffers::default();
        let ours = hash_in(&buffers, "interop passphrase", M_KIB, T_COST).expect("hash");
        let argon = Argon2::default();
        assert!(argon.verify_password(b"interop passphrase", ours.as_str()).is_ok());
        let params = Params::new(M_KIB, T_COST, P_COST, None).expect("params");
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"interop passphrase", b"0123456789abcdef")
            .expect("hash")
            .to_string();
        assert!(verify(&buffers, "interop passphrase", &theirs).expect("verify"));
        assert!(!verify(&buffers, "other passphrase", &theirs).expect("verify"));
    }

    /// The scheduling policy (`stat` field 41) in a task's `stat` text, with its name.
    fn policy(stat: &str) -> Option<(&str, u32)> {
        let (head, rest) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1;
        Some((name, rest.split_whitespace().nth(38)?.parse().ok()?))
    }

    /// The scheduling policies of this process's hashing threads.
    fn hashing_policies() -> Vec<u32> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("tasks").flatten();
        let stats = tasks.filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok());
        stats.filter_map(|s| policy(&s).filter(|(n, _)| n.starts_with("argon2-")).map(|(_, p)| p)).collect()
    }

    #[tokio::test]
    async fn hashing_threads_run_only_when_nothing_else_would() {
        const SCHED_IDLE: u32 = 5;
        let _h = Hasher::new(2).await.expect("hasher");
        // The test's own thread is under the default policy (SCHED_OTHER, 0).
        let own = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        assert_eq!(policy(&own).map(|(_, p)| p), Some(0), "{own}");
        let policies = hashing_policies();
        assert!(policies.len() >= 2, "{policies:?}");
        assert!(policies.iter().all(|p| *p == SCHED_IDLE), "{policies:?}");
    }

    #[tokio::test]
    async fn idle_pool_frees_its_buffers_and_reuses_them_under_load() {
        let h = Hasher::with_idle_release(2, Duration::from_secs(1)).await.expect("hasher");
        // Concurrent hashes share the spares: never more buffers than threads.
        let hashes = futures::future::join_all((0..6).map(|i| h.hash(["pw-a", "pw-b", "pw-c"][i % 3]))).await;
        let hashes: Vec<String> = hashes.into_iter().collect::<Result<_, _>>().expect("hashes");
        let spares = h.buffers.spares();
        assert!((1..=2).contains(&spares), "{spares} spare buffers after six hashes on two threads");
        // Idle past the release time: none left.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while h.buffers.spares() > 0 {
            assert!(std::time::Instant::now() < deadline, "spares never freed: {h:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // And hashing still works afterwards, with a fresh buffer.
        assert!(h.verify("pw-a", Some(&hashes[0])).await.expect("verify"));
        assert!(!h.verify("pw-b", Some(&hashes[0])).await.expect("verify"));
    }
}
