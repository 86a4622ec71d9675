-- BM25 over PostgreSQL: per-chunk term frequencies (lexemes from the chunk's tsvector, so
-- stemming and stop words match full-text search) with document frequencies counted from the
-- same table. ts_rank has no inverse document frequency, and questions are mostly common words.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS length real NOT NULL DEFAULT 0;

CREATE TABLE chunk_terms (
    lexeme     text NOT NULL,
    chunk_id   uuid NOT NULL REFERENCES chunks (chunk_id) ON DELETE CASCADE,
    chapter_id text NOT NULL,
    -- Occurrences, a title/heading occurrence counting three times a body one.
    tf         real NOT NULL,
    -- The chunk's length in the same units, for BM25's length normalisation.
    length     real NOT NULL,
    PRIMARY KEY (lexeme, chunk_id)
);
CREATE INDEX chunk_terms_chunk ON chunk_terms (chunk_id);

-- The GIN index served ts_rank only.
DROP INDEX IF EXISTS chunks_tsv;

-- Chunks stored before this migration.
INSERT INTO chunk_terms (lexeme, chunk_id, chapter_id, tf, length)
SELECT t.lexeme, c.chunk_id, c.chapter_id,
       (SELECT sum(CASE w WHEN 'A' THEN 3 ELSE 1 END) FROM unnest(t.weights) w), 0
  FROM chunks c, unnest(c.tsv) t;
UPDATE chunks c SET length = coalesce(
    (SELECT sum(tf) FROM chunk_terms t WHERE t.chunk_id = c.chunk_id), 0);
UPDATE chunk_terms t SET length = c.length FROM chunks c WHERE c.chunk_id = t.chunk_id;
