//! `Email`: an address as accounts store it.

use std::fmt;

/// A plausible address, trimmed and lower-cased, so uniqueness ignores case everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// The longest address SMTP can carry.
const MAX_LEN: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("Email is required");
        }
        if email.len() > MAX_LEN {
            return Err("Email is too long");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("Email must look like name@example.com");
        };
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@';
        if local.is_empty()
            || domain.is_empty()
            || local.chars().any(bad_char)
            || domain.chars().any(bad_char)
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err("Email must look like name@example.com");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        assert_eq!(
            Email::parse("root@localhost").unwrap().as_str(),
            "root@localhost"
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "   ",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "ada@example.com.",
            "a@b@c",
            "ada@.example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
