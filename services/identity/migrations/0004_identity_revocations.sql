-- Revocations: a subject's (user's or service account's) tokens issued before `valid_after`
-- (unix millis) no longer verify. Written in the transaction of the change that revokes, kept
-- for deleted subjects too, and streamed to every verifier (RevocationService); rows older than
-- the longest token lifetime are pruned.
CREATE TABLE revocations (
    subject TEXT PRIMARY KEY,
    valid_after BIGINT NOT NULL
);
CREATE INDEX revocations_by_time ON revocations (valid_after);
INSERT INTO revocations (subject, valid_after) SELECT id, tokens_valid_after FROM users WHERE tokens_valid_after > 0;
