//! The archive: every reading and alert kept as JSON Lines files under the contract's layout,
//! on HDFS or in a local directory (same layout, same semantics, one [`Store`] trait).
//!
//! Records are buffered in memory ([`ArchiveBuffer`], pure) and appended on each flush to one
//! file per dataset, sensor and hour of event time ([`Batch::write`], blocking I/O: run it off
//! the async runtime). Once `write` returns the data is durable: only then may the Kafka
//! offsets covering it be committed. A crash can leave a file's last line torn; readers skip
//! (and count) such a line, and the replay after the crash writes the record again.
//!
//! A file whose append failed is never appended to again by this writer: the retry and
//! later flushes of its sensor and hour go to the next part. On HDFS a write cut by an
//! outage leaves the file open under the writer's lease, and the NameNode gives such files
//! back one per lease soft limit (a minute each): retrying them would stall the archive for
//! minutes per file.

mod batch;
mod buffer;
mod local;
pub use batch::{ArchiveFile, Batch, WriteFailure};
pub use buffer::ArchiveBuffer;
pub use local::LocalStore;
#[cfg(feature = "hdfs")]
mod hdfs;
#[cfg(feature = "hdfs")]
pub use hdfs::HdfsStore;

use std::fmt;

use crate::model::AlertKind;

/// A failed storage operation, with the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct StoreError {
    pub op: &'static str,
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// A file system the archive can live on. Paths are absolute within the archive (`/…`).
pub trait Store: Send + Sync + fmt::Debug {
    /// Writes `bytes` as the file at `path` (creating directories), durably and atomically:
    /// the file appears whole or not at all.
    fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Appends `bytes` (whole JSON lines) to the file at `path`, creating it and its
    /// directories if needed, durably: once this returns the data survives a crash. If an
    /// earlier crash left the file ending mid-line, a newline is written first so that the
    /// torn record cannot swallow the next one.
    fn append_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Appends like [`Store::append_file`] but may return before the data is durable:
    /// [`Store::sync`] makes every such append durable. A store where one sync of many
    /// appends is cheaper than one per append overrides both.
    fn append_deferred(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.append_file(path, bytes)
    }
    /// Makes every [`Store::append_deferred`] so far durable.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Reads a whole file.
    fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError>;
    /// Deletes a file; deleting one that does not exist is not an error (a retried
    /// compaction or retention run deletes what it already deleted).
    fn delete_file(&self, path: &str) -> Result<(), StoreError>;
    /// Names of the entries of a directory, sorted; empty when it does not exist.
    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError>;
    /// Where the data goes, for logs (`/var/lib/…`, `hdfs://…`).
    fn location(&self) -> String;
    /// How many files a batch appends to at once. Each HDFS append waits for round trips
    /// to the NameNode and the DataNode, so doing several at once is what keeps a flush of
    /// many sensors short there.
    fn concurrent_appends(&self) -> usize {
        1
    }
}

/// The archive's top-level datasets and their roots (the seed's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dataset {
    Readings,
    InstantAlerts,
    WindowAlerts,
    OfflineAlerts,
}

impl Dataset {
    pub fn root(self) -> &'static str {
        match self {
            Dataset::Readings => "/temperature_data",
            Dataset::InstantAlerts => "/alerts/instant",
            Dataset::WindowAlerts => "/alerts/avg_temp",
            Dataset::OfflineAlerts => "/alerts/offline",
        }
    }

    /// The dataset's name in the index.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Readings => "readings",
            Dataset::InstantAlerts => "instant",
            Dataset::WindowAlerts => "window",
            Dataset::OfflineAlerts => "offline",
        }
    }

    pub const ALL: [Dataset; 4] =
        [Dataset::Readings, Dataset::InstantAlerts, Dataset::WindowAlerts, Dataset::OfflineAlerts];

    /// The dataset named `name` in the index.
    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|s| s.name() == name)
    }

    fn of_alert(kind: AlertKind) -> Dataset {
        match kind {
            AlertKind::Instant => Dataset::InstantAlerts,
            AlertKind::Window => Dataset::WindowAlerts,
            AlertKind::Offline => Dataset::OfflineAlerts,
        }
    }
}

/// Files roll every hour of event time; this many bytes start the next part sooner.
pub const MAX_FILE_BYTES: usize = 128 << 20;

const HOUR_MS: i64 = 3_600_000;
