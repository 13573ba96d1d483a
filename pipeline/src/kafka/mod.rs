//! Kafka adapters through rdkafka: client settings, topic creation, and the embedded broker
//! (librdkafka's in-process mock cluster) that the server runs when no Kafka is configured.
//! Real and embedded brokers go through the same consumer and producer code. The simulator's
//! [`feed`] publishes through them too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
pub use rdkafka::producer::FutureProducer;
use rdkafka::producer::Producer;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::Notify;

use crate::topics;

pub mod feed;

/// Errors of the Kafka adapters, each saying what was being done.
#[derive(Debug, thiserror::Error)]
pub enum KafkaAdapterError {
    #[error("cannot create the Kafka {what} for {brokers}: {source}")]
    Client { what: &'static str, brokers: String, source: KafkaError },
    #[error("cannot reach the Kafka broker at {brokers} within {timeout:?}: {source}")]
    Unreachable { brokers: String, timeout: Duration, source: KafkaError },
    #[error("cannot create topic `{topic}`: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error("cannot subscribe to `{topic}`: {source}")]
    Subscribe { topic: String, source: KafkaError },
    #[error("the embedded Kafka broker failed to start: {0}")]
    Embedded(String),
}

/// The topics ThermoAlert needs, with their settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPlan {
    /// Partitions of each topic created (existing topics are left as they are).
    pub partitions: i32,
}

impl TopicPlan {
    /// `(name, extra config)` of every topic.
    fn topics(&self) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
        vec![
            (topics::READINGS, vec![("retention.ms", topics::READINGS_RETENTION_MS.to_string())]),
            (topics::ALERTS, vec![]),
            (topics::DEAD_LETTERS, vec![]),
        ]
    }
}

fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("client.id", "thermoalert");
    c
}

/// Creates the missing topics of `plan` on a real broker. Fails with a clear error when the
/// broker cannot be reached within `timeout`.
pub async fn ensure_topics(
    brokers: &str,
    plan: &TopicPlan,
    timeout: Duration,
) -> Result<(), KafkaAdapterError> {
    let admin: AdminClient<DefaultClientContext> =
        base_config(brokers).create().map_err(|source| KafkaAdapterError::Client {
            what: "admin client",
            brokers: brokers.into(),
            source,
        })?;
    // Metadata first: an unreachable broker gives one clear error instead of per-topic ones.
    admin.inner().fetch_metadata(None, timeout).map_err(|source| {
        KafkaAdapterError::Unreachable { brokers: brokers.into(), timeout, source }
    })?;
    let specs = plan.topics();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|(name, config)| {
            config.iter().fold(
                NewTopic::new(name, plan.partitions, TopicReplication::Fixed(1)),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let results = admin
        .create_topics(&new_topics, &AdminOptions::new().operation_timeout(Some(timeout)))
        .await
        .map_err(|e| KafkaAdapterError::CreateTopic { topic: "*".into(), reason: e.to_string() })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaAdapterError::CreateTopic { topic, reason: code.to_string() });
            }
        }
    }
    Ok(())
}

/// A change of the consumer's partitions of the readings topic, handed from librdkafka's
/// rebalance callback to the pipeline task. The task applies it when its own state allows:
/// it makes everything consumed from a partition durable and commits it before giving the
/// partition up, and restores the state of a partition's sensors before taking it, so a
/// partition moves between instances without loss and without being processed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    Assign(Vec<i32>),
    Revoke(Vec<i32>),
}

/// The queue of rebalances between the consumer's callback and the pipeline task.
#[derive(Debug, Clone, Default)]
pub struct Rebalances {
    queue: Arc<Mutex<VecDeque<Rebalance>>>,
    notify: Arc<Notify>,
    /// Set once the task no longer runs (shutdown): the callback then applies changes itself.
    direct: Arc<AtomicBool>,
}

impl Rebalances {
    /// Waits until a rebalance is queued.
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    /// The next queued rebalance, oldest first.
    pub fn next(&self) -> Option<Rebalance> {
        self.queue.lock().expect("rebalance queue lock").pop_front()
    }

