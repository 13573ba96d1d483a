//! History queries over the archive: the index says which files may hold a sensor's readings
//! in a time range, the store reads them, and duplicates that a replay after a crash wrote a
//! second time are removed here, at read time (same sensor, event time and value).
//!
//! Every query's memory is bounded whatever its range: raw readings come in chunks
//! ([`History::readings_in_chunks`]), one group of files whose times overlap at a time (a
//! replay's repeats can only be in files that overlap), so a caller can stream them out;
//! charts keep a fixed number of points. Heavy queries (raw readings, charts) run at most
//! [`HEAVY_QUERIES`] at once, the others wait up to [`HEAVY_QUEUE_WAIT`] and are then told the
//! server is busy. A query whose caller is gone (the future dropped, the chunks' receiver
//! dropped) stops reading at the next file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

mod chart;

pub use self::chart::BUCKETS_PER_POINT;
use self::chart::{Buckets, reduce_files};
use crate::archive::{Dataset, Store, StoreError};
use crate::downsample::{Point, downsample};
use crate::index::{Index, IndexError};
use crate::model::Reading;

/// Archive lines a query skipped because they were damaged (a crash tears the last line of a
/// file; a replay writes its record again): counted, never fatal.
pub const SKIPPED_LINES: &str = "thermoalert_archive_lines_skipped_total";

fn count_skipped(lines: usize) {
    if lines > 0 {
        metrics::counter!(SKIPPED_LINES).increment(lines as u64);
    }
}

/// Most raw readings one query may load (about 23 days of one reading per second): beyond
/// that, ask for window statistics instead.
pub const MAX_RAW_READINGS: i64 = 2_000_000;

/// Why a history query failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("archive: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the range holds about {records} readings, more than the {MAX_RAW_READINGS} one query may load: narrow it or use window statistics"
    )]
    TooLarge { records: i64 },
    #[error("archive reader stopped: {0}")]
    Reader(String),
    #[error("too many history queries are running: try again in a few seconds")]
    Busy,
}

/// Raw-reading and chart queries that read the archive at once.
pub const HEAVY_QUERIES: usize = 4;
/// How long a heavy query waits for its turn before it is refused ([`HistoryError::Busy`]).
pub const HEAVY_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Readings of one group of overlapping files sent at most in one chunk.
const CHUNK_READINGS: usize = 8192;

/// One piece of a [`History::readings_in_chunks`] answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadingsChunk {
    /// Readings in time order, after those of the previous chunks, without duplicates.
    Readings(Vec<Reading>),
    /// The end: damaged lines skipped on the way (reported, never fatal).
    End { skipped_lines: usize },
}

/// The chunks of a raw readings query, as the archive is read.
#[derive(Debug)]
pub struct ReadingChunks {
    /// Archive files the query reads.
    pub files: usize,
    rx: mpsc::Receiver<Result<ReadingsChunk, HistoryError>>,
}

impl ReadingChunks {
    /// The next chunk; `None` after [`ReadingsChunk::End`] or an error.
    pub async fn next(&mut self) -> Option<Result<ReadingsChunk, HistoryError>> {
        self.rx.recv().await
    }
}

/// Set when dropped: tells a query's readers that its caller is gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Raw readings of one sensor in a range, oldest first, without duplicates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadingsPage {
    pub readings: Vec<Reading>,
    /// Archive files read.
    pub files: usize,
    /// Lines that were not readings (damaged files); reported, never fatal.
    pub skipped_lines: usize,
}

/// Reads history through the index and the store. Cheap to clone; clones share the limit of
/// heavy queries.
#[derive(Debug, Clone)]
pub struct History {
    index: Index,
    store: Arc<dyn Store>,
    heavy: Arc<Semaphore>,
    queue_wait: Duration,
}

impl History {
    pub fn new(index: Index, store: Arc<dyn Store>) -> Self {
        History {
            index,
            store,
            heavy: Arc::new(Semaphore::new(HEAVY_QUERIES)),
            queue_wait: HEAVY_QUEUE_WAIT,
        }
    }

