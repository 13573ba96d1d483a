//! What the run loop (and the archive upkeep) counts, through the `metrics` facade. The names are here, where they are
//! counted; what each means, and the exporter that serves them, are in the server's
//! telemetry, the one catalogue of every metric.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::kafka::LagReport;
use crate::model::Alert;
use crate::processor::Counters;
use crate::topics;

pub const READINGS_IN: &str = "thermoalert_readings_total";
pub const REJECTED: &str = "thermoalert_rejected_total";
pub const ALERTS: &str = "thermoalert_alerts_total";
pub const WINDOWS_CLOSED: &str = "thermoalert_windows_closed_total";
pub const WINDOW_REVISIONS: &str = "thermoalert_window_revisions_total";
pub const LATE: &str = "thermoalert_late_readings_total";
pub const SENSORS_TRACKED: &str = "thermoalert_sensors_tracked";
pub const ARCHIVE_FILES: &str = "thermoalert_archive_files_total";
pub const ARCHIVE_BYTES: &str = "thermoalert_archive_bytes_total";
pub const ARCHIVE_COMPACTED: &str = "thermoalert_archive_files_compacted_total";
pub const ARCHIVE_EXPIRED: &str = "thermoalert_archive_files_expired_total";
pub const FLUSH_SECONDS: &str = "thermoalert_flush_seconds";
pub const PAUSES: &str = "thermoalert_consumption_pause_seconds";
pub const DELIVERY_RETRIES: &str = "thermoalert_delivery_retries_total";
pub const DELIVERY_FAILED: &str = "thermoalert_delivery_failed_total";
pub const DEAD_LETTERS_CUT: &str = "thermoalert_dead_letters_truncated_total";
pub const CONSUMER_DELAY: &str = "thermoalert_consumer_delay_seconds";
pub const CONSUMER_LAG: &str = "thermoalert_consumer_lag";

pub fn rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

pub fn alert(a: &Alert) {
    counter!(ALERTS, "kind" => a.kind.as_str(), "severity" => a.severity.as_str(), "state" => a.state.as_str())
        .increment(1);
}

/// The counter of valid readings, kept by the loop (one atomic add per reading).
pub fn readings_counter() -> metrics::Counter {
    counter!(READINGS_IN)
}

/// Publishes the core's running totals (they only grow; the exporter keeps the absolute) and
/// the number of sensors it tracks.
pub fn core(c: &Counters, sensors: usize) {
    gauge!(SENSORS_TRACKED).set(sensors as f64);
    counter!(WINDOWS_CLOSED).absolute(c.windows_closed);
    counter!(WINDOW_REVISIONS).absolute(c.window_revisions);
    counter!(LATE, "outcome" => "revised").absolute(c.late);
    counter!(LATE, "outcome" => "too_late").absolute(c.too_late);
}

pub fn archived(files: usize, bytes: usize) {
    counter!(ARCHIVE_FILES).increment(files as u64);
    counter!(ARCHIVE_BYTES).increment(bytes as u64);
}

pub fn compacted(files: usize) {
    counter!(ARCHIVE_COMPACTED).increment(files as u64);
}

pub fn expired(files: usize) {
    counter!(ARCHIVE_EXPIRED).increment(files as u64);
}

pub fn paused(took: Duration) {
    histogram!(PAUSES).record(took.as_secs_f64());
}

pub fn flushed(took: Duration) {
    histogram!(FLUSH_SECONDS).record(took.as_secs_f64());
}

pub fn delivery_retried(n: usize) {
    counter!(DELIVERY_RETRIES).increment(n as u64);
}

/// A record the broker refused for good, by topic (a bounded set of labels) and error.
pub fn delivery_failed(topic: &str, error: String) {
    let topic =
        [topics::ALERTS, topics::DEAD_LETTERS].into_iter().find(|t| *t == topic).unwrap_or("other");
    counter!(DELIVERY_FAILED, "topic" => topic, "error" => error).increment(1);
}

pub fn dead_letter_cut() {
    counter!(DEAD_LETTERS_CUT).increment(1);
}

pub fn consumer_delay(behind: Duration) {
    gauge!(CONSUMER_DELAY).set(behind.as_secs_f64());
}

/// The consumer's lag report, as one gauge per partition. A partition no longer reported
/// (revoked, or given to another instance) drops to 0: this instance owes nothing on it.
pub fn consumer_lag() -> LagReport {
    let held = Mutex::new(BTreeSet::new());
    Box::new(move |lag: &[(i32, i64)]| {
        let mut held = held.lock().expect("lag partitions lock");
        let now: BTreeSet<i32> = lag.iter().map(|&(p, _)| p).collect();
        for gone in held.difference(&now) {
            gauge!(CONSUMER_LAG, "partition" => gone.to_string()).set(0.0);
        }
        for &(partition, messages) in lag {
            gauge!(CONSUMER_LAG, "partition" => partition.to_string()).set(messages as f64);
        }
        *held = now;
    })
}
