-- Matching's settings and operations.

-- The criteria weights (one row, id 1; absent: the defaults), and every change to them.
CREATE TABLE weights (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    weights TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE weight_changes (
    version BIGINT PRIMARY KEY,
    previous TEXT NOT NULL,
    weights TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);

-- When matching first saw a learner (their wait for a mentor starts there, or at the end of
-- their last mentorship).
CREATE TABLE learners_seen (
    user_id TEXT PRIMARY KEY,
    first_seen_at BIGINT NOT NULL
);

-- Cohort assignments: the request and, once computed, the result (JSON).
CREATE TABLE cohort_assignments (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    request_id TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE UNIQUE INDEX cohort_assignments_request ON cohort_assignments (created_by, request_id);
