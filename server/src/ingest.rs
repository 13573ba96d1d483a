//! The pipeline task: Kafka readings in, through the pure core, out to the alerts topic, the
//! dead-letter topic, the archive and the live view.
//!
//! Offsets are committed only after the archive batch that covers them is durable, the index
//! knows it, and every alert and dead letter produced from them is acknowledged by the broker:
//! a crash replays readings, it never loses them. Those messages are also in the index's
//! outbox from the flush's transaction on (the offsets saved there skip their readings at the
//! next start), and the next start sends what a crash left there.
//!
//! Rebalances are applied here, between messages: a revoked partition is flushed and
//! committed before it is released, and an assigned one starts where this instance's saved
//! state is still current (its sensors' state restored) or else at the group's committed
//! offset with fresh state. See ARCHITECTURE.md, "Restarts and rebalances".

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use thermoalert_app::live::LiveHub;
use thermoalert_app::settings;
use thermoalert_pipeline::archive::{ArchiveBuffer, ArchiveFile, Batch, Store};
use thermoalert_pipeline::dead_letter::{DeadLetter, Source};
use thermoalert_pipeline::index::{IndexBatch, OutboxRecord, SensorIndex};
use thermoalert_pipeline::kafka::{self, ReadingsConsumer, Rebalance, Rebalances};
use thermoalert_pipeline::model::{Alert, Reading, SensorWindow};
use thermoalert_pipeline::parse::{ParseLimits, parse_reading_into};
use thermoalert_pipeline::processor::{Output, Processor, SensorSnapshot};
use thermoalert_pipeline::topics;
use thermoalert_pipeline::upkeep::ArchiveGate;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::telemetry;

/// Archive data and outgoing messages (alerts, dead letters) buffered beyond this are flushed
/// at once rather than at the next tick, after the flush in flight (if any) is done: the
/// bound on what waits in memory, and the point where a slow archive or broker slows
/// consumption down rather than memory growing.
const FLUSH_BYTES: usize = 8 << 20;
/// How long a delivery to Kafka may take before it counts as failed and is sent again.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the task needs.
pub struct Ingest {
    pub consumer: Arc<ReadingsConsumer>,
    pub processor: Processor,
    pub sinks: Sinks,
    pub hub: LiveHub,
    pub writer_id: String,
    pub flush_interval: Duration,
    /// Rebalances queued by the consumer, applied by the task.
    pub rebalances: Rebalances,
    /// Thresholds operators changed on the dashboard.
    pub setting_changes: tokio::sync::mpsc::UnboundedReceiver<settings::Change>,
    /// What a message must be to be a reading.
    pub limits: ParseLimits,
    /// Counts readings refused because the sensor limit is reached (the web's banner says so).
    pub sensor_limit: SensorLimit,
    /// How far behind the consumer is (readiness says when too far).
    pub delay: ConsumerDelay,
}

/// How far behind the newest readings the consumer is: the age of the last message it read,
/// or zero once [`CAUGHT_UP_AFTER`] passes without one (caught up, or nothing comes). Past the
/// readings topic's retention, the broker deletes readings before they are read. Cheap to
/// clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerDelay {
    age_ms: Arc<AtomicI64>,
    /// Processing time of the last message read (epoch ms).
    read_ms: Arc<AtomicI64>,
}

/// Silence after which the consumer counts as caught up.
const CAUGHT_UP_AFTER: Duration = Duration::from_secs(5);

impl ConsumerDelay {
    /// The age of the last message read.
    pub fn behind(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.age_ms.load(Ordering::Relaxed)).unwrap_or(0))
    }

    fn observe(&self, now_ms: i64, created_ms: i64) {
        self.age_ms.store((now_ms - created_ms).max(0), Ordering::Relaxed);
        self.read_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Called every second with the processing time.
    fn tick(&self, now_ms: i64) {
        let silent = now_ms - self.read_ms.load(Ordering::Relaxed);
        if silent > CAUGHT_UP_AFTER.as_millis() as i64 {
            self.age_ms.store(0, Ordering::Relaxed);
        }
        telemetry::consumer_delay(self.behind());
    }
}

