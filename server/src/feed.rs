//! Publishes simulated sensor readings to the readings topic: the built-in feed of the
//! embedded default and the `thermoalert simulate` command.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use thermoalert_pipeline::simulate::{Simulator, SimulatorConfig};
use thermoalert_pipeline::topics;
use tokio::sync::watch;
use tracing::{info, warn};

/// What to publish.
#[derive(Debug, Clone)]
pub struct Feed {
    pub sim: SimulatorConfig,
    /// Readings per second of each sensor.
    pub rate: f64,
    /// Stop after this many readings in total.
    pub count: Option<u64>,
    /// Print a progress line every few seconds.
    pub progress: bool,
}

/// Runs the feed until `count` readings are out or `shutdown` turns true; returns how many
/// readings the broker acknowledged.
pub async fn run(
    feed: Feed,
    producer: FutureProducer,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    anyhow::ensure!(
        feed.rate.is_finite() && feed.rate > 0.0,
        "the rate must be a positive number of readings per second"
    );
    let mut sim = Simulator::new(feed.sim.clone());
    let period = Duration::from_secs_f64(1.0 / feed.rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut sent: u64 = 0;
    let mut readings = Vec::with_capacity(feed.sim.sensors);
    'outer: loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {}
        }
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        // Whole milliseconds keep the messages short and readable.
        sim.tick((now * 1000.0).round() / 1000.0, &mut readings);
        let mut deliveries = Vec::with_capacity(readings.len());
        for r in readings.drain(..) {
            if feed.count.is_some_and(|c| sent + deliveries.len() as u64 >= c) {
                break;
            }
            let payload = serde_json::to_vec(&r).expect("readings serialize");
            deliveries.push(enqueue(&producer, &r.sensor_id, &payload).await);
        }
        for d in futures::future::join_all(deliveries).await {
            match d {
                Ok(Ok(_)) => sent += 1,
                Ok(Err((e, _))) => warn!("simulated reading not delivered: {e}"),
                Err(_) => warn!("simulated reading not delivered: producer closed"),
            }
        }
        if feed.progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let rate = sent as f64 / started.elapsed().as_secs_f64();
            eprint!("\rsimulate: {sent} readings sent, {rate:.0}/s   ");
        }
        if feed.count.is_some_and(|c| sent >= c) {
            break 'outer;
        }
    }
    producer.flush(Duration::from_secs(30)).context("flushing the simulator's producer")?;
    if feed.progress {
        eprintln!();
    }
    info!(sent, "simulator stopped");
    Ok(sent)
}

/// Hands one reading to the producer's queue, waiting while the queue is full.
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
