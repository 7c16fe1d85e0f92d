-- Transactional outbox (tt_common::outbox). Written in the subset SQLite and PostgreSQL share.
-- One row per (event, destination): each receiver's delivery is tracked on its own.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The encoded timetravelers.common.v1.Event.
    payload BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (destination, id) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

-- Which process relays a destination right now (one at a time keeps the order).
CREATE TABLE outbox_leases (
    destination TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
