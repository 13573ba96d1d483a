//! The SQLite index of the archive, through sqlx, one module per concern: the [`catalog`] of
//! archive files (so history queries never list the store), [`alerts`] with their
//! acknowledgements, the [`sensors`] seen with the thresholds operators saved, closed
//! [`windows`] statistics (so long-range charts read SQLite, not files), the pipeline's
//! [`checkpoint`] (sensor state and consumed offsets), and the [`outbox`] of messages a flush
//! still owes the broker. A flush writes them all in one transaction ([`Index::record`]).
//!
//! Writes are idempotent, so a replay after a crash changes nothing anyone reads: files are
//! keyed by path, alerts by their deterministic id (a replayed older state never overwrites a
//! newer one), windows by sensor and start (a lower revision never overwrites a higher one).

use std::path::Path;
use std::str::FromStr;

use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::archive::ArchiveFile;
use crate::model::{EncodedAlert, SensorWindow};
use crate::processor::SensorSnapshot;

pub mod alerts;
pub mod catalog;
pub mod checkpoint;
pub mod outbox;
pub mod sensors;
pub mod windows;

pub use self::alerts::AlertRecord;
pub use self::catalog::FileEntry;
pub use self::outbox::OutboxRecord;
pub use self::sensors::SensorRecord;
pub use crate::model::AlertFilter;

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
    pub alerts: &'a [EncodedAlert],
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

/// The index, shared by the pipeline (writes) and the web layer (reads). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Index {
    pool: SqlitePool,
}

impl Index {
    /// Opens (creating if missing) the index at `path`, in WAL mode, and applies migrations.
    pub async fn open(path: &Path) -> Result<Index, IndexError> {
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
        Ok(Index { pool })
    }

    /// Records a flush: its files and the sensors its readings came from, its alerts,
    /// windows, the core's changed state with the consumed offsets, and its outgoing
    /// messages. Returns the outbox ids of `batch.outbox`, in order, for
    /// [`Index::outbox_sent`].
    pub async fn record(&self, batch: IndexBatch<'_>) -> Result<Vec<i64>, IndexError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin a transaction"))?;
        catalog::record(&mut tx, batch.files, batch.written_ms).await?;
        sensors::record_seen(&mut tx, batch.files).await?;
        alerts::record(&mut tx, batch.alerts).await?;
        windows::record(&mut tx, batch.windows).await?;
        checkpoint::record(&mut tx, batch.snapshots, batch.offsets, batch.written_ms).await?;
        let outbox = outbox::insert(&mut tx, batch.outbox, batch.written_ms).await?;
        tx.commit().await.map_err(query_err("commit a transaction"))?;
        Ok(outbox)
    }

    /// Checks the index answers.
    pub async fn ping(&self) -> Result<(), IndexError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(query_err("answer"))?;
        Ok(())
    }
}

/// Writes `rows` with `insert` (the statement up to its values) and `conflict` (what a row
/// whose key exists does), [`CHUNK`] rows a statement; `bind` binds one row's values.
async fn upsert<T>(
    tx: &mut SqliteConnection,
    op: &'static str,
    insert: &'static str,
    rows: &[T],
    mut bind: impl FnMut(Separated<'_, Sqlite, &'static str>, &T),
    conflict: &'static str,
) -> Result<(), IndexError> {
    for chunk in rows.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(insert);
        q.push_values(chunk, &mut bind);
        q.push(conflict);
        q.build().execute(&mut *tx).await.map_err(query_err(op))?;
    }
    Ok(())
}

/// Runs `delete` (a statement ending in `IN (`) with `values`, [`CHUNK`] at a time.
async fn delete_in<T>(
    conn: &mut SqliteConnection,
    op: &'static str,
    delete: &'static str,
    values: &[T],
) -> Result<(), IndexError>
where
    for<'a> &'a T: sqlx::Encode<'a, Sqlite> + sqlx::Type<Sqlite>,
{
    for chunk in values.chunks(CHUNK) {
        let mut q = QueryBuilder::<Sqlite>::new(delete);
        push_list(&mut q, chunk);
        q.build().execute(&mut *conn).await.map_err(query_err(op))?;
    }
    Ok(())
}

/// `... IN (?, ?, …)` of `values`, closing the parenthesis `q` opened.
fn push_list<'a, T>(q: &mut QueryBuilder<Sqlite>, values: impl IntoIterator<Item = T>)
where
    T: sqlx::Encode<'a, Sqlite> + sqlx::Type<Sqlite>,
{
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    list.push_unseparated(")");
}

fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

#[cfg(test)]
mod test_support {
    use super::Index;

    /// A fresh index in a temporary directory (kept while the directory is).
    pub async fn index() -> (tempfile::TempDir, Index) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite")).await.unwrap();
        (dir, index)
    }
}
