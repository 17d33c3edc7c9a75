//! Queries on `sign_in_addresses`: where each account has signed in from lately.

use rusqlite::{Connection, params};

use super::UserId;

/// The `sign_in_addresses` table's operations, for services and jobs: `db.sign_in_addresses().…`. Each method picks
/// the connection it needs (see [`Db`](super::Db)); callers never hold one.
pub struct SignInAddresses<'a>(pub(super) &'a super::Db);

/// Notes a sign-in from `address` and forgets the account's addresses unused since `forget_before`.
pub fn record(
    conn: &Connection,
    user_id: UserId,
    address: &str,
    now: i64,
    forget_before: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sign_in_addresses (user_id, address, last_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, address) DO UPDATE SET last_at = excluded.last_at",
    )?
    .execute(params![user_id, address, now])?;
    conn.prepare_cached("DELETE FROM sign_in_addresses WHERE user_id = ?1 AND last_at < ?2")?
        .execute(params![user_id, forget_before])?;
    Ok(())
}

/// Whether the account with this (normalised) email signed in from `address` after `since`.
pub fn is_known(
    conn: &Connection,
    email: &str,
    address: &str,
    since: i64,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM users u JOIN sign_in_addresses a ON a.user_id = u.id
                         WHERE u.email = ?1 AND a.address = ?2 AND a.last_at >= ?3)",
    )?
    .query_row(params![email, address, since], |r| r.get(0))
}

// Used by accounts.
impl SignInAddresses<'_> {
    /// Whether the account with this (normalised) email signed in from `address` after
    /// `since`: an indexed lookup before each sign-in is throttled.
    pub async fn is_known(
        &self,
        email: String,
        address: String,
        since: i64,
    ) -> anyhow::Result<bool> {
        self.0
            .lookup(move |c| Ok(is_known(c, &email, &address, since)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "01JAAAAAAAAAAAAAAAAAAAAAAA";

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut c).unwrap();
        c.execute(
            "INSERT INTO users (id, email, password_hash, role, created_at, updated_at)
             VALUES (?1, 'ada@example.com', 'x', 'user', 0, 0)",
            [U1],
        )
        .unwrap();
        c
    }

    #[test]
    fn an_address_is_known_after_a_sign_in_until_it_is_forgotten() {
        let c = db();
        assert!(!is_known(&c, "ada@example.com", "192.0.2.1", 0).unwrap());
        record(&c, U1.parse().unwrap(), "192.0.2.1", 1_000, 0).unwrap();
        assert!(is_known(&c, "ada@example.com", "192.0.2.1", 500).unwrap());
        assert!(!is_known(&c, "ada@example.com", "192.0.2.2", 500).unwrap());
        assert!(!is_known(&c, "bob@example.com", "192.0.2.1", 500).unwrap());
        assert!(
            !is_known(&c, "ada@example.com", "192.0.2.1", 1_001).unwrap(),
            "too long ago"
        );
        record(&c, U1.parse().unwrap(), "192.0.2.2", 5_000, 2_000).unwrap();
        let left: i64 = c
            .query_row("SELECT count(*) FROM sign_in_addresses", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "the stale address is forgotten");
    }
}