/// The sensor limit as the web sees it: how many readings of sensors beyond
/// `THERMO_MAX_SENSORS` were set aside. Cheap to clone; clones share the count.
#[derive(Debug, Clone, Default)]
pub struct SensorLimit {
    pub max: usize,
    refused: Arc<AtomicU64>,
}

impl SensorLimit {
    pub fn new(max: usize) -> SensorLimit {
        SensorLimit { max, refused: Arc::default() }
    }

    /// Readings refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where flushed data goes; cheap to clone, so a flush runs as a task of its own while the
/// consumer goes on reading.
#[derive(Clone)]
pub struct Sinks {
    pub consumer: Arc<ReadingsConsumer>,
    pub producer: FutureProducer,
    pub store: Arc<dyn Store>,
    pub index: SensorIndex,
    /// Held while writing the archive and indexing it: the upkeep never replaces a file
    /// that a flush is appending to.
    pub gate: ArchiveGate,
}

/// One flush's worth of data, owned, on its way to durability.
struct Flush {
    batch: Batch,
    alerts: Vec<Alert>,
    windows: Vec<SensorWindow>,
    snapshots: Vec<(i32, SensorSnapshot)>,
    offsets: Vec<(i32, i64)>,
    /// Alerts and dead letters, recorded in the index's outbox with the flush and deleted
    /// from it once the broker acknowledged them.
    outgoing: Vec<OutboxRecord>,
}

/// What was consumed or produced since the last flush, waiting to be made durable.
struct Pending {
    archive: ArchiveBuffer,
    alerts: Vec<Alert>,
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
    fn push(&mut self, message: OutboxRecord) {
        self.outgoing_bytes += message.size();
        self.outgoing.push(message);
    }

    /// Bytes waiting for the next flush: the archive's and the outgoing messages'.
    fn bytes(&self) -> usize {
        self.archive.pending_bytes() + self.outgoing_bytes
    }