    /// At most `queries` heavy queries at once, each waiting at most `wait` for its turn.
    pub fn with_heavy_limit(mut self, queries: usize, wait: Duration) -> Self {
        self.heavy = Arc::new(Semaphore::new(queries));
        self.queue_wait = wait;
        self
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// A turn to read the archive, waited for at most [`HEAVY_QUEUE_WAIT`].
    async fn turn(&self) -> Result<OwnedSemaphorePermit, HistoryError> {
        let waiting = Arc::clone(&self.heavy).acquire_owned();
        match tokio::time::timeout(self.queue_wait, waiting).await {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed; and a timeout is the queue being full.
            Ok(Err(_)) | Err(_) => Err(HistoryError::Busy),
        }
    }

    /// Readings of `sensor_id` with event time in `[from_ms, to_ms)`, all at once (for small
    /// ranges and tests; [`History::readings_in_chunks`] streams).
    pub async fn readings(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ReadingsPage, HistoryError> {
        let mut chunks = self.readings_in_chunks(sensor_id, from_ms, to_ms).await?;
        let mut page = ReadingsPage { files: chunks.files, ..ReadingsPage::default() };
        while let Some(chunk) = chunks.next().await {
            match chunk? {
                ReadingsChunk::Readings(mut rs) => page.readings.append(&mut rs),
                ReadingsChunk::End { skipped_lines } => page.skipped_lines = skipped_lines,
            }
        }
        Ok(page)
    }

    /// Readings of `sensor_id` with event time in `[from_ms, to_ms)`, in time order and without
    /// replayed duplicates, in chunks as the archive is read: at most one group of files whose
    /// times overlap is in memory at a time. Dropping the answer stops the reading.
    pub async fn readings_in_chunks(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ReadingChunks, HistoryError> {
        let files = self.index.files(sensor_id, Dataset::Readings, from_ms, to_ms).await?;
        let records: i64 = files.iter().map(|f| f.records).sum();
        if records > MAX_RAW_READINGS {
            return Err(HistoryError::TooLarge { records });
        }
        let permit = self.turn().await?;
        let groups = overlapping(files.iter().map(|f| (f.first_ms, f.last_ms, f.path.clone())));
        let (tx, rx) = mpsc::channel(2);
        let store = Arc::clone(&self.store);
        // The store blocks (HDFS is JNI): read off the async runtime.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut skipped_lines = 0;
            for paths in groups {
                let mut readings = Vec::new();
                for path in &paths {
                    let bytes = match store.read_file(path) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e.into()));
                            return;
                        }
                    };
                    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        match serde_json::from_slice::<Reading>(line) {
                            Ok(r) => {
                                let ms = r.event_time_ms();
                                if ms >= from_ms && ms < to_ms {
                                    readings.push(r);
                                }
                            }
                            Err(_) => skipped_lines += 1,
                        }
                    }
                }
                dedup(&mut readings);
                let mut readings = readings.into_iter().peekable();
                while readings.peek().is_some() {
                    let chunk: Vec<Reading> = readings.by_ref().take(CHUNK_READINGS).collect();
                    if tx.blocking_send(Ok(ReadingsChunk::Readings(chunk))).is_err() {
                        return; // The caller is gone.
                    }
                }
            }
            count_skipped(skipped_lines);
            let _ = tx.blocking_send(Ok(ReadingsChunk::End { skipped_lines }));
        });
        Ok(ReadingChunks { files: files.len(), rx })
    }

    /// The readings of a range as at most `max_points` chart points `(epoch s, °C)`, shape and
    /// extremes kept. The files are read in parallel and each reading only updates the
    /// lowest and highest point of its slice of the range ([`BUCKETS_PER_POINT`] slices per
    /// point), so memory stays small and no range is too long; those points are then
    /// downsampled (see [`downsample`]). Replayed duplicates change no lowest or highest
    /// point, so none need removing.
    pub async fn chart(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: usize,
    ) -> Result<Vec<Point>, HistoryError> {
        let files = self.index.files(sensor_id, Dataset::Readings, from_ms, to_ms).await?;
        let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
        let store = Arc::clone(&self.store);
        let slices = max_points.max(1) * BUCKETS_PER_POINT;
        let permit = self.turn().await?;
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel = CancelOnDrop(Arc::clone(&cancelled));
        let buckets = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let empty = Buckets::new(from_ms, to_ms, slices);
            reduce_files(store.as_ref(), &paths, empty, &cancelled)
        })
        .await
        .map_err(|e| HistoryError::Reader(e.to_string()))??;
        count_skipped(buckets.skipped_lines);
        Ok(downsample(&buckets.points(), max_points))
    }
}

/// The paths of `files` (`(first ms, last ms, path)`) in groups whose time ranges overlap,
/// in time order: a replay's repeats of a reading are in files that overlap it, so each group
/// can be deduplicated alone.
fn overlapping(files: impl Iterator<Item = (i64, i64, String)>) -> Vec<Vec<String>> {
    let mut files: Vec<_> = files.collect();
    files.sort_by_key(|f| f.0);
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut group_end = i64::MIN;
    for (first, last, path) in files {
        match groups.last_mut() {
            Some(group) if first <= group_end => group.push(path),
            _ => groups.push(vec![path]),
        }
        group_end = group_end.max(last);
    }
    groups
}

