//! Sensor settings an operator changes while the server runs (thresholds today): one shared
//! view of them for the pages, and a channel that hands each change to the pipeline task,
//! which owns the core. Saving a change to the index is the caller's job, before `set`.

use std::sync::{Arc, RwLock};

use thermoalert_pipeline::processor::ProcessorConfig;
use thermoalert_pipeline::rules::Thresholds;
use tokio::sync::mpsc;

/// A threshold change on its way to the pipeline.
pub type Change = (String, Thresholds);

/// Cheap to clone; every clone sees and makes the same changes.
#[derive(Debug, Clone)]
pub struct Settings {
    config: Arc<RwLock<ProcessorConfig>>,
    changes: mpsc::UnboundedSender<Change>,
}

impl Settings {
    /// The settings the pipeline starts with, and the receiving end of later changes.
    pub fn new(config: ProcessorConfig) -> (Settings, mpsc::UnboundedReceiver<Change>) {
        let (changes, rx) = mpsc::unbounded_channel();
        (Settings { config: Arc::new(RwLock::new(config)), changes }, rx)
    }

    /// The thresholds `sensor_id` is judged by.
    pub fn thresholds(&self, sensor_id: &str) -> Thresholds {
        *self.config.read().expect("settings lock").thresholds(sensor_id)
    }

    /// The thresholds of sensors without their own.
    pub fn defaults(&self) -> Thresholds {
        self.config.read().expect("settings lock").defaults
    }

    /// Judges `sensor_id` by `thresholds` from now on. They must be valid (checked by the
    /// caller, who reports why not).
    pub fn set(&self, sensor_id: &str, thresholds: Thresholds) {
        self.config.write().expect("settings lock").per_sensor.insert(sensor_id.into(), thresholds);
        // The pipeline only stops listening when the server shuts down.
        let _ = self.changes.send((sensor_id.to_owned(), thresholds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_at_once_and_handed_to_the_pipeline() {
        let (settings, mut rx) = Settings::new(ProcessorConfig::default());
        let t = Thresholds { high: 10.0, critical: 20.0, hysteresis: 1.0 };
        settings.clone().set("s", t);
        assert_eq!(settings.thresholds("s"), t);
        assert_eq!(settings.thresholds("other"), Thresholds::default());
        assert_eq!(rx.try_recv().unwrap(), ("s".to_owned(), t));
    }
}
