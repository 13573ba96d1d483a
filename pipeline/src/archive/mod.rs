//! The archive: every reading and alert kept as JSON Lines files under the contract's layout,
//! on HDFS or in a local directory (same layout, same semantics, one [`Store`] trait).
//!
//! Records are buffered in memory ([`ArchiveBuffer`], pure) and written as one file per
//! stream, sensor and day on each flush ([`Batch::write`], blocking I/O: run it off the async
//! runtime). A file is written whole and then renamed into place, so readers never see a
//! partial file, and once `write` returns the data is durable: only then may the Kafka
//! offsets covering it be committed.

mod local;
pub use local::LocalStore;
#[cfg(feature = "hdfs")]
mod hdfs;
#[cfg(feature = "hdfs")]
pub use hdfs::HdfsStore;

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{Alert, AlertKind, Reading};

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
    /// Reads a whole file.
    fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError>;
    /// Names of the entries of a directory, sorted; empty when it does not exist.
    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError>;
    /// Where the data goes, for logs (`/var/lib/…`, `hdfs://…`).
    fn location(&self) -> String;
}

/// The archive's top-level streams and their roots (the seed's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    Readings,
    InstantAlerts,
    WindowAlerts,
    OfflineAlerts,
}

impl Stream {
    pub fn root(self) -> &'static str {
        match self {
            Stream::Readings => "/temperature_data",
            Stream::InstantAlerts => "/alerts/instant",
            Stream::WindowAlerts => "/alerts/avg_temp",
            Stream::OfflineAlerts => "/alerts/offline",
        }
    }

    /// The stream's name in the index.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Readings => "readings",
            Stream::InstantAlerts => "instant",
            Stream::WindowAlerts => "window",
            Stream::OfflineAlerts => "offline",
        }
    }

    fn of_alert(kind: AlertKind) -> Stream {
        match kind {
            AlertKind::Instant => Stream::InstantAlerts,
            AlertKind::Window => Stream::WindowAlerts,
            AlertKind::Offline => Stream::OfflineAlerts,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SegmentKey {
    stream: Stream,
    sensor_id: String,
    day: String,
}

#[derive(Debug, Clone, Default)]
struct Segment {
    first_ms: i64,
    last_ms: i64,
    records: usize,
    lines: Vec<u8>,
}

/// Records waiting to be written, grouped by file.
#[derive(Debug)]
pub struct ArchiveBuffer {
    writer_id: String,
    next_seq: u64,
    segments: BTreeMap<SegmentKey, Segment>,
    bytes: usize,
}

impl ArchiveBuffer {
    /// `writer_id` goes into every file name so that two writers (or two runs of one) never
    /// pick the same name; it must be a path-safe token, e.g. start time and process id.
    pub fn new(writer_id: impl Into<String>) -> Self {
        ArchiveBuffer {
            writer_id: writer_id.into(),
            next_seq: 0,
            segments: BTreeMap::new(),
            bytes: 0,
        }
    }

    pub fn push_reading(&mut self, reading: &Reading) {
        self.push(Stream::Readings, &reading.sensor_id, reading.event_time_ms(), reading);
    }

    pub fn push_alert(&mut self, alert: &Alert) {
        let ms = (alert.timestamp * 1000.0).floor() as i64;
        self.push(Stream::of_alert(alert.kind), &alert.sensor_id, ms, alert);
    }

    fn push<T: serde::Serialize>(&mut self, stream: Stream, sensor_id: &str, ms: i64, record: &T) {
        let key = SegmentKey { stream, sensor_id: sensor_id.to_owned(), day: day_of(ms) };
        let seg = self.segments.entry(key).or_insert_with(|| Segment {
            first_ms: ms,
            last_ms: ms,
            ..Segment::default()
        });
        let before = seg.lines.len();
        // Serializing our own types into a Vec cannot fail.
        serde_json::to_writer(&mut seg.lines, record).expect("archive records serialize");
        seg.lines.push(b'\n');
        seg.first_ms = seg.first_ms.min(ms);
        seg.last_ms = seg.last_ms.max(ms);
        seg.records += 1;
        self.bytes += seg.lines.len() - before;
    }

    /// Bytes buffered so far.
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Takes everything buffered as a batch of files to write, leaving the buffer empty.
    pub fn take_batch(&mut self) -> Batch {
        let files = std::mem::take(&mut self.segments)
            .into_iter()
            .map(|(key, seg)| {
                self.next_seq += 1;
                ArchiveFile {
                    path: format!(
                        "{}/{}/{}/{}_{}_{}-{:06}.jsonl",
                        key.stream.root(),
                        key.sensor_id,
                        key.day,
                        seg.first_ms,
                        seg.last_ms,
                        self.writer_id,
                        self.next_seq
                    ),
                    stream: key.stream,
                    sensor_id: key.sensor_id,
                    first_ms: seg.first_ms,
                    last_ms: seg.last_ms,
                    records: seg.records,
                    contents: seg.lines,
                }
            })
            .collect();
        self.bytes = 0;
        Batch { files }
    }
}

/// The UTC day (`YYYY-MM-DD`) of an epoch-milliseconds time.
fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid-date".into())
}

/// One file of a batch, with what the index needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveFile {
    pub path: String,
    pub stream: Stream,
    pub sensor_id: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub records: usize,
    pub contents: Vec<u8>,
}

