//! What the live view shows and how it travels: the types sent over Server-Sent Events
//! (shared by server and browser) and, on the server, the [`LiveHub`] that keeps the latest
//! state of every sensor and fans events out to every open page through a bounded broadcast.

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

impl LiveEvent {
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Reading(_) => "reading",
            LiveEvent::Alert(_) => "alert",
            LiveEvent::Window(_) => "window",
            LiveEvent::Acknowledged(_) => "acknowledged",
        }
    }
}

/// A live event as it goes out to every subscriber: its SSE name and its JSON, serialized
/// once however many pages follow the stream.
#[cfg(feature = "ssr")]
#[derive(Debug, Clone)]
pub struct Published {
    pub name: &'static str,
    pub json: std::sync::Arc<str>,
}

/// How many recent alerts the overview keeps.
pub const RECENT_ALERTS: usize = 50;

#[cfg(feature = "ssr")]
pub use hub::LiveHub;

#[cfg(feature = "ssr")]
mod hub {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::{Arc, RwLock};

    use thermoalert_pipeline::model::{Alert, Level, Reading, SensorWindow};
    use tokio::sync::broadcast;

    use super::{
        AlertAck, LiveEvent, MAX_CHARTED, Overview, Published, RECENT_ALERTS, SensorView, Trail,
    };

    #[derive(Debug, Default)]
    struct Board {
        sensors: BTreeMap<String, SensorView>,
        trails: std::collections::HashMap<String, VecDeque<(f64, f64)>>,
        recent_alerts: VecDeque<Alert>,
        readings_seen: u64,
    }

    /// The server's live state, shared by the pipeline task (which publishes) and the web
    /// layer (which reads snapshots and subscribes). Cheap to clone.
    ///
    /// The broadcast is bounded: a subscriber that falls behind by more than its capacity
    /// skips ahead (it receives `Lagged`), so a slow browser never slows the pipeline nor
    /// grows memory. Each event is serialized once, and not at all while no one follows.
    #[derive(Debug, Clone)]
    pub struct LiveHub {
        board: Arc<RwLock<Board>>,
        tx: broadcast::Sender<Published>,
    }

    impl LiveHub {
        pub fn new(capacity: usize) -> Self {
            let (tx, _) = broadcast::channel(capacity);
            LiveHub { board: Arc::default(), tx }
        }

        /// Serializes the event once for every subscriber; while there is none (nobody is
        /// watching), the event is not even made.
        fn send(&self, event: impl FnOnce() -> LiveEvent) {
            if self.tx.receiver_count() == 0 {
                return;
            }
            let event = event();
            let json = serde_json::to_string(&event).expect("live events serialize");
            let _ = self.tx.send(Published { name: event.name(), json: json.into() });
        }

        pub fn publish_reading(&self, reading: &Reading, level: Level) {
            let view = {
                let mut board = self.board.write().expect("live board lock");
                board.readings_seen += 1;
                let view = match board.sensors.get_mut(reading.sensor_id.as_str()) {
                    Some(view) => {
                        view.advance(reading, level);
                        view
                    }
                    None => board
                        .sensors
                        .entry(reading.sensor_id.clone())
                        .or_insert_with(|| SensorView::first(reading, level)),
                };
                // Copied out of the lock, and only for subscribers.
                let view = (self.tx.receiver_count() > 0).then(|| view.clone());
                let trail = match board.trails.get_mut(&reading.sensor_id) {
                    Some(t) => t,
                    None => board.trails.entry(reading.sensor_id.clone()).or_default(),
                };
                Trail::push(trail, reading.timestamp, reading.temperature);
                view
            };
            if let Some(view) = view {
                self.send(|| LiveEvent::Reading(view));
            }
        }

        pub fn publish_alert(&self, alert: &Alert) {
            {
                let mut board = self.board.write().expect("live board lock");
                if alert.kind == thermoalert_pipeline::model::AlertKind::Offline
                    && let Some(view) = board.sensors.get_mut(&alert.sensor_id)
                {
                    view.offline = alert.state != thermoalert_pipeline::model::AlertState::Cleared;
                }
                board.recent_alerts.push_front(alert.clone());
                board.recent_alerts.truncate(RECENT_ALERTS);
            }
            self.send(|| LiveEvent::Alert(alert.clone()));
        }

        /// A window result (first or revised); only streamed, the overview does not keep it.
        pub fn publish_window(&self, window: &SensorWindow) {
            self.send(|| LiveEvent::Window(window.clone()));
        }

        /// An acknowledgement, for every open page.
        pub fn publish_ack(&self, ack: &AlertAck) {
            self.send(|| LiveEvent::Acknowledged(ack.clone()));
        }

        /// The latest state of one sensor, if it reported since the server started.
        pub fn sensor(&self, sensor_id: &str) -> Option<SensorView> {
            self.board.read().expect("live board lock").sensors.get(sensor_id).cloned()
        }

