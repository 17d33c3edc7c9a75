//! Random credentials and the digests that are stored in their place.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Prefix of API tokens: lets secret scanners and people recognise them.
pub const TOKEN_PREFIX: &str = "amk_";

/// 256 random bits, URL-safe (43 characters).
pub fn random_256() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// 128 random bits (22 characters): plenty for codes that are single-use and admin-made.
pub fn random_128() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// What the database keeps instead of a token: stealing the table gives no usable credential.
/// A plain SHA-256 suffices because the tokens carry 256 bits of entropy.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Cheap shape check before a database lookup: garbage never reaches SQLite.
pub fn looks_like_256(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_fixed_size() {
        let (a, b) = (random_256(), random_256());
        assert_ne!(a, b);
        assert!(looks_like_256(&a) && looks_like_256(&b));
        assert_eq!(random_128().len(), 22);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert!(!looks_like_256("short"));
        assert!(!looks_like_256(&format!("{}!", &a[..42])));
    }
}
