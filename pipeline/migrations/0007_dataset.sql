-- The archive's top-level trees (readings, instant, window and offline alerts) are "datasets":
-- "stream" also named the live event stream. SQLite rewrites the CHECK and the index with it.
ALTER TABLE archive_files RENAME COLUMN stream TO dataset;
