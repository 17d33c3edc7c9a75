//! Signed, expiring links (`/media/{id}?exp=..&sig=..`): HMAC-SHA256 with a server secret that
//! is generated at first start and kept in the data dir.

use std::path::Path;

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// File in `data.dir` holding the secret; losing it only invalidates outstanding links.
const SECRET_FILE: &str = "server.secret";

#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl Signer {
    /// Loads the secret from `dir`, creating it (readable by the owner only) on first start.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(SECRET_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).context("server.secret is not hex")?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("server.secret must hold 32 bytes"))?;
                Ok(Self { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                std::fs::create_dir_all(dir)?;
                crate::filemodes::write_private(&path, hex::encode(key).as_bytes())
                    .context("cannot store server.secret")?;
                Ok(Self { key })
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, purpose: &str, subject: &str, exp: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(subject.as_bytes());
        mac.update(b"\n");
        mac.update(exp.to_string().as_bytes());
        mac
    }

    /// The signature of `(purpose, subject, exp)`, hex. `purpose` keeps one kind of link from
    /// being replayed as another.
    pub fn sign(&self, purpose: &str, subject: &str, exp: i64) -> String {
        hex::encode(self.mac(purpose, subject, exp).finalize().into_bytes())
    }

    /// Checks a signature in constant time and that `exp` (Unix seconds) has not passed.
    pub fn verify(&self, purpose: &str, subject: &str, exp: i64, sig: &str, now_s: i64) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        exp >= now_s && self.mac(purpose, subject, exp).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_until_they_expire_and_resist_tampering() {
        let s = Signer::from_key([7; 32]);
        let sig = s.sign("media", "01JABC", 1000);
        assert!(s.verify("media", "01JABC", 1000, &sig, 999));
        assert!(s.verify("media", "01JABC", 1000, &sig, 1000));
        assert!(!s.verify("media", "01JABC", 1000, &sig, 1001), "expired");
        assert!(!s.verify("media", "01JABD", 1000, &sig, 0), "other subject");
        assert!(
            !s.verify("media", "01JABC", 2000, &sig, 0),
            "extended expiry"
        );
        assert!(!s.verify("feed", "01JABC", 1000, &sig, 0), "other purpose");
        assert!(!s.verify("media", "01JABC", 1000, "zz", 0), "not hex");
        assert!(
            !Signer::from_key([8; 32]).verify("media", "01JABC", 1000, &sig, 0),
            "other secret"
        );
    }

    #[test]
    fn the_secret_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path()).unwrap();
        let b = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(
            a.sign("m", "x", 1),
            b.sign("m", "x", 1),
            "the same secret after a restart"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
