//! The SQLite index of the archive, through sqlx: every archive file (so history queries never
//! list the store), the latest state of every alert with its acknowledgement, every sensor
//! seen, and the closed window statistics (so long-range charts read SQLite, not files); and
//! the [`outbox`] of messages a flush still owes the broker.
//!
//! Writes are idempotent, so a replay after a crash changes nothing anyone reads: files are
//! keyed by path, alerts by their deterministic id (a replayed older state never overwrites a
//! newer one), windows by sensor and start (a lower revision never overwrites a higher one).

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::archive::{ArchiveFile, Stream};
pub use crate::model::AlertFilter;
use crate::model::{Alert, AlertState, Level, SensorWindow, WindowStats};
use crate::processor::SensorSnapshot;
use crate::rules::Thresholds;

pub mod outbox;
pub use outbox::OutboxRecord;

/// Rows per multi-row statement: far below SQLite's bound-parameter limit.
const CHUNK: usize = 500;

/// A failed index operation.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot open the index {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate the index {path}: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
    #[error("index: cannot {op}: {source}")]
    Query { op: &'static str, source: sqlx::Error },
    #[error("index: stored alert {alert_id} is unreadable: {source}")]
    Corrupt { alert_id: String, source: serde_json::Error },
    #[error(
        "index: the saved state of sensor {sensor_id} is unreadable ({source}); delete its row in sensor_state to start it afresh"
    )]
    CorruptState { sensor_id: String, source: serde_json::Error },
    #[error("index: outbox message {id} is unreadable: {source}")]
    CorruptOutbox { id: i64, source: serde_json::Error },
}

fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> IndexError {
    move |source| IndexError::Query { op, source }
}

/// What one flush adds to the index, in one transaction.
#[derive(Debug, Default, Clone, Copy)]
pub struct IndexBatch<'a> {
    pub files: &'a [ArchiveFile],
    pub alerts: &'a [Alert],
    pub windows: &'a [SensorWindow],
    /// The core's state of the sensors that changed, as of this flush, each with the
    /// partition of the readings topic its readings come from.
    pub snapshots: &'a [(i32, SensorSnapshot)],
    /// Next offset per partition of the readings topic, consumed up to this flush.
    pub offsets: &'a [(i32, i64)],
    /// Messages for the broker produced with this flush, kept until it acknowledges them.
    pub outbox: &'a [OutboxRecord],
    /// Processing time of the flush (epoch ms).
    pub written_ms: i64,
}

/// An archive file as the index knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub sensor_id: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub records: i64,
    pub bytes: i64,
}

/// An alert with what operators did about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub alert: Alert,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ms: Option<i64>,
}

/// A sensor the index has seen.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRecord {
    pub sensor_id: String,
    pub display_name: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// An `archive_files` row selected as `path, sensor_id, first_ms, last_ms, records, bytes`.
fn file_entry(r: sqlx::sqlite::SqliteRow) -> FileEntry {
    FileEntry {
        path: r.get(0),
        sensor_id: r.get(1),
        first_ms: r.get(2),
        last_ms: r.get(3),
        records: r.get(4),
        bytes: r.get(5),
    }
}

/// A `sensors` row selected as `sensor_id, display_name, first_seen_ms, last_seen_ms`.
fn sensor_record(r: sqlx::sqlite::SqliteRow) -> SensorRecord {
    SensorRecord {
        sensor_id: r.get(0),
        display_name: r.get(1),
        first_seen_ms: r.get(2),
        last_seen_ms: r.get(3),
    }
}

/// The index, shared by the pipeline (writes) and the web layer (reads). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SensorIndex {
    pool: SqlitePool,
}

