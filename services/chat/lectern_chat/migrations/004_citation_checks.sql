-- Each answer's citation checks (one per cited marker: n, supported, score, dangling) and,
-- when the model could not be used, why the answer is extractive (rate_limited, unavailable,
-- timeout, budget).
ALTER TABLE messages
    ADD COLUMN IF NOT EXISTS citation_checks jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS fallback text;
