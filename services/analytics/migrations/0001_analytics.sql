-- Analytics (tt-analytics): the append-only event store, the rollups maintained as events
-- arrive, ingestion statistics and the dead letters. Written in the subset SQLite and
-- PostgreSQL share: TEXT ids, BIGINT unix millis, TEXT JSON.

-- Every accepted event, once (the id is the idempotency key).
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    version BIGINT NOT NULL,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    -- The user the event is about.
    subject TEXT NOT NULL,
    source TEXT NOT NULL,
    -- JSON object; strings, integers, floats (always written with a fraction) and booleans.
    attributes TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
-- Timelines (one user, newest first) and per-user heatmaps.
CREATE INDEX events_subject_time ON events (subject, time, id);
-- Exports by time range.
CREATE INDEX events_time ON events (time, id);

-- Users analytics has heard of by registration or time zone.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    -- A 63-bit hash of user_id: the compact key of the activity rollup.
    user_key BIGINT NOT NULL,
    registered_at BIGINT,
    -- IANA name from the learner's profile ('' when unknown) and when it was set.
    time_zone TEXT NOT NULL DEFAULT '',
    time_zone_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_registered ON users (registered_at);
CREATE INDEX users_key ON users (user_key);

-- Rollup: which quarter-hours of each UTC day a user was active in (did something themselves).
-- Bit i of `early` is quarter-hour i (00:00-11:59), bit i of `late` quarter-hour 48 + i. Any
-- time zone's local days are unions of quarter-hours, so DAU/WAU/MAU in any zone come from here.
CREATE TABLE activity_days (
    day BIGINT NOT NULL,
    user_key BIGINT NOT NULL,
    early BIGINT NOT NULL,
    late BIGINT NOT NULL,
    PRIMARY KEY (day, user_key)
);

-- Rollup: events per type per UTC quarter-hour (feature usage, heatmaps, activity series).
CREATE TABLE event_counts (
    bucket BIGINT NOT NULL,
    type TEXT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (bucket, type)
);

-- Ingestion per source, and the outbox backlog the source last reported.
CREATE TABLE source_stats (
    source TEXT PRIMARY KEY,
    events BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    dead_letters BIGINT NOT NULL DEFAULT 0,
    batches BIGINT NOT NULL DEFAULT 0,
    last_ingest_at BIGINT NOT NULL DEFAULT 0,
    outbox_pending BIGINT NOT NULL DEFAULT 0,
    oldest_pending_at BIGINT,
    backlog_reported_at BIGINT
);

-- Events refused as malformed or unknown, kept with the reason until a replay ingests them.
CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    -- '' when the event had no id.
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    -- The encoded timetravelers.common.v1.Event as received.
    payload BYTEA NOT NULL,
    reason TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    replay_attempts BIGINT NOT NULL DEFAULT 0,
    replayed_at BIGINT
);
-- A redelivered bad event is kept once.
CREATE UNIQUE INDEX dead_letters_event ON dead_letters (event_id) WHERE event_id <> '';
CREATE INDEX dead_letters_pending ON dead_letters (id) WHERE replayed_at IS NULL;