    /// From now on the callback applies rebalances itself (the task has stopped consuming
    /// and flushed; closing the consumer revokes its partitions through the callback).
    pub fn apply_directly(&self) {
        self.direct.store(true, Ordering::SeqCst);
    }

    fn push(&self, change: Rebalance) {
        self.queue.lock().expect("rebalance queue lock").push_back(change);
        self.notify.notify_one();
    }
}

/// Called with the consumer's lag on each partition of the readings topic it holds, from
/// librdkafka's statistics (every [`LAG_INTERVAL`]): messages in the partition after the
/// last one this consumer has read.
pub type LagReport = Box<dyn Fn(&[(i32, i64)]) + Send + Sync>;

/// How often the consumer's lag is reported.
pub const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// The readings consumer's context: it queues rebalances for the pipeline task and reports
/// the consumer's lag.
pub struct ReadingsContext {
    rebalances: Rebalances,
    lag: LagReport,
}

impl ClientContext for ReadingsContext {
    fn stats(&self, statistics: Statistics) {
        (self.lag)(&lag_of(&statistics));
    }
}

/// `(partition, lag)` of the readings partitions in `statistics` that have a known lag
/// (librdkafka reports -1 for partitions not being consumed, and lists an internal -1
/// partition).
fn lag_of(statistics: &Statistics) -> Vec<(i32, i64)> {
    let Some(topic) = statistics.topics.get(topics::READINGS) else { return Vec::new() };
    let mut lag: Vec<(i32, i64)> = topic
        .partitions
        .values()
        .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
        .map(|p| (p.partition, p.consumer_lag))
        .collect();
    lag.sort_unstable();
    lag
}

impl ConsumerContext for ReadingsContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == topics::READINGS)
            .map(|e| e.partition())
            .collect();
        let change = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(partitions),
            other => {
                tracing::error!("kafka rebalance failed: {}", RDKafkaErrorCode::from(other));
                return;
            }
        };
        if !self.rebalances.direct.load(Ordering::SeqCst) {
            // librdkafka waits for the task's assign/unassign call before going on.
            self.rebalances.push(change);
            return;
        }
        let result = match change {
            Rebalance::Assign(p) => {
                assign(consumer, &p.into_iter().map(|p| (p, Offset::Stored)).collect::<Vec<_>>())
            }
            Rebalance::Revoke(p) => unassign(consumer, &p),
        };
        if let Err(e) = result {
            tracing::error!("kafka rebalance: cannot apply the assignment: {e}");
        }
    }
}

fn cooperative<C: ConsumerContext>(consumer: &impl Consumer<C>) -> bool {
    matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative)
}

/// Starts consuming `partitions` of the readings topic, each at its offset.
pub fn assign<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partitions: &[(i32, Offset)],
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for &(partition, offset) in partitions {
        tpl.add_partition_offset(topics::READINGS, partition, offset)?;
    }
    if cooperative(consumer) { consumer.incremental_assign(&tpl) } else { consumer.assign(&tpl) }
}

/// Stops consuming `partitions` of the readings topic.
pub fn unassign<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partitions: &[i32],
) -> Result<(), KafkaError> {
    if !cooperative(consumer) {
        return consumer.unassign();
    }
    let mut tpl = TopicPartitionList::new();
    for &partition in partitions {
        tpl.add_partition(topics::READINGS, partition);
    }
    consumer.incremental_unassign(&tpl)
}

/// The group's committed offset of each of `partitions` (`None`: nothing committed yet).
/// Blocking: one round trip to the group coordinator.
pub fn committed<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partitions: &[i32],
    timeout: Duration,
) -> Result<Vec<(i32, Option<i64>)>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for &partition in partitions {
        tpl.add_partition(topics::READINGS, partition);
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    Ok(partitions
        .iter()
        .map(|&p| {
            let offset =
                committed.find_partition(topics::READINGS, p).and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            (p, offset)
        })
        .collect())
}

