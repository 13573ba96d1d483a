//! Archive upkeep, run in the background: compaction merges the files of a past day of one
//! sensor's dataset into one file (records repeated by replays kept once), retention deletes
//! files older than the configured age ([`run`] schedules both).
//!
//! Both change the index in one transaction before touching the files it no longer lists,
//! so readers see the old files or the new one, never a mix. Both hold the [`ArchiveGate`]
//! while they work, so no flush appends to a file that is being replaced (a late reading of
//! a compacted day lands in a fresh file, merged by the next run). A crash leaves at worst a
//! file the index does not list: wasted space, never a lost or doubled record.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::archive::{Store, StoreError};
use crate::index::{FileEntry, Index, IndexError};

/// Held by whoever writes archive files: the pipeline's flushes and the upkeep.
pub type ArchiveGate = Arc<Mutex<()>>;

const DAY_MS: i64 = 86_400_000;
/// Days compacted per call, and files expired per call: bounded work per run.
const BATCH: u32 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("archive upkeep stopped: {0}")]
    Task(String),
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpkeepReport {
    /// Sensor-days whose files were merged.
    pub days_compacted: usize,
    /// Files merged into others (and deleted).
    pub files_merged: usize,
    /// Records left out of a merge: repeats of a replay, or lines torn by a crash.
    pub records_dropped: usize,
    /// Files deleted by retention.
    pub files_expired: usize,
}

/// The archive's upkeep. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upkeep {
    pub index: Index,
    pub store: Arc<dyn Store>,
    pub gate: ArchiveGate,
}

impl Upkeep {
    /// Compacts every sensor-day before `today_start_ms` that has more than one file.
    /// `now_ms` names the new files.
    pub async fn compact(
        &self,
        today_start_ms: i64,
        now_ms: i64,
    ) -> Result<UpkeepReport, UpkeepError> {
        let mut report = UpkeepReport::default();
        for (sensor, dataset, day) in self.index.days_to_compact(today_start_ms, BATCH).await? {
            let _writing = self.gate.lock().await;
            let files = self.index.files_of_day(&sensor, dataset, day).await?;
            if files.len() < 2 {
                continue;
            }
            let store = Arc::clone(&self.store);
            let (merged, dropped) =
                blocking(move || merge(store.as_ref(), &files, now_ms)).await??;
            let Merged { new, old } = merged;
            self.store_write(&new).await?;
            let old_paths: Vec<String> = old.iter().map(|f| f.path.clone()).collect();
            self.index.replace_files(&old_paths, Some((&new.entry, dataset)), now_ms).await?;
            self.delete(old_paths).await;
            report.days_compacted += 1;
            report.files_merged += old.len();
            report.records_dropped += dropped;
        }
        Ok(report)
    }

    /// Deletes every file whose records are all older than `before_ms`.
    pub async fn expire(&self, before_ms: i64) -> Result<UpkeepReport, UpkeepError> {
        let mut report = UpkeepReport::default();
        loop {
            let _writing = self.gate.lock().await;
            let files = self.index.files_before(before_ms, BATCH).await?;
            if files.is_empty() {
                return Ok(report);
            }
            let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
            self.index.replace_files(&paths, None, before_ms).await?;
            report.files_expired += paths.len();
            self.delete(paths).await;
        }
    }

    async fn store_write(&self, new: &NewFile) -> Result<(), UpkeepError> {
        let (store, path, bytes) =
            (Arc::clone(&self.store), new.entry.path.clone(), new.bytes.clone());
        blocking(move || store.write_file(&path, &bytes)).await??;
        Ok(())
    }

