-- Generated texts (summaries, personalized chapters, translations), one row per
-- (chapter, content hash, kind, audience, model, prompt version). The content hash is part of
-- the key, so a changed chapter can never be served an entry made from its old text.
DROP TABLE IF EXISTS placeholder_summary;

CREATE TABLE generations (
    chapter_id      text        NOT NULL,
    content_hash    text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('summary', 'personalized', 'translation')),
    -- '' for summaries, the profile segment for personalized chapters, the language code for
    -- translations.
    audience        text        NOT NULL,
    model           text        NOT NULL,
    prompt_version  text        NOT NULL,
    body            text        NOT NULL,
    usage           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    generated_at    timestamptz NOT NULL DEFAULT now(),
    hit_count       bigint      NOT NULL DEFAULT 0,
    last_access_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chapter_id, content_hash, kind, audience, model, prompt_version)
);

