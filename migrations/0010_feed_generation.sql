-- Feed links (enclosure, transcript, chapters, cover) are signed over the show's feed
-- generation. Rotating the feed token and making a public show private bump it, so every
-- link handed out in an earlier feed stops working at once.
ALTER TABLE podcasts ADD COLUMN feed_generation INTEGER NOT NULL DEFAULT 0;
