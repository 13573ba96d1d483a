//! Publishes simulated sensor readings (and, on request, faults: stuck sensors, dropouts, late
//! and malformed messages) to the readings topic: the built-in feed of the embedded default
//! and the `thermoalert simulate` command.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::simulate::{Simulator, SimulatorConfig};
use crate::topics;

/// How fast to publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Readings per second of each sensor.
    PerSensor(f64),
    /// As fast as the producer and broker take them.
    Max,
}

/// Parses `--rate`: a positive number of readings per second per sensor, or `max`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1_000_000.0 => Ok(Rate::PerSensor(r)),
        _ => Err(format!("`{s}` is neither a positive number of readings per second nor `max`")),
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct Feed {
    pub sim: SimulatorConfig,
    pub rate: Rate,
    /// Stop after this many messages in total.
    pub count: Option<u64>,
    /// Print a progress line every few seconds.
    pub progress: bool,
}

/// Deliveries awaited together; bounds the memory of a fast run.
const IN_FLIGHT: usize = 20_000;

/// Runs the feed until `count` messages are out or `shutdown` turns true; returns how many
/// messages the broker acknowledged. Fails only if the last messages cannot be flushed.
pub async fn run(
    feed: Feed,
    producer: FutureProducer,
    mut shutdown: watch::Receiver<bool>,
) -> Result<u64, KafkaError> {
    let mut sim = Simulator::new(feed.sim.clone());
    let mut tick = match feed.rate {
        Rate::PerSensor(r) => {
            let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            Some(t)
        }
        Rate::Max => None,
    };
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut queued: u64 = 0;
    let mut sent: u64 = 0;
    let mut readings = Vec::with_capacity(feed.sim.sensors);
    let mut malformed = Vec::new();
    let mut deliveries = Vec::with_capacity(IN_FLIGHT);
    while feed.count.is_none_or(|c| queued < c) && !*shutdown.borrow() {
        match &mut tick {
            Some(t) => tokio::select! {
                _ = shutdown.changed() => break,
                _ = t.tick() => {}
            },
            None => tokio::task::yield_now().await,
        }
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        // Whole milliseconds keep the messages short and readable.
        let now = (now * 1000.0).round() / 1000.0;
        sim.tick(now, &mut readings);
        sim.tick_malformed(now, &mut malformed);
        let messages = readings
            .drain(..)
            .map(|r| (r.sensor_id.clone(), serde_json::to_vec(&r).expect("readings serialize")))
            .chain(malformed.drain(..));
        for (key, payload) in messages {
            if feed.count.is_some_and(|c| queued >= c) {
                break;
            }
            deliveries.push(enqueue(&producer, &key, &payload).await);
            queued += 1;
        }
        if deliveries.len() >= IN_FLIGHT || tick.is_some() {
            sent += settle(&mut deliveries).await;
        }
        if feed.progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let rate = sent as f64 / started.elapsed().as_secs_f64();
            eprint!("\rsimulate: {sent} messages sent, {rate:.0}/s   ");
        }
    }
    sent += settle(&mut deliveries).await;
    producer.flush(Duration::from_secs(30))?;
    if feed.progress {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("\rsimulate: {sent} messages sent in {secs:.1} s, {:.0}/s", sent as f64 / secs);
    }
    info!(sent, "simulator stopped");
    Ok(sent)
}

/// Waits for the queued deliveries (all queued already: awaiting them in turn waits no
/// longer than all at once); returns how many the broker acknowledged.
async fn settle(deliveries: &mut Vec<DeliveryFuture>) -> u64 {
    let mut ok = 0;
    for d in deliveries.drain(..) {
        match d.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err((e, _))) => warn!("simulated message not delivered: {e}"),
            Err(_) => warn!("simulated message not delivered: producer closed"),
        }
    }
    ok
}

/// Hands one message to the producer's queue, waiting while the queue is full.
async fn enqueue(producer: &FutureProducer, key: &str, payload: &[u8]) -> DeliveryFuture {
    loop {
        let record = FutureRecord::to(topics::READINGS).key(key).payload(payload);
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => {
                warn!("cannot queue a simulated reading, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_a_positive_number_per_sensor_or_max() {
        assert_eq!(parse_rate("2.5"), Ok(Rate::PerSensor(2.5)));
        assert_eq!(parse_rate("MAX"), Ok(Rate::Max));
        for bad in ["0", "-1", "NaN", "inf", "1e7", "fast"] {
            assert!(parse_rate(bad).unwrap_err().contains("neither a positive number"), "{bad}");
        }
    }
}
