//! Password hashing: Argon2id (m = 19456 KiB, t = 2, p = 1, OWASP's recommendation) on a pool of
//! dedicated threads running at the lowest CPU priority (nice 19), fed by a bounded queue.
//!
//! Hashing is the only CPU-bound work identity does, and a login flood could otherwise take every
//! core from the cheap RPCs. At nice 19 the hashing threads get the CPU the other threads leave:
//! all of it when idle, little under load. The queue bounds memory; callers wait on it (and their
//! deadline) when it is full.

use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::{mpsc, oneshot};

/// The PHC prefix of hashes made with the current parameters; anything else is upgraded at the
/// next successful login.
const CURRENT_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// Hashing failed (not a wrong password: that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on the low-priority pool.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
    params: Params,
    /// A hash of a random password, verified against when the account does not exist so both
    /// paths cost the same.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("queue_room", &self.jobs.capacity()).finish()
    }
}

impl Hasher {
    /// Starts `parallelism` hashing threads (they stop when every `Hasher` clone is dropped).
    pub async fn new(parallelism: usize) -> Result<Self, HashError> {
        let params = Params::new(19_456, 2, 1, None).map_err(|e| HashError(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..parallelism.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx))
                .map_err(|e| HashError(e.to_string()))?;
        }
        let mut hasher = Self { jobs: tx, params, dummy: Arc::from("") };
        let random = tt_common::secrets::random_bytes::<24>().map_err(|e| HashError(e.to_string()))?;
        let dummy = hasher.hash(&hex(&random)).await?;
        hasher.dummy = Arc::from(dummy);
        Ok(hasher)
    }

    fn argon(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        let params = self.params.clone();
        self.run(move || {
            let salt = tt_common::secrets::random_bytes::<16>().map_err(|e| HashError(e.to_string()))?;
            Self::argon(params)
                .hash_password_with_salt(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `hash`; with `None`, verifies against the dummy hash and
    /// returns false (same cost as a real check).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.to_string(), false),
        };
        let params = self.params.clone();
        let ok = self
            .run(move || {
                // Verification uses the parameters in the hash itself.
                Ok(Self::argon(params).verify_password(password.as_bytes(), hash.as_str()).is_ok())
            })
            .await?;
        Ok(ok && real)
    }

    /// True when `hash` was made with older parameters.
    pub fn needs_upgrade(hash: &str) -> bool {
        !hash.starts_with(CURRENT_PREFIX)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.send(job).await.map_err(|_| HashError("hashing pool stopped".into()))?;
        result.await.map_err(|_| HashError("hashing job lost".into()))?
    }

    /// Hashes with explicit (older) parameters: for tests of the upgrade path.
    pub fn hash_with(password: &str, m_kib: u32, t: u32) -> Result<String, HashError> {
        let params = Params::new(m_kib, t, 1, None).map_err(|e| HashError(e.to_string()))?;
        let salt = tt_common::secrets::random_bytes::<16>().map_err(|e| HashError(e.to_string()))?;
        Self::argon(params)
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }
}

/// A hashing thread: lowers its own priority, then runs jobs until the queue closes.
fn worker(jobs: &Mutex<mpsc::Receiver<Job>>) {
    // On Linux, nice() applies to the calling thread only. Failure leaves normal priority.
    if let Err(e) = rustix::process::nice(19) {
        tracing::warn!(error = %e, "could not lower the hashing thread's priority");
    }
    loop {
        let job = {
            let mut rx = jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.blocking_recv()
        };
        match job {
            Some(job) => job(),
            None => return,
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_upgrade_detection() {
        let h = Hasher::new(2).await.expect("hasher");
        let hash = h.hash("correct horse battery").await.expect("hash");
        assert!(hash.starts_with(CURRENT_PREFIX));
        assert!(h.verify("correct horse battery", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("correct horse batterY", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("anything", None).await.expect("dummy"));
        let old = Hasher::hash_with("pw-old-params", 4096, 3).expect("old");
        assert!(Hasher::needs_upgrade(&old));
        assert!(h.verify("pw-old-params", Some(&old)).await.expect("verify old"));
    }
}
