//! History queries over the archive: the index says which files may hold a sensor's readings
//! in a time range, the store reads them, and duplicates that a replay after a crash wrote a
//! second time are removed here, at read time (same sensor, event time and value).

use std::sync::Arc;

use crate::archive::{Store, StoreError, Stream};
use crate::downsample::{Point, downsample};
use crate::index::{IndexError, SensorIndex};
use crate::model::Reading;

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

/// Reads history through the index and the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    index: SensorIndex,
    store: Arc<dyn Store>,
}

impl History {
    pub fn new(index: SensorIndex, store: Arc<dyn Store>) -> Self {
        History { index, store }
    }

    pub fn index(&self) -> &SensorIndex {
        &self.index
    }

    /// Readings of `sensor_id` with event time in `[from_ms, to_ms)`.
    pub async fn readings(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ReadingsPage, HistoryError> {
        let files = self.index.files(sensor_id, Stream::Readings, from_ms, to_ms).await?;
        let records: i64 = files.iter().map(|f| f.records).sum();
        if records > MAX_RAW_READINGS {
            return Err(HistoryError::TooLarge { records });
        }
        let store = Arc::clone(&self.store);
        let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
        // The store blocks (HDFS is JNI): read off the async runtime.
        let page = tokio::task::spawn_blocking(move || -> Result<ReadingsPage, StoreError> {
            let mut page = ReadingsPage { files: paths.len(), ..ReadingsPage::default() };
            for path in &paths {
                let bytes = store.read_file(path)?;
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    match serde_json::from_slice::<Reading>(line) {
                        Ok(r) => {
                            let ms = r.event_time_ms();
                            if ms >= from_ms && ms < to_ms {
                                page.readings.push(r);
                            }
                        }
                        Err(_) => page.skipped_lines += 1,
                    }
                }
            }
            Ok(page)
        })
        .await
        .map_err(|e| HistoryError::Reader(e.to_string()))??;
        Ok(dedup(page))
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
        let files = self.index.files(sensor_id, Stream::Readings, from_ms, to_ms).await?;
        let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
        let store = Arc::clone(&self.store);
        let slices = max_points.max(1) * BUCKETS_PER_POINT;
        let buckets = tokio::task::spawn_blocking(move || {
            reduce_files(store.as_ref(), &paths, Buckets::new(from_ms, to_ms, slices))
        })
        .await
        .map_err(|e| HistoryError::Reader(e.to_string()))??;
        Ok(downsample(&buckets.points(), max_points))
    }
}

/// Slices of a chart's range per point finally drawn: enough that the downsampling after
/// them still chooses among real peaks and dips.
pub const BUCKETS_PER_POINT: usize = 4;

/// Files read at once by a chart query.
const CHART_READERS: usize = 4;

/// The time and value of an archived reading (its sensor is known from the file).
#[derive(serde::Deserialize)]
struct ChartLine {
    timestamp: f64,
    temperature: f64,
}

/// The time and value of an archived reading line. The archive's own lines (written by
/// serde_json: `{"timestamp":…,"sensor_id":…,"temperature":…}`) are read by a short path
/// that finds the two numbers; anything else goes through the JSON parser.
fn chart_line(line: &[u8]) -> Option<(f64, f64)> {
    fn number(bytes: &[u8]) -> Option<f64> {
        std::str::from_utf8(bytes).ok()?.parse().ok()
    }
    let quick = || {
        let rest = line.strip_prefix(b"{\"timestamp\":")?;
        let comma = rest.iter().position(|&b| b == b',')?;
        let tail = line.strip_suffix(b"}")?;
        let key = b"\"temperature\":";
        let at = tail.len().checked_sub(tail.iter().rev().position(|&b| b == b':')?)?;
        (tail.get(at - key.len()..at)? == key).then_some(())?;
        Some((number(&rest[..comma])?, number(&tail[at..])?))
    };
    quick().or_else(|| {
        let l = serde_json::from_slice::<ChartLine>(line).ok()?;
        Some((l.timestamp, l.temperature))
    })
}

