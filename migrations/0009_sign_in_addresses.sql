-- The addresses each account has signed in from (an IPv4 address, or the /64 of an IPv6 one).
-- Sign-in throttling lets an account's known addresses through while strangers guessing its
-- password wait, so the guessing cannot lock the owner out.
CREATE TABLE sign_in_addresses (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    last_at INTEGER NOT NULL,                           -- the latest sign-in from it
    PRIMARY KEY (user_id, address)
) STRICT, WITHOUT ROWID;
