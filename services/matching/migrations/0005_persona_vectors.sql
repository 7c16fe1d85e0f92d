-- Published personas as an embedding model embedded them (little-endian f32s), so a reload
-- embeds only versions it has not seen; vectors of versions no longer published are dropped.
CREATE TABLE persona_vectors (
    mentor_id TEXT NOT NULL REFERENCES mentors (mentor_id),
    version BIGINT NOT NULL,
    model TEXT NOT NULL,
    vector BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (mentor_id, version, model)
);
