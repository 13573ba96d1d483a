-- Alerts and dead letters of a flush, written in its transaction and deleted once the broker
-- acknowledged them: a crash between the two leaves them here, and the next start sends them
-- (their readings are not replayed: the saved offsets are past them).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    payload BLOB NOT NULL,
    -- JSON array of [name, value] pairs.
    headers TEXT NOT NULL,
    written_ms INTEGER NOT NULL
);