    fn is_empty(&self) -> bool {
        self.offsets.is_empty()
            && self.archive.is_empty()
            && self.outgoing.is_empty()
            && self.windows.is_empty()
    }
}

/// How often processing time is handed to the core (idle windows, offline sensors).
const TICK: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Ingest {
    /// Runs until `shutdown` turns true, then flushes and commits what it has.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let limits = self.limits;
        let mut pending = Pending {
            archive: ArchiveBuffer::new(self.writer_id.clone()),
            alerts: Vec::new(),
            windows: Vec::new(),
            outgoing: Vec::new(),
            outgoing_bytes: 0,
            offsets: BTreeMap::new(),
            flushed: BTreeMap::new(),
            partition_of: HashMap::new(),
        };
        let mut out = Output::default();
        // Reused for every message: parsing allocates nothing.
        let mut reading = Reading { timestamp: 0.0, sensor_id: String::new(), temperature: 0.0 };
        let mut flush_tick = tokio::time::interval(self.flush_interval);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut core_tick = tokio::time::interval(TICK);
        core_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut processed: u64 = 0;
        let readings_in = telemetry::readings_counter();
        // At most one flush runs while the loop consumes the next batch; flushes complete in
        // order, so commits only ever move forward.
        // What an earlier run left in the outbox goes first, as if it were a flush in flight.
        let mut in_flight: InFlight = Some(tokio::spawn(self.sinks.clone().redeliver()));
        loop {
            tokio::select! {
                // In this order: the live view's batch goes out only when nothing else is
                // ready (a batch per burst of messages, not per message).
                biased;
                _ = shutdown.changed() => break,
                Some((sensor, thresholds)) = self.setting_changes.recv() => {
                    self.processor.set_thresholds(&sensor, thresholds);
                }
                _ = self.rebalances.changed() => {
                    while let Some(change) = self.rebalances.next() {
                        self.rebalance(change, &mut pending, &mut in_flight).await?;
                    }
                }
                _ = flush_tick.tick() => {
                    // A slow archive (HDFS, many sensors) must not stall the live view and
                    // the alerts: while the last flush runs, readings keep coming into the
                    // buffer, up to FLUSH_BYTES.
                    if in_flight.as_ref().is_none_or(JoinHandle::is_finished) {
                        self.flush(&mut pending, &mut in_flight).await?;
                    }
                }
                _ = core_tick.tick() => {
                    self.delay.tick(now_ms());
                    self.processor.tick(now_ms(), &mut out);
                    self.emit(&mut out, &mut pending);
                }
                msg = self.consumer.recv() => {
                    let msg = match msg {
                        Ok(m) => m,
                        Err(e) => {
                            warn!("kafka consumer: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                    let bytes = msg.payload().unwrap_or_default();
                    let now = now_ms();
                    if let Some(created) = msg.timestamp().to_millis() {
                        self.delay.observe(now, created);
                    }
                    match parse_reading_into(bytes, now as f64 / 1000.0, &limits, &mut reading) {
                        Ok(()) if !self.processor.admits(&reading.sensor_id) => {
                            telemetry::rejected(SENSOR_LIMIT);
                            self.sensor_limit.refuse();
                            let detail = format!(
                                "sensor `{}` is beyond the {} sensors tracked at most \
                                 (THERMO_MAX_SENSORS)",
                                reading.sensor_id, self.sensor_limit.max
                            );
                            pending.push(dead_letter(&msg, bytes, SENSOR_LIMIT, &detail));
                        }
                        Ok(()) => {
                            let partition = msg.partition();
                            if pending.partition_of.get(reading.sensor_id.as_str()) != Some(&partition) {
                                pending.partition_of.insert(reading.sensor_id.as_str().into(), partition);
                            }
                            let level = self.processor.process(&reading, now, &mut out);
                            readings_in.increment(1);
                            pending.archive.push_reading(&reading);
                            self.hub.publish_reading(&reading, level);
                            self.emit(&mut out, &mut pending);
                        }
                        Err(rejection) => {
                            telemetry::rejected(rejection.code());
                            let detail = rejection.to_string();
                            pending.push(dead_letter(&msg, bytes, rejection.code(), &detail));
                        }
                    }
                    processed += 1;
                    pending.offsets.insert(msg.partition(), msg.offset() + 1);
                    if pending.bytes() >= FLUSH_BYTES {
                        self.flush(&mut pending, &mut in_flight).await?;
                    }
                }
                () = std::future::ready(()), if self.hub.has_unsent() => self.hub.flush(),
            }
        }
        self.flush(&mut pending, &mut in_flight).await?;
        settle(&mut in_flight, &mut pending).await?;
        self.commit_sync(std::mem::take(&mut pending.flushed)).await;
        // Closing the consumer revokes what it holds: nothing is left to flush.
        self.rebalances.apply_directly();
        while let Some(change) = self.rebalances.next() {
            let applied = match change {
                Rebalance::Assign(_) => Ok(()),
                Rebalance::Revoke(partitions) => kafka::unassign(&*self.consumer, &partitions),
            };
            applied.context("releasing partitions at shutdown")?;
        }
        info!(processed, "pipeline stopped");
        Ok(())
    }

    /// Applies one rebalance queued by the consumer.
    async fn rebalance(
        &mut self,
        change: Rebalance,
        pending: &mut Pending,
        in_flight: &mut InFlight,
    ) -> anyhow::Result<()> {
        self.hub.flush();
        match change {
            Rebalance::Revoke(partitions) => {
                // Everything consumed so far is made durable and committed first: the next
                // owner starts exactly after it.
                self.flush(pending, in_flight).await?;
                settle(in_flight, pending).await?;
                let released = partitions
                    .iter()
                    .filter_map(|p| Some((*p, pending.flushed.remove(p)?)))
                    .collect();
                self.commit_sync(released).await;
                let mut forgotten = 0;
                pending.partition_of.retain(|sensor, p| {
                    let keep = !partitions.contains(p);
                    if !keep {
                        forgotten += usize::from(self.processor.forget(sensor));
                    }
                    keep
                });
                kafka::unassign(&*self.consumer, &partitions).context("releasing partitions")?;
                info!(?partitions, sensors = forgotten, "partitions revoked after a flush");
            }
            Rebalance::Assign(partitions) => {
                let starts = loop {
                    match self.prepare(&partitions, pending).await {
                        Ok(starts) => break starts,
                        Err(e) => {
                            error!("cannot prepare assigned partitions, retrying in 1s: {e:#}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                kafka::assign(&*self.consumer, &starts).context("taking partitions")?;
            }
        }
        Ok(())
    }

    /// Where each assigned partition starts. This instance's saved state of a partition is
    /// current unless the group committed past it (another instance processed the partition
    /// since): then it is forgotten and the partition starts at the committed offset.
    async fn prepare(
        &mut self,
        partitions: &[i32],
        pending: &mut Pending,
    ) -> anyhow::Result<Vec<(i32, Offset)>> {
        let consumer = Arc::clone(&self.consumer);
        let asked = partitions.to_vec();
        let committed = tokio::task::spawn_blocking(move || {
            kafka::committed(&*consumer, &asked, Duration::from_secs(10))
        })
        .await
        .context("the committed offsets lookup panicked")?
        .context("looking up the group's committed offsets")?;
        let saved: HashMap<i32, i64> = self.sinks.index.offsets().await?.into_iter().collect();
        let mut starts = Vec::with_capacity(partitions.len());
        let mut current = Vec::new();
        for (partition, committed) in committed {
            match saved.get(&partition) {
                Some(&saved) if committed.is_none_or(|c| saved >= c) => {
                    starts.push((partition, Offset::Offset(saved)));
                    current.push(partition);
                }
                stale => {
                    if stale.is_some() {
                        self.sinks.index.forget_partition(partition).await?;
                    }
                    starts.push((partition, committed.map_or(Offset::Stored, Offset::Offset)));
                }
            }
        }
        let snapshots = self.sinks.index.snapshots(&current).await?;
        let sensors = snapshots.len();
        let mut restored = Vec::with_capacity(sensors);
        for (partition, snapshot) in snapshots {
            pending.partition_of.insert(snapshot.sensor_id.as_str().into(), partition);
            restored.push(snapshot);
        }
        self.processor.restore(restored, now_ms());
        info!(?starts, sensors, "partitions assigned; sensor state restored");
        Ok(starts)
    }

    /// Carries what the core emitted to the live view and the pending archive, index and
    /// alerts topic.
    fn emit(&self, out: &mut Output, pending: &mut Pending) {
        for window in out.windows.drain(..) {
            self.hub.publish_window(&window);
            pending.windows.push(window);
        }
        for alert in out.alerts.drain(..) {
            telemetry::alert(&alert);
            pending.archive.push_alert(&alert);
            self.hub.publish_alert(&alert);
            pending.push(OutboxRecord {
                topic: topics::ALERTS.into(),
                key: alert.sensor_id.clone().into_bytes(),
                payload: serde_json::to_vec(&alert).expect("alerts serialize"),
                headers: Vec::new(),
            });
            pending.alerts.push(alert);
        }
    }

    /// Commits `offsets` (durable: their flushes settled) to the group and waits for the
    /// broker's answer: before a partition is released, so that its next owner starts right
    /// after them, and at shutdown. A failure is logged: the next owner then replays a little.
    async fn commit_sync(&self, offsets: BTreeMap<i32, i64>) {
        if offsets.is_empty() {
            return;
        }
        let consumer = Arc::clone(&self.consumer);
        let committed = tokio::task::spawn_blocking(move || {
            consumer.commit(&offset_list(offsets)?, CommitMode::Sync)
        })
        .await;
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("offset commit failed: {e}"),
            Err(e) => warn!("offset commit panicked: {e}"),
        }
    }

    /// Cuts what is pending into a flush and starts it once the previous one is done.
    async fn flush(
        &mut self,
        pending: &mut Pending,
        in_flight: &mut InFlight,
    ) -> anyhow::Result<()> {
        // This may wait for the archive; the live view does not.
        self.hub.flush();
        // Ticks raise alerts without consuming anything (a sensor went offline): those must
        // go out too, so only a flush with nothing at all to do returns early.
        if pending.is_empty() {
            return Ok(());
        }
        if in_flight.is_some() {
            let waited = in_flight.as_ref().is_some_and(|f| !f.is_finished());
            let since = std::time::Instant::now();
            settle(in_flight, pending).await?;
            if waited {
                telemetry::paused(since.elapsed());
            }
        }
        // The core's state as of the last consumed message, made durable together with it.
        let mut changed = Vec::new();
        self.processor.take_changed(&mut changed);
        // A sensor only raises alerts on ticks after a reading or a restore, both of which
        // record its partition.
        let snapshots = changed
            .into_iter()
            .filter_map(|s| Some((*pending.partition_of.get(s.sensor_id.as_str())?, s)))
            .collect();
        telemetry::core(&self.processor.counters(), self.processor.sensors());
        pending.flushed.extend(pending.offsets.iter().map(|(p, o)| (*p, *o)));
        let flush = Flush {
            batch: pending.archive.take_batch(),
            alerts: std::mem::take(&mut pending.alerts),
            windows: std::mem::take(&mut pending.windows),
            snapshots,
            offsets: std::mem::take(&mut pending.offsets).into_iter().collect(),
            outgoing: std::mem::take(&mut pending.outgoing),
        };
        pending.outgoing_bytes = 0;
        *in_flight = Some(tokio::spawn(self.sinks.clone().make_durable(flush)));
        Ok(())
    }
}

/// `(partition, next offset)` of the readings topic as a partition list.
fn offset_list(
    offsets: impl IntoIterator<Item = (i32, i64)>,
) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topics::READINGS, partition, Offset::Offset(offset))?;
    }
    Ok(list)
}

/// Runs `step` until it succeeds, logging each failure and waiting a second between tries:
/// for the index steps of a flush, which cannot be skipped without losing data.
async fn until_ok<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut step: impl FnMut() -> F,
) -> T {
    loop {
        match step().await {
            Ok(done) => return done,
            Err(e) => {
                error!("{what} failed, retrying in 1s: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The flush being made durable, if any: its task returns the files the archive buffer must
/// know about (see [`ArchiveBuffer::written`]).
type InFlight = Option<JoinHandle<anyhow::Result<Vec<ArchiveFile>>>>;

/// Waits for the flush in flight, if any, and tells the archive buffer where its files went.
async fn settle(in_flight: &mut InFlight, pending: &mut Pending) -> anyhow::Result<()> {
    if let Some(flush) = in_flight.take() {
        let later_parts = flush.await.context("a flush panicked")??;
        pending.archive.written(&later_parts);
    }
    Ok(())
}

impl Sinks {
    /// Makes a flush durable (archive, then index, then the broker's acknowledgements), and
    /// only then commits its offsets. Each step is retried until it succeeds: skipping one
    /// would lose data. Returns the files written to a later part than the first (without
    /// their contents), for the archive buffer to continue in.
    async fn make_durable(self, flush: Flush) -> anyhow::Result<Vec<ArchiveFile>> {
        let started = std::time::Instant::now();
        let Flush { mut batch, alerts, windows, snapshots, offsets, outgoing } = flush;
        let writing = self.gate.lock().await;
        // Files appended by tries that then failed: indexed with the rest.
        let mut written_before = Vec::new();
        let files = loop {
            let store = Arc::clone(&self.store);
            let result = tokio::task::spawn_blocking(move || batch.write(store.as_ref()))
                .await
                .context("archive writer panicked")?;
            match result {
                Ok(mut files) => {
                    files.append(&mut written_before);
                    telemetry::archived(files.len(), files.iter().map(|f| f.contents.len()).sum());
                    break files;
                }
                Err(failure) => {
                    error!("archive write failed, retrying in 1s: {}", failure.error);
                    batch = failure.rest;
                    written_before.extend(failure.written);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // The offsets go in with the state: a restart resumes exactly where this state is;
        // and the messages for the broker with them, since a restart will not replay them.
        let entry = IndexBatch {
            files: &files,
            alerts: &alerts,
            windows: &windows,
            snapshots: &snapshots,
            offsets: &offsets,
            outbox: &outgoing,
            written_ms: now_ms(),
        };
        let outbox = until_ok("index update", || self.index.record(entry)).await;
        drop(writing);
        let later_parts: Vec<ArchiveFile> = files
            .into_iter()
            .filter(|f| f.part > 0)
            .map(|f| ArchiveFile { contents: Vec::new(), ..f })
            .collect();
        self.deliver(outgoing).await;
        self.outbox_sent(&outbox).await;
        telemetry::flushed(started.elapsed());
        if offsets.is_empty() {
            return Ok(later_parts);
        }
        // The group's committed offsets, for other instances and tools; this server itself
        // resumes from the offsets saved in the index with its state. Not waited for: a broker
        // slow to answer must not hold the next flush's alerts (before a partition is released
        // the task commits again and waits, `Ingest::commit_sync`). A failure is not fatal: the
        // next commit covers these offsets too (or a replay does).
        if let Err(e) =
            offset_list(offsets).and_then(|list| self.consumer.commit(&list, CommitMode::Async))
        {
            warn!("offset commit failed: {e}");
        }
        Ok(later_parts)
    }

    /// Sends what an earlier run left in the outbox (it ended between a flush's index
    /// transaction and the broker's acknowledgement), before any flush of this run.
    async fn redeliver(self) -> anyhow::Result<Vec<ArchiveFile>> {
        loop {
            let left = until_ok("reading the outbox", || self.index.outbox(1000)).await;
            if left.is_empty() {
                return Ok(Vec::new());
            }
            info!(messages = left.len(), "sending what the last run left in the outbox");
            let (ids, records): (Vec<i64>, Vec<OutboxRecord>) = left.into_iter().unzip();
            self.deliver(records).await;
            self.outbox_sent(&ids).await;
        }
    }

    /// Deletes delivered messages from the outbox (retried: left there, they would be sent
    /// again at the next start).
    async fn outbox_sent(&self, ids: &[i64]) {
        if !ids.is_empty() {
            until_ok("clearing the outbox", || self.index.outbox_sent(ids)).await;
        }
    }

    /// Sends every outgoing message and waits for the broker to acknowledge each, sending
    /// again what failed, unless the failure is permanent (the record is too large or invalid
    /// for the broker, its topic is gone or forbidden): such a record is counted, logged and
    /// given up, since waiting for it would stall every later commit. Alerts are also in the
    /// archive and the index, which a permanent failure does not touch.
    async fn deliver(&self, mut pending: Vec<OutboxRecord>) {
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let sends = pending.iter().map(|m| {
                let mut record = FutureRecord::to(&m.topic).key(&m.key).payload(&m.payload);
                if !m.headers.is_empty() {
                    let headers = m.headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
                        h.insert(Header { key, value: Some(value.as_str()) })
                    });
                    record = record.headers(headers);
                }
                self.producer.send(record, DELIVERY_TIMEOUT)
            });
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            for (m, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(_) => {}
                    Err((e, _)) if kafka::is_permanent(&e) => {
                        error!(
                            topic = %m.topic,
                            bytes = m.size(),
                            key = %String::from_utf8_lossy(&m.key[..m.key.len().min(64)]),
                            "delivery failed for good, record given up: {e}"
                        );
                        telemetry::delivery_failed(topic_label(&m.topic), kafka::error_name(&e));
                    }
                    Err((e, _)) => {
                        warn!(topic = %m.topic, "delivery failed, will retry: {e}");
                        failed.push(m);
                    }
                }
            }
            pending = failed;
            if !pending.is_empty() {
                telemetry::delivery_retried(pending.len());
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25)))).await;
            }
        }
    }
}

/// The dead-letter reason of a reading whose sensor is beyond the limit of tracked sensors.
const SENSOR_LIMIT: &str = "sensor_limit";

/// The dead letter of a rejected message: its key and bytes (capped: it must fit the broker
/// whatever the original's size), the reason and its source in headers.
fn dead_letter(
    msg: &impl Message,
    bytes: &[u8],
    reason: &'static str,
    detail: &str,
) -> OutboxRecord {
    let source = Source { topic: msg.topic(), partition: msg.partition(), offset: msg.offset() };
    let key = msg.key().unwrap_or_default();
    let letter = DeadLetter::new(key, bytes, reason, detail, source);
    if letter.value.len() < bytes.len() || letter.key.len() < key.len() {
        telemetry::dead_letter_cut();
    }
    OutboxRecord {
        topic: topics::DEAD_LETTERS.into(),
        key: letter.key,
        payload: letter.value,
        headers: letter.headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// The metrics label of a topic we produce to (a bounded set).
fn topic_label(topic: &str) -> &'static str {
    [topics::ALERTS, topics::DEAD_LETTERS].into_iter().find(|t| *t == topic).unwrap_or("other")
}
