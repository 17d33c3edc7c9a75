-- An audio's newest transcript, which every library row shows, is the first entry of its
-- slice of this index: one seek per audio, no sort.
DROP INDEX transcripts_audio;
CREATE INDEX transcripts_audio ON transcripts (audio_id, id DESC);
