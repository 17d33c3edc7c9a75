//! Password rules and argon2id hashing. Both calls are CPU-heavy: run them off the executor.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

pub const MIN_CHARS: usize = 8;
/// Long passphrases are welcome; megabyte "passwords" are only a way to burn CPU.
pub const MAX_BYTES: usize = 1024;

/// Hashed when an email is unknown, so a login takes as long as one for a real account and
/// its timing does not tell which emails exist. Same algorithm and cost as real hashes (a test
/// keeps them in step); a made-up digest that no password matches.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$8hIHd5LmSwAyYsGmLzgzGA$o4b9uiTmaeP91R6lrq8xuylrQsKkJnsfTPLEavWhJ3w";

/// Checks the rules every new password must meet.
pub fn validate(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_CHARS {
        return Err(format!("Password must be at least {MIN_CHARS} characters"));
    }
    if password.len() > MAX_BYTES {
        return Err(format!("Password must be at most {MAX_BYTES} bytes"));
    }
    Ok(())
}

/// argon2id with the OWASP-recommended cost (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// A PHC string (`$argon2id$v=19$...`) with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash a password: {e}"))
}

/// Whether `password` matches `stored`; a malformed stored hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    hasher()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

/// Spends the same work as [`verify`] on an account that does not exist.
pub fn verify_dummy(password: &str) {
    let _ = verify(password, DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horsf", &stored));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let real = hash("whatever-password").unwrap();
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(
            params(&real),
            params(DUMMY_HASH),
            "same algorithm, version and cost, so both take the same time"
        );
        assert!(
            argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).is_ok(),
            "a well-formed hash, so verifying against it does the full work"
        );
        assert!(!verify("", DUMMY_HASH));
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(validate("1234567").is_err());
        assert!(validate("12345678").is_ok());
        assert!(
            validate("密码密码密码密码").is_ok(),
            "characters, not bytes"
        );
        assert!(validate(&"x".repeat(MAX_BYTES + 1)).is_err());
    }
}
