//! Sensor liveness: a known sensor that sends nothing for `offline_after` of processing time
//! gets an offline alert; its next reading clears it. Processing time, not event time: a
//! sensor whose clock is wrong is still seen to be talking.

use serde::{Deserialize, Serialize};

use crate::model::{Alert, AlertKind, AlertState, Level};

/// Default silence after which a sensor is offline: 30 seconds.
pub const DEFAULT_OFFLINE_AFTER_MS: i64 = 30_000;

/// The liveness of one sensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Liveness {
    /// Processing time (epoch ms) of the latest reading.
    last_arrival_ms: i64,
    /// Event time (epoch ms) and value of the latest reading, for the alert.
    last_event_ms: i64,
    #[serde(with = "crate::exact_f64")]
    last_temperature: f64,
    /// Set while an offline alert is open: the event time it is keyed by.
    offline_since_event_ms: Option<i64>,
}

impl Liveness {
    pub fn new(arrival_ms: i64, event_ms: i64, temperature: f64) -> Self {
        Liveness {
            last_arrival_ms: arrival_ms,
            last_event_ms: event_ms,
            last_temperature: temperature,
            offline_since_event_ms: None,
        }
    }

    /// Takes up watching after a restart at processing time `now_ms`: the downtime is not
    /// the sensor's silence. An open offline alert stays open.
    pub fn resume(&mut self, now_ms: i64) {
        self.last_arrival_ms = now_ms;
    }

    /// Processing time since the latest reading.
    pub fn idle_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.last_arrival_ms)
    }

    pub fn is_offline(&self) -> bool {
        self.offline_since_event_ms.is_some()
    }

    /// Records a reading; clears an open offline alert.
    #[inline]
    pub fn seen(
        &mut self,
        sensor_id: &str,
        arrival_ms: i64,
        event_ms: i64,
        temperature: f64,
        offline_after_ms: i64,
    ) -> Option<Alert> {
        self.last_arrival_ms = self.last_arrival_ms.max(arrival_ms);
        self.last_temperature = temperature;
        self.last_event_ms = event_ms;
        let since = self.offline_since_event_ms.take()?;
        Some(alert(sensor_id, since, AlertState::Cleared, event_ms, temperature, offline_after_ms))
    }

    /// Opens the offline alert once the sensor has been silent for `offline_after_ms`.
    pub fn check(&mut self, sensor_id: &str, now_ms: i64, offline_after_ms: i64) -> Option<Alert> {
        if self.offline_since_event_ms.is_some() || self.idle_ms(now_ms) < offline_after_ms {
            return None;
        }
        self.offline_since_event_ms = Some(self.last_event_ms);
        Some(alert(
            sensor_id,
            self.last_event_ms,
            AlertState::Open,
            self.last_event_ms,
            self.last_temperature,
            offline_after_ms,
        ))
    }
}

fn alert(
    sensor_id: &str,
    keyed_ms: i64,
    state: AlertState,
    event_ms: i64,
    temperature: f64,
    offline_after_ms: i64,
) -> Alert {
    Alert {
        alert_id: Alert::id_for(AlertKind::Offline, sensor_id, keyed_ms),
        kind: AlertKind::Offline,
        severity: Level::High,
        state,
        sensor_id: sensor_id.to_owned(),
        timestamp: event_ms as f64 / 1000.0,
        temperature,
        threshold: offline_after_ms as f64 / 1000.0,
        window: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_opens_one_alert_and_the_next_reading_clears_it() {
        let mut l = Liveness::new(1_000, 500, 21.0);
        assert_eq!(l.check("s", 30_999, 30_000), None, "29.999 s of silence is not yet offline");
        let open = l.check("s", 31_000, 30_000).expect("offline after 30 s");
        assert_eq!((open.state, open.kind), (AlertState::Open, AlertKind::Offline));
        assert_eq!(open.alert_id, "offline-s-500");
        assert_eq!((open.timestamp, open.temperature, open.threshold), (0.5, 21.0, 30.0));
        assert_eq!(l.check("s", 90_000, 30_000), None, "one alert per silence");
        let cleared = l.seen("s", 95_000, 94_000, 22.0, 30_000).expect("cleared");
        assert_eq!(
            (cleared.state, cleared.alert_id.as_str()),
            (AlertState::Cleared, "offline-s-500")
        );
        assert!(!l.is_offline());
        assert_eq!(l.seen("s", 96_000, 95_000, 22.0, 30_000), None);
    }
}
