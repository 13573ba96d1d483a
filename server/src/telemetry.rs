//! The server's metrics, in one place: their names, what they mean, and the Prometheus
//! recorder `GET /metrics` renders. The pipeline core only counts (see
//! `thermoalert_pipeline::processor::Counters`); the run loop turns what happens into metrics
//! where it happens (`thermoalert_pipeline::runner::metrics`, as the app does for logins),
//! and the server's own adapters here. Every name is listed here, described once.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const HTTP_SECONDS: &str = "thermoalert_http_request_seconds";
pub const HTTP_ERRORS: &str = "thermoalert_http_errors_total";
pub const REFUSED_CONNECTIONS: &str = "thermoalert_http_connections_refused_total";
pub use thermoalert_app::auth::throttle::{LOGINS_FAILED, LOGINS_REFUSED};
pub use thermoalert_app::live::follow::{SSE_CLIENTS, SSE_LAGGED};
pub use thermoalert_app::rest::BUSY;
pub use thermoalert_pipeline::history::SKIPPED_LINES;
pub use thermoalert_pipeline::runner::metrics::{
    ALERTS, ARCHIVE_BYTES, ARCHIVE_COMPACTED, ARCHIVE_EXPIRED, ARCHIVE_FILES, CONSUMER_DELAY,
    CONSUMER_LAG, DEAD_LETTERS_CUT, DELIVERY_FAILED, DELIVERY_RETRIES, FLUSH_SECONDS, LATE, PAUSES,
    READINGS_IN, REJECTED, SENSORS_TRACKED, WINDOW_REVISIONS, WINDOWS_CLOSED,
};

/// Installs the global recorder; call once, at start.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])?
        .install_recorder()?;
    describe_counter!(READINGS_IN, "Valid readings consumed from Kafka.");
    describe_counter!(
        REJECTED,
        "Messages sent to the dead-letter topic, by reason (`sensor_limit`: a valid reading of \
         a sensor beyond THERMO_MAX_SENSORS)."
    );
    describe_gauge!(SENSORS_TRACKED, "Sensors whose state the pipeline keeps in memory.");
    describe_counter!(LOGINS_FAILED, "Logins with a wrong name or password (answered 401).");
    describe_counter!(
        LOGINS_REFUSED,
        "Logins refused before their password was checked (429), by reason: `busy` (too many \
         checks waiting), `throttled` (the client or name failed too often)."
    );
    describe_gauge!(
        CONSUMER_DELAY,
        "Age of the last reading the pipeline read from Kafka (0 when none came for a second): \
         past the readings topic's retention, readings are deleted unread."
    );
    describe_counter!(
        BUSY,
        "History queries (raw readings, CSV, charts) refused with 503 because as many were \
         running as may at once and the wait for a turn ran out."
    );
    describe_counter!(
        REFUSED_CONNECTIONS,
        "HTTP connections answered 503 at once: as many were open as the file-descriptor \
         limit allows beside the archive, index and Kafka."
    );
    describe_counter!(ALERTS, "Alert state changes raised, by kind, severity and state.");
    describe_counter!(WINDOWS_CLOSED, "Event-time windows closed by the watermark.");
    describe_counter!(WINDOW_REVISIONS, "Window results revised by late readings.");
    describe_counter!(
        LATE,
        "Readings after their window closed: revised, or too late for any window."
    );
    describe_counter!(ARCHIVE_FILES, "Files written to the archive.");
    describe_counter!(
        SKIPPED_LINES,
        "Damaged archive lines that history queries skipped (a crash tears a file's last \
         line; the replay after it writes the record again)."
    );
    describe_counter!(ARCHIVE_BYTES, "Bytes written to the archive.");
    describe_counter!(ARCHIVE_COMPACTED, "Archive files merged into one per sensor-day.");
    describe_counter!(ARCHIVE_EXPIRED, "Archive files deleted past the retention.");
    describe_histogram!(
        FLUSH_SECONDS,
        "Time to make a flush durable: archive, index, broker acknowledgements, commit."
    );
    describe_counter!(
        DELIVERY_RETRIES,
        "Alert or dead-letter deliveries that failed and were sent again."
    );
    describe_counter!(
        DELIVERY_FAILED,
        "Alerts or dead letters the broker refused for good (too large, invalid, topic gone or \
         forbidden), by topic and error: given up, not retried."
    );
    describe_counter!(
        DEAD_LETTERS_CUT,
        "Dead letters whose copy of the original value or key was cut to fit the broker."
    );
    describe_gauge!(SSE_CLIENTS, "Browsers connected to the live stream.");
    describe_counter!(SSE_LAGGED, "Live events skipped by clients that fell behind.");
    describe_histogram!(HTTP_SECONDS, "HTTP request latency, by route.");
    describe_counter!(
        HTTP_ERRORS,
        "HTTP answers with an error status (4xx: refused, 5xx: failed), by route and status."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Readings in each partition this instance holds that it has not yet committed \
         (not yet read, or read but not yet durable), by partition."
    );
    describe_histogram!(
        PAUSES,
        "Pauses of consumption waiting for the archive: a flush still running when the next \
         had to start (the buffer bound reached, a rebalance, shutdown)."
    );
    Ok(handle)
}

pub fn refused_connection() {
    counter!(REFUSED_CONNECTIONS).increment(1);
}

/// One answer: its latency, and if it is an error, its status.
pub fn http(route: String, status: u16, took: Duration) {
    if status >= 400 {
        counter!(HTTP_ERRORS, "route" => route.clone(), "status" => status.to_string())
            .increment(1);
    }
    histogram!(HTTP_SECONDS, "route" => route).record(took.as_secs_f64());
}
