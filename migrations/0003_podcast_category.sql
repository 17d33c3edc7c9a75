-- Podcast shows get an Apple Podcasts category for their feed (the cover uses `cover_key`).
ALTER TABLE podcasts ADD COLUMN category TEXT;
