-- Conversations (owned by a reader or a guest token), their messages and guest tokens.
ALTER TABLE conversations
    ADD COLUMN IF NOT EXISTS owner text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS title text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE conversations ALTER COLUMN owner DROP DEFAULT;
CREATE INDEX IF NOT EXISTS conversations_owner_updated
    ON conversations (owner, updated_at DESC);

-- Only the sha256 of a guest token is kept; a claimed token stops working.
CREATE TABLE IF NOT EXISTS guests (
    token_hash bytea PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    claimed_at timestamptz
);

CREATE TABLE IF NOT EXISTS messages (
    id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('user', 'assistant')),
    content text NOT NULL DEFAULT '',
    mode text NOT NULL DEFAULT 'book' CHECK (mode IN ('book', 'selection')),
    selected_text text,
    chapter_id text,
    query text,
    sources jsonb NOT NULL DEFAULT '[]',
    citations integer[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'complete'
        CHECK (status IN ('streaming', 'complete', 'interrupted', 'failed')),
    finish_reason text,
    error jsonb,
    timings jsonb NOT NULL DEFAULT '{}',
    usage jsonb NOT NULL DEFAULT '{}',
    model text,
    feedback text CHECK (feedback IN ('up', 'down')),
    feedback_comment text,
    feedback_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS messages_conversation_created
    ON messages (conversation_id, created_at);
