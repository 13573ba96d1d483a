//! Records waiting for the next flush, grouped by the file each is appended to (a dataset, a
//! sensor and an hour of event time), and the part each file is in: pure, no I/O.

use rustc_hash::FxHashMap;

use super::{ArchiveFile, Batch, Dataset, HOUR_MS, MAX_FILE_BYTES};
use crate::model::{EncodedAlert, Reading};

/// One archive file being appended to: a dataset, a sensor and an hour of event time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct FileKey {
    dataset: Dataset,
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
    /// Per dataset and hour, per sensor: what the next flush appends.
    segments: FxHashMap<(Dataset, i64), FxHashMap<Box<str>, Segment>>,
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
        self.push(Dataset::Readings, &reading.sensor_id, reading.event_time_ms(), |lines| {
            // Serializing our own type into a Vec cannot fail.
            serde_json::to_writer(lines, reading).expect("readings serialize");
        });
    }

    /// An alert, as the JSON it already carries.
    pub fn push_alert(&mut self, encoded: &EncodedAlert) {
        let alert = encoded.alert();
        let ms = (alert.timestamp * 1000.0).floor() as i64;
        self.push(Dataset::of_alert(alert.kind), &alert.sensor_id, ms, |lines| {
            lines.extend_from_slice(encoded.json().as_bytes());
        });
    }

    /// Appends one line to its file's segment; `write` writes the line without its break.
    #[inline]
    fn push(
        &mut self,
        dataset: Dataset,
        sensor_id: &str,
        ms: i64,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let by_sensor = self.segments.entry((dataset, ms.div_euclid(HOUR_MS))).or_default();
        let seg = match by_sensor.get_mut(sensor_id) {
            Some(seg) => seg,
            None => by_sensor.entry(sensor_id.into()).or_insert(Segment {
                first_ms: ms,
                last_ms: ms,
                ..Segment::default()
            }),
        };
        let before = seg.lines.len();
        write(&mut seg.lines);
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
    /// dataset, sensor and hour, the next part once one passes [`MAX_FILE_BYTES`].
    pub fn take_batch(&mut self) -> Batch {
        let mut sizes = FxHashMap::default();
        let mut files = Vec::new();
        for ((dataset, hour), by_sensor) in std::mem::take(&mut self.segments) {
            for (sensor_id, seg) in by_sensor {
                let key = FileKey { dataset, hour, sensor_id };
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
                        dataset.root(),
                        key.sensor_id,
                        self.writer_id
                    ),
                    dataset,
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
                dataset: f.dataset,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, AlertKind, AlertState, Level};

    fn reading(sensor: &str, t: f64) -> Reading {
        Reading { timestamp: t, sensor_id: sensor.into(), temperature: 21.5 }
    }

    #[test]
    fn groups_records_by_dataset_sensor_and_hour() {
        let mut buf = ArchiveBuffer::new("w1");
        buf.push_reading(&reading("a", 86_399.0));
        buf.push_reading(&reading("a", 86_400.5));
        buf.push_reading(&reading("a", 10.0));
        buf.push_reading(&reading("a", 20.0));
        buf.push_reading(&reading("b", 20.0));
        let alert = Alert {
            alert_id: "x".into(),
            kind: AlertKind::Instant,
            severity: Level::High,
            state: AlertState::Open,
            sensor_id: "a".into(),
            timestamp: 30.0,
            temperature: 81.0,
            threshold: 80.0,
            window: None,
        };
        buf.push_alert(&alert.into());
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
