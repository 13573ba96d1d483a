//! The data ThermoAlert moves around, in the JSON shapes of the design contract
//! (`../shared/DESIGN.md`): readings in, alerts out. Shared by the server and the browser, so
//! nothing here does I/O.

use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

/// One temperature measurement as a sensor publishes it on `temperature_data`.
///
/// ```json
/// {"timestamp": 1651234567, "sensor_id": "sensor1", "temperature": 78.5}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Event time in epoch seconds, integer or fractional. Serialized as an integer when it
    /// has no fraction, so a reading written back out looks like the one that came in.
    #[serde(serialize_with = "seconds")]
    pub timestamp: f64,
    pub sensor_id: String,
    /// Degrees Celsius, always finite once parsed.
    pub temperature: f64,
}

impl Reading {
    /// Event time in whole milliseconds (rounded toward negative infinity), the unit every
    /// rule and alert id uses so that float noise never changes a result.
    pub fn event_time_ms(&self) -> i64 {
        (self.timestamp * 1000.0).floor() as i64
    }
}

/// Writes epoch seconds as an integer when they have no fraction.
fn seconds<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

/// How bad a temperature is, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Normal,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "NORMAL",
            Level::High => "HIGH",
            Level::Critical => "CRITICAL",
        }
    }
}

/// A name that is none of an enum's names, e.g. `?severity=hot`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not {what} ({expected})")]
pub struct UnknownName {
    pub value: String,
    pub what: &'static str,
    pub expected: &'static str,
}

/// Finds `value` (any case) among `names`; `what`/`expected` word the error.
fn by_name<T: Copy>(
    value: &str,
    names: &[(&str, T)],
    what: &'static str,
    expected: &'static str,
) -> Result<T, UnknownName> {
    let v = value.trim();
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|&(_, t)| t)
        .ok_or_else(|| UnknownName { value: value.chars().take(64).collect(), what, expected })
}

impl Level {
    /// An alert severity: `HIGH` or `CRITICAL` (any case); `NORMAL` is no severity.
    pub fn severity(value: &str) -> Result<Level, UnknownName> {
        by_name(
            value,
            &[("HIGH", Level::High), ("CRITICAL", Level::Critical)],
            "a severity",
            "HIGH, CRITICAL",
        )
    }
}

/// What raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A single reading crossed a threshold.
    Instant,
    /// The average of an event-time window crossed a threshold.
    Window,
    /// A known sensor stopped reporting.
    Offline,
}

impl AlertKind {
    pub const ALL: [AlertKind; 3] = [AlertKind::Instant, AlertKind::Window, AlertKind::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Instant => "instant",
            AlertKind::Window => "window",
            AlertKind::Offline => "offline",
        }
    }
}

/// Where an alert episode stands. Every change is published as a new message carrying the
/// same `alert_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Open,
    Escalated,
    Cleared,
}

impl std::str::FromStr for AlertKind {
    type Err = UnknownName;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let names = AlertKind::ALL.map(|k| (k.as_str(), k));
        by_name(value, &names, "an alert kind", "instant, window, offline")
    }
}

impl AlertState {
    pub const ALL: [AlertState; 3] = [AlertState::Open, AlertState::Escalated, AlertState::Cleared];

    /// The name used in JSON, the index and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Escalated => "escalated",
            AlertState::Cleared => "cleared",
        }
    }
}

impl std::str::FromStr for AlertState {
    type Err = UnknownName;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let names = AlertState::ALL.map(|k| (k.as_str(), k));
        by_name(value, &names, "an alert state", "open, escalated, cleared")
    }
}

/// Most values one filter of a query may hold (a severity list, a sensor list, …), in page
/// URLs and in the JSON API alike.
pub const MAX_FILTER_VALUES: usize = 100;
/// The longest time range any query may span: 10 years (of 366 days), in milliseconds.
pub const MAX_QUERY_SPAN_MS: i64 = 10 * 366 * 86_400_000;

/// Which alerts to list. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub severities: Vec<Level>,
    pub sensors: Vec<String>,
    pub kinds: Vec<AlertKind>,
    pub states: Vec<AlertState>,
    /// Opened at or after (epoch ms).
    pub from_ms: Option<i64>,
    /// Opened before (epoch ms).
    pub to_ms: Option<i64>,
    /// At most this many, most severe first, then most recent first.
    pub limit: u32,
}

/// The statistics of one sensor's event-time window, as emitted when the watermark passes
/// its end and again, with a higher `revision`, each time late data changes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Epoch seconds, inclusive.
    #[serde(serialize_with = "seconds")]
    pub window_start: f64,
    /// Epoch seconds, exclusive.
    #[serde(serialize_with = "seconds")]
    pub window_end: f64,
    pub count: u64,
    pub avg_temperature: f64,
    pub min: f64,
    pub max: f64,
    /// 0 for the result emitted when the window closed; +1 for each revision by late data.
    pub revision: u32,
    /// Readings that arrived after the window had closed and are included.
    pub late: u64,
}

