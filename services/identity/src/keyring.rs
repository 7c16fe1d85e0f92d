//! Signing keys: Ed25519, one active at a time.
//!
//! In development a key is generated on first start and stored encrypted (AES-256-GCM with a key
//! derived from the process secret). In production the key can come from a mounted PKCS#8 PEM
//! file instead. Rotation makes a new key active; the previous one keeps verifying until the
//! tokens it signed have expired. Replicas reload the active key from the database every 30 s.

use std::{
    sync::RwLock,
    time::{Duration, Instant},
};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey},
    digest,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tt_common::{
    auth::{AccessClaims, JWT_HEADER_TYPE},
    clock::Millis,
    secrets::{Secret, random_bytes},
};

use crate::{
    Error,
    hashing::hex,
    store::{Store, audit::AuditRecord, keys::KeyRow},
};

struct Active {
    kid: String,
    encoding: EncodingKey,
    loaded: Instant,
}

/// The signer and the source of public keys.
pub struct KeyRing {
    store: Store,
    kek: LessSafeKey,
    file_pem: Option<String>,
    active: RwLock<Option<Active>>,
    /// How long a retired key keeps being published (longest token lifetime + leeway).
    publish_retired_for: Duration,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("file", &self.file_pem.is_some()).finish()
    }
}

const RELOAD_EVERY: Duration = Duration::from_secs(30);

impl KeyRing {
    pub fn new(
        store: Store,
        secret: &Secret,
        file_pem: Option<String>,
        publish_retired_for: Duration,
    ) -> Result<Self, Error> {
        let unbound = UnboundKey::new(&AES_256_GCM, &secret.derive("signing-key-encryption"))
            .map_err(|_| Error::Key("bad key-encryption key".into()))?;
        Ok(Self {
            store,
            kek: LessSafeKey::new(unbound),
            file_pem,
            active: RwLock::new(None),
            publish_retired_for,
        })
    }

    /// Makes sure an active key exists: the mounted one, or a generated one on first start.
    pub async fn ensure(&self, now: Millis) -> Result<(), Error> {
        if let Some(pem) = &self.file_pem {
            let pkcs8 = pem_to_der(pem)?;
            let row = self.row_for(&pkcs8, String::new(), now)?;
            let current = self.store.active_key().await?;
            if current.as_ref().map(|k| &k.kid) != Some(&row.kid) {
                let audit = AuditRecord::new("signing_key.loaded", "", &row.kid, serde_json::json!({}), now);
                self.store.activate_key(&row, now, Some(&audit)).await?;
            }
        } else if self.store.active_key().await?.is_none() {
            let row = self.generate(now)?;
            self.store.activate_key(&row, now, None).await?;
        }
        self.reload().await
    }

    /// Generates a new key, makes it active and returns it.
    pub async fn rotate(&self, actor: &str, now: Millis) -> Result<KeyRow, Error> {
        if self.file_pem.is_some() {
            return Err(Error::KeysFileManaged);
        }
        let row = self.generate(now)?;
        let audit = AuditRecord::new("signing_key.rotated", actor, &row.kid, serde_json::json!({}), now);
        self.store.activate_key(&row, now, Some(&audit)).await?;
        self.reload().await?;
        Ok(row)
    }

    /// Keys verifiers should accept now.
    pub async fn public_keys(&self, now: Millis) -> Result<Vec<KeyRow>, Error> {
        let window = tt_common::clock::millis(self.publish_retired_for);
        Ok(self.store.verifying_keys(now.saturating_sub(window)).await?)
    }

    /// Signs access-token claims with the active key.
    pub async fn sign(&self, claims: &AccessClaims) -> Result<String, Error> {
        let stale = self
            .active
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_none_or(|a| a.loaded.elapsed() > RELOAD_EVERY);
        if stale {
            self.reload().await?;
        }
        let guard = self.active.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let active = guard.as_ref().ok_or_else(|| Error::Key("no active key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(JWT_HEADER_TYPE.to_owned());
        header.kid = Some(active.kid.clone());
        jsonwebtoken::encode(&header, claims, &active.encoding).map_err(|e| Error::Key(e.to_string()))
    }

    async fn reload(&self) -> Result<(), Error> {
        let row = self.store.active_key().await?.ok_or_else(|| Error::Key("no active key".into()))?;
        let pkcs8 = if row.private_key.is_empty() {
            let pem = self.file_pem.as_ref().ok_or_else(|| {
                Error::Key("the active key lives in a file this process was not given".into())
            })?;
            pem_to_der(pem)?
        } else {
            self.decrypt(&row.kid, &row.private_key)?
        };
        let active =
            Active { kid: row.kid, encoding: EncodingKey::from_ed_der(&pkcs8), loaded: Instant::now() };
        *self.active.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(active);
        Ok(())
    }

    fn generate(&self, now: Millis) -> Result<KeyRow, Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| Error::Key("keygen failed".into()))?;
        let pkcs8 = doc.as_ref().to_vec();
        let kid = kid_of(&pkcs8)?;
        let sealed = self.encrypt(&kid, &pkcs8)?;
        self.row_for(&pkcs8, sealed, now)
    }

    fn row_for(&self, pkcs8: &[u8], private_key: String, now: Millis) -> Result<KeyRow, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| Error::Key(e.to_string()))?;
        Ok(KeyRow {
            kid: kid_of(pkcs8)?,
            public_key: STANDARD.encode(pair.public_key().as_ref()),
            private_key,
            active: true,
            created_at: now,
            retired_at: None,
        })
    }

    fn encrypt(&self, kid: &str, plain: &[u8]) -> Result<String, Error> {
        let nonce_bytes = random_bytes::<12>().map_err(|e| Error::Key(e.to_string()))?;
        let mut buf = plain.to_vec();
        self.kek
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::Key("encryption failed".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    fn decrypt(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, Error> {
        let raw = STANDARD.decode(sealed).map_err(|_| Error::Key("corrupt stored key".into()))?;
        if raw.len() < 12 + 16 {
            return Err(Error::Key("corrupt stored key".into()));
        }
        let (nonce, body) = raw.split_at(12);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Key("corrupt stored key".into()))?;
        let mut body = body.to_vec();
        let plain = self.kek.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body).map_err(|_| {
            Error::Key("stored key does not decrypt: was the secret key file replaced?".into())
        })?;
        Ok(plain.to_vec())
    }
}

/// The key id: the first 16 hex digits of SHA-256 over the public key.
fn kid_of(pkcs8: &[u8]) -> Result<String, Error> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| Error::Key(e.to_string()))?;
    let d = digest::digest(&digest::SHA256, pair.public_key().as_ref());
    Ok(hex(&d.as_ref()[..8]))
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, Error> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    STANDARD.decode(body).map_err(|_| Error::Key("signing key file is not PEM".into()))
}
