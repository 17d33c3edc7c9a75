-- Alerts the server raised about itself: one row per episode of a rule firing, from the
-- moment it fired until it resolved. Active alerts are those not resolved yet.
CREATE TABLE alerts (
    id             TEXT PRIMARY KEY,                 -- a ULID
    rule           TEXT NOT NULL,                    -- e.g. error_rate, backup_stale
    severity       TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    summary        TEXT NOT NULL,                    -- what fired, in a sentence
    value          REAL NOT NULL,                    -- the measure when it fired
    threshold      REAL NOT NULL,
    fired_at       INTEGER NOT NULL,                 -- Unix ms
    resolved_at    INTEGER,                          -- null while firing
    resolved_value REAL,
    notified_at    INTEGER,                          -- the last notification sent for it
    notifications  INTEGER NOT NULL DEFAULT 0        -- how many were sent (firing, repeats, resolve)
) STRICT;

CREATE INDEX alerts_fired ON alerts (fired_at DESC, id DESC);
CREATE UNIQUE INDEX alerts_one_active_per_rule ON alerts (rule) WHERE resolved_at IS NULL;