/// A [`WindowStats`] with the sensor it belongs to: what the pipeline emits per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorWindow {
    pub sensor_id: String,
    #[serde(flatten)]
    pub stats: WindowStats,
}

/// An alert as published on `temperature_alerts` and kept in the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic: kind, sensor and the event time the episode opened at, so replaying
    /// the same readings yields the same ids (see [`Alert::id_for`]).
    pub alert_id: String,
    pub kind: AlertKind,
    /// `HIGH` or `CRITICAL`; never `NORMAL`.
    pub severity: Level,
    pub state: AlertState,
    pub sensor_id: String,
    /// Event time (epoch seconds) of the reading that caused this state change.
    #[serde(serialize_with = "seconds")]
    pub timestamp: f64,
    /// The value that caused this state change (°C).
    pub temperature: f64,
    /// The threshold it was compared with (°C). For offline alerts: the silence, in seconds,
    /// after which a sensor counts as offline.
    pub threshold: f64,
    /// For window alerts: the window and its statistics.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowStats>,
}

impl Alert {
    /// The id of the episode of `kind` on `sensor_id` that opened at `opened_ms`.
    pub fn id_for(kind: AlertKind, sensor_id: &str, opened_ms: i64) -> String {
        format!("{}-{}-{}", kind.as_str(), sensor_id, opened_ms)
    }
}

/// An alert with its JSON, encoded once on its way out: the alerts topic, the archive, the
/// index and the live view all carry these same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedAlert {
    alert: Alert,
    json: Arc<str>,
}

impl EncodedAlert {
    pub fn new(alert: Alert) -> Self {
        // Serializing our own type into a string cannot fail.
        let json = serde_json::to_string(&alert).expect("alerts serialize").into();
        EncodedAlert { alert, json }
    }

    pub fn alert(&self) -> &Alert {
        &self.alert
    }

    /// The alert as JSON: one line, no line break.
    pub fn json(&self) -> &str {
        &self.json
    }
}

impl From<Alert> for EncodedAlert {
    fn from(alert: Alert) -> Self {
        EncodedAlert::new(alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_second_timestamps_round_trip_as_integers() {
        let r = Reading { timestamp: 1651234567.0, sensor_id: "sensor1".into(), temperature: 78.5 };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"timestamp":1651234567,"sensor_id":"sensor1","temperature":78.5}"#
        );
        let frac = Reading { timestamp: 1651234567.25, ..r };
        assert!(serde_json::to_string(&frac).unwrap().contains("1651234567.25"));
    }

    #[test]
    fn event_time_floors_to_milliseconds() {
        let r = Reading { timestamp: 1.0009, sensor_id: "s".into(), temperature: 0.0 };
        assert_eq!(r.event_time_ms(), 1000);
        let neg = Reading { timestamp: -0.0005, ..r };
        assert_eq!(neg.event_time_ms(), -1);
    }

    #[test]
    fn alert_serializes_in_the_contract_shape() {
        let a = Alert {
            alert_id: Alert::id_for(AlertKind::Instant, "sensor1", 1_000),
            kind: AlertKind::Instant,
            severity: Level::Critical,
            state: AlertState::Escalated,
            sensor_id: "sensor1".into(),
            timestamp: 1.0,
            temperature: 91.5,
            threshold: 90.0,
            window: None,
        };
        let v: serde_json::Value = serde_json::to_value(&a).unwrap();
        assert_eq!(v["alert_id"], "instant-sensor1-1000");
        assert_eq!(v["kind"], "instant");
        assert_eq!(v["severity"], "CRITICAL");
        assert_eq!(v["state"], "escalated");
        assert_eq!(v["state"], a.state.as_str());
        assert_eq!(v["timestamp"], 1);
        assert!(v.get("window_start").is_none());
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn window_alerts_carry_the_window_fields_flat() {
        let a = Alert {
            alert_id: Alert::id_for(AlertKind::Window, "s", 300_000),
            kind: AlertKind::Window,
            severity: Level::High,
            state: AlertState::Open,
            sensor_id: "s".into(),
            timestamp: 300.0,
            temperature: 81.25,
            threshold: 80.0,
            window: Some(WindowStats {
                window_start: 300.0,
                window_end: 600.0,
                count: 4,
                avg_temperature: 81.25,
                min: 79.0,
                max: 84.0,
                revision: 1,
                late: 1,
            }),
        };
        let v: serde_json::Value = serde_json::to_value(&a).unwrap();
        assert_eq!(v["window_start"], 300);
        assert_eq!(v["window_end"], 600);
        assert_eq!(v["avg_temperature"], 81.25);
        assert_eq!(v["count"], 4);
        assert_eq!(v["revision"], 1);
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
