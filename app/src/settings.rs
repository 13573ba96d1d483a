//! The pipeline core's settings as the pages see them, and the one place where an operator
//! changes them while the server runs (thresholds today). The threshold table lives in a
//! watch channel: the pages read its current value, the pipeline task (which owns the core)
//! receives each new table whole. Saving a change to the index is the caller's job, before
//! [`Settings::set`].

use std::sync::Arc;

use thermoalert_pipeline::processor::ProcessorConfig;
use thermoalert_pipeline::rules::{ThresholdTable, Thresholds};
use tokio::sync::watch;

/// Cheap to clone; every clone sees and makes the same changes.
#[derive(Debug, Clone)]
pub struct Settings {
    thresholds: watch::Sender<Arc<ThresholdTable>>,
    max_sensors: usize,
}

impl Settings {
    /// The settings the pipeline starts with, and the pipeline's end of later changes.
    pub fn new(config: &ProcessorConfig) -> (Settings, watch::Receiver<Arc<ThresholdTable>>) {
        let (thresholds, rx) = watch::channel(Arc::clone(&config.thresholds));
        (Settings { thresholds, max_sensors: config.max_sensors }, rx)
    }

    /// The thresholds `sensor_id` is judged by.
    pub fn thresholds(&self, sensor_id: &str) -> Thresholds {
        *self.thresholds.borrow().of(sensor_id)
    }

    /// The thresholds of sensors without their own.
    pub fn defaults(&self) -> Thresholds {
        self.thresholds.borrow().defaults
    }

    /// Sensors the pipeline tracks at most (`THERMO_MAX_SENSORS`).
    pub fn max_sensors(&self) -> usize {
        self.max_sensors
    }

    /// Judges `sensor_id` by `thresholds` from now on. They must be valid (checked by the
    /// caller, who reports why not). The table is copied only while the pipeline still holds
    /// the previous one.
    pub fn set(&self, sensor_id: &str, thresholds: Thresholds) {
        // `send_modify` changes the value even when no one listens (the pipeline only stops
        // listening when the server shuts down).
        self.thresholds.send_modify(|table| {
            Arc::make_mut(table).per_sensor.insert(sensor_id.to_owned(), thresholds);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_at_once_and_handed_to_the_pipeline() {
        let (settings, mut rx) = Settings::new(&ProcessorConfig::default());
        let t = Thresholds { high: 10.0, critical: 20.0, hysteresis: 1.0 };
        settings.clone().set("s", t);
        assert_eq!(settings.thresholds("s"), t);
        assert_eq!(settings.thresholds("other"), Thresholds::default());
        assert!(rx.has_changed().unwrap());
        let table = rx.borrow_and_update();
        assert_eq!((*table.of("s"), *table.of("other")), (t, Thresholds::default()));
    }

    #[test]
    fn the_table_the_pipeline_holds_does_not_change_under_it() {
        let (settings, rx) = Settings::new(&ProcessorConfig::default());
        let held = Arc::clone(&rx.borrow());
        settings.set("s", Thresholds { high: 10.0, critical: 20.0, hysteresis: 1.0 });
        assert!(held.per_sensor.is_empty());
        assert_eq!(rx.borrow().per_sensor.len(), 1);
    }
}
