//! What the run loop consumed or produced since its last flush, waiting to be made durable,
//! and the offsets of the flushes it started: the loop's state, kept apart from its I/O so
//! that what a flush carries and what a released partition takes with it are tested here
//! without a broker.

use std::collections::{BTreeMap, HashMap};

use crate::archive::{ArchiveBuffer, ArchiveFile, Batch};
use crate::index::OutboxRecord;
use crate::model::{EncodedAlert, Reading, SensorWindow};
use crate::processor::SensorSnapshot;
use crate::topics;

/// Archive data and outgoing messages (alerts, dead letters) buffered beyond this are flushed
/// at once rather than at the next tick, after the flush in flight (if any) is done: the
/// bound on what waits in memory, and the point where a slow archive or broker slows
/// consumption down rather than memory growing.
pub const FLUSH_BYTES: usize = 8 << 20;

/// One flush's worth of data, owned, on its way to durability.
#[derive(Debug)]
pub struct Flush {
    pub batch: Batch,
    pub alerts: Vec<EncodedAlert>,
    pub windows: Vec<SensorWindow>,
    /// The state of the sensors that changed, each with the partition its readings come from.
    pub snapshots: Vec<(i32, SensorSnapshot)>,
    /// Next offset per partition of the readings topic, consumed up to this flush.
    pub offsets: Vec<(i32, i64)>,
    /// Alerts and dead letters, recorded in the index's outbox with the flush and deleted
    /// from it once the broker acknowledged them.
    pub outgoing: Vec<OutboxRecord>,
}

/// What waits for the next flush.
#[derive(Debug)]
pub struct Pending {
    archive: ArchiveBuffer,
    alerts: Vec<EncodedAlert>,
    windows: Vec<SensorWindow>,
    outgoing: Vec<OutboxRecord>,
    /// Bytes held by `outgoing`.
    outgoing_bytes: usize,
    /// Next offset to commit per partition of the readings topic (the only one consumed).
    offsets: BTreeMap<i32, i64>,
    /// The offsets of every flush started so far, by partition: durable once the flush in
    /// flight settled, and committed synchronously then when a partition is released.
    flushed: BTreeMap<i32, i64>,
    /// The partition each sensor's readings come from: its state is saved and restored
    /// with that partition.
    partition_of: HashMap<Box<str>, i32>,
}

impl Pending {
    /// Nothing pending yet; `archive` buffers what the next flush writes.
    pub fn new(archive: ArchiveBuffer) -> Pending {
        Pending {
            archive,
            alerts: Vec::new(),
            windows: Vec::new(),
            outgoing: Vec::new(),
            outgoing_bytes: 0,
            offsets: BTreeMap::new(),
            flushed: BTreeMap::new(),
            partition_of: HashMap::new(),
        }
    }

    /// A valid reading read from `partition`.
    pub fn reading(&mut self, reading: &Reading, partition: i32) {
        if self.partition_of.get(reading.sensor_id.as_str()) != Some(&partition) {
            self.partition_of.insert(reading.sensor_id.as_str().into(), partition);
        }
        self.archive.push_reading(reading);
    }

    /// A sensor whose state was restored with `partition`.
    pub fn restored(&mut self, sensor_id: &str, partition: i32) {
        self.partition_of.insert(sensor_id.into(), partition);
    }

    /// An alert: for the archive, the index, and the alerts topic (keyed by sensor, so that
    /// one sensor's alerts stay in order).
    pub fn alert(&mut self, alert: EncodedAlert) {
        self.archive.push_alert(&alert);
        self.push(OutboxRecord {
            topic: topics::ALERTS.into(),
            key: alert.alert().sensor_id.clone().into_bytes(),
            payload: alert.json().as_bytes().to_vec(),
            headers: Vec::new(),
        });
        self.alerts.push(alert);
    }

    /// A window result (first or revised), for the index.
    pub fn window(&mut self, window: SensorWindow) {
        self.windows.push(window);
    }

    /// A message for the broker (a dead letter, an alert's record).
    pub fn push(&mut self, message: OutboxRecord) {
        self.outgoing_bytes += message.size();
        self.outgoing.push(message);
    }

