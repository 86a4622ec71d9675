-- What the authors' insights read (insights.py), stored with each answer:
-- the language it was written in, and the search's coverage verdict for its question (the
-- finish_reason alone says `not_covered` only when no model was called).
ALTER TABLE messages
    ADD COLUMN IF NOT EXISTS language text CHECK (language IN ('ur', 'en')),
    ADD COLUMN IF NOT EXISTS coverage text CHECK (coverage IN ('covered', 'not_covered')),
    ADD COLUMN IF NOT EXISTS coverage_score real,
    -- One check per cited marker, [{"n", "supported", "score"}], written by the citation
    -- checks (issue 15, migration 004 on their branch); NULL until then. Read only by
    -- insights.unsupported_citation_share.
    ADD COLUMN IF NOT EXISTS citation_checks jsonb;
-- The insights read answers of a period.
CREATE INDEX IF NOT EXISTS messages_assistant_created
    ON messages (created_at) WHERE role = 'assistant';