impl SensorIndex {
    /// Opens (creating if missing) the index at `path`, in WAL mode, and applies migrations.
    pub async fn open(path: &Path) -> Result<SensorIndex, IndexError> {
        let shown = path.display().to_string();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{shown}"))
            .map_err(|source| IndexError::Open { path: shown.clone(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: durable at each checkpoint, never corrupt; the archive files are
            // fsynced and a replay re-indexes anything lost with the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| IndexError::Open { path: shown.clone(), source })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| IndexError::Migrate { path: shown, source })?;
        Ok(SensorIndex { pool })
    }

    /// Records a flush: its files, alerts, windows and the sensors its readings came from.
    /// Returns the outbox ids of `batch.outbox`, in order, for [`SensorIndex::outbox_sent`].
    pub async fn record(&self, batch: IndexBatch<'_>) -> Result<Vec<i64>, IndexError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin a transaction"))?;
        for chunk in batch.files.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO archive_files \
                 (path, stream, sensor_id, first_ms, last_ms, records, bytes, written_ms) ",
            );
            q.push_values(chunk, |mut row, f| {
                row.push_bind(&f.path)
                    .push_bind(f.stream.name())
                    .push_bind(&f.sensor_id)
                    .push_bind(f.first_ms)
                    .push_bind(f.last_ms)
                    .push_bind(f.records as i64)
                    .push_bind(f.contents.len() as i64)
                    .push_bind(batch.written_ms);
            });
            // Files are appended to by later flushes: widen the range and add the counts.
            q.push(
                " ON CONFLICT (path) DO UPDATE SET \
                 first_ms = min(archive_files.first_ms, excluded.first_ms), \
                 last_ms = max(archive_files.last_ms, excluded.last_ms), \
                 records = archive_files.records + excluded.records, \
                 bytes = archive_files.bytes + excluded.bytes, \
                 written_ms = excluded.written_ms",
            );
            q.build().execute(&mut *tx).await.map_err(query_err("record archive files"))?;
        }
        let readings: Vec<&ArchiveFile> =
            batch.files.iter().filter(|f| f.stream == Stream::Readings).collect();
        for chunk in readings.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO sensors (sensor_id, first_seen_ms, last_seen_ms) ",
            );
            q.push_values(chunk, |mut row, f| {
                row.push_bind(&f.sensor_id).push_bind(f.first_ms).push_bind(f.last_ms);
            });
            q.push(
                " ON CONFLICT (sensor_id) DO UPDATE SET \
                 first_seen_ms = min(sensors.first_seen_ms, excluded.first_seen_ms), \
                 last_seen_ms = max(sensors.last_seen_ms, excluded.last_seen_ms)",
            );
            q.build().execute(&mut *tx).await.map_err(query_err("record sensors"))?;
        }
        for chunk in batch.alerts.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO alerts (alert_id, kind, sensor_id, severity, state, state_rank, \
                 opened_ms, updated_ms, revision, temperature, threshold, body) ",
            );
            q.push_values(chunk, |mut row, a| {
                let ms = seconds_to_ms(a.timestamp);
                row.push_bind(&a.alert_id)
                    .push_bind(a.kind.as_str())
                    .push_bind(&a.sensor_id)
                    .push_bind(a.severity.as_str())
                    .push_bind(a.state.as_str())
                    .push_bind(state_rank(a.state))
                    .push_bind(ms)
                    .push_bind(ms)
                    .push_bind(i64::from(a.window.as_ref().map_or(0, |w| w.revision)))
                    .push_bind(a.temperature)
                    .push_bind(a.threshold)
                    .push_bind(serde_json::to_string(a).expect("alerts serialize"));
            });
            // A replayed older state (earlier, lower revision, or earlier in the episode)
            // never overwrites a newer one; acknowledgements are kept.
            q.push(
                " ON CONFLICT (alert_id) DO UPDATE SET \
                 severity = excluded.severity, state = excluded.state, \
                 state_rank = excluded.state_rank, updated_ms = excluded.updated_ms, \
                 revision = excluded.revision, temperature = excluded.temperature, \
                 threshold = excluded.threshold, body = excluded.body, \
                 opened_ms = min(alerts.opened_ms, excluded.opened_ms) \
                 WHERE (excluded.updated_ms, excluded.revision, excluded.state_rank) \
                     > (alerts.updated_ms, alerts.revision, alerts.state_rank)",
            );
            q.build().execute(&mut *tx).await.map_err(query_err("record alerts"))?;
        }
        for chunk in batch.windows.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO window_stats (sensor_id, window_start_ms, window_end_ms, count, \
                 avg, min, max, revision, late) ",
            );
            q.push_values(chunk, |mut row, w| {
                let s = &w.stats;
                row.push_bind(&w.sensor_id)
                    .push_bind(seconds_to_ms(s.window_start))
                    .push_bind(seconds_to_ms(s.window_end))
                    .push_bind(s.count as i64)
                    .push_bind(s.avg_temperature)
                    .push_bind(s.min)
                    .push_bind(s.max)
                    .push_bind(i64::from(s.revision))
                    .push_bind(s.late as i64);
            });
            q.push(
                " ON CONFLICT (sensor_id, window_start_ms) DO UPDATE SET \
                 window_end_ms = excluded.window_end_ms, count = excluded.count, \
                 avg = excluded.avg, min = excluded.min, max = excluded.max, \
                 revision = excluded.revision, late = excluded.late \
                 WHERE excluded.revision > window_stats.revision",
            );
            q.build().execute(&mut *tx).await.map_err(query_err("record window statistics"))?;
        }
        for chunk in batch.snapshots.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO sensor_state (sensor_id, snapshot, updated_ms, partition) ",
            );
            q.push_values(chunk, |mut row, (partition, s)| {
                row.push_bind(&s.sensor_id)
                    .push_bind(serde_json::to_string(s).expect("snapshots serialize"))
                    .push_bind(batch.written_ms)
                    .push_bind(partition);
            });
            q.push(
                " ON CONFLICT (sensor_id) DO UPDATE SET snapshot = excluded.snapshot, \
                 updated_ms = excluded.updated_ms, partition = excluded.partition",
            );
            q.build().execute(&mut *tx).await.map_err(query_err("record sensor state"))?;
        }
        for chunk in batch.offsets.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO consumer_offsets (topic, partition, next_offset) ",
            );
            q.push_values(chunk, |mut row, (partition, offset)| {
                row.push_bind(crate::topics::READINGS).push_bind(partition).push_bind(offset);
            });
            q.push(
                " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            );
            q.build().execute(&mut *tx).await.map_err(query_err("record consumer offsets"))?;
        }
        let outbox = outbox::insert(&mut tx, batch.outbox, batch.written_ms).await?;
        tx.commit().await.map_err(query_err("commit a transaction"))?;
        Ok(outbox)
    }

    /// The offsets recorded with the sensor state, per partition of the readings topic.
    pub async fn offsets(&self) -> Result<Vec<(i32, i64)>, IndexError> {
        let rows = sqlx::query(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = ? ORDER BY partition",
        )
        .bind(crate::topics::READINGS)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("load consumer offsets"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The core's state, as of the last flush, of the sensors whose readings come from
    /// `partitions`, to restore when they are assigned. A snapshot that no longer parses
    /// (written by an incompatible version) is an error: the operator decides, nothing is
    /// silently reset.
    pub async fn snapshots(
        &self,
        partitions: &[i32],
    ) -> Result<Vec<(i32, SensorSnapshot)>, IndexError> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT sensor_id, snapshot, partition FROM sensor_state WHERE partition IN (",
        );
        let mut list = q.separated(", ");
        for p in partitions {
            list.push_bind(p);
        }
        q.push(") ORDER BY sensor_id");
        let rows = q.build().fetch_all(&self.pool).await.map_err(query_err("load sensor state"))?;
        rows.into_iter()
            .map(|r| {
                let sensor_id: String = r.get(0);
                let text: String = r.get(1);
                serde_json::from_str(&text)
                    .map(|snapshot| (r.get(2), snapshot))
                    .map_err(|source| IndexError::CorruptState { sensor_id, source })
            })
            .collect()
    }

    /// Forgets the state of the sensors of `partition` and where it resumes: another
    /// instance processed the partition since, so what is kept here is out of date.
    pub async fn forget_partition(&self, partition: i32) -> Result<(), IndexError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin a transaction"))?;
        sqlx::query("DELETE FROM sensor_state WHERE partition = ?")
            .bind(partition)
            .execute(&mut *tx)
            .await
            .map_err(query_err("forget sensor state"))?;
        sqlx::query("DELETE FROM consumer_offsets WHERE topic = ? AND partition = ?")
            .bind(crate::topics::READINGS)
            .bind(partition)
            .execute(&mut *tx)
            .await
            .map_err(query_err("forget consumer offsets"))?;
        tx.commit().await.map_err(query_err("commit a transaction"))
    }

    /// The live files of `stream` for `sensor_id` that may hold records in `[from_ms, to_ms]`.
    pub async fn files(
        &self,
        sensor_id: &str,
        stream: Stream,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let rows = sqlx::query(
            "SELECT path, sensor_id, first_ms, last_ms, records, bytes FROM archive_files \
             WHERE sensor_id = ? AND stream = ? AND state = 'live' AND last_ms >= ? AND first_ms <= ? \
             ORDER BY first_ms, path",
        )
        .bind(sensor_id)
        .bind(stream.name())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list archive files"))?;
        Ok(rows.into_iter().map(file_entry).collect())
    }

    /// `(sensor, stream, day)` of past days with more than one live file (a day is
    /// `first_ms / 86 400 000`, the UTC day of the directory the files are in), at most
    /// `limit`, before `before_ms`.
    pub async fn days_to_compact(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, Stream, i64)>, IndexError> {
        let rows = sqlx::query(
            "SELECT sensor_id, stream, first_ms / 86400000 AS day FROM archive_files \
             WHERE state = 'live' AND first_ms < ? GROUP BY sensor_id, stream, day \
             HAVING count(*) > 1 ORDER BY day, sensor_id, stream LIMIT ?",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("find days to compact"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let stream = Stream::from_name(&r.get::<String, _>(1))?;
                Some((r.get(0), stream, r.get(2)))
            })
            .collect())
    }

    /// The live files of one sensor's stream with their first record in `[from_ms, to_ms)`.
    pub async fn files_starting(
        &self,
        sensor_id: &str,
        stream: Stream,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let rows = sqlx::query(
            "SELECT path, sensor_id, first_ms, last_ms, records, bytes FROM archive_files \
             WHERE sensor_id = ? AND stream = ? AND state = 'live' AND first_ms >= ? \
             AND first_ms < ? ORDER BY first_ms, path",
        )
        .bind(sensor_id)
        .bind(stream.name())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list a day's files"))?;
        Ok(rows.into_iter().map(file_entry).collect())
    }

    /// Up to `limit` live files (any sensor or stream) whose records all precede `before_ms`.
    pub async fn files_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<FileEntry>, IndexError> {
        let rows = sqlx::query(
            "SELECT path, sensor_id, first_ms, last_ms, records, bytes FROM archive_files \
             WHERE last_ms < ? ORDER BY last_ms LIMIT ?",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list expired files"))?;
        Ok(rows.into_iter().map(file_entry).collect())
    }

    /// In one transaction: forgets the files at `old`, and (when given) records `new` as
    /// the live file that holds their records. Readers see either all old files or the new
    /// one, never both nor neither.
    pub async fn replace_files(
        &self,
        old: &[String],
        new: Option<(&FileEntry, Stream)>,
        written_ms: i64,
    ) -> Result<(), IndexError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin a transaction"))?;
        for chunk in old.chunks(CHUNK) {
            let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM archive_files WHERE path IN (");
            let mut list = q.separated(", ");
            for path in chunk {
                list.push_bind(path);
            }
            q.push(")");
            q.build().execute(&mut *tx).await.map_err(query_err("forget archive files"))?;
        }
        if let Some((f, stream)) = new {
            sqlx::query(
                "INSERT INTO archive_files (path, stream, sensor_id, first_ms, last_ms, records, \
                 bytes, written_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&f.path)
            .bind(stream.name())
            .bind(&f.sensor_id)
            .bind(f.first_ms)
            .bind(f.last_ms)
            .bind(f.records)
            .bind(f.bytes)
            .bind(written_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err("record a compacted file"))?;
        }
        tx.commit().await.map_err(query_err("commit a transaction"))
    }

    /// Alerts matching `filter`, most severe first, then most recent first.
    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>, IndexError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT alert_id, body, acknowledged_by, acknowledged_ms FROM alerts WHERE 1 = 1",
        );
        fn any_of<T>(
            q: &mut QueryBuilder<Sqlite>,
            column: &str,
            values: &[T],
            name: impl Fn(&T) -> &str,
        ) {
            if values.is_empty() {
                return;
            }
            q.push(format!(" AND {column} IN ("));
            let mut list = q.separated(", ");
            for v in values {
                list.push_bind(name(v));
            }
            list.push_unseparated(")");
        }
        any_of(&mut q, "severity", &filter.severities, |l| l.as_str());
        any_of(&mut q, "sensor_id", &filter.sensors, String::as_str);
        any_of(&mut q, "kind", &filter.kinds, |k| k.as_str());
        any_of(&mut q, "state", &filter.states, |s| s.as_str());
        if let Some(from) = filter.from_ms {
            q.push(" AND opened_ms >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            q.push(" AND opened_ms < ").push_bind(to);
        }
        q.push(" ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 ELSE 1 END, updated_ms DESC, alert_id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = q.build().fetch_all(&self.pool).await.map_err(query_err("list alerts"))?;
        rows.into_iter()
            .map(|r| {
                let alert_id: String = r.get(0);
                let body: String = r.get(1);
                let alert = serde_json::from_str(&body)
                    .map_err(|source| IndexError::Corrupt { alert_id, source })?;
                Ok(AlertRecord { alert, acknowledged_by: r.get(2), acknowledged_ms: r.get(3) })
            })
            .collect()
    }

    /// Marks an alert acknowledged; false when there is no such alert.
    pub async fn acknowledge(
        &self,
        alert_id: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<bool, IndexError> {
        let done = sqlx::query(
            "UPDATE alerts SET acknowledged_by = ?, acknowledged_ms = ? WHERE alert_id = ?",
        )
        .bind(by)
        .bind(at_ms)
        .bind(alert_id)
        .execute(&self.pool)
        .await
        .map_err(query_err("acknowledge an alert"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Closed windows of a sensor starting in `[from_ms, to_ms)`, oldest first.
    pub async fn windows(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<WindowStats>, IndexError> {
        let rows = sqlx::query(
            "SELECT window_start_ms, window_end_ms, count, avg, min, max, revision, late \
             FROM window_stats WHERE sensor_id = ? AND window_start_ms >= ? AND window_start_ms < ? \
             ORDER BY window_start_ms",
        )
        .bind(sensor_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list window statistics"))?;
        Ok(rows
            .into_iter()
            .map(|r| WindowStats {
                window_start: r.get::<i64, _>(0) as f64 / 1000.0,
                window_end: r.get::<i64, _>(1) as f64 / 1000.0,
                count: r.get::<i64, _>(2) as u64,
                avg_temperature: r.get(3),
                min: r.get(4),
                max: r.get(5),
                revision: r.get::<i64, _>(6) as u32,
                late: r.get::<i64, _>(7) as u64,
            })
            .collect())
    }

    /// Checks the index answers.
    pub async fn ping(&self) -> Result<(), IndexError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(query_err("answer"))?;
        Ok(())
    }

    /// Every sensor seen, by id.
    /// Saves the thresholds an operator gave a sensor (they outlive restarts).
    pub async fn save_thresholds(
        &self,
        sensor_id: &str,
        t: &Thresholds,
        now_ms: i64,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO sensors (sensor_id, high, critical, hysteresis, first_seen_ms, \
             last_seen_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id) DO UPDATE SET \
             high = excluded.high, critical = excluded.critical, \
             hysteresis = excluded.hysteresis",
        )
        .bind(sensor_id)
        .bind(t.high)
        .bind(t.critical)
        .bind(t.hysteresis)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(query_err("save thresholds"))?;
        Ok(())
    }

    /// Every sensor's thresholds saved by operators.
    pub async fn saved_thresholds(&self) -> Result<Vec<(String, Thresholds)>, IndexError> {
        let rows = sqlx::query(
            "SELECT sensor_id, high, critical, hysteresis FROM sensors \
             WHERE high IS NOT NULL AND critical IS NOT NULL AND hysteresis IS NOT NULL \
             ORDER BY sensor_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("load saved thresholds"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (r.get(0), Thresholds { high: r.get(1), critical: r.get(2), hysteresis: r.get(3) })
            })
            .collect())
    }

    /// How many alerts are not cleared yet, per severity (HIGH, CRITICAL).
    pub async fn open_alerts(&self) -> Result<(u64, u64), IndexError> {
        let rows = sqlx::query(
            "SELECT severity, count(*) FROM alerts WHERE state <> 'cleared' GROUP BY severity",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("count open alerts"))?;
        let count = |level: Level| -> u64 {
            rows.iter()
                .find(|r| r.get::<String, _>(0) == level.as_str())
                .map_or(0, |r| r.get::<i64, _>(1) as u64)
        };
        Ok((count(Level::High), count(Level::Critical)))
    }

    /// One sensor, if the index has seen it.
    pub async fn sensor(&self, sensor_id: &str) -> Result<Option<SensorRecord>, IndexError> {
        let row = sqlx::query(
            "SELECT sensor_id, display_name, first_seen_ms, last_seen_ms FROM sensors \
             WHERE sensor_id = ?",
        )
        .bind(sensor_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_err("load a sensor"))?;
        Ok(row.map(sensor_record))
    }

    pub async fn sensors(&self) -> Result<Vec<SensorRecord>, IndexError> {
        let rows = sqlx::query(
            "SELECT sensor_id, display_name, first_seen_ms, last_seen_ms FROM sensors ORDER BY sensor_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("list sensors"))?;
        Ok(rows.into_iter().map(sensor_record).collect())
    }
}

fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// Order of states within one alert's life.
fn state_rank(s: AlertState) -> i64 {
    match s {
        AlertState::Open => 0,
        AlertState::Escalated => 1,
        AlertState::Cleared => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::ArchiveBuffer;
    use crate::model::{AlertKind, Reading};

    async fn index() -> (tempfile::TempDir, SensorIndex) {
        let dir = tempfile::tempdir().unwrap();
        let index = SensorIndex::open(&dir.path().join("index.sqlite")).await.unwrap();
        (dir, index)
    }

    fn alert(id_ms: i64, state: AlertState, at: f64, revision: Option<u32>) -> Alert {
        Alert {
            alert_id: Alert::id_for(AlertKind::Instant, "s1", id_ms),
            kind: if revision.is_some() { AlertKind::Window } else { AlertKind::Instant },
            severity: Level::High,
            state,
            sensor_id: "s1".into(),
            timestamp: at,
            temperature: 85.0,
            threshold: 80.0,
            window: revision.map(|revision| WindowStats {
                window_start: at,
                window_end: at + 300.0,
                count: 3,
                avg_temperature: 85.0,
                min: 80.0,
                max: 90.0,
                revision,
                late: u64::from(revision),
            }),
        }
    }

    #[tokio::test]
    async fn files_are_found_by_sensor_stream_and_time_overlap() {
        let (_dir, index) = index().await;
        let mut buf = ArchiveBuffer::new("w");
        let r = |sensor: &str, t: f64| Reading {
            timestamp: t,
            sensor_id: sensor.into(),
            temperature: 1.0,
        };
        buf.push_reading(&r("a", 100.0));
        buf.push_reading(&r("a", 200.0));
        let first = buf.take_batch().files;
        // The next flush appends to the same hour's file, and starts the next hour's.
        buf.push_reading(&r("a", 300.0));
        buf.push_reading(&r("a", 3_700.0));
        buf.push_reading(&r("b", 300.0));
        let second = buf.take_batch().files;
        for (files, at) in [(&first, 1), (&second, 2)] {
            index.record(IndexBatch { files, written_ms: at, ..Default::default() }).await.unwrap();
        }

        let all = index.files("a", Stream::Readings, 0, i64::MAX).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].first_ms, all[0].last_ms, all[0].records), (100_000, 300_000, 3));
        let appended: usize = [&first[0], &second[0]].iter().map(|f| f.contents.len()).sum();
        assert_eq!(all[0].bytes as usize, appended);
        assert_eq!((all[1].first_ms, all[1].records), (3_700_000, 1));
        assert_eq!(index.files("a", Stream::Readings, 350_000, 3_600_000).await.unwrap().len(), 0);
        assert_eq!(index.files("a", Stream::Readings, 300_000, 3_700_000).await.unwrap().len(), 2);
        assert!(index.files("a", Stream::InstantAlerts, 0, i64::MAX).await.unwrap().is_empty());

        let sensors = index.sensors().await.unwrap();
        let seen: Vec<_> = sensors
            .iter()
            .map(|s| (s.sensor_id.as_str(), s.first_seen_ms, s.last_seen_ms))
            .collect();
        assert_eq!(seen, vec![("a", 100_000, 3_700_000), ("b", 300_000, 300_000)]);
        assert_eq!(index.sensor("b").await.unwrap().as_ref(), Some(&sensors[1]));
        assert_eq!(index.sensor("c").await.unwrap(), None);

        // Thresholds saved for a known and a new sensor; seen times are left alone.
        let t = Thresholds { high: 30.0, critical: 40.0, hysteresis: 0.5 };
        index.save_thresholds("a", &t, 9_999_999).await.unwrap();
        index.save_thresholds("c", &t, 5_000_000).await.unwrap();
        let saved = index.saved_thresholds().await.unwrap();
        assert_eq!(saved, vec![("a".to_owned(), t), ("c".to_owned(), t)]);
        assert_eq!(index.sensor("a").await.unwrap().unwrap().last_seen_ms, 3_700_000);
    }

    #[tokio::test]
    async fn a_replayed_older_alert_state_never_overwrites_a_newer_one() {
        let (_dir, index) = index().await;
        let open = alert(1_000, AlertState::Open, 1.0, None);
        let escalated = alert(1_000, AlertState::Escalated, 2.0, None);
        let cleared = alert(1_000, AlertState::Cleared, 3.0, None);
        index
            .record(IndexBatch { alerts: &[open.clone(), escalated.clone()], ..Default::default() })
            .await
            .unwrap();
        assert!(index.acknowledge(&open.alert_id, "ops", 5).await.unwrap());
        index
            .record(IndexBatch { alerts: std::slice::from_ref(&cleared), ..Default::default() })
            .await
            .unwrap();
        // Replay of the whole episode after a crash.
        index
            .record(IndexBatch {
                alerts: &[open, escalated, cleared.clone()],
                ..Default::default()
            })
            .await
            .unwrap();

        let rows = index.alerts(&AlertFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(rows.len(), 1, "one row per alert id");
        assert_eq!(rows[0].alert, cleared);
        assert_eq!(rows[0].acknowledged_by.as_deref(), Some("ops"));
        assert!(!index.acknowledge("no-such-alert", "ops", 5).await.unwrap());
    }

    #[tokio::test]
    async fn window_results_and_alerts_keep_the_highest_revision() {
        let (_dir, index) = index().await;
        let w = |revision: u32, avg: f64| SensorWindow {
            sensor_id: "s1".into(),
            stats: WindowStats {
                window_start: 300.0,
                window_end: 600.0,
                count: 2 + u64::from(revision),
                avg_temperature: avg,
                min: 1.0,
                max: 2.0,
                revision,
                late: u64::from(revision),
            },
        };
        index
            .record(IndexBatch { windows: &[w(0, 10.0), w(2, 30.0)], ..Default::default() })
            .await
            .unwrap();
        index.record(IndexBatch { windows: &[w(1, 20.0)], ..Default::default() }).await.unwrap();
        let got = index.windows("s1", 0, 1_000_000).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].revision, got[0].avg_temperature, got[0].window_start),
            (2, 30.0, 300.0)
        );
        assert!(index.windows("s1", 300_001, 1_000_000).await.unwrap().is_empty());

        let r1 = alert(300_000, AlertState::Open, 300.0, Some(1));
        let r2 = alert(300_000, AlertState::Escalated, 300.0, Some(2));
        index.record(IndexBatch { alerts: &[r2.clone(), r1], ..Default::default() }).await.unwrap();
        let rows = index.alerts(&AlertFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(rows[0].alert, r2);
    }

    #[tokio::test]
    async fn sensor_state_round_trips_and_the_latest_wins() {
        use crate::processor::{Output, Processor, ProcessorConfig};
        let (_dir, index) = index().await;
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        let mut snaps = Vec::new();
        p.process(
            &Reading { timestamp: 1.0, sensor_id: "s".into(), temperature: 85.0 },
            1_000,
            &mut out,
        );
        let in_partition = |snaps: &[SensorSnapshot], p: i32| -> Vec<(i32, SensorSnapshot)> {
            snaps.iter().map(|s| (p, s.clone())).collect()
        };
        p.take_changed(&mut snaps);
        let first = in_partition(&snaps, 1);
        index.record(IndexBatch { snapshots: &first, ..Default::default() }).await.unwrap();
        p.process(
            &Reading { timestamp: 2.0, sensor_id: "s".into(), temperature: 95.0 },
            2_000,
            &mut out,
        );
        p.process(
            &Reading { timestamp: 2.0, sensor_id: "t".into(), temperature: 20.0 },
            2_000,
            &mut out,
        );
        snaps.clear();
        p.take_changed(&mut snaps);
        snaps.sort_by(|a, b| a.sensor_id.cmp(&b.sensor_id));
        let (s, t) = (in_partition(&snaps[..1], 1), in_partition(&snaps[1..], 2));
        let latest = [s, t].concat();
        index.record(IndexBatch { snapshots: &latest, ..Default::default() }).await.unwrap();
        assert_eq!(index.snapshots(&[1, 2]).await.unwrap(), latest);
        assert_eq!(index.snapshots(&[2]).await.unwrap(), latest[1..]);
        assert_eq!(index.snapshots(&[]).await.unwrap(), []);

        let offsets = [(1, 10), (2, 7)];
        index.record(IndexBatch { offsets: &offsets, ..Default::default() }).await.unwrap();
        index.record(IndexBatch { offsets: &[(1, 12)], ..Default::default() }).await.unwrap();
        assert_eq!(index.offsets().await.unwrap(), vec![(1, 12), (2, 7)]);

        index.forget_partition(1).await.unwrap();
        assert_eq!(index.snapshots(&[1, 2]).await.unwrap(), latest[1..]);
        assert_eq!(index.offsets().await.unwrap(), vec![(2, 7)]);
    }

    #[tokio::test]
    async fn alerts_filter_by_every_field_and_list_critical_first() {
        let (_dir, index) = index().await;
        let mut a = alert(1_000, AlertState::Open, 1.0, None);
        let mut b = alert(2_000, AlertState::Open, 2.0, None);
        b.alert_id = "instant-s2-2000".into();
        b.sensor_id = "s2".into();
        b.severity = Level::Critical;
        let mut c = alert(3_000, AlertState::Cleared, 3.0, None);
        c.alert_id = "instant-s1-3000".into();
        a.temperature = 81.0;
        index
            .record(IndexBatch { alerts: &[a.clone(), b.clone(), c.clone()], ..Default::default() })
            .await
            .unwrap();
        let ids =
            |rows: Vec<AlertRecord>| rows.into_iter().map(|r| r.alert.alert_id).collect::<Vec<_>>();
        let all = AlertFilter { limit: 10, ..Default::default() };
        assert_eq!(
            ids(index.alerts(&all).await.unwrap()),
            vec![b.alert_id.clone(), c.alert_id.clone(), a.alert_id.clone()]
        );
        let f = AlertFilter { severities: vec![Level::High], ..all.clone() };
        assert_eq!(
            ids(index.alerts(&f).await.unwrap()),
            vec![c.alert_id.clone(), a.alert_id.clone()]
        );
        let f = AlertFilter { sensors: vec!["s2".into()], ..all.clone() };
        assert_eq!(ids(index.alerts(&f).await.unwrap()), vec![b.alert_id.clone()]);
        let f = AlertFilter { states: vec![AlertState::Cleared], ..all.clone() };
        assert_eq!(ids(index.alerts(&f).await.unwrap()), vec![c.alert_id.clone()]);
        let f = AlertFilter { kinds: vec![AlertKind::Window], ..all.clone() };
        assert!(index.alerts(&f).await.unwrap().is_empty());
        let f = AlertFilter { from_ms: Some(2_000), to_ms: Some(3_000), ..all.clone() };
        assert_eq!(ids(index.alerts(&f).await.unwrap()), vec![b.alert_id.clone()]);
        let f = AlertFilter { limit: 1, ..all };
        assert_eq!(index.alerts(&f).await.unwrap().len(), 1);
        // a (HIGH) and b (CRITICAL) are open, c is cleared.
        assert_eq!(index.open_alerts().await.unwrap(), (1, 1));
    }
}
