-- Answers still marked streaming: few at any time, looked up by the sweeper of dead answers.
CREATE INDEX IF NOT EXISTS messages_streaming_created
    ON messages (created_at) WHERE status = 'streaming';
