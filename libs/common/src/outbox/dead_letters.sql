-- Dead letters at the sender (tt_common::outbox): an event its receiver refused as invalid.
-- `dead_at` set and `delivered_at` empty: a dead letter, and later events about the same
-- subject wait behind it. Replayed: `dead_at` cleared (pending again). Discarded: `delivered_at`
-- set as well (never sent; what waited behind it flows on).
ALTER TABLE outbox ADD COLUMN dead_at BIGINT;
CREATE INDEX outbox_dead ON outbox (destination, subject) WHERE dead_at IS NOT NULL AND delivered_at IS NULL;
