-- The library is listed newest first with the id as tie-breaker (`created_at DESC, id DESC`)
-- and paged by that pair. With the id in the index, a page is one index range read: no sort
-- of the user's audios, and the index alone answers which rows come next.
DROP INDEX audios_user_created;
CREATE INDEX audios_user_created ON audios (user_id, created_at DESC, id DESC);
