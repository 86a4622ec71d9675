-- The documents registry and the chunks (text + full-text index); vectors live in Qdrant under
-- the same ids. Chunk rows are the source of truth: a search result is always a row here.
DROP TABLE IF EXISTS placeholder_retrieval;

CREATE TABLE documents (
    chapter_id   text PRIMARY KEY,
    source       text NOT NULL,
    source_path  text NOT NULL,
    title        text NOT NULL,
    url          text NOT NULL,
    -- Hash of what produced the rows (file bytes, url prefix, chunker version): equal means
    -- a re-ingest has nothing to do.
    file_hash    text NOT NULL,
    -- Hash of the cleaned chapter text: changes exactly when the text a reader sees changes.
    content_hash text NOT NULL,
    text         text NOT NULL,
    sections     jsonb NOT NULL,
    chunk_count  int NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_path)
);

CREATE TABLE chunks (
    chunk_id    uuid PRIMARY KEY,
    chapter_id  text NOT NULL REFERENCES documents (chapter_id) ON DELETE CASCADE,
    ord         int NOT NULL,
    title       text NOT NULL,
    headings    text NOT NULL,
    section     text NOT NULL,
    text        text NOT NULL,
    -- Title and headings weigh more than body text in the lexical ranking.
    tsv         tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title || ' ' || headings), 'A') ||
        setweight(to_tsvector('english'::regconfig, text), 'B')) STORED
);

CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_chapter ON chunks (chapter_id, ord);
