-- Each audio carries its newest transcript (`transcript_id`, `transcript_status`), kept by the
-- triggers below, so the library page reads it with the audio's own row: a lookup into
-- `transcripts` per row would cost the page a fifth of its time.
ALTER TABLE audios ADD COLUMN transcript_id TEXT;
ALTER TABLE audios ADD COLUMN transcript_status TEXT;

-- An audio's transcripts, newest first: the one that takes over when the newest is deleted
-- is the first entry of the audio's slice, with no sort.
DROP INDEX transcripts_audio;
CREATE INDEX transcripts_audio ON transcripts (audio_id, id DESC);

UPDATE audios
   SET (transcript_id, transcript_status) =
       (SELECT id, status FROM transcripts WHERE audio_id = audios.id ORDER BY id DESC LIMIT 1)
 WHERE id IN (SELECT audio_id FROM transcripts WHERE audio_id IS NOT NULL);

-- Ids grow with time: a new transcript of an audio is its newest.
CREATE TRIGGER transcripts_newest_insert AFTER INSERT ON transcripts
WHEN NEW.audio_id IS NOT NULL BEGIN
    UPDATE audios SET transcript_id = NEW.id, transcript_status = NEW.status
     WHERE id = NEW.audio_id AND (transcript_id IS NULL OR transcript_id < NEW.id);
END;

-- Progress writes the same status again; only a change reaches the audio.
CREATE TRIGGER transcripts_newest_status AFTER UPDATE OF status ON transcripts
WHEN NEW.audio_id IS NOT NULL AND NEW.status IS NOT OLD.status BEGIN
    UPDATE audios SET transcript_status = NEW.status
     WHERE id = NEW.audio_id AND transcript_id = NEW.id;
END;

-- The newest deleted: the one before it (or none) takes its place.
CREATE TRIGGER transcripts_newest_delete AFTER DELETE ON transcripts
WHEN OLD.audio_id IS NOT NULL BEGIN
    UPDATE audios
       SET (transcript_id, transcript_status) =
           (SELECT id, status FROM transcripts WHERE audio_id = OLD.audio_id
             ORDER BY id DESC LIMIT 1)
     WHERE id = OLD.audio_id AND transcript_id = OLD.id;
END;
