-- The profile schema: one profile per reader (filled in by the identity issue).
CREATE TABLE IF NOT EXISTS profiles (
    user_id text PRIMARY KEY,
    updated_at timestamptz NOT NULL DEFAULT now()
);
