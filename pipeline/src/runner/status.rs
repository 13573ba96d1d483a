//! What the run loop shows the rest of the server while it runs: how far behind the newest
//! readings it is (readiness, a metric) and how many readings the sensor limit refused (the
//! dashboard's banner). Cheap to clone; clones share the figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::metrics;

/// Silence after which the consumer counts as caught up.
const CAUGHT_UP_AFTER: Duration = Duration::from_secs(5);

/// How far behind the newest readings the consumer is: the age of the last message it read,
/// or zero once [`CAUGHT_UP_AFTER`] passes without one (caught up, or nothing comes). Past the
/// readings topic's retention, the broker deletes readings before they are read.
#[derive(Debug, Clone, Default)]
pub struct ConsumerDelay {
    age_ms: Arc<AtomicI64>,
    /// Processing time of the last message read (epoch ms).
    read_ms: Arc<AtomicI64>,
}

impl ConsumerDelay {
    /// The age of the last message read.
    pub fn behind(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.age_ms.load(Ordering::Relaxed)).unwrap_or(0))
    }

    /// A message created at `created_ms` was read at `now_ms`.
    pub(super) fn observe(&self, now_ms: i64, created_ms: i64) {
        self.age_ms.store((now_ms - created_ms).max(0), Ordering::Relaxed);
        self.read_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Called every second with the processing time.
    pub(super) fn tick(&self, now_ms: i64) {
        let silent = now_ms - self.read_ms.load(Ordering::Relaxed);
        if silent > CAUGHT_UP_AFTER.as_millis() as i64 {
            self.age_ms.store(0, Ordering::Relaxed);
        }
        metrics::consumer_delay(self.behind());
    }
}

/// The sensor limit as the web sees it: how many readings of sensors beyond
/// `THERMO_MAX_SENSORS` (the core's [`crate::processor::ProcessorConfig::max_sensors`]) were
/// set aside.
#[derive(Debug, Clone, Default)]
pub struct SensorLimit {
    refused: Arc<AtomicU64>,
}

impl SensorLimit {
    /// Readings refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(super) fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_the_age_of_the_last_message_until_a_silence_says_caught_up() {
        let delay = ConsumerDelay::default();
        assert_eq!(delay.behind(), Duration::ZERO);
        delay.observe(100_000, 40_000);
        assert_eq!(delay.behind(), Duration::from_secs(60));
        delay.tick(100_000 + 5_000);
        assert_eq!(delay.behind(), Duration::from_secs(60), "5 s of silence is not yet enough");
        delay.tick(100_000 + 5_001);
        assert_eq!(delay.behind(), Duration::ZERO);
    }

    #[test]
    fn a_message_from_the_future_is_not_behind() {
        let delay = ConsumerDelay::default();
        delay.observe(1_000, 9_000);
        assert_eq!(delay.behind(), Duration::ZERO);
    }

    #[test]
    fn clones_share_the_refused_count() {
        let limit = SensorLimit::default();
        let web = limit.clone();
        limit.refuse();
        limit.refuse();
        assert_eq!(web.refused(), 2);
    }
}
