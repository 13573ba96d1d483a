//! The archive: every reading and alert kept as JSON Lines files under the contract's layout,
//! on HDFS or in a local directory (same layout, same semantics, one [`Store`] trait).
//!
//! Records are buffered in memory ([`ArchiveBuffer`], pure) and appended on each flush to one
//! file per stream, sensor and hour of event time ([`Batch::write`], blocking I/O: run it off
//! the async runtime). Once `write` returns the data is durable: only then may the Kafka
//! offsets covering it be committed. A crash can leave a file's last line torn; readers skip
//! (and count) such a line, and the replay after the crash writes the record again.
//!
//! A file whose append failed is never appended to again by this writer: the retry and
//! later flushes of its sensor and hour go to the next part. On HDFS a write cut by an
//! outage leaves the file open under the writer's lease, and the NameNode gives such files
//! back one per lease soft limit (a minute each): retrying them would stall the archive for
//! minutes per file.

mod local;
pub use local::LocalStore;
#[cfg(feature = "hdfs")]
mod hdfs;
#[cfg(feature = "hdfs")]
pub use hdfs::HdfsStore;

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rustc_hash::FxHashMap;

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

    pub const ALL: [Stream; 4] =
        [Stream::Readings, Stream::InstantAlerts, Stream::WindowAlerts, Stream::OfflineAlerts];

    /// The stream named `name` in the index.
    pub fn from_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }

    fn of_alert(kind: AlertKind) -> Stream {
        match kind {
            AlertKind::Instant => Stream::InstantAlerts,
            AlertKind::Window => Stream::WindowAlerts,
            AlertKind::Offline => Stream::OfflineAlerts,
        }
    }
}

/// Files roll every hour of event time; this many bytes start the next part sooner.
pub const MAX_FILE_BYTES: usize = 128 << 20;

const HOUR_MS: i64 = 3_600_000;

/// One archive file being appended to: a stream, a sensor and an hour of event time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct FileKey {
    stream: Stream,
    hour: i64,
    sensor_id: Box<str>,
}

#[derive(Debug, Clone, Default)]
struct Segment {
    first_ms: i64,
    last_ms: i64,
    records: usize,
    lines: Vec<u8>,
}

/// Records waiting to be written, grouped by the file they are appended to.
#[derive(Debug)]
pub struct ArchiveBuffer {
    writer_id: String,
    /// Per stream and hour, per sensor: what the next flush appends.
    segments: FxHashMap<(Stream, i64), FxHashMap<Box<str>, Segment>>,
    bytes: usize,
    /// Part number and size of the files appended to by the last flush, for rolling by size.
    sizes: FxHashMap<FileKey, (u32, usize)>,
    /// The lowest part each file may still use after failed appends moved it on.
    moved: FxHashMap<FileKey, u32>,
    max_file_bytes: usize,
}

/// Files remembered in `moved` at most; past that the memory is dropped (by then the store
/// has long given the abandoned files back).
const REMEMBERED_MOVES: usize = 100_000;

impl ArchiveBuffer {
    /// `writer_id` goes into every file name so that two writers (or two runs of one) never
    /// append to the same file; it must be a path-safe token, e.g. start time and process id.
    pub fn new(writer_id: impl Into<String>) -> Self {
        ArchiveBuffer {
            writer_id: writer_id.into(),
            segments: FxHashMap::default(),
            bytes: 0,
            sizes: FxHashMap::default(),
            moved: FxHashMap::default(),
            max_file_bytes: MAX_FILE_BYTES,
        }
    }

    /// Rolls to the next part of a file past `bytes` instead of [`MAX_FILE_BYTES`].
    pub fn with_max_file_bytes(mut self, bytes: usize) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    pub fn push_reading(&mut self, reading: &Reading) {
        self.push(Stream::Readings, &reading.sensor_id, reading.event_time_ms(), reading);
    }

