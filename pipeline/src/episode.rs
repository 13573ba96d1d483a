//! Alert episodes: one alert per excursion instead of one per reading. An episode opens when a
//! sensor crosses a threshold, escalates once it crosses the CRITICAL one, and clears only
//! when the value falls below HIGH minus the hysteresis, so a sensor flapping around a
//! threshold yields a single episode. Every state change is an [`Alert`] with the episode's id.

use serde::{Deserialize, Serialize};

use crate::model::{Alert, AlertKind, AlertState, Level, Reading};
use crate::rules::Thresholds;

/// The open episode of one sensor, if any.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Episode {
    open: Option<OpenEpisode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct OpenEpisode {
    opened_ms: i64,
    severity: Level,
}

impl Episode {
    /// The severity of the open episode, or `None` when the sensor is quiet.
    pub fn severity(&self) -> Option<Level> {
        self.open.map(|o| o.severity)
    }

    /// Feeds one reading of this sensor; returns the state change it causes, if any.
    pub fn observe(&mut self, reading: &Reading, thresholds: &Thresholds) -> Option<Alert> {
        let level = thresholds.classify(reading.temperature);
        let alert = |opened_ms, severity, state, threshold| Alert {
            alert_id: Alert::id_for(AlertKind::Instant, &reading.sensor_id, opened_ms),
            kind: AlertKind::Instant,
            severity,
            state,
            sensor_id: reading.sensor_id.clone(),
            timestamp: reading.timestamp,
            temperature: reading.temperature,
            threshold,
            window: None,
        };
        match self.open {
            None if level > Level::Normal => {
                let opened_ms = reading.event_time_ms();
                self.open = Some(OpenEpisode { opened_ms, severity: level });
                Some(alert(opened_ms, level, AlertState::Open, thresholds.threshold_of(level)))
            }
            None => None,
            Some(open) if level > open.severity => {
                self.open = Some(OpenEpisode { severity: level, ..open });
                Some(alert(
                    open.opened_ms,
                    level,
                    AlertState::Escalated,
                    thresholds.threshold_of(level),
                ))
            }
            Some(open) if thresholds.clears(reading.temperature) => {
                self.open = None;
                Some(alert(
                    open.opened_ms,
                    open.severity,
                    AlertState::Cleared,
                    thresholds.high - thresholds.hysteresis,
                ))
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(temps: &[f64]) -> Vec<Alert> {
        let mut e = Episode::default();
        let t = Thresholds::default();
        temps
            .iter()
            .enumerate()
            .filter_map(|(i, &temp)| {
                let r = Reading { timestamp: i as f64, sensor_id: "s1".into(), temperature: temp };
                e.observe(&r, &t)
            })
            .collect()
    }

    fn states(alerts: &[Alert]) -> Vec<(AlertState, Level)> {
        alerts.iter().map(|a| (a.state, a.severity)).collect()
    }

    #[test]
    fn quiet_sensor_raises_nothing() {
        assert!(feed(&[20.0, 80.0, 79.9]).is_empty());
    }

    #[test]
    fn opens_escalates_and_clears_one_episode() {
        let alerts = feed(&[70.0, 81.0, 85.0, 91.0, 88.0, 79.0, 77.5, 70.0]);
        assert_eq!(
            states(&alerts),
            vec![
                (AlertState::Open, Level::High),
                (AlertState::Escalated, Level::Critical),
                (AlertState::Cleared, Level::Critical),
            ]
        );
        assert!(alerts.iter().all(|a| a.alert_id == "instant-s1-1000"));
        assert_eq!(alerts[1].threshold, 90.0);
        assert_eq!(alerts[2].temperature, 77.5);
    }

    #[test]
    fn flapping_around_the_threshold_is_one_episode() {
        let alerts = feed(&[79.0, 80.5, 79.5, 80.5, 78.5, 81.0, 78.1]);
        assert_eq!(states(&alerts), vec![(AlertState::Open, Level::High)]);
    }

    #[test]
    fn a_new_excursion_after_clearing_is_a_new_episode() {
        let alerts = feed(&[81.0, 70.0, 95.0]);
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts[2].state, AlertState::Open);
        assert_eq!(alerts[2].severity, Level::Critical);
        assert_ne!(alerts[0].alert_id, alerts[2].alert_id);
    }
}
