-- The completion percentage last reported to analytics (profiles.completion.changed).
ALTER TABLE profiles ADD COLUMN reported_completion BIGINT NOT NULL DEFAULT 0;