    pub fn push_alert(&mut self, alert: &Alert) {
        let ms = (alert.timestamp * 1000.0).floor() as i64;
        self.push(Stream::of_alert(alert.kind), &alert.sensor_id, ms, alert);
    }

    #[inline]
    fn push<T: serde::Serialize>(&mut self, stream: Stream, sensor_id: &str, ms: i64, record: &T) {
        let by_sensor = self.segments.entry((stream, ms.div_euclid(HOUR_MS))).or_default();
        let seg = match by_sensor.get_mut(sensor_id) {
            Some(seg) => seg,
            None => by_sensor.entry(sensor_id.into()).or_insert(Segment {
                first_ms: ms,
                last_ms: ms,
                ..Segment::default()
            }),
        };
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

    /// Takes everything buffered as a batch of appends, leaving the buffer empty. Files are
    /// `<root>/<sensor>/<YYYY-MM-DD>/<HH>_<writer>-<part>.jsonl` (UTC, event time): one per
    /// stream, sensor and hour, the next part once one passes [`MAX_FILE_BYTES`].
    pub fn take_batch(&mut self) -> Batch {
        let mut sizes = FxHashMap::default();
        let mut files = Vec::new();
        for ((stream, hour), by_sensor) in std::mem::take(&mut self.segments) {
            for (sensor_id, seg) in by_sensor {
                let key = FileKey { stream, hour, sensor_id };
                let floor = self.moved.get(&key).copied().unwrap_or(0);
                let (mut part, mut size) = match self.sizes.get(&key) {
                    Some(&(part, size)) if part >= floor => (part, size),
                    _ => (floor, 0),
                };
                if size > 0 && size + seg.lines.len() > self.max_file_bytes {
                    part += 1;
                    size = 0;
                }
                sizes.insert(key.clone(), (part, size + seg.lines.len()));
                let (day, hh) = day_and_hour(hour);
                files.push(ArchiveFile {
                    path: format!(
                        "{}/{}/{day}/{hh:02}_{}-{part:03}.jsonl",
                        stream.root(),
                        key.sensor_id,
                        self.writer_id
                    ),
                    stream,
                    sensor_id: key.sensor_id.into(),
                    part,
                    first_ms: seg.first_ms,
                    last_ms: seg.last_ms,
                    records: seg.records,
                    contents: seg.lines,
                });
            }
        }
        // Only files still being written are remembered: memory stays bounded. A sensor back
        // after a quiet flush appends to its hour's first part again.
        self.sizes = sizes;
        self.bytes = 0;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Batch { files, moved: Vec::new() }
    }

    /// Learns where a written batch's files went: the flushes after it continue in the part
    /// a failed append moved a file to (see [`Batch::write`]), never in the abandoned one.
    pub fn written(&mut self, files: &[ArchiveFile]) {
        for f in files {
            let key = FileKey {
                stream: f.stream,
                hour: f.first_ms.div_euclid(HOUR_MS),
                sensor_id: f.sensor_id.as_str().into(),
            };
            let rolled = self.sizes.get(&key).is_some_and(|&(part, _)| part >= f.part);
            let known = self.moved.get(&key).is_some_and(|&floor| floor >= f.part);
            if f.part == 0 || rolled || known {
                continue;
            }
            if self.moved.len() >= REMEMBERED_MOVES {
                self.moved.clear();
            }
            self.moved.insert(key, f.part);
        }
    }
}

/// The UTC day (`YYYY-MM-DD`) and hour of an hour index (hours since the epoch).
fn day_and_hour(hour: i64) -> (String, i64) {
    match chrono::DateTime::from_timestamp_millis(hour * HOUR_MS) {
        Some(t) => (t.format("%Y-%m-%d").to_string(), hour.rem_euclid(24)),
        None => ("invalid-date".into(), 0),
    }
}

/// One file of a batch, with what the index needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveFile {
    pub path: String,
    pub stream: Stream,
    pub sensor_id: String,
    /// The part of its sensor and hour (the path ends with `-<part>.jsonl`).
    pub part: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub records: usize,
    pub contents: Vec<u8>,
}