        /// The overview: every sensor, the recent alerts, and the trails of `charted` (of
        /// the most alarming sensors when empty).
        pub fn snapshot(&self, charted: &[String]) -> Overview {
            let board = self.board.read().expect("live board lock");
            let mut chosen: Vec<&SensorView> = if charted.is_empty() {
                board.sensors.values().collect()
            } else {
                charted.iter().filter_map(|id| board.sensors.get(id)).collect()
            };
            if charted.is_empty() {
                chosen.sort_by(|a, b| {
                    b.level.cmp(&a.level).then(b.temperature.total_cmp(&a.temperature))
                });
            }
            let trails = chosen
                .into_iter()
                .take(MAX_CHARTED)
                .map(|v| Trail {
                    sensor_id: v.sensor_id.clone(),
                    points: board
                        .trails
                        .get(&v.sensor_id)
                        .map(|t| t.iter().copied().collect())
                        .unwrap_or_default(),
                })
                .collect();
            Overview {
                trails,
                defaults: Default::default(),
                sensors: board.sensors.values().cloned().collect(),
                recent_alerts: board.recent_alerts.iter().cloned().collect(),
                readings_seen: board.readings_seen,
            }
        }

        pub fn subscribe(&self) -> broadcast::Receiver<Published> {
            self.tx.subscribe()
        }

        pub fn subscribers(&self) -> usize {
            self.tx.receiver_count()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn trails_keep_one_point_per_step_and_a_bounded_length() {
            let mut t = VecDeque::new();
            for i in 0..1000 {
                Trail::push(&mut t, f64::from(i) * 0.5, f64::from(i));
            }
            assert_eq!(t.len(), super::super::TRAIL_POINTS);
            assert!(t.iter().zip(t.iter().skip(1)).all(|(a, b)| b.0 - a.0 >= 2.0));
            Trail::push(&mut t, 0.0, 1.0);
            assert_eq!(t.back().unwrap().0, 498.0, "an older reading is not appended");
        }

        fn reading(s: &str, t: f64, temp: f64) -> Reading {
            Reading { timestamp: t, sensor_id: s.into(), temperature: temp }
        }

        #[test]
        fn snapshot_keeps_latest_per_sensor_with_previous_value() {
            let hub = LiveHub::new(8);
            hub.publish_reading(&reading("b", 1.0, 20.0), Level::Normal);
            hub.publish_reading(&reading("a", 1.0, 30.0), Level::Normal);
            hub.publish_reading(&reading("a", 2.0, 85.0), Level::High);
            let snap = hub.snapshot(&[]);
            assert_eq!(snap.readings_seen, 3);
            // The hottest sensor is charted first; its second reading came too soon.
            let charted: Vec<_> = snap.trails.iter().map(|t| t.sensor_id.as_str()).collect();
            assert_eq!(charted, ["a", "b"]);
            assert_eq!(snap.trails[0].points, [(1.0, 30.0)]);
            let only_b = hub.snapshot(&["b".into(), "nope".into()]);
            assert_eq!(only_b.trails.len(), 1);
            assert_eq!(only_b.trails[0].sensor_id, "b");
            let ids: Vec<_> = snap.sensors.iter().map(|s| s.sensor_id.as_str()).collect();
            assert_eq!(ids, ["a", "b"]);
            assert_eq!(snap.sensors[0].temperature, 85.0);
            assert_eq!(snap.sensors[0].previous, Some(30.0));
            assert_eq!(snap.sensors[0].level, Level::High);
        }

        #[test]
        fn an_offline_alert_marks_the_sensor_until_it_clears() {
            use thermoalert_pipeline::model::{AlertKind, AlertState};
            let hub = LiveHub::new(8);
            hub.publish_reading(&reading("a", 1.0, 20.0), Level::Normal);
            let offline = |state| Alert {
                alert_id: "offline-a-1000".into(),
                kind: AlertKind::Offline,
                severity: Level::High,
                state,
                sensor_id: "a".into(),
                timestamp: 31.0,
                temperature: 20.0,
                threshold: 30.0,
                window: None,
            };
            hub.publish_alert(&offline(AlertState::Open));
            assert!(hub.sensor("a").unwrap().offline);
            hub.publish_alert(&offline(AlertState::Cleared));
            assert!(!hub.sensor("a").unwrap().offline);
        }

        #[test]
        fn a_slow_subscriber_skips_ahead_instead_of_blocking() {
            let hub = LiveHub::new(4);
            let mut rx = hub.subscribe();
            for i in 0..10 {
                hub.publish_reading(&reading("a", f64::from(i), 20.0), Level::Normal);
            }
            assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(6))));
            let next = rx.try_recv().unwrap();
            assert_eq!(next.name, "reading");
            let view: SensorView = serde_json::from_str(&next.json).unwrap();
            assert_eq!(view.timestamp, 6.0);
            // Unwatched, the hub still keeps the board.
            drop(rx);
            hub.publish_reading(&reading("a", 20.0, 25.0), Level::Normal);
            assert_eq!(hub.sensor("a").unwrap().temperature, 25.0);
        }
    }
}

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
