//! The process secret: 32 random bytes kept in a file (created with mode 0600 on first start
//! in development, mounted from a Kubernetes Secret in production), from which purpose-bound keys
//! are derived with HKDF-SHA256, so one mounted file serves page-token MACs and key encryption.

use std::{io, path::Path};

use aws_lc_rs::hkdf;

/// The root secret.
#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Loads the secret from `path`, creating it when `create` is set and it does not exist.
    /// The file holds 64 hex digits.
    pub fn load(path: &Path, create: bool) -> io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(text.trim()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "secret file must hold 64 hex digits")
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                let secret = Self::random()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &secret.to_hex())?;
                Ok(secret)
            }
            Err(e) => Err(e),
        }
    }

    pub fn random() -> io::Result<Self> {
        Ok(Self(random_bytes()?))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Self(out))
    }

    fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// A 32-byte key bound to `purpose` (for example "page-token" or "signing-key-encryption").
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"timetravelers");
        let prk = salt.extract(&self.0);
        let info = [purpose.as_bytes()];
        let mut out = [0u8; 32];
        if let Ok(okm) = prk.expand(&info, hkdf::HKDF_SHA256) {
            // Filling 32 bytes from SHA-256 HKDF cannot exceed the output limit.
            let _ = okm.fill(&mut out);
        }
        out
    }
}

/// `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| io::Error::other("system random source failed"))?;
    Ok(bytes)
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_secret_is_reloaded_and_derivations_differ_by_purpose() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.key");
        let a = Secret::load(&path, true).expect("create");
        let b = Secret::load(&path, false).expect("reload");
        assert_eq!(a.derive("x"), b.derive("x"));
        assert_ne!(a.derive("x"), a.derive("y"));
        assert!(Secret::load(&dir.path().join("missing"), false).is_err());
    }
}
