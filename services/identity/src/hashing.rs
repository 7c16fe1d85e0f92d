//! Password hashing: Argon2id (m = 19456 KiB, t = 2, p = 1, OWASP's recommendation) on a pool of
//! dedicated threads running at the lowest CPU priority (nice 19), fed by a bounded queue.
//!
//! Hashing is the only CPU-bound work identity does, and a login flood could otherwise take every
//! core from the cheap RPCs. At nice 19 the hashing threads get the CPU the other threads leave:
//! all of it when idle, little under load. The queue bounds memory; callers wait on it (and their
//! deadline) when it is full.
//!
//! Each thread keeps one 19 MiB block buffer for its whole life. Allocating it per hash lets the
//! allocator's per-thread arenas keep freed buffers around, which measured 113 MB of RSS after a
//! handful of logins; reusing it keeps the process at about 15 MB plus one buffer per thread.
//! Hashes are PHC strings (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`), so stored hashes stay
//! portable.

use std::{
    cell::RefCell,
    sync::{Arc, Mutex},
};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// The parameters new hashes use; anything else is upgraded at the next successful login.
const M_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on the low-priority pool.
#[derive(Clone)]
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
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
    pub async fn new(parallelism: usize) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..parallelism.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx))
                .map_err(|e| Error::Hashing(e.to_string()))?;
        }
        let mut hasher = Self { jobs: tx, dummy: Arc::from("") };
        let random = tt_common::secrets::random_bytes::<24>().map_err(|e| Error::Hashing(e.to_string()))?;
        hasher.dummy = Arc::from(hasher.hash(&hex(&random)).await?);
        Ok(hasher)
    }

    /// A PHC string for `password` with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let password = password.to_owned();
        self.run(move || hash_with(&password, M_KIB, T_COST)).await
    }

    /// Whether `password` matches `hash`; with `None`, verifies against the dummy hash and
    /// returns false (same cost as a real check).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, Error> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.to_string(), false),
        };
        let ok = self.run(move || verify(&password, &hash)).await?;
        Ok(ok && real)
    }

    /// True when `hash` was made with other parameters than the current ones.
    pub fn needs_upgrade(hash: &str) -> bool {
        !hash.starts_with(&format!("$argon2id$v=19$m={M_KIB},t={T_COST},p={P_COST}$"))
    }

    /// Hashes with explicit (older) parameters on the calling thread: for tests of the upgrade
    /// path.
    pub fn hash_with(password: &str, m_kib: u32, t: u32) -> Result<String, Error> {
        hash_with(password, m_kib, t)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.send(job).await.map_err(|_| Error::Hashing("hashing pool stopped".into()))?;
        result.await.map_err(|_| Error::Hashing("hashing job lost".into()))?
    }
}

thread_local! {
    /// The block buffer of this thread, grown to the largest memory cost seen and then reused.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2id of `password` and `salt` into `out`, on this thread's reused buffer.
fn compute(password: &[u8], salt: &[u8], m_kib: u32, t: u32, out: &mut [u8]) -> Result<(), Error> {
    let params = Params::new(m_kib, t, P_COST, Some(out.len())).map_err(|e| Error::Hashing(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), Block::new());
        }
        argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..params.block_count()])
            .map_err(|e| Error::Hashing(e.to_string()))
    })
}

fn hash_with(password: &str, m_kib: u32, t: u32) -> Result<String, Error> {
    let salt = tt_common::secrets::random_bytes::<16>().map_err(|e| Error::Hashing(e.to_string()))?;
    let mut out = [0u8; OUTPUT_LEN];
    compute(password.as_bytes(), &salt, m_kib, t, &mut out)?;
    Ok(format!(
        "$argon2id$v=19$m={m_kib},t={t},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Checks `password` against a PHC string; a malformed or foreign hash never matches.
fn verify(password: &str, phc: &str) -> Result<bool, Error> {
    let Some((m_kib, t, salt, expected)) = parse(phc) else {
        return Ok(false);
    };
    let mut out = vec![0u8; expected.len()];
    compute(password.as_bytes(), &salt, m_kib, t, &mut out)?;
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
        let ours = hash_with("interop passphrase", M_KIB, T_COST).expect("hash");
        let argon = Argon2::default();
        assert!(argon.verify_password(b"interop passphrase", ours.as_str()).is_ok());
        let params = Params::new(M_KIB, T_COST, P_COST, None).expect("params");
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"interop passphrase", b"0123456789abcdef")
            .expect("hash")
            .to_string();
        assert!(verify("interop passphrase", &theirs).expect("verify"));
        assert!(!verify("other passphrase", &theirs).expect("verify"));
    }
}
