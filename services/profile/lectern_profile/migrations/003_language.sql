-- The language answers are written in by default (a question may still ask for another).
ALTER TABLE profiles ADD COLUMN IF NOT EXISTS language text CHECK (language IN ('ur', 'en'));
