-- The lexical leg scores BM25 in each retrieval process's memory (lexical.py): a generation
-- number, bumped by every statement that changes chunk_terms or chunks, tells a process that
-- its copy is out of date. Same transaction as the change, so a reader sees both or neither.
ALTER TABLE corpus_stats ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION bump_lexical_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Named in full: a trigger runs under the writer's search_path (none through a pooler).
    INSERT INTO retrieval.corpus_stats AS s (id, chunks, avgdl, generation) VALUES (1, 0, 1, 1)
    ON CONFLICT (id) DO UPDATE SET generation = s.generation + 1;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS chunk_terms_generation ON chunk_terms;
CREATE TRIGGER chunk_terms_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON chunk_terms
    FOR EACH STATEMENT EXECUTE FUNCTION bump_lexical_generation();
DROP TRIGGER IF EXISTS chunks_generation ON chunks;
CREATE TRIGGER chunks_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION bump_lexical_generation();
