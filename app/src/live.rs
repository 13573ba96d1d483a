//! What the live view shows and how it travels: the types sent over Server-Sent Events
//! (shared by server and browser) and, on the server, the `LiveHub` that keeps the latest
//! state of every sensor and fans events out to every open page (`live/hub.rs`).

use serde::{Deserialize, Serialize};
use thermoalert_pipeline::model::{Alert, Level, Reading, SensorWindow};

/// The latest known state of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorView {
    pub sensor_id: String,
    /// Event time (epoch seconds) of the latest reading.
    pub timestamp: f64,
    pub temperature: f64,
    pub level: Level,
    /// The temperature before the latest one, for the trend arrow.
    pub previous: Option<f64>,
    /// Silent for longer than the offline delay (an offline alert is open).
    #[serde(default)]
    pub offline: bool,
}

impl SensorView {
    /// The view of a sensor's first `reading` (classified as `level`).
    pub fn first(reading: &Reading, level: Level) -> SensorView {
        SensorView {
            sensor_id: reading.sensor_id.clone(),
            timestamp: reading.timestamp,
            temperature: reading.temperature,
            level,
            previous: None,
            offline: false,
        }
    }

    /// Moves the view on to the sensor's next `reading`, in place (no allocation: this runs
    /// for every reading).
    pub fn advance(&mut self, reading: &Reading, level: Level) {
        self.previous = Some(self.temperature);
        self.timestamp = reading.timestamp;
        self.temperature = reading.temperature;
        self.level = level;
        self.offline = false;
    }
}

/// The recent readings of one sensor, `(epoch s, °C)`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trail {
    pub sensor_id: String,
    pub points: Vec<(f64, f64)>,
}

/// The overview's live chart keeps one point per sensor every this many seconds...
pub const TRAIL_STEP_S: f64 = 2.0;
/// ...for this many points (three minutes).
pub const TRAIL_POINTS: usize = 90;
/// At most this many sensors on the live chart.
pub const MAX_CHARTED: usize = 6;

impl Trail {
    /// Adds a reading if it is at least [`TRAIL_STEP_S`] after the last point kept (or
    /// before it: a late or replayed reading restarts nothing), dropping the oldest beyond
    /// [`TRAIL_POINTS`].
    pub fn push(points: &mut std::collections::VecDeque<(f64, f64)>, t: f64, temp: f64) {
        if points.back().is_some_and(|&(last, _)| t < last + TRAIL_STEP_S) {
            return;
        }
        if points.len() == TRAIL_POINTS {
            points.pop_front();
        }
        points.push_back((t, temp));
    }
}

/// Everything the overview needs for its first paint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Sorted by sensor id.
    pub sensors: Vec<SensorView>,
    /// The charted sensors' recent readings.
    pub trails: Vec<Trail>,
    /// The thresholds of sensors without their own, drawn on the live chart.
    pub defaults: thermoalert_pipeline::rules::Thresholds,
    /// Most recent first.
    pub recent_alerts: Vec<Alert>,
    /// Readings processed since the server started.
    pub readings_seen: u64,
}

/// An operator acknowledged an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAck {
    pub alert_id: String,
    pub by: String,
    /// Epoch seconds.
    pub at: f64,
}

/// One Server-Sent Event of `/api/stream`; the event name is [`LiveEvent::name`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveEvent {
    Reading(SensorView),
    Alert(Alert),
    Window(SensorWindow),
    Acknowledged(AlertAck),
}

/// The SSE event names: the server frames events with them, the browser listens for them.
impl LiveEvent {
    pub const READING: &'static str = "reading";
    /// The hub frames these from the alert's own JSON ([`EncodedAlert`]).
    ///
    /// [`EncodedAlert`]: thermoalert_pipeline::model::EncodedAlert
    pub const ALERT: &'static str = "alert";
    pub const WINDOW: &'static str = "window";
    pub const ACKNOWLEDGED: &'static str = "acknowledged";
    /// Not a `LiveEvent`: the data is how many events the server skipped for a page that fell
    /// behind.
    pub const LAGGED: &'static str = "lagged";

    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Reading(_) => LiveEvent::READING,
            LiveEvent::Alert(_) => LiveEvent::ALERT,
            LiveEvent::Window(_) => LiveEvent::WINDOW,
            LiveEvent::Acknowledged(_) => LiveEvent::ACKNOWLEDGED,
        }
    }
}

/// How many recent alerts the overview keeps.
pub const RECENT_ALERTS: usize = 50;

#[cfg(feature = "ssr")]
pub use hub::{BATCH_BYTES, Delivery, LiveHub, Subscription};

#[cfg(feature = "hydrate")]
pub mod browser;
#[cfg(feature = "ssr")]
pub mod follow;
#[cfg(feature = "ssr")]
mod hub;

/// The state of the browser's connection to `/api/stream`, shown on every live page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    Connecting,
    Live,
    /// The connection dropped; the browser retries by itself.
    Reconnecting,
}

impl StreamState {
    pub fn label(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Live => "live",
            StreamState::Reconnecting => "reconnecting",
        }
    }
}