/// Sorts by event time and drops exact repeats (a replay writes the same reading twice).
fn dedup(readings: &mut Vec<Reading>) {
    readings.sort_by(|a, b| {
        a.event_time_ms()
            .cmp(&b.event_time_ms())
            .then(a.timestamp.total_cmp(&b.timestamp))
            .then(a.temperature.total_cmp(&b.temperature))
    });
    readings.dedup_by(|a, b| {
        a.timestamp == b.timestamp && a.temperature.to_bits() == b.temperature.to_bits()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveBuffer, LocalStore};
    use crate::index::IndexBatch;

    async fn history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite")).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().join("archive")));
        (dir, History::new(index, store))
    }

    async fn archive(h: &History, writer: &str, readings: &[Reading]) {
        let mut buf = ArchiveBuffer::new(writer);
        readings.iter().for_each(|r| buf.push_reading(r));
        let files = buf.take_batch().write(h.store.as_ref()).unwrap();
        h.index.record(IndexBatch { files: &files, ..Default::default() }).await.unwrap();
    }

    fn r(sensor: &str, t: f64, temp: f64) -> Reading {
        Reading { timestamp: t, sensor_id: sensor.into(), temperature: temp }
    }

    #[tokio::test]
    async fn readings_come_back_in_range_in_order_without_replayed_duplicates() {
        let (_dir, h) = history().await;
        let first: Vec<_> = (0..10).map(|i| r("s", f64::from(i), f64::from(i))).collect();
        archive(&h, "run1", &first).await;
        // A crash replays readings 5..10 (they land in a second file), and 10..15 follow.
        let replay: Vec<_> = (5..15).map(|i| r("s", f64::from(i), f64::from(i))).collect();
        archive(&h, "run2", &replay).await;
        archive(&h, "run2", &[r("other", 3.0, 1.0)]).await;

        let page = h.readings("s", 2_000, 12_000).await.unwrap();
        let times: Vec<_> = page.readings.iter().map(|r| r.timestamp).collect();
        assert_eq!(times, (2..12).map(f64::from).collect::<Vec<_>>());
        assert_eq!(page.files, 2);
        assert_eq!(page.skipped_lines, 0);
    }

    #[test]
    fn files_are_grouped_where_their_times_overlap() {
        let f = |first: i64, last: i64, path: &str| (first, last, path.to_owned());
        let groups = overlapping(
            [f(20, 29, "c"), f(0, 9, "a"), f(5, 12, "b"), f(30, 40, "d"), f(35, 36, "e")]
                .into_iter(),
        );
        assert_eq!(groups, vec![vec!["a", "b"], vec!["c"], vec!["d", "e"]]);
        // A long file holds the group open for those within it.
        let groups = overlapping([f(0, 100, "day"), f(10, 20, "h1"), f(50, 60, "h2")].into_iter());
        assert_eq!(groups, vec![vec!["day", "h1", "h2"]]);
    }

    /// A store whose reads take `delay` each and are counted.
    #[derive(Debug)]
    struct Slow {
        inner: LocalStore,
        delay: std::time::Duration,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl Store for Slow {
        fn write_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.inner.write_file(path, bytes)
        }
        fn append_file(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
            self.inner.append_file(path, bytes)
        }
        fn read_file(&self, path: &str) -> Result<Vec<u8>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            self.inner.read_file(path)
        }
        fn delete_file(&self, path: &str) -> Result<(), StoreError> {
            self.inner.delete_file(path)
        }
        fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
            self.inner.list(dir)
        }
        fn location(&self) -> String {
            self.inner.location()
        }
    }

    /// 40 files of one sensor, an hour each, read through a store that takes 20 ms a file.
    async fn slow_history() -> (tempfile::TempDir, History, Arc<Slow>) {
        let (dir, fast) = history().await;
        for hour in 0..40 {
            let t = f64::from(hour) * 3600.0;
            archive(&fast, "w", &[r("s", t, 20.0), r("s", t + 1.0, 21.0)]).await;
        }
        let slow = Arc::new(Slow {
            inner: LocalStore::new(dir.path().join("archive")),
            delay: std::time::Duration::from_millis(20),
            reads: Default::default(),
        });
        let store: Arc<dyn Store> = slow.clone();
        (dir, History::new(fast.index.clone(), store), slow)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readings_come_in_chunks_and_stop_when_the_caller_goes() {
        let (_dir, h, slow) = slow_history().await;
        let mut chunks = h.readings_in_chunks("s", 0, 40 * 3_600_000).await.unwrap();
        assert_eq!(chunks.files, 40);
        let Some(Ok(ReadingsChunk::Readings(first))) = chunks.next().await else { panic!() };
        assert_eq!(first.iter().map(|r| r.timestamp).collect::<Vec<_>>(), [0.0, 1.0]);
        drop(chunks);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let reads = slow.reads.load(Ordering::SeqCst);
        assert!(reads < 10, "{reads} of 40 files read after the caller went away");
        // Read to the end, a query has every reading and then says how it ended.
        let page = h.readings("s", 0, 40 * 3_600_000).await.unwrap();
        assert_eq!((page.readings.len(), page.files, page.skipped_lines), (80, 40, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chart_stops_reading_when_its_caller_goes() {
        let (_dir, h, slow) = slow_history().await;
        let chart = h.chart("s", 0, 40 * 3_600_000, 100);
        let gone = tokio::time::timeout(std::time::Duration::from_millis(50), chart).await;
        assert!(gone.is_err(), "the chart took longer than its caller waited");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let reads = slow.reads.load(Ordering::SeqCst);
        assert!(reads < 20, "{reads} of 40 files read after the caller went away");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heavy_queries_beyond_the_limit_wait_then_are_refused() {
        let (_dir, h, _slow) = slow_history().await;
        let h = h.with_heavy_limit(1, std::time::Duration::from_millis(100));
        // The first holds the only turn while its chunks wait to be read.
        let held = h.readings_in_chunks("s", 0, 40 * 3_600_000).await.unwrap();
        let refused = h.chart("s", 0, 40 * 3_600_000, 100).await.unwrap_err();
        assert!(matches!(refused, HistoryError::Busy), "{refused}");
        assert!(refused.to_string().contains("try again"), "{refused}");
        drop(held);
        // Its turn is given back once its reader notices.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(h.chart("s", 0, 40 * 3_600_000, 100).await.is_ok());
    }

    #[tokio::test]
    async fn same_time_different_values_are_both_kept() {
        let (_dir, h) = history().await;
        archive(&h, "w", &[r("s", 1.0, 20.0), r("s", 1.0, 21.0)]).await;
        assert_eq!(h.readings("s", 0, 10_000).await.unwrap().readings.len(), 2);
    }

    #[tokio::test]
    async fn damaged_lines_are_skipped_and_counted() {
        let (dir, h) = history().await;
        archive(&h, "w", &[r("s", 1.0, 20.0), r("s", 2.0, 21.0)]).await;
        let file = &h.index.files("s", Dataset::Readings, 0, i64::MAX).await.unwrap()[0];
        let on_disk = dir.path().join("archive").join(file.path.trim_start_matches('/'));
        let mut text = std::fs::read_to_string(&on_disk).unwrap();
        text.push_str("{\"timestamp\": 3, trunc\n");
        std::fs::write(&on_disk, text).unwrap();
        let page = h.readings("s", 0, 10_000).await.unwrap();
        assert_eq!((page.readings.len(), page.skipped_lines), (2, 1));
    }

    #[tokio::test]
    async fn a_chart_of_few_readings_is_every_reading_once_despite_replays() {
        let (_dir, h) = history().await;
        let rs: Vec<_> = (0..50).map(|i| r("s", f64::from(i) * 6.0, f64::from(i % 7))).collect();
        archive(&h, "run1", &rs).await;
        archive(&h, "run2", &rs[20..]).await; // a replay after a crash
        let points = h.chart("s", 0, 300_000, 1000).await.unwrap();
        let expected: Vec<Point> = rs.iter().map(|r| (r.timestamp, r.temperature)).collect();
        assert_eq!(points, expected);
    }

    #[tokio::test]
    async fn a_chart_over_many_files_keeps_the_extremes_in_time_order() {
        let (_dir, h) = history().await;
        // Ten files of a day each; 1 000 points drawn from 4 000 slices of 21.6 s.
        for day in 0..10 {
            let rs: Vec<_> = (0..8640)
                .map(|i| {
                    let t = f64::from(day * 86_400 + i * 10);
                    r("s", t, 20.0 + f64::from(i % 100) / 10.0)
                })
                .collect();
            archive(&h, &format!("w{day}"), &rs).await;
        }
        let to = 10 * 86_400_000;
        let points = h.chart("s", 0, to, 1000).await.unwrap();
        assert!(points.len() <= 1000 && points.len() > 900, "{}", points.len());
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
        let (lo, hi) =
            points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        assert_eq!((lo, hi), (20.0, 29.9));
    }

    #[tokio::test]
    async fn charts_are_downsampled_with_the_extremes() {
        let (_dir, h) = history().await;
        let mut rs: Vec<_> = (0..5000).map(|i| r("s", f64::from(i), 50.0)).collect();
        rs[1234].temperature = 99.5;
        archive(&h, "w", &rs).await;
        let points = h.chart("s", 0, 10_000_000, 200).await.unwrap();
        assert!(points.len() <= 200);
        assert!(points.contains(&(1234.0, 99.5)));
    }
}
