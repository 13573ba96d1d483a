-- Where to resume consuming, written in the same transaction as the sensor state: after a
-- crash between that transaction and the Kafka commit, the server resumes here rather than at
-- the older committed offset, so the restored state and the replayed readings line up.
CREATE TABLE consumer_offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) STRICT, WITHOUT ROWID;
