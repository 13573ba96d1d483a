//! Making a flush durable, in a task of its own while the loop goes on reading: the archive,
//! then the index (with the outbox and the offsets), then the broker's acknowledgements of
//! every outgoing message, and only then the offsets' commit. Each step is retried until it
//! succeeds: skipping one would lose data.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::pending::{Flush, Pending};
use super::{RunnerError, metrics};
use crate::archive::{ArchiveFile, Store};
use crate::clock::now_ms;
use crate::index::{Index, IndexBatch, OutboxRecord};
use crate::kafka::{self, ReadingsConsumer};
use crate::topics;
use crate::upkeep::ArchiveGate;

/// How long a delivery to Kafka may take before it counts as failed and is sent again.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where flushed data goes; cheap to clone, so a flush runs as a task of its own.
#[derive(Clone)]
pub struct Sinks {
    pub consumer: Arc<ReadingsConsumer>,
    pub producer: FutureProducer,
    pub store: Arc<dyn Store>,
    pub index: Index,
    /// Held while writing the archive and indexing it: the upkeep never replaces a file
    /// that a flush is appending to.
    pub gate: ArchiveGate,
}

/// The flush being made durable, if any: its task returns the files the archive buffer must
/// know about (see [`crate::archive::ArchiveBuffer::written`]).
pub(super) type InFlight = Option<JoinHandle<Result<Vec<ArchiveFile>, RunnerError>>>;

/// Waits for the flush in flight, if any, and tells the pending state where its files went.
pub(super) async fn settle(
    in_flight: &mut InFlight,
    pending: &mut Pending,
) -> Result<(), RunnerError> {
    if let Some(flush) = in_flight.take() {
        let later_parts = flush.await.map_err(|_| RunnerError::Panicked("a flush"))??;
        pending.settled(&later_parts);
    }
    Ok(())
}

/// `(partition, next offset)` of the readings topic as a partition list.
pub(super) fn offset_list(
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

impl Sinks {
    /// Makes a flush durable and commits its offsets. Returns the files written to a later
    /// part than the first (without their contents), for the archive buffer to continue in.
    pub(super) async fn make_durable(self, flush: Flush) -> Result<Vec<ArchiveFile>, RunnerError> {
        let started = std::time::Instant::now();
        let Flush { mut batch, alerts, windows, snapshots, offsets, outgoing } = flush;
        let writing = self.gate.lock().await;
        // Files appended by tries that then failed: indexed with the rest.
        let mut written_before = Vec::new();
        let files = loop {
            let store = Arc::clone(&self.store);
            let result = tokio::task::spawn_blocking(move || batch.write(store.as_ref()))
                .await
                .map_err(|_| RunnerError::Panicked("the archive writer"))?;
            match result {
                Ok(mut files) => {
                    files.append(&mut written_before);
                    metrics::archived(files.len(), files.iter().map(|f| f.contents.len()).sum());
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
        metrics::flushed(started.elapsed());
        if offsets.is_empty() {
            return Ok(later_parts);
        }
        // The group's committed offsets, for other instances and tools; this server itself
        // resumes from the offsets saved in the index with its state. Not waited for: a broker
        // slow to answer must not hold the next flush's alerts (before a partition is released
        // the loop commits again and waits, `Runner::commit_sync`). A failure is not fatal: the
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
    pub(super) async fn redeliver(self) -> Result<Vec<ArchiveFile>, RunnerError> {
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
                        metrics::delivery_failed(&m.topic, kafka::error_name(&e));
                    }
                    Err((e, _)) => {
                        warn!(topic = %m.topic, "delivery failed, will retry: {e}");
                        failed.push(m);
                    }
                }
            }
            pending = failed;
            if !pending.is_empty() {
                metrics::delivery_retried(pending.len());
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25)))).await;
            }
        }
    }
}
