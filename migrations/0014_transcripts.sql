-- Transcripts: what speech recognition heard in a recording, kept in the library. The
-- recording is an audio of the library (`audio_id`) or an upload kept in the object store
-- (`recording_key`), never both.
CREATE TABLE transcripts (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    audio_id         TEXT REFERENCES audios(id) ON DELETE CASCADE,
    recording_key    TEXT,                              -- set by the server, never from input
    recording_format TEXT,                              -- the upload's container, e.g. `m4a`
    title            TEXT NOT NULL,
    job_id           TEXT,                              -- the `transcribe` job that makes it
    provider         TEXT NOT NULL,
    model            TEXT NOT NULL,
    language         TEXT,                              -- as asked, then as heard
    speakers         INTEGER NOT NULL DEFAULT 0 CHECK (speakers IN (0, 1)),
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    progress         REAL NOT NULL DEFAULT 0,
    duration_ms      INTEGER,
    size_bytes       INTEGER,
    transcript_json  TEXT,                              -- the whole `Transcript` once done
    error_code       TEXT,
    error_message    TEXT,
    search_rowid     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CHECK ((audio_id IS NULL) <> (recording_key IS NULL))
) STRICT;
-- A user's transcripts, newest first (ids sort by creation time).
CREATE INDEX transcripts_user ON transcripts (user_id, id DESC);
CREATE INDEX transcripts_audio ON transcripts (audio_id);
CREATE UNIQUE INDEX transcripts_search ON transcripts (search_rowid);

-- The pieces a long recording is split into, planned once by the job's first attempt and
-- kept until the transcript is deleted: a resumed attempt sends only the pieces still
-- pending, so no piece is paid for twice.
CREATE TABLE transcript_pieces (
    transcript_id   TEXT NOT NULL REFERENCES transcripts(id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    start_frame     INTEGER NOT NULL,                   -- at the recognition rate (16 kHz)
    end_frame       INTEGER NOT NULL,
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    transcript_json TEXT,                               -- the piece's own `Transcript`, times from its start
    PRIMARY KEY (transcript_id, idx)
) STRICT, WITHOUT ROWID;

-- Transcript search, as the library's (0011): a contentless trigram index whose documents
-- carry their owner's tag and sit in their owner's slice of row ids, so a search costs the
-- caller's own transcripts, never everyone's. A transcript's document is its text, indexed
-- once it is done.
CREATE VIRTUAL TABLE transcript_search USING fts5 (
    owner,
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);

CREATE TRIGGER transcripts_search_insert AFTER INSERT ON transcripts BEGIN
    UPDATE transcripts SET search_rowid = (
        SELECT coalesce(
                   (SELECT max(search_rowid) FROM transcripts
                     WHERE search_rowid BETWEEN o.first_rowid AND o.first_rowid + 4294967295) + 1,
                   o.first_rowid + 1)
          FROM search_owners o WHERE o.user_id = NEW.user_id)
     WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER transcripts_search_text AFTER UPDATE OF transcript_json ON transcripts BEGIN
    DELETE FROM transcript_search WHERE rowid = OLD.search_rowid;
    INSERT INTO transcript_search (rowid, owner, body)
         SELECT t.search_rowid, o.tag, json_extract(NEW.transcript_json, '$.text')
           FROM transcripts t JOIN search_owners o ON o.user_id = t.user_id
          WHERE t.rowid = NEW.rowid AND NEW.transcript_json IS NOT NULL;
END;

CREATE TRIGGER transcripts_search_delete AFTER DELETE ON transcripts BEGIN
    DELETE FROM transcript_search WHERE rowid = OLD.search_rowid;
END;

-- Library search finds an audio by its transcripts too: the audio's text document (the one
-- right after its title's, 0011) holds its text and the text of each of its finished
-- transcripts, one per line, rewritten whenever one of them is done or deleted.
CREATE TRIGGER transcripts_audio_search_text AFTER UPDATE OF transcript_json ON transcripts
WHEN NEW.audio_id IS NOT NULL BEGIN
    DELETE FROM audio_search
     WHERE rowid = (SELECT search_rowid + 1 FROM audios WHERE id = NEW.audio_id);
    INSERT INTO audio_search (rowid, owner, body)
         SELECT a.search_rowid + 1, o.tag,
                coalesce((SELECT text FROM audio_texts WHERE audio_id = a.id), '') || char(10)
                || coalesce((SELECT group_concat(json_extract(t.transcript_json, '$.text'), char(10))
                               FROM transcripts t
                              WHERE t.audio_id = a.id AND t.transcript_json IS NOT NULL), '')
           FROM audios a JOIN search_owners o ON o.user_id = a.user_id WHERE a.id = NEW.audio_id;
END;

-- A deleted transcript leaves its audio's document. When the audio itself is deleted (and its
-- transcripts with it), 0011's trigger removes the audio's documents.
CREATE TRIGGER transcripts_audio_search_delete AFTER DELETE ON transcripts
WHEN OLD.audio_id IS NOT NULL AND OLD.transcript_json IS NOT NULL BEGIN
    DELETE FROM audio_search
     WHERE rowid = (SELECT search_rowid + 1 FROM audios WHERE id = OLD.audio_id);
    INSERT INTO audio_search (rowid, owner, body)
         SELECT a.search_rowid + 1, o.tag,
                coalesce((SELECT text FROM audio_texts WHERE audio_id = a.id), '') || char(10)
                || coalesce((SELECT group_concat(json_extract(t.transcript_json, '$.text'), char(10))
                               FROM transcripts t
                              WHERE t.audio_id = a.id AND t.transcript_json IS NOT NULL), '')
           FROM audios a JOIN search_owners o ON o.user_id = a.user_id WHERE a.id = OLD.audio_id;
END;