    /// Deletes files the index no longer lists; a failure only leaves wasted space.
    async fn delete(&self, paths: Vec<String>) {
        let store = Arc::clone(&self.store);
        let result = blocking(move || {
            for path in paths {
                if let Err(e) = store.delete_file(&path) {
                    tracing::warn!("archive upkeep: {e} (the file is no longer indexed)");
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::warn!("archive upkeep: {e}");
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, UpkeepError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| UpkeepError::Task(e.to_string()))
}

struct NewFile {
    entry: FileEntry,
    bytes: Vec<u8>,
}

struct Merged {
    new: NewFile,
    old: Vec<FileEntry>,
}

/// Reads `files` (one sensor-day of one dataset) and builds the file that replaces them:
/// their records once each, by time. Returns it with the number of records left out.
fn merge(
    store: &dyn Store,
    files: &[FileEntry],
    now_ms: i64,
) -> Result<(Merged, usize), StoreError> {
    let mut lines: Vec<(f64, String)> = Vec::new();
    let mut read = 0usize;
    for f in files {
        let bytes = store.read_file(&f.path)?;
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
            read += 1;
            // A line torn by a crash is not a record; the replay wrote it again whole.
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let Some(t) = value.get("timestamp").and_then(serde_json::Value::as_f64) else {
                continue;
            };
            lines.push((t, line.to_owned()));
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    lines.dedup_by(|a, b| a.1 == b.1);
    let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.1.len() + 1).sum());
    for (_, line) in &lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    let dir = files[0].path.rsplit_once('/').map_or("", |(d, _)| d);
    let first_ms = lines.first().map_or(files[0].first_ms, |l| (l.0 * 1000.0) as i64);
    let last_ms = lines.last().map_or(files[0].last_ms, |l| (l.0 * 1000.0) as i64);
    let entry = FileEntry {
        path: format!("{dir}/day-{now_ms}.jsonl"),
        sensor_id: files[0].sensor_id.clone(),
        first_ms,
        last_ms,
        records: lines.len() as i64,
        bytes: bytes.len() as i64,
    };
    let dropped = read - lines.len();
    Ok((Merged { new: NewFile { entry, bytes }, old: files.to_vec() }, dropped))
}

/// The UTC day containing `ms`, as its first millisecond.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Runs the upkeep at start and then every `interval` until `shutdown` turns true: past days
/// compacted, and files older than `retention` (if any) deleted. A failed run is logged and
/// retried at the next interval: the archive stays readable.
#[cfg(feature = "runner")]
pub async fn run(
    upkeep: Upkeep,
    interval: std::time::Duration,
    retention: Option<std::time::Duration>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use crate::runner::metrics;
    use tracing::{info, warn};
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms();
        match upkeep.compact(day_start(now), now).await {
            Ok(r) if r.days_compacted > 0 => {
                metrics::compacted(r.files_merged);
                info!(
                    days = r.days_compacted,
                    files = r.files_merged,
                    dropped = r.records_dropped,
                    "archive compacted"
                );
            }
            Ok(_) => {}
            Err(e) => warn!("archive compaction failed, next try in {interval:?}: {e}"),
        }
        let Some(keep) = retention else { continue };
        match upkeep.expire(now - keep.as_millis() as i64).await {
            Ok(r) if r.files_expired > 0 => {
                metrics::expired(r.files_expired);
                info!(files = r.files_expired, "archive files past the retention deleted");
            }
            Ok(_) => {}
            Err(e) => warn!("archive retention failed, next try in {interval:?}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveBuffer, Dataset, LocalStore};
    use crate::history::History;
    use crate::index::IndexBatch;
    use crate::model::Reading;

    async fn setup() -> (tempfile::TempDir, Upkeep, History) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite")).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().join("archive")));
        let upkeep = Upkeep {
            index: index.clone(),
            store: Arc::clone(&store),
            gate: ArchiveGate::default(),
        };
        (dir, upkeep, History::new(index, store))
    }

    async fn archive(u: &Upkeep, writer: &str, readings: &[Reading]) {
        let mut buf = ArchiveBuffer::new(writer);
        readings.iter().for_each(|r| buf.push_reading(r));
        let files = buf.take_batch().write(u.store.as_ref()).unwrap();
        u.index.record(IndexBatch { files: &files, ..Default::default() }).await.unwrap();
    }

    fn r(t: f64, temp: f64) -> Reading {
        Reading { timestamp: t, sensor_id: "s".into(), temperature: temp }
    }

    const DAY: f64 = 86_400.0;

    #[tokio::test]
    async fn a_past_day_becomes_one_file_with_every_record_once() {
        let (_dir, u, history) = setup().await;
        // Day 1: readings in three hours by two writers, one replayed; day 2 is "today".
        let day1: Vec<Reading> =
            (0..30).map(|i| r(DAY + f64::from(i) * 600.0, f64::from(i))).collect();
        archive(&u, "run1", &day1[..20]).await;
        archive(&u, "run2", &day1[15..]).await;
        archive(&u, "run2", &[r(2.0 * DAY + 5.0, 1.0), r(2.0 * DAY + 3_700.0, 2.0)]).await;
        let before = history.readings("s", 0, 3 * DAY as i64 * 1000).await.unwrap().readings;
        let day1_files = u.index.files_of_day("s", Dataset::Readings, 1);
        assert!(day1_files.await.unwrap().len() > 2);

        let report = u.compact(2 * 86_400_000, 999).await.unwrap();
        assert_eq!(report.days_compacted, 1, "today is left alone");
        assert_eq!(report.records_dropped, 5, "the replayed readings are kept once");
        let files = u.index.files_of_day("s", Dataset::Readings, 1).await.unwrap();
        assert_eq!(files.len(), 1);
        assert!(files[0].path.ends_with("/s/1970-01-02/day-999.jsonl"), "{}", files[0].path);
        assert_eq!(files[0].records, 30);
        let after = history.readings("s", 0, 3 * DAY as i64 * 1000).await.unwrap().readings;
        assert_eq!(after, before, "history reads the same before and after");
        // The merged files are gone from the store; a second run has nothing to do.
        let names = u.store.list("/temperature_data/s/1970-01-02").unwrap();
        assert_eq!(names, ["day-999.jsonl"]);
        assert_eq!(u.compact(2 * 86_400_000, 1_000).await.unwrap(), UpkeepReport::default());
    }

    #[tokio::test]
    async fn a_late_file_for_a_compacted_day_is_merged_by_the_next_run() {
        let (_dir, u, history) = setup().await;
        archive(&u, "a", &[r(DAY, 1.0)]).await;
        archive(&u, "b", &[r(DAY + 1.0, 2.0)]).await;
        u.compact(2 * 86_400_000, 1).await.unwrap();
        archive(&u, "c", &[r(DAY + 2.0, 3.0)]).await;
        let report = u.compact(2 * 86_400_000, 2).await.unwrap();
        assert_eq!((report.days_compacted, report.files_merged), (1, 2));
        let all = history.readings("s", 0, 2 * DAY as i64 * 1000).await.unwrap().readings;
        assert_eq!(all.iter().map(|r| r.temperature).collect::<Vec<_>>(), [1.0, 2.0, 3.0]);
    }

    #[tokio::test]
    async fn retention_deletes_old_files_from_index_and_store() {
        let (_dir, u, history) = setup().await;
        archive(&u, "w", &[r(DAY, 1.0), r(3.0 * DAY, 2.0)]).await;
        let report = u.expire(2 * 86_400_000).await.unwrap();
        assert_eq!(report.files_expired, 1);
        let left = history.readings("s", 0, 4 * DAY as i64 * 1000).await.unwrap().readings;
        assert_eq!(left.iter().map(|r| r.temperature).collect::<Vec<_>>(), [2.0]);
        assert!(u.store.list("/temperature_data/s/1970-01-02").unwrap().is_empty());
        assert_eq!(u.expire(2 * 86_400_000).await.unwrap(), UpkeepReport::default());
    }

    #[test]
    fn days_start_at_utc_midnight() {
        assert_eq!(day_start(86_400_000 + 5), 86_400_000);
        assert_eq!(day_start(-1), -86_400_000);
    }
}
