-- Waveform peaks live in the database rather than as one small object per audio: creating
-- that file was the largest single cost of a finished job. A row is named by the peaks key
-- the audio (and its cache entry) already records, so audios that share a cached result
-- share its peaks, and audios finished before this keep finding theirs in the store.
CREATE TABLE peaks (
    key         TEXT PRIMARY KEY,
    sample_rate INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    levels      BLOB NOT NULL                           -- u16 little-endian per bucket, in thousandths
) STRICT, WITHOUT ROWID;
