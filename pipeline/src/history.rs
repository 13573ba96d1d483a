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
    /// extremes kept (see [`downsample`]).
    pub async fn chart(
        &self,
        sensor_id: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: usize,
    ) -> Result<Vec<Point>, HistoryError> {
        let page = self.readings(sensor_id, from_ms, to_ms).await?;
        let series: Vec<Point> =
            page.readings.iter().map(|r| (r.timestamp, r.temperature)).collect();
        Ok(downsample(&series, max_points))
    }
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