/// How the readings consumer prefetches. librdkafka stops fetching a partition once
/// `queued.min.messages` of it wait in the local queue, and by default looks again only after
/// `fetch.queue.backoff.ms` = 1 s: a consumer faster than 100 000 messages per partition and
/// second then idles most of each second (measured: the pipeline drained 175 000/s and went
/// idle ~80 % of the time; BENCHMARKS.md, issue 7). Looking again after 20 ms keeps the
/// queue fed; the queue's size bound is unchanged. The benchmark's raw consumer uses the same
/// settings, so the limit it measures is this consumer's.
pub const READINGS_PREFETCH: [(&str, &str); 1] = [("fetch.queue.backoff.ms", "2")];

/// The readings consumer's type.
pub type ReadingsConsumer = StreamConsumer<ReadingsContext>;

/// A consumer in `group`, subscribed to the readings topic; its rebalances are queued on
/// `rebalances` for the caller to apply, its lag goes to `lag`. Offsets are committed by the
/// caller, only once what they cover is durable (`enable.auto.commit=false`).
pub fn readings_consumer(
    brokers: &str,
    group: &str,
    rebalances: Rebalances,
    lag: LagReport,
) -> Result<ReadingsConsumer, KafkaAdapterError> {
    let mut config = base_config(brokers);
    for (key, value) in READINGS_PREFETCH {
        config.set(key, value);
    }
    let consumer: ReadingsConsumer = config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("statistics.interval.ms", LAG_INTERVAL.as_millis().to_string())
        .create_with_context(ReadingsContext { rebalances, lag })
        .map_err(|source| KafkaAdapterError::Client {
            what: "consumer",
            brokers: brokers.into(),
            source,
        })?;
    consumer.subscribe(&[topics::READINGS]).map_err(|source| KafkaAdapterError::Subscribe {
        topic: topics::READINGS.into(),
        source,
    })?;
    Ok(consumer)
}

/// An idempotent producer: retries never duplicate or reorder messages of a partition.
pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaAdapterError> {
    base_config(brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("compression.type", "lz4")
        .create()
        .map_err(|source| KafkaAdapterError::Client {
            what: "producer",
            brokers: brokers.into(),
            source,
        })
}

/// Whether the cluster answers `producer` within `timeout`, for readiness checks. Blocking:
/// one metadata round trip.
pub fn reachable(producer: &FutureProducer, timeout: Duration) -> Result<(), KafkaError> {
    producer.client().fetch_metadata(Some(topics::READINGS), timeout).map(|_| ())
}

/// Whether a failed delivery can never succeed by sending the same record again: the record
/// is too large or invalid for the broker, or its topic does not exist or may not be written.
/// Such a record is final (counted and logged by the caller); retrying it would hold its flush,
/// and every offset commit after it, forever. Anything else (timeouts, a broker away, a
/// leader moving) is worth retrying.
pub fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    let KafkaError::MessageProduction(code) = error else { return false };
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::BadMessage
            | C::InvalidTimestamp
            | C::InvalidTopic
            | C::UnknownTopic
            | C::UnknownPartition
            | C::UnknownTopicOrPartition
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::PolicyViolation
    )
}

/// A short name of `error` for metrics labels: librdkafka's error code (`MessageSizeTooLarge`),
/// or `other`.
pub fn error_name(error: &KafkaError) -> String {
    error.rdkafka_error_code().map_or_else(|| "other".to_owned(), |code| format!("{code:?}"))
}

