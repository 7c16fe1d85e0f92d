-- Matching's tables, in the SQL subset SQLite and PostgreSQL share.

-- A mentor of the catalog: its status and the versions that matter. `capacity` is the
-- published version's; `seats_taken` counts active mentorships and proposals holding a seat,
-- and a seat is only taken by an update that checks it against the capacity.
CREATE TABLE mentors (
    mentor_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    latest_version BIGINT NOT NULL,
    published_version BIGINT NOT NULL DEFAULT 0,
    capacity BIGINT NOT NULL,
    seats_taken BIGINT NOT NULL DEFAULT 0,
    -- Shipped demo content (kept in step with data/mentors.toml while no admin edited it).
    demo BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (seats_taken >= 0)
);

-- Every version of a mentor: the content as JSON (domain::catalog::Content). Versions are
-- never changed; an edit adds one.
CREATE TABLE mentor_versions (
    mentor_id TEXT NOT NULL REFERENCES mentors (mentor_id),
    version BIGINT NOT NULL,
    content TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (mentor_id, version)
);

-- A learner's mentorships, history included. `state` and `origin` hold protobuf value names.
CREATE TABLE mentorships (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    mentor_id TEXT NOT NULL REFERENCES mentors (mentor_id),
    mentor_version BIGINT NOT NULL,
    mentor_name TEXT NOT NULL,
    state TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    end_reason TEXT NOT NULL DEFAULT 'END_REASON_UNSPECIFIED',
    end_note TEXT NOT NULL DEFAULT '',
    expires_at BIGINT,
    request_id TEXT,
    rating BIGINT,
    feedback_reason TEXT NOT NULL DEFAULT '',
    feedback_at BIGINT
);
-- At most one running (proposed or active) mentorship per learner.
CREATE UNIQUE INDEX mentorships_running ON mentorships (user_id)
    WHERE state IN ('MENTORSHIP_STATE_PROPOSED', 'MENTORSHIP_STATE_ACTIVE');
CREATE UNIQUE INDEX mentorships_request ON mentorships (user_id, request_id);
CREATE INDEX mentorships_user ON mentorships (user_id, created_at, id);
CREATE INDEX mentorships_mentor ON mentorships (mentor_id, state);

-- Events applied once (their ids), pruned after 30 days.
CREATE TABLE consumed_events (
    event_id TEXT PRIMARY KEY,
    consumed_at BIGINT NOT NULL
);
