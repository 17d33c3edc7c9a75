-- No per-user request may cost what everyone else has stored.
--
-- Usage reports: one user's report reads that user's rows alone, from the index; the admin
-- report (every user) reads an index holding every column it sums, in the order it groups.
DROP INDEX usage_user_day;
CREATE INDEX usage_user_day ON usage_logs (user_id, day, service, units, cost_micros, cached);
DROP INDEX usage_day;
CREATE INDEX usage_day ON usage_logs (day, service, units, cost_micros, cached);

-- Library search: a full-text index of titles and texts (trigrams, so any substring of three
-- characters or more is found, in any script). It holds no copy of the texts, only the index.
--
-- Each user owns a slice of its row ids, [search_key << 32, (search_key + 1) << 32), and
-- every document carries its owner's tag: three private-use characters spelling search_key
-- in base 6400, which the trigram tokenizer indexes as one token found in that user's
-- documents alone. A search asks for the tag AND the phrase within the slice, so the index
-- starts at the user's first document and stops after the last; without the tag, a phrase
-- whose trigrams everyone's texts contain would be tested against every later document.
-- An audio's title is the document at `audios.search_rowid` (even) and its text the one
-- right after it. Both keys are stored, never derived from implicit row ids, which VACUUM
-- may renumber.
ALTER TABLE users ADD COLUMN search_key INTEGER;
UPDATE users SET search_key = rowid;
CREATE UNIQUE INDEX users_search_key ON users (search_key);

ALTER TABLE audios ADD COLUMN search_rowid INTEGER;
UPDATE audios SET search_rowid = n.search_rowid
  FROM (SELECT a.id,
               u.search_key * 4294967296
                 + 2 * row_number() OVER (PARTITION BY a.user_id ORDER BY a.created_at, a.id)
                 AS search_rowid
          FROM audios a JOIN users u ON u.id = a.user_id) AS n
 WHERE audios.id = n.id;
CREATE UNIQUE INDEX audios_search ON audios (search_rowid);

CREATE VIRTUAL TABLE audio_search USING fts5 (
    owner,
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);
-- Each user's slice (its first row id) and tag.
CREATE VIEW search_owners (user_id, first_rowid, tag) AS
     SELECT id, search_key * 4294967296,
            char(57344 + search_key / 40960000 % 6400,
                 57344 + search_key / 6400 % 6400,
                 57344 + search_key % 6400)
       FROM users;
INSERT INTO audio_search (rowid, owner, body)
     SELECT a.search_rowid, o.tag, a.title
       FROM audios a JOIN search_owners o ON o.user_id = a.user_id;
INSERT INTO audio_search (rowid, owner, body)
     SELECT a.search_rowid + 1, o.tag, t.text
       FROM audio_texts t JOIN audios a ON a.id = t.audio_id JOIN search_owners o ON o.user_id = a.user_id;

-- Kept in step by the database itself, in the transaction of every write.
CREATE TRIGGER users_search_key AFTER INSERT ON users WHEN NEW.search_key IS NULL BEGIN
    UPDATE users SET search_key = (SELECT coalesce(max(search_key), 0) + 1 FROM users)
     WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER audios_search_insert AFTER INSERT ON audios BEGIN
    UPDATE audios SET search_rowid = (
        SELECT coalesce(
                   (SELECT max(search_rowid) FROM audios
                     WHERE search_rowid BETWEEN o.first_rowid AND o.first_rowid + 4294967295) + 2,
                   o.first_rowid + 2)
          FROM search_owners o WHERE o.user_id = NEW.user_id)
     WHERE rowid = NEW.rowid;
    INSERT INTO audio_search (rowid, owner, body)
         SELECT a.search_rowid, o.tag, NEW.title
           FROM audios a JOIN search_owners o ON o.user_id = a.user_id WHERE a.rowid = NEW.rowid;
END;

CREATE TRIGGER audios_search_title AFTER UPDATE OF title ON audios BEGIN
    DELETE FROM audio_search WHERE rowid = OLD.search_rowid;
    INSERT INTO audio_search (rowid, owner, body)
         SELECT a.search_rowid, o.tag, NEW.title
           FROM audios a JOIN search_owners o ON o.user_id = a.user_id WHERE a.rowid = NEW.rowid;
END;

CREATE TRIGGER audios_search_delete AFTER DELETE ON audios BEGIN
    DELETE FROM audio_search WHERE rowid = OLD.search_rowid;
    DELETE FROM audio_search WHERE rowid = OLD.search_rowid + 1;
END;

CREATE TRIGGER audio_texts_search_insert AFTER INSERT ON audio_texts BEGIN
    INSERT INTO audio_search (rowid, owner, body)
         SELECT a.search_rowid + 1, o.tag, NEW.text
           FROM audios a JOIN search_owners o ON o.user_id = a.user_id WHERE a.id = NEW.audio_id;
END;

CREATE TRIGGER audio_texts_search_update AFTER UPDATE OF text ON audio_texts BEGIN
    DELETE FROM audio_search
     WHERE rowid = (SELECT search_rowid + 1 FROM audios WHERE id = OLD.audio_id);
    INSERT INTO audio_search (rowid, owner, body)
         SELECT a.search_rowid + 1, o.tag, NEW.text
           FROM audios a JOIN search_owners o ON o.user_id = a.user_id WHERE a.id = NEW.audio_id;
END;

CREATE TRIGGER audio_texts_search_delete AFTER DELETE ON audio_texts BEGIN
    DELETE FROM audio_search
     WHERE rowid = (SELECT search_rowid + 1 FROM audios WHERE id = OLD.audio_id);
END;