/// Files to write together.
#[derive(Debug, Default)]
pub struct Batch {
    pub files: Vec<ArchiveFile>,
    /// Paths this batch's failed appends moved files to: parts that hold nothing but what
    /// this batch tried to write.
    moved: Vec<String>,
}

/// A batch write that failed part way.
#[derive(Debug)]
pub struct WriteFailure {
    /// What is left to write: the retry's batch.
    pub rest: Batch,
    /// Files appended before the failure. They must be indexed with the retry's (their lines
    /// are durable once the retry's sync or close is), or the history would never find them.
    pub written: Vec<ArchiveFile>,
    pub error: StoreError,
}

impl ArchiveFile {
    /// Moves the file to its next part, for good: the part it was in may be held open by
    /// the store after a failed append.
    fn move_to_next_part(&mut self) {
        let Some(stem) = self.path.strip_suffix(&format!("-{:03}.jsonl", self.part)) else {
            return;
        };
        self.part += 1;
        self.path = format!("{stem}-{:03}.jsonl", self.part);
    }
}

impl Batch {
    /// Writes every file durably: appends, up to [`Store::concurrent_appends`] at a time,
    /// then one [`Store::sync`]. Blocking; on error nothing may be committed, and the files
    /// not yet appended to are returned so the caller can retry them (a retry must not
    /// append twice), with those that were (to be indexed with the retry's). A file whose append failed comes back moved to its next part, where
    /// the retry writes it whole; the abandoned part may hold some of its lines, which
    /// readers drop as exact repeats. Each failure moves it again (a part made by a failed
    /// retry may be held open too, e.g. when only the DataNode is down), deleting the part
    /// the batch had made. If only the sync failed, every file is returned: the
    /// retry may write lines a second time, dropped by readers as after a crash.
    pub fn write(self, store: &dyn Store) -> Result<Vec<ArchiveFile>, WriteFailure> {
        let workers = store.concurrent_appends().clamp(1, self.files.len().max(1));
        let done: Vec<AtomicBool> = self.files.iter().map(|_| AtomicBool::new(false)).collect();
        let failed: Vec<AtomicBool> = self.files.iter().map(|_| AtomicBool::new(false)).collect();
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<StoreError>> = Mutex::new(None);
        let work = || {
            // After a failure, no new file is started: the store is likely down.
            while failure.lock().expect("batch failure lock").is_none() {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = self.files.get(i) else { return };
                match store.append_deferred(&f.path, &f.contents) {
                    Ok(()) => done[i].store(true, Ordering::Relaxed),
                    Err(e) => {
                        failed[i].store(true, Ordering::Relaxed);
                        failure.lock().expect("batch failure lock").get_or_insert(e);
                    }
                }
            }
        };
        if workers == 1 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(work);
                }
            });
        }
        match failure.into_inner().expect("batch failure lock") {
            None if self.files.is_empty() => Ok(self.files),
            None => match store.sync() {
                Ok(()) => Ok(self.files),
                Err(error) => Err(WriteFailure { rest: self, written: Vec::new(), error }),
            },
            Some(error) => {
                let mut moved = self.moved;
                let (mut rest, mut written) = (Vec::new(), Vec::new());
                for ((mut f, done), failed) in self.files.into_iter().zip(done).zip(failed) {
                    if done.into_inner() {
                        written.push(f);
                        continue;
                    }
                    if failed.into_inner() {
                        if let Some(at) = moved.iter().position(|p| *p == f.path) {
                            // Only this batch's failed tries are in it: best effort, as the
                            // store is likely down (readers never see it, it is not indexed).
                            let _ = store.delete_file(&moved.swap_remove(at));
                        }
                        f.move_to_next_part();
                        moved.push(f.path.clone());
                    }
                    rest.push(f);
                }
                Err(WriteFailure { rest: Batch { files: rest, moved }, written, error })
            }
        }
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
    fn groups_records_by_stream_sensor_and_hour() {
        let mut buf = ArchiveBuffer::new("w1");
        buf.push_reading(&reading("a", 86_399.0));
        buf.push_reading(&reading("a", 86_400.5));
        buf.push_reading(&reading("a", 10.0));
        buf.push_reading(&reading("a", 20.0));
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
                "/alerts/instant/a/1970-01-01/00_w1-000.jsonl",
                "/temperature_data/a/1970-01-01/00_w1-000.jsonl",
                "/temperature_data/a/1970-01-01/23_w1-000.jsonl",
                "/temperature_data/a/1970-01-02/00_w1-000.jsonl",
                "/temperature_data/b/1970-01-01/00_w1-000.jsonl",
            ]
        );
        let first = &batch.files[1];
        assert_eq!((first.records, first.first_ms, first.last_ms), (2, 10_000, 20_000));
        assert!(paths.iter().all(|p| !p.contains(':')));
        let text = String::from_utf8(first.contents.clone()).unwrap();
        let parsed: Reading = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(parsed, reading("a", 10.0));
    }

    #[test]
    fn later_flushes_append_to_the_same_file_until_it_is_full() {
        let mut buf = ArchiveBuffer::new("w").with_max_file_bytes(250);
        let mut paths = Vec::new();
        for t in 0..6 {
            buf.push_reading(&reading("a", f64::from(t)));
            buf.push_reading(&reading("a", f64::from(t) + 0.5));
            paths.push(buf.take_batch().files[0].path.clone());
        }
        // Each flush appends ~106 bytes: two flushes fit in 250 bytes, the third rolls.
        assert_eq!(paths[0], paths[1]);
        assert_ne!(paths[1], paths[2]);
        assert!(paths[2].ends_with("00_w-001.jsonl"), "{}", paths[2]);
        assert_eq!(paths[2], paths[3]);
        assert!(paths[4].ends_with("00_w-002.jsonl"), "{}", paths[4]);
    }

    /// A local store whose appends to paths containing `fail` fail while `failing` is set.
    #[derive(Debug)]
    struct Flaky {
        inner: LocalStore,
        fail: &'static str,
        failing: AtomicBool,
        appends: AtomicUsize,
        failing_sync: AtomicBool,
    }

    impl Flaky {
        /// Failing appends to paths containing `fail` from the start; syncs succeed.
        fn new(dir: &std::path::Path, fail: &'static str) -> Flaky {
            Flaky {
                inner: LocalStore::new(dir),
                fail,
                failing: AtomicBool::new(true),
                appends: AtomicUsize::new(0),
                failing_sync: AtomicBool::new(false),
            }
        }
    }

    impl Store for Flaky {
        fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.inner.write_file(path, bytes)
        }
        fn append_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.appends.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) && path.contains(self.fail) {
                let source = std::io::Error::other("injected");
                return Err(StoreError { op: "append", path: path.into(), source });
            }
            self.inner.append_file(path, bytes)
        }
        fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError> {
            self.inner.read_file(path)
        }
        fn delete_file(&self, path: &str) -> Result<(), StoreError> {
            self.inner.delete_file(path)
        }
        fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
            self.inner.list(dir)
        }
        fn append_deferred(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.append_file(path, bytes)
        }
        fn sync(&self) -> Result<(), StoreError> {
            if self.failing_sync.load(Ordering::SeqCst) {
                let source = std::io::Error::other("injected");
                return Err(StoreError { op: "sync", path: "/".into(), source });
            }
            self.inner.sync()
        }
        fn location(&self) -> String {
            self.inner.location()
        }
        fn concurrent_appends(&self) -> usize {
            4
        }
    }

    #[test]
    fn a_failed_batch_returns_exactly_the_files_not_written_and_a_retry_completes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::new(dir.path(), "/s13/");
        let mut buf = ArchiveBuffer::new("w");
        for s in 0..40 {
            buf.push_reading(&reading(&format!("s{s}"), 1.0));
        }
        let WriteFailure { rest, written: done, error: e } =
            buf.take_batch().write(&store).unwrap_err();
        assert!(e.to_string().contains("/s13/"), "{e}");
        assert!(rest.files.iter().any(|f| f.path.contains("/s13/")));
        let written = 40 - rest.files.len();
        assert_eq!(store.appends.load(Ordering::SeqCst), written + 1, "one failed try");
        // What was appended before the failure is said, for the index.
        assert_eq!(done.len(), written);
        assert!(done.iter().all(|f| !rest.files.iter().any(|r| r.path == f.path)));

        store.failing.store(false, Ordering::SeqCst);
        let retried = rest.write(&store).unwrap();
        assert_eq!(retried.len(), 40 - written);
        // Every sensor's file holds its reading once: nothing lost, nothing appended twice.
        for s in 0..40 {
            // The file whose append failed was written whole to its next part.
            let part = if s == 13 { 1 } else { 0 };
            let path = format!("/temperature_data/s{s}/1970-01-01/00_w-{part:03}.jsonl");
            let text = String::from_utf8(store.read_file(&path).unwrap()).unwrap();
            assert_eq!(text.lines().count(), 1, "{path}");
        }

        // A failed sync leaves every append's durability unknown: the whole batch comes
        // back, and once written again it is durable (the repeats are dropped by readers).
        store.failing_sync.store(true, Ordering::SeqCst);
        buf.push_reading(&reading("s1", 2.0));
        buf.push_reading(&reading("s2", 2.0));
        let WriteFailure { rest, written, error: e } = buf.take_batch().write(&store).unwrap_err();
        assert!(e.to_string().starts_with("sync"), "{e}");
        assert_eq!((rest.files.len(), written.len()), (2, 0));
        store.failing_sync.store(false, Ordering::SeqCst);
        assert_eq!(rest.write(&store).unwrap().len(), 2);
    }

    #[test]
    fn a_file_whose_append_failed_is_never_appended_to_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::new(dir.path(), "/s1/");
        let part = |n: u32| format!("/temperature_data/s1/1970-01-01/00_w-{n:03}.jsonl");
        let mut buf = ArchiveBuffer::new("w");
        buf.push_reading(&reading("s1", 1.0));
        buf.push_reading(&reading("s2", 1.0));
        let s1 = |b: &Batch| b.files.iter().find(|f| f.sensor_id == "s1").unwrap().path.clone();
        let rest = buf.take_batch().write(&store).unwrap_err().rest;
        assert_eq!(s1(&rest), part(1), "moved on after the failure");
        // A file not tried keeps its part.
        assert!(rest.files.iter().all(|f| f.sensor_id == "s1" || f.path.ends_with("-000.jsonl")));
        // Failing again moves it on again, and the part that only failed tries touched goes.
        store.inner.append_file(&part(1), b"torn").unwrap();
        let rest = rest.write(&store).unwrap_err().rest;
        assert_eq!(s1(&rest), part(2));
        assert!(store.read_file(&part(1)).is_err(), "part 1 deleted");
        store.failing.store(false, Ordering::SeqCst);
        let written = rest.write(&store).unwrap();
        buf.written(&written);
        // The sensor's next readings of that hour go to the new part, even after a flush
        // without them (the buffer forgets files not written by the last flush).
        buf.push_reading(&reading("s2", 2.0));
        buf.take_batch().write(&store).unwrap();
        buf.push_reading(&reading("s1", 3.0));
        let batch = buf.take_batch();
        assert_eq!(batch.files[0].path, part(2));
        batch.write(&store).unwrap();
        let text = String::from_utf8(store.read_file(&part(2)).unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(store.read_file(&part(0)).is_err(), "nothing was ever written to part 0");
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
