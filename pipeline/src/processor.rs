//! The pipeline core as one pure stage: readings in, alerts out, per-sensor state kept in
//! memory. No I/O and no clock: the adapters feed it and carry its output away.

use std::collections::HashMap;

use crate::episode::Episode;
use crate::model::{Alert, Level, Reading};
use crate::rules::Thresholds;

/// Settings of the core.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessorConfig {
    /// Thresholds of sensors without their own.
    pub defaults: Thresholds,
    /// Per-sensor overrides.
    pub per_sensor: HashMap<String, Thresholds>,
}

impl ProcessorConfig {
    /// The thresholds `sensor_id` is judged by.
    pub fn thresholds(&self, sensor_id: &str) -> &Thresholds {
        self.per_sensor.get(sensor_id).unwrap_or(&self.defaults)
    }
}

#[derive(Debug, Default)]
struct SensorState {
    episode: Episode,
}

/// Classifies readings and tracks alert episodes for every sensor it has seen.
#[derive(Debug, Default)]
pub struct Processor {
    config: ProcessorConfig,
    sensors: HashMap<String, SensorState>,
}

impl Processor {
    pub fn new(config: ProcessorConfig) -> Self {
        Processor {
            config,
            sensors: HashMap::new(),
        }
    }

    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// Processes one reading, appending the alerts it causes to `out`; returns its level.
    pub fn process(&mut self, reading: &Reading, out: &mut Vec<Alert>) -> Level {
        let thresholds = self.config.thresholds(&reading.sensor_id);
        let state = match self.sensors.get_mut(reading.sensor_id.as_str()) {
            Some(s) => s,
            None => self.sensors.entry(reading.sensor_id.clone()).or_default(),
        };
        out.extend(state.episode.observe(reading, thresholds));
        thresholds.classify(reading.temperature)
    }

    /// The severity of the open instant episode of a sensor, if any.
    pub fn open_severity(&self, sensor_id: &str) -> Option<Level> {
        self.sensors
            .get(sensor_id)
            .and_then(|s| s.episode.severity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertState;

    fn reading(sensor: &str, t: f64, temp: f64) -> Reading {
        Reading {
            timestamp: t,
            sensor_id: sensor.into(),
            temperature: temp,
        }
    }

    #[test]
    fn sensors_are_judged_by_their_own_thresholds() {
        let mut config = ProcessorConfig::default();
        config.per_sensor.insert(
            "freezer".into(),
            Thresholds {
                high: -15.0,
                critical: -10.0,
                hysteresis: 1.0,
            },
        );
        let mut p = Processor::new(config);
        let mut out = Vec::new();
        assert_eq!(
            p.process(&reading("freezer", 1.0, -12.0), &mut out),
            Level::High
        );
        assert_eq!(
            p.process(&reading("oven", 1.0, -12.0), &mut out),
            Level::Normal
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sensor_id, "freezer");
        assert_eq!(out[0].threshold, -15.0);
    }

    #[test]
    fn episodes_are_tracked_per_sensor() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Vec::new();
        p.process(&reading("a", 1.0, 85.0), &mut out);
        p.process(&reading("b", 1.0, 95.0), &mut out);
        p.process(&reading("a", 2.0, 70.0), &mut out);
        assert_eq!(p.open_severity("a"), None);
        assert_eq!(p.open_severity("b"), Some(Level::Critical));
        let states: Vec<_> = out
            .iter()
            .map(|a| (a.sensor_id.as_str(), a.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("a", AlertState::Open),
                ("b", AlertState::Open),
                ("a", AlertState::Cleared)
            ]
        );
    }
}
