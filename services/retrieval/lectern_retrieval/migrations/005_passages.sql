-- A chunk is embedded as one or more passages, each a Qdrant point: passage i of a chunk has
-- the id uuid5(chunk_id, i). Rows stored before this migration had one vector each.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS passages int NOT NULL DEFAULT 1;
