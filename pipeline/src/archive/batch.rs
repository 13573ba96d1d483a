//! Writing a batch of files durably: appends in parallel up to what the store takes, then
//! one sync; on failure, exactly what is left to write, and what was written.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Dataset, Store, StoreError};

/// One file of a batch, with what the index needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveFile {
    pub path: String,
    pub dataset: Dataset,
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
    pub(super) moved: Vec<String>,
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
    use crate::archive::{ArchiveBuffer, LocalStore};
    use crate::model::Reading;

    fn reading(sensor: &str, t: f64) -> Reading {
        Reading { timestamp: t, sensor_id: sensor.into(), temperature: 21.5 }
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
}