/// Reads `paths` on up to [`CHART_READERS`] threads into copies of `empty`, merged.
fn reduce_files(
    store: &dyn Store,
    paths: &[String],
    empty: Buckets,
) -> Result<Buckets, StoreError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read = || -> Result<Buckets, StoreError> {
        let mut buckets = empty.clone();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(path) = paths.get(i) else { return Ok(buckets) };
            let bytes = store.read_file(path)?;
            for line in bytes.split(|b| *b == b'\n') {
                // Damaged lines are skipped, as `readings` does (it counts them).
                if let Some((timestamp, temperature)) = chart_line(line) {
                    buckets.add(timestamp, temperature);
                }
            }
        }
    };
    let readers = CHART_READERS.min(paths.len()).max(1);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers).map(|_| scope.spawn(read)).collect();
        handles.into_iter().map(|h| h.join().expect("chart reader panicked")).collect()
    });
    let mut all = empty;
    for part in results {
        all.merge(&part?);
    }
    Ok(all)
}

/// The lowest and highest point of each equal slice of `[from_ms, to_ms)`.
#[derive(Debug, Clone)]
struct Buckets {
    from_ms: i64,
    to_ms: i64,
    slices: Vec<Option<(Point, Point)>>,
}

impl Buckets {
    fn new(from_ms: i64, to_ms: i64, slices: usize) -> Self {
        Buckets { from_ms, to_ms, slices: vec![None; slices] }
    }

    fn add(&mut self, timestamp: f64, value: f64) {
        let ms = (timestamp * 1000.0).floor() as i64;
        if ms < self.from_ms || ms >= self.to_ms || !value.is_finite() {
            return;
        }
        let span = (self.to_ms - self.from_ms) as i128;
        let i = ((ms - self.from_ms) as i128 * self.slices.len() as i128 / span) as usize;
        let p = (timestamp, value);
        match &mut self.slices[i] {
            None => self.slices[i] = Some((p, p)),
            Some((lo, hi)) => {
                if lower(p, *lo) {
                    *lo = p;
                }
                if lower(*hi, p) {
                    *hi = p;
                }
            }
        }
    }

    fn merge(&mut self, other: &Buckets) {
        for (mine, theirs) in self.slices.iter_mut().zip(&other.slices) {
            match (mine.as_mut(), theirs) {
                (_, None) => {}
                (None, Some(t)) => *mine = Some(*t),
                (Some((lo, hi)), Some((tlo, thi))) => {
                    if lower(*tlo, *lo) {
                        *lo = *tlo;
                    }
                    if lower(*hi, *thi) {
                        *hi = *thi;
                    }
                }
            }
        }
    }

    /// Each slice's lowest and highest point, in time order.
    fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for &(lo, hi) in self.slices.iter().flatten() {
            let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
            out.push(a);
            if b != a {
                out.push(b);
            }
        }
        out
    }
}

/// Orders points by value, then by time (the earliest of equal values wins): the same
/// readings give the same chart whichever thread saw them first.
fn lower(a: Point, b: Point) -> bool {
    a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)).is_lt()
}

/// Sorts by event time and drops exact repeats (a replay writes the same reading twice).
fn dedup(mut page: ReadingsPage) -> ReadingsPage {
    page.readings.sort_by(|a, b| {
        a.event_time_ms()
            .cmp(&b.event_time_ms())
            .then(a.timestamp.total_cmp(&b.timestamp))
            .then(a.temperature.total_cmp(&b.temperature))
    });
    page.readings.dedup_by(|a, b| {
        a.timestamp == b.timestamp && a.temperature.to_bits() == b.temperature.to_bits()
    });
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveBuffer, LocalStore};
    use crate::index::IndexBatch;

    async fn history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let index = SensorIndex::open(&dir.path().join("index.sqlite")).await.unwrap();
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
        let file = &h.index.files("s", Stream::Readings, 0, i64::MAX).await.unwrap()[0];
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

    #[test]
    fn chart_lines_are_read_by_the_short_path_or_the_parser() {
        let own = serde_json::to_vec(&r("s,\"x\":1", 12.5, -3.25)).unwrap();
        assert_eq!(chart_line(&own), Some((12.5, -3.25)));
        let other = br#"{ "temperature": 7, "sensor_id": "s", "timestamp": 1e3 }"#;
        assert_eq!(chart_line(other), Some((1000.0, 7.0)));
        for bad in [&b"{\"timestamp\": 3, trunc"[..], b"", b"{\"timestamp\":1,\"temperature\":}"] {
            assert_eq!(chart_line(bad), None, "{}", String::from_utf8_lossy(bad));
        }
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