    /// The message at `offset` of `partition` was read, whatever became of it.
    pub fn consumed(&mut self, partition: i32, offset: i64) {
        self.offsets.insert(partition, offset + 1);
    }

    /// Bytes waiting for the next flush: the archive's and the outgoing messages'.
    pub fn bytes(&self) -> usize {
        self.archive.pending_bytes() + self.outgoing_bytes
    }

    /// Whether the bound on what waits is reached: flush now, not at the next tick.
    pub fn is_full(&self) -> bool {
        self.bytes() >= FLUSH_BYTES
    }

    /// Whether a flush would have nothing to do. Ticks raise alerts without consuming
    /// anything (a sensor went offline): those count.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
            && self.archive.is_empty()
            && self.outgoing.is_empty()
            && self.windows.is_empty()
    }

    /// Cuts everything pending into a flush, with the snapshots of the sensors that changed
    /// (each goes with its partition; a sensor whose partition is not known has neither read
    /// nor been restored here, and is left out).
    pub fn cut(&mut self, changed: Vec<SensorSnapshot>) -> Flush {
        let snapshots = changed
            .into_iter()
            .filter_map(|s| Some((*self.partition_of.get(s.sensor_id.as_str())?, s)))
            .collect();
        self.flushed.extend(self.offsets.iter().map(|(p, o)| (*p, *o)));
        self.outgoing_bytes = 0;
        Flush {
            batch: self.archive.take_batch(),
            alerts: std::mem::take(&mut self.alerts),
            windows: std::mem::take(&mut self.windows),
            snapshots,
            offsets: std::mem::take(&mut self.offsets).into_iter().collect(),
            outgoing: std::mem::take(&mut self.outgoing),
        }
    }

    /// The flush in flight settled: these of its files went to a later part than the first
    /// (see [`ArchiveBuffer::written`]).
    pub fn settled(&mut self, later_parts: &[ArchiveFile]) {
        self.archive.written(later_parts);
    }

    /// Releases `partitions` once everything consumed from them is flushed and settled:
    /// the offsets to commit before they go, and the sensors whose state goes with them.
    pub fn release(&mut self, partitions: &[i32]) -> (BTreeMap<i32, i64>, Vec<Box<str>>) {
        let offsets =
            partitions.iter().filter_map(|p| Some((*p, self.flushed.remove(p)?))).collect();
        let sensors =
            self.partition_of.extract_if(|_, p| partitions.contains(p)).map(|(s, _)| s).collect();
        (offsets, sensors)
    }

    /// The offsets of every flush started, to commit at shutdown; forgotten here.
    pub fn take_flushed(&mut self) -> BTreeMap<i32, i64> {
        std::mem::take(&mut self.flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, AlertKind, AlertState, Level};
    use crate::processor::{Output, Processor, ProcessorConfig};

    fn reading(sensor: &str, timestamp: f64) -> Reading {
        Reading { timestamp, sensor_id: sensor.into(), temperature: 21.0 }
    }

    fn record(bytes: usize) -> OutboxRecord {
        OutboxRecord {
            topic: "t".into(),
            key: b"k".to_vec(),
            payload: vec![b'x'; bytes],
            headers: vec![("h".into(), "v".into())],
        }
    }

    fn pending() -> Pending {
        Pending::new(ArchiveBuffer::new("w"))
    }

    /// The snapshots a processor takes of `sensors` after one reading each.
    fn snapshots(sensors: &[&str]) -> Vec<SensorSnapshot> {
        let mut processor = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        for s in sensors {
            processor.process(&reading(s, 1_700_000_000.0), 1_700_000_000_000, &mut out);
        }
        let mut changed = Vec::new();
        processor.take_changed(&mut changed);
        changed
    }

    #[test]
    fn a_fresh_state_has_nothing_to_flush() {
        let p = pending();
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn a_rejected_message_alone_is_worth_a_flush_its_offset_and_its_dead_letter() {
        let mut p = pending();
        p.push(record(10));
        p.consumed(0, 41);
        assert!(!p.is_empty());
        assert_eq!(p.bytes(), 1 + 10 + 2);
        let flush = p.cut(Vec::new());
        assert_eq!(flush.offsets, [(0, 42)]);
        assert_eq!(flush.outgoing, [record(10)]);
        assert_eq!(flush.batch.records(), 0);
        assert!(p.is_empty());
        assert_eq!(p.bytes(), 0);
    }

    #[test]
    fn the_next_offset_of_each_partition_is_the_last_read_plus_one() {
        let mut p = pending();
        for (partition, offset) in [(0, 5), (1, 9), (0, 6), (2, 0)] {
            p.consumed(partition, offset);
        }
        assert_eq!(p.cut(Vec::new()).offsets, [(0, 7), (1, 10), (2, 1)]);
    }

    #[test]
    fn a_flush_carries_readings_alerts_windows_and_only_snapshots_of_known_partitions() {
        let mut p = pending();
        p.reading(&reading("a", 1_700_000_000.0), 3);
        p.restored("b", 4);
        let alert = Alert {
            alert_id: Alert::id_for(AlertKind::Instant, "a", 1_700_000_000_000),
            kind: AlertKind::Instant,
            severity: Level::High,
            state: AlertState::Open,
            sensor_id: "a".into(),
            timestamp: 1_700_000_000.0,
            temperature: 81.0,
            threshold: 80.0,
            window: None,
        };
        p.alert(alert.clone().into());
        p.consumed(3, 0);
        let flush = p.cut(snapshots(&["a", "b", "c"]));
        assert_eq!(flush.batch.records(), 2, "the reading and the alert are archived");
        assert_eq!(flush.alerts.len(), 1);
        assert_eq!(flush.alerts[0].alert(), &alert);
        let [message] = &flush.outgoing[..] else { panic!("one message: {:?}", flush.outgoing) };
        assert_eq!((message.topic.as_str(), message.key.as_slice()), (topics::ALERTS, &b"a"[..]));
        let sent: Alert = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(sent, alert, "the alerts topic carries the alert itself");
        let mut partitions: Vec<_> =
            flush.snapshots.iter().map(|(p, s)| (*p, s.sensor_id.clone())).collect();
        partitions.sort();
        assert_eq!(partitions, [(3, "a".to_owned()), (4, "b".to_owned())]);
    }

    #[test]
    fn the_buffer_is_full_at_its_bound_counting_outgoing_messages() {
        let mut p = pending();
        p.push(record(FLUSH_BYTES - 5));
        assert!(!p.is_full());
        p.push(record(2));
        assert!(p.is_full());
        p.cut(Vec::new());
        assert!(!p.is_full());
    }

    #[test]
    fn a_released_partition_takes_its_flushed_offsets_and_its_sensors_only() {
        let mut p = pending();
        p.reading(&reading("a", 1.0), 0);
        p.reading(&reading("b", 1.0), 1);
        p.reading(&reading("c", 1.0), 1);
        p.consumed(0, 10);
        p.consumed(1, 20);
        p.cut(Vec::new());
        // Read after the last flush: not durable, not committed on release.
        p.consumed(1, 21);
        let (offsets, mut sensors) = p.release(&[1, 7]);
        sensors.sort();
        assert_eq!(offsets, BTreeMap::from([(1, 21)]));
        assert_eq!(sensors, [Box::from("b"), Box::from("c")]);
        assert_eq!(p.take_flushed(), BTreeMap::from([(0, 11)]));
        // Its sensors' later snapshots no longer have a partition.
        assert!(p.cut(snapshots(&["b"])).snapshots.is_empty());
    }

    #[test]
    fn a_sensor_that_moved_partition_is_saved_with_the_new_one() {
        let mut p = pending();
        p.reading(&reading("a", 1.0), 0);
        p.reading(&reading("a", 2.0), 5);
        let flush = p.cut(snapshots(&["a"]));
        assert_eq!(flush.snapshots[0].0, 5);
        let (_, sensors) = p.release(&[0]);
        assert!(sensors.is_empty());
    }
}
