-- The chat schema: conversations and their messages (filled in by the chat issue).
CREATE TABLE IF NOT EXISTS conversations (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
