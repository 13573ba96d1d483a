-- The SQLite index of ThermoAlert: what history queries use to find archived data without
-- listing the store, the current state of every alert, per-sensor settings, and the closed
-- window statistics (charts over weeks read these, not the archive).

-- Every archive file.
CREATE TABLE archive_files (
    path       TEXT PRIMARY KEY,
    stream     TEXT NOT NULL CHECK (stream IN ('readings', 'instant', 'window', 'offline')),
    sensor_id  TEXT NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    state      TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'compacted')),
    written_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX archive_files_lookup ON archive_files (sensor_id, stream, last_ms);

-- The latest state of every alert (one row per alert id: replays update, never duplicate).
CREATE TABLE alerts (
    alert_id        TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    sensor_id       TEXT NOT NULL,
    severity        TEXT NOT NULL,
    state           TEXT NOT NULL,
    state_rank      INTEGER NOT NULL,
    opened_ms       INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    temperature     REAL NOT NULL,
    threshold       REAL NOT NULL,
    body            TEXT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_ms INTEGER
) STRICT;
CREATE INDEX alerts_by_time ON alerts (opened_ms);
CREATE INDEX alerts_by_sensor ON alerts (sensor_id, opened_ms);

-- Every sensor seen, with the settings an operator gave it.
CREATE TABLE sensors (
    sensor_id     TEXT PRIMARY KEY,
    display_name  TEXT,
    high          REAL,
    critical      REAL,
    hysteresis    REAL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
) STRICT;

-- Closed windows, latest revision.
CREATE TABLE window_stats (
    sensor_id       TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_end_ms   INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    avg             REAL NOT NULL,
    min             REAL NOT NULL,
    max             REAL NOT NULL,
    revision        INTEGER NOT NULL,
    late            INTEGER NOT NULL,
    PRIMARY KEY (sensor_id, window_start_ms)
) STRICT, WITHOUT ROWID;
