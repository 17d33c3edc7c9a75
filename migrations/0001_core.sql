-- Core schema: accounts, audio library, podcasts, the job queue and the usage ledger.
-- Ids are ULIDs (TEXT); times are Unix milliseconds (INTEGER, UTC); money is micro-dollars.
-- Shipped migrations are never edited: add a new numbered file instead.

CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    email                 TEXT NOT NULL COLLATE NOCASE UNIQUE,
    password_hash         TEXT NOT NULL,
    display_name          TEXT,
    role                  TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled              INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    quota_chars_per_month INTEGER,                      -- NULL: the configured default
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,                  -- SHA-256 of the cookie value
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,                      -- absolute expiry
    revoked_at   INTEGER,
    ip           TEXT,
    user_agent   TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,                  -- SHA-256 of `amk_...`
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at DESC);

CREATE TABLE invites (
    code       TEXT PRIMARY KEY,
    created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    used_by    TEXT REFERENCES users(id) ON DELETE SET NULL,
    used_at    INTEGER
) STRICT;

CREATE TABLE audios (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('tts', 'podcast', 'upload')),
    title         TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    progress      REAL NOT NULL DEFAULT 0,
    voice         TEXT,
    format        TEXT NOT NULL DEFAULT 'mp3' CHECK (format IN ('mp3', 'wav')),
    speed         REAL NOT NULL DEFAULT 1.0,
    text          TEXT,
    chars         INTEGER NOT NULL DEFAULT 0,
    duration_ms   INTEGER,
    size_bytes    INTEGER,
    object_key    TEXT,                                 -- set by the server, never from input
    peaks_key     TEXT,
    sha256        TEXT,
    error_code    TEXT,
    error_message TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
-- The library page: one user's audios, newest first.
CREATE INDEX audios_user_created ON audios (user_id, created_at DESC);

CREATE TABLE podcasts (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    language        TEXT,
    author          TEXT,
    public          INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    cover_key       TEXT,
    feed_token_hash BLOB,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX podcasts_user_created ON podcasts (user_id, created_at DESC);

CREATE TABLE episodes (
    id           TEXT PRIMARY KEY,
    podcast_id   TEXT NOT NULL REFERENCES podcasts(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    audio_id     TEXT NOT NULL REFERENCES audios(id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    script_json  TEXT NOT NULL,                         -- chapters and lines as submitted
    timings_json TEXT,                                  -- measured at stitch time
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX episodes_podcast_created ON episodes (podcast_id, created_at DESC);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    user_id      TEXT REFERENCES users(id) ON DELETE CASCADE,
    audio_id     TEXT REFERENCES audios(id) ON DELETE CASCADE,
    payload      TEXT NOT NULL DEFAULT '{}',            -- JSON, shape owned by the job kind
    status       TEXT NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    run_after    INTEGER NOT NULL,                      -- not claimable before this time
    lease_until  INTEGER,                               -- a running job past its lease is reclaimed
    worker       TEXT,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
-- Claiming: the oldest runnable job, or a running one whose lease ran out.
CREATE INDEX jobs_claim ON jobs (status, run_after);
CREATE INDEX jobs_audio ON jobs (audio_id);

CREATE TABLE usage_logs (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    audio_id    TEXT REFERENCES audios(id) ON DELETE SET NULL,
    service     TEXT NOT NULL,                          -- e.g. `tts:openai`, `llm`
    units       INTEGER NOT NULL,                       -- characters or tokens
    cost_micros INTEGER NOT NULL DEFAULT 0,
    day         TEXT NOT NULL,                          -- UTC `YYYY-MM-DD`, for per-day reports
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX usage_user_day ON usage_logs (user_id, day);
CREATE INDEX usage_day ON usage_logs (day);
