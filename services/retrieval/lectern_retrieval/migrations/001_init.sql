-- The retrieval schema (filled in by the retrieval issue).
CREATE TABLE IF NOT EXISTS placeholder_retrieval (id int PRIMARY KEY);
