-- Profiles schema. Written in the subset SQLite and PostgreSQL both accept:
-- TEXT UUIDv7 ids, BIGINT unix millis, BIGINT 0/1 flags, TEXT JSON arrays.
-- Months are stored as one integer: year * 12 + (month - 1).

CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    headline TEXT NOT NULL DEFAULT '',
    role_title TEXT NOT NULL DEFAULT '',
    fields_of_work TEXT NOT NULL DEFAULT '[]',
    location TEXT NOT NULL DEFAULT '',
    timezone TEXT NOT NULL DEFAULT '',
    languages TEXT NOT NULL DEFAULT '[]',
    career_stage_override TEXT NOT NULL DEFAULT '',
    session_cadence TEXT NOT NULL DEFAULT '',
    communication_style TEXT NOT NULL DEFAULT '',
    feedback_style TEXT NOT NULL DEFAULT '',
    notify_email BIGINT NOT NULL DEFAULT 1,
    notify_push BIGINT NOT NULL DEFAULT 0,
    notify_weekly_digest BIGINT NOT NULL DEFAULT 1,
    notify_mission_reminders BIGINT NOT NULL DEFAULT 1,
    visibility TEXT NOT NULL DEFAULT 'VISIBILITY_PRIVATE',
    -- Bumped by profile updates (the etag).
    version BIGINT NOT NULL,
    -- Bumped by every write to the learner's goals, positions and skills: the row lock that
    -- serialises them (limits, ranks) on PostgreSQL; SQLite serialises writers anyway.
    child_writes BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE goals (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES profiles (user_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    target_role TEXT NOT NULL,
    target_field TEXT NOT NULL,
    -- YYYY-MM-DD or empty.
    target_date TEXT NOT NULL,
    priority BIGINT NOT NULL,
    status TEXT NOT NULL,
    skill_ids TEXT NOT NULL,
    rank BIGINT NOT NULL,
    request_id TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    achieved_at BIGINT
);
CREATE INDEX goals_by_user ON goals (user_id, rank, id);
CREATE UNIQUE INDEX goals_by_request ON goals (user_id, request_id);

CREATE TABLE assessment_results (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES profiles (user_id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    -- {"q01":"a",...}
    answers TEXT NOT NULL,
    -- The scored result (domain::assessment::Scores as JSON).
    scores TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX assessment_results_by_user ON assessment_results (user_id, id);

CREATE TABLE positions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES profiles (user_id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    organization TEXT NOT NULL,
    start_month BIGINT NOT NULL,
    end_month BIGINT,
    is_current BIGINT NOT NULL,
    description TEXT NOT NULL,
    skill_ids TEXT NOT NULL,
    request_id TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX positions_by_user ON positions (user_id, start_month, id);
CREATE UNIQUE INDEX positions_by_request ON positions (user_id, request_id);

CREATE TABLE learner_skills (
    user_id TEXT NOT NULL REFERENCES profiles (user_id) ON DELETE CASCADE,
    skill_id TEXT NOT NULL,
    proficiency BIGINT NOT NULL,
    -- Tenths of a year.
    years_tenths BIGINT NOT NULL,
    last_used_month BIGINT,
    verified_proficiency BIGINT,
    verified_source TEXT NOT NULL DEFAULT '',
    verified_by TEXT NOT NULL DEFAULT '',
    verified_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, skill_id)
);

-- Users deleted in identity: their data is gone and no profile is created for them again.
CREATE TABLE purged_users (
    user_id TEXT PRIMARY KEY,
    purged_at BIGINT NOT NULL
);

-- Events already applied (ConsumeEvents is idempotent on the event id).
CREATE TABLE consumed_events (
    event_id TEXT PRIMARY KEY,
    consumed_at BIGINT NOT NULL
);
