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
}

impl SensorView {
    /// The view after `reading` (classified as `level`) arrives on top of `self`.
    pub fn next(prev: Option<&SensorView>, reading: &Reading, level: Level) -> SensorView {
        SensorView {
            sensor_id: reading.sensor_id.clone(),
            timestamp: reading.timestamp,
            temperature: reading.temperature,
            level,
            previous: prev.map(|p| p.temperature),
        }
    }
}

/// Everything the overview needs for its first paint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Sorted by sensor id.
    pub sensors: Vec<SensorView>,
    /// Most recent first.
    pub recent_alerts: Vec<Alert>,
    /// Readings processed since the server started.
    pub readings_seen: u64,
}

/// One Server-Sent Event of `/api/stream`; the event name is [`LiveEvent::name`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveEvent {
    Reading(SensorView),
    Alert(Alert),
    Window(SensorWindow),
}

impl LiveEvent {
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Reading(_) => "reading",
            LiveEvent::Alert(_) => "alert",
            LiveEvent::Window(_) => "window",
        }
    }
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

    use super::{LiveEvent, Overview, RECENT_ALERTS, SensorView};

    #[derive(Debug, Default)]
    struct Board {
        sensors: BTreeMap<String, SensorView>,
        recent_alerts: VecDeque<Alert>,
        readings_seen: u64,
    }

    /// The server's live state, shared by the pipeline task (which publishes) and the web
    /// layer (which reads snapshots and subscribes). Cheap to clone.
    ///
    /// The broadcast is bounded: a subscriber that falls behind by more than its capacity
    /// skips ahead (it receives `Lagged`), so a slow browser never slows the pipeline nor
    /// grows memory.
    #[derive(Debug, Clone)]
    pub struct LiveHub {
        board: Arc<RwLock<Board>>,
        tx: broadcast::Sender<LiveEvent>,
    }

    impl LiveHub {
        pub fn new(capacity: usize) -> Self {
            let (tx, _) = broadcast::channel(capacity);
            LiveHub { board: Arc::default(), tx }
        }

        pub fn publish_reading(&self, reading: &Reading, level: Level) {
            let view = {
                let mut board = self.board.write().expect("live board lock");
                board.readings_seen += 1;
                let view = SensorView::next(board.sensors.get(&reading.sensor_id), reading, level);
                board.sensors.insert(reading.sensor_id.clone(), view.clone());
                view
            };
            // No subscribers is fine: nobody is watching.
            let _ = self.tx.send(LiveEvent::Reading(view));
        }

        pub fn publish_alert(&self, alert: &Alert) {
            {
                let mut board = self.board.write().expect("live board lock");
                board.recent_alerts.push_front(alert.clone());
                board.recent_alerts.truncate(RECENT_ALERTS);
            }
            let _ = self.tx.send(LiveEvent::Alert(alert.clone()));
        }

        /// A window result (first or revised); only streamed, the overview does not keep it.
        pub fn publish_window(&self, window: &SensorWindow) {
            let _ = self.tx.send(LiveEvent::Window(window.clone()));
        }

        pub fn snapshot(&self) -> Overview {
            let board = self.board.read().expect("live board lock");
            Overview {
                sensors: board.sensors.values().cloned().collect(),
                recent_alerts: board.recent_alerts.iter().cloned().collect(),
                readings_seen: board.readings_seen,
            }
        }

        pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
            self.tx.subscribe()
        }

        pub fn subscribers(&self) -> usize {
            self.tx.receiver_count()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn reading(s: &str, t: f64, temp: f64) -> Reading {
            Reading { timestamp: t, sensor_id: s.into(), temperature: temp }
        }

        #[test]
        fn snapshot_keeps_latest_per_sensor_with_previous_value() {
            let hub = LiveHub::new(8);
            hub.publish_reading(&reading("b", 1.0, 20.0), Level::Normal);
            hub.publish_reading(&reading("a", 1.0, 30.0), Level::Normal);
            hub.publish_reading(&reading("a", 2.0, 85.0), Level::High);
            let snap = hub.snapshot();
            assert_eq!(snap.readings_seen, 3);
            let ids: Vec<_> = snap.sensors.iter().map(|s| s.sensor_id.as_str()).collect();
            assert_eq!(ids, ["a", "b"]);
            assert_eq!(snap.sensors[0].temperature, 85.0);
            assert_eq!(snap.sensors[0].previous, Some(30.0));
            assert_eq!(snap.sensors[0].level, Level::High);
        }

        #[test]
        fn a_slow_subscriber_skips_ahead_instead_of_blocking() {
            let hub = LiveHub::new(4);
            let mut rx = hub.subscribe();
            for i in 0..10 {
                hub.publish_reading(&reading("a", f64::from(i), 20.0), Level::Normal);
            }
            assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(6))));
            let LiveEvent::Reading(next) = rx.try_recv().unwrap() else { panic!("a reading") };
            assert_eq!(next.timestamp, 6.0);
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