/// librdkafka's in-process mock cluster, on a random loopback port, with ThermoAlert's topics
/// created. It lives on a thread of its own (the mock is neither `Send` nor `Sync`) until the
/// value is dropped. Memory only: what it holds is gone when the process ends.
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EmbeddedBroker {
    pub fn start(plan: &TopicPlan) -> Result<EmbeddedBroker, KafkaAdapterError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let specs: Vec<&'static str> = plan.topics().into_iter().map(|(name, _)| name).collect();
        let partitions = plan.partitions;
        let thread = thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for name in specs {
                    if let Err(e) = cluster.create_topic(name, partitions, 1) {
                        let _ = ready_tx.send(Err(format!("topic {name}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Blocks until the owner drops us (or its sender).
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| KafkaAdapterError::Embedded(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| KafkaAdapterError::Embedded("broker thread ended early".into()))?
            .map_err(KafkaAdapterError::Embedded)?;
        Ok(EmbeddedBroker { bootstrap, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// The `bootstrap.servers` value clients connect to.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Message;
    use rdkafka::producer::FutureRecord;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_broker_carries_readings_from_producer_to_group_consumer() {
        let broker = EmbeddedBroker::start(&TopicPlan { partitions: 2 }).unwrap();
        let producer = producer(broker.bootstrap_servers()).unwrap();
        for i in 0..10 {
            let payload = format!(r#"{{"timestamp":{i},"sensor_id":"s{i}","temperature":20}}"#);
            let key = format!("s{i}");
            producer
                .send(
                    FutureRecord::to(topics::READINGS).key(&key).payload(&payload),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
        let rebalances = Rebalances::default();
        rebalances.apply_directly();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&reports);
        let lag: LagReport = Box::new(move |lag| sink.lock().unwrap().push(lag.to_vec()));
        let consumer =
            readings_consumer(broker.bootstrap_servers(), "test-group", rebalances, lag).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .expect("messages arrive")
                .unwrap();
            seen.push(String::from_utf8(msg.payload().unwrap().to_vec()).unwrap());
        }
        seen.sort();
        assert!(seen[0].contains(r#""sensor_id":"s0""#));

        // Everything is read and committed: the next statistics report no lag on either
        // partition (librdkafka counts the lag from the committed offset).
        consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).unwrap();
        let deadline = std::time::Instant::now() + LAG_INTERVAL * 4;
        loop {
            // Serving the consumer's queue is what delivers the statistics callback.
            let _ = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
            let last = reports.lock().unwrap().last().cloned();
            if last == Some(vec![(0, 0), (1, 0)]) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lag reports: {last:?}");
        }
    }

    #[test]
    fn only_errors_that_a_resend_cannot_cure_are_permanent() {
        use RDKafkaErrorCode as C;
        let produced = KafkaError::MessageProduction;
        for code in [C::MessageSizeTooLarge, C::InvalidRecord, C::UnknownTopic] {
            assert!(is_permanent(&produced(code)), "{code:?}");
        }
        for code in [C::MessageTimedOut, C::QueueFull, C::AllBrokersDown, C::NotLeaderForPartition]
        {
            assert!(!is_permanent(&produced(code)), "{code:?}");
        }
        assert!(!is_permanent(&KafkaError::Canceled));
    }

    #[test]
    fn lag_is_read_from_the_readings_partitions_being_consumed() {
        use rdkafka::statistics::{Partition, Topic};
        let stats = |lags: &[(i32, i64)]| {
            let partitions = lags
                .iter()
                .map(|&(partition, consumer_lag)| {
                    (partition, Partition { partition, consumer_lag, ..Partition::default() })
                })
                .collect();
            let readings = Topic { topic: topics::READINGS.into(), partitions, ..Topic::default() };
            let other = Topic { topic: topics::ALERTS.into(), ..readings.clone() };
            Statistics {
                topics: [(topics::READINGS.into(), readings), (topics::ALERTS.into(), other)]
                    .into(),
                ..Statistics::default()
            }
        };
        // -1: librdkafka's internal partition, and a partition not being consumed.
        assert_eq!(lag_of(&stats(&[(1, -1), (0, 42), (-1, -1)])), vec![(0, 42)]);
        assert_eq!(lag_of(&stats(&[(1, 7), (0, 0)])), vec![(0, 0), (1, 7)]);
        assert_eq!(lag_of(&Statistics::default()), vec![]);
    }
}
