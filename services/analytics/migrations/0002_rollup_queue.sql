-- Events not yet folded into the rollups. Ingestion writes a row here in the event's own
-- transaction; the roll-up pass deletes rows (DELETE ... RETURNING: whoever deletes a row
-- applies it, once) and updates the rollups in one transaction.
CREATE TABLE rollup_queue (
    id TEXT PRIMARY KEY,
    time BIGINT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    active BIGINT NOT NULL,
    registered BIGINT NOT NULL,
    -- A time zone the event tells for its subject ('' when none).
    time_zone TEXT NOT NULL
);
