-- A sensor's state belongs to the partition of the readings topic its readings come from: it
-- is restored when that partition is assigned (and only if no other instance processed the
-- partition since), and moves out of memory when the partition is revoked. Rows written before
-- this migration have no partition; they are dropped with the resume offsets saved with them,
-- so those partitions start at the group's committed offset with fresh state.
DELETE FROM sensor_state;
DELETE FROM consumer_offsets;
ALTER TABLE sensor_state ADD COLUMN partition INTEGER NOT NULL DEFAULT -1;
CREATE INDEX sensor_state_by_partition ON sensor_state (partition);
