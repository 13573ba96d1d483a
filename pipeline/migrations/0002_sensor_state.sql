-- The pipeline core's state per sensor (open episode, open and recently closed windows,
-- liveness), written with the data it covers before the Kafka offsets are committed, and
-- restored at start: a replay continues episodes and windows instead of starting them anew.
CREATE TABLE sensor_state (
    sensor_id  TEXT PRIMARY KEY,
    snapshot   TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
