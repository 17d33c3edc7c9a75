-- The speech engine: results shared by identical requests, and cache hits in the ledger.

-- One row per distinct synthesis (provider, model, voice, speed, format, exact text).
-- Audios that reuse a result point at the same object; it is deleted with the last of them.
CREATE TABLE tts_cache (
    key         TEXT PRIMARY KEY,                       -- hex SHA-256 of the request
    object_key  TEXT NOT NULL,
    peaks_key   TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    size_bytes  INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX tts_cache_object ON tts_cache (object_key);

-- A usage row for a request served from the cache: units counted, cost 0.
ALTER TABLE usage_logs ADD COLUMN cached INTEGER NOT NULL DEFAULT 0 CHECK (cached IN (0, 1));

-- Finding the objects a result shares with other audios.
CREATE INDEX audios_object ON audios (object_key);