/// Files to write together.
#[derive(Debug, Default)]
pub struct Batch {
    pub files: Vec<ArchiveFile>,
}

impl Batch {
    /// Writes every file durably. Blocking; on error, nothing may be committed and the batch
    /// is returned so the caller can retry it.
    pub fn write(self, store: &dyn Store) -> Result<Vec<ArchiveFile>, (Batch, StoreError)> {
        for (i, f) in self.files.iter().enumerate() {
            if let Err(e) = store.write_file(&f.path, &f.contents) {
                // Files already written are harmless duplicates once retried under new names;
                // keep only the unwritten ones.
                let mut files = self.files;
                let rest = files.split_off(i);
                drop(files);
                return Err((Batch { files: rest }, e));
            }
        }
        Ok(self.files)
    }

    pub fn records(&self) -> usize {
        self.files.iter().map(|f| f.records).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertState, Level};

    fn reading(sensor: &str, t: f64) -> Reading {
        Reading { timestamp: t, sensor_id: sensor.into(), temperature: 21.5 }
    }

    #[test]
    fn groups_records_by_stream_sensor_and_day() {
        let mut buf = ArchiveBuffer::new("w1");
        buf.push_reading(&reading("a", 86_399.0));
        buf.push_reading(&reading("a", 86_400.5));
        buf.push_reading(&reading("a", 10.0));
        buf.push_reading(&reading("b", 20.0));
        buf.push_alert(&Alert {
            alert_id: "x".into(),
            kind: AlertKind::Instant,
            severity: Level::High,
            state: AlertState::Open,
            sensor_id: "a".into(),
            timestamp: 30.0,
            temperature: 81.0,
            threshold: 80.0,
            window: None,
        });
        let batch = buf.take_batch();
        assert!(buf.is_empty());
        assert_eq!(buf.pending_bytes(), 0);
        let paths: Vec<_> = batch.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/temperature_data/a/1970-01-01/10000_86399000_w1-000001.jsonl",
                "/temperature_data/a/1970-01-02/86400500_86400500_w1-000002.jsonl",
                "/temperature_data/b/1970-01-01/20000_20000_w1-000003.jsonl",
                "/alerts/instant/a/1970-01-01/30000_30000_w1-000004.jsonl",
            ]
        );
        assert_eq!(batch.files[0].records, 2);
        assert!(paths.iter().all(|p| !p.contains(':')));
        let text = String::from_utf8(batch.files[0].contents.clone()).unwrap();
        assert_eq!(text.lines().count(), 2);
        let first: Reading = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first, reading("a", 86_399.0));
    }

    #[test]
    fn counts_pending_bytes() {
        let mut buf = ArchiveBuffer::new("w");
        buf.push_reading(&reading("a", 1.0));
        let one = buf.pending_bytes();
        assert!(one > 40);
        buf.push_reading(&reading("a", 2.0));
        assert_eq!(buf.pending_bytes(), 2 * one);
    }
}
