-- Events not yet folded into the rollups, with what the rollups need of them: ingestion writes
-- the row in the event's own transaction (on PostgreSQL in the same statement as the event); a
-- roll-up pass deletes a chunk (DELETE ... RETURNING: whoever deletes a row applies it, once)
-- and updates the rollups in the same transaction.
CREATE TABLE rollup_queue (
    id TEXT PRIMARY KEY,
    time BIGINT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    attributes TEXT NOT NULL
);

-- Rollup: distinct active users per UTC day (a row of activity_days counts once, when it is
-- created), so a UTC DAU series reads one row per day.
CREATE TABLE daily_active (
    day BIGINT PRIMARY KEY,
    users BIGINT NOT NULL
);
INSERT INTO daily_active (day, users) SELECT day, COUNT(*) FROM activity_days GROUP BY day;
