//! The run loop: Kafka readings in, through the pure core, out to the alerts topic, the
//! dead-letter topic, the archive, the index and the live view.
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
//!
//! By concern: [`pending`] is what waits for the next flush (the loop's state, tested without
//! a broker), `flush` makes a flush durable, `rebalance` applies the group's changes,
//! [`dead_letter`] is the record of a rejected message, [`status`] what the web reads while
//! the loop runs, [`metrics`] what it counts.

pub mod dead_letter;
mod flush;
pub mod metrics;
pub mod pending;
mod rebalance;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use self::flush::Sinks;
use self::flush::{InFlight, settle};
use self::pending::Pending;
pub use self::status::{ConsumerDelay, SensorLimit};
use crate::archive::ArchiveBuffer;
use crate::clock::now_ms;
use crate::index::IndexError;
use crate::kafka::{self, ReadingsConsumer, Rebalance, Rebalances};
use crate::live::LiveView;
use crate::model::{EncodedAlert, Reading};
use crate::parse::{ParseLimits, parse_reading_into};
use crate::processor::{Output, Processor};
use crate::rules::ThresholdTable;

/// How often processing time is handed to the core (idle windows, offline sensors).
const TICK: Duration = Duration::from_secs(1);

/// What ends the run loop: the broker refused to hand partitions over, or a task panicked.
/// Everything else (the archive, the index, deliveries) is retried, since skipping it would
/// lose data.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{doing}: {source}")]
    Kafka { doing: &'static str, source: rdkafka::error::KafkaError },
    #[error("{doing}: {source}")]
    Index { doing: &'static str, source: IndexError },
    #[error("{0} panicked")]
    Panicked(&'static str),
}

/// Everything the loop needs.
pub struct Runner<L> {
    pub consumer: Arc<ReadingsConsumer>,
    pub processor: Processor,
    pub sinks: Sinks,
    pub live: L,
    /// Names this instance's archive files.
    pub writer_id: String,
    pub flush_interval: Duration,
    /// Rebalances queued by the consumer, applied by the loop.
    pub rebalances: Rebalances,
    /// Every sensor's thresholds, a new table each time an operator changes them.
    pub thresholds: watch::Receiver<Arc<ThresholdTable>>,
    /// What a message must be to be a reading.
    pub limits: ParseLimits,
    /// Counts readings refused because the sensor limit is reached.
    pub sensor_limit: SensorLimit,
    /// How far behind the consumer is.
    pub delay: ConsumerDelay,
}

impl<L: LiveView> Runner<L> {
    /// Runs until `shutdown` turns true, then flushes and commits what it has.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), RunnerError> {
        let limits = self.limits;
        let mut pending = Pending::new(ArchiveBuffer::new(self.writer_id.clone()));
        let mut out = Output::default();
        // Reused for every message: parsing allocates nothing.
        let mut reading = Reading { timestamp: 0.0, sensor_id: String::new(), temperature: 0.0 };
        let mut flush_tick = tokio::time::interval(self.flush_interval);
        flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut core_tick = tokio::time::interval(TICK);
        core_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut processed: u64 = 0;
        let readings_in = metrics::readings_counter();
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
                Ok(()) = self.thresholds.changed() => {
                    let table = Arc::clone(&self.thresholds.borrow_and_update());
                    self.processor.set_thresholds(table);
                }
                _ = self.rebalances.changed() => {
                    while let Some(change) = self.rebalances.next() {
                        self.rebalance(change, &mut pending, &mut in_flight).await?;
                    }
                }
                _ = flush_tick.tick() => {
                    // A slow archive (HDFS, many sensors) must not stall the live view and
                    // the alerts: while the last flush runs, readings keep coming into the
                    // buffer, up to its bound.
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
                            metrics::rejected(dead_letter::SENSOR_LIMIT);
                            self.sensor_limit.refuse();
                            let detail = format!(
                                "sensor `{}` is beyond the {} sensors tracked at most \
                                 (THERMO_MAX_SENSORS)",
                                reading.sensor_id,
                                self.processor.config().max_sensors
                            );
                            pending.push(dead_letter::record(&msg, bytes, dead_letter::SENSOR_LIMIT, &detail));
                        }
                        Ok(()) => {
                            let level = self.processor.process(&reading, now, &mut out);
                            readings_in.increment(1);
                            pending.reading(&reading, msg.partition());
                            self.live.publish_reading(&reading, level);
                            self.emit(&mut out, &mut pending);
                        }
                        Err(rejection) => {
                            metrics::rejected(rejection.code());
                            let detail = rejection.to_string();
                            pending.push(dead_letter::record(&msg, bytes, rejection.code(), &detail));
                        }
                    }
                    processed += 1;
                    pending.consumed(msg.partition(), msg.offset());
                    if pending.is_full() {
                        self.flush(&mut pending, &mut in_flight).await?;
                    }
                }
                () = std::future::ready(()), if self.live.has_unsent() => self.live.flush(),
            }
        }
        self.flush(&mut pending, &mut in_flight).await?;
        settle(&mut in_flight, &mut pending).await?;
        self.commit_sync(pending.take_flushed()).await;
        // Closing the consumer revokes what it holds: nothing is left to flush.
        self.rebalances.apply_directly();
        while let Some(change) = self.rebalances.next() {
            if let Rebalance::Revoke(partitions) = change {
                kafka::unassign(&*self.consumer, &partitions).map_err(|source| {
                    RunnerError::Kafka { doing: "releasing partitions at shutdown", source }
                })?;
            }
        }
        info!(processed, "pipeline stopped");
        Ok(())
    }

    /// Carries what the core emitted to the live view and the pending archive, index and
    /// alerts topic.
    fn emit(&self, out: &mut Output, pending: &mut Pending) {
        for window in out.windows.drain(..) {
            self.live.publish_window(&window);
            pending.window(window);
        }
        for alert in out.alerts.drain(..) {
            metrics::alert(&alert);
            let alert = EncodedAlert::new(alert);
            self.live.publish_alert(&alert);
            pending.alert(alert);
        }
    }

    /// Cuts what is pending into a flush and starts it once the previous one is done.
    async fn flush(
        &mut self,
        pending: &mut Pending,
        in_flight: &mut InFlight,
    ) -> Result<(), RunnerError> {
        // This may wait for the archive; the live view does not.
        self.live.flush();
        if pending.is_empty() {
            return Ok(());
        }
        if in_flight.is_some() {
            let waited = in_flight.as_ref().is_some_and(|f| !f.is_finished());
            let since = std::time::Instant::now();
            settle(in_flight, pending).await?;
            if waited {
                metrics::paused(since.elapsed());
            }
        }
        // The core's state as of the last consumed message, made durable together with it.
        let mut changed = Vec::new();
        self.processor.take_changed(&mut changed);
        metrics::core(&self.processor.counters(), self.processor.sensors());
        let flush = pending.cut(changed);
        *in_flight = Some(tokio::spawn(self.sinks.clone().make_durable(flush)));
        Ok(())
    }
}
