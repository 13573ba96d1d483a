-- The overview counts the alerts still open, by severity, on every alert event: an index of
-- just those rows keeps that a small read however long the history grows.
CREATE INDEX alerts_open ON alerts (severity) WHERE state <> 'cleared';
