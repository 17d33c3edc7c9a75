-- An audio's text lives in a table of its own. In the audios row it sat before chars, sizes
-- and times, so reading those for a library page walked the overflow pages of every long
-- text on the page (about one 4 KB page per 4,000 characters), and long texts left few rows
-- per leaf page. The library now reads only short rows, whatever the texts' length.
CREATE TABLE audio_texts (
    audio_id TEXT PRIMARY KEY REFERENCES audios(id) ON DELETE CASCADE,
    text     TEXT NOT NULL
) STRICT;
INSERT INTO audio_texts (audio_id, text) SELECT id, text FROM audios WHERE text IS NOT NULL;
ALTER TABLE audios DROP COLUMN text;
