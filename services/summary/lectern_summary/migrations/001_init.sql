-- The summary schema (filled in by the summary issue).
CREATE TABLE IF NOT EXISTS placeholder_summary (id int PRIMARY KEY);
