//! The pipeline core as one pure stage: readings in, alerts and window results out, the state
//! of every sensor kept in memory. No I/O and no clock: the caller hands in the processing
//! time with each call, and calls [`Processor::tick`] regularly (about once a second) so that
//! idle sensors close their windows and silent ones are reported offline.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::episode::Episode;
use crate::model::{Alert, Level, Reading, SensorWindow, WindowStats};
use crate::offline::{DEFAULT_OFFLINE_AFTER_MS, Liveness};
use crate::rules::{ThresholdTable, Thresholds};
use crate::window::{Placement, SensorWindows, WindowConfig};

/// Settings of the core.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Every sensor's thresholds (replaced whole by [`Processor::set_thresholds`]).
    pub thresholds: Arc<ThresholdTable>,
    pub windows: WindowConfig,
    /// Processing-time silence after which a known sensor is offline.
    pub offline_after_ms: i64,
    /// Sensors tracked at most (see [`Processor::admits`]).
    pub max_sensors: usize,
}

/// Default of [`ProcessorConfig::max_sensors`].
pub const DEFAULT_MAX_SENSORS: usize = 100_000;

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            thresholds: Arc::default(),
            windows: WindowConfig::default(),
            offline_after_ms: DEFAULT_OFFLINE_AFTER_MS,
            max_sensors: DEFAULT_MAX_SENSORS,
        }
    }
}

/// What the core emits; the caller drains it after each call.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    /// Alert state changes, in the order they happened.
    pub alerts: Vec<Alert>,
    /// Window results: first results (`revision` 0) and revisions by late data.
    pub windows: Vec<SensorWindow>,
}

impl Output {
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.windows.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.windows.is_empty()
    }
}

/// Running totals, for metrics: nothing is dropped without being counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub readings: u64,
    /// Readings that arrived after their window closed and revised it.
    pub late: u64,
    /// Readings older than the revision horizon: archived, but in no window.
    pub too_late: u64,
    pub windows_closed: u64,
    pub window_revisions: u64,
}

#[derive(Debug)]
struct SensorState {
    /// This sensor's row of [`ProcessorConfig::thresholds`], kept here to spare a lookup per
    /// reading.
    thresholds: Thresholds,
    episode: Episode,
    windows: SensorWindows,
    liveness: Liveness,
    /// Changed since the last [`Processor::take_changed`].
    changed: bool,
}

/// The state of one sensor, to persist with the data it covers and restore after a restart,
/// so that a replay continues episodes and windows instead of starting them anew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorSnapshot {
    pub sensor_id: String,
    episode: Episode,
    windows: SensorWindows,
    liveness: Liveness,
}

/// Classifies readings, tracks alert episodes, windows and liveness for every sensor.
#[derive(Debug, Default)]
pub struct Processor {
    config: ProcessorConfig,
    sensors: FxHashMap<Box<str>, SensorState>,
    counters: Counters,
}

impl Processor {
    pub fn new(config: ProcessorConfig) -> Self {
        Processor { config, sensors: FxHashMap::default(), counters: Counters::default() }
    }

    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether a reading of `sensor_id` may be processed: the sensor is tracked already, or
    /// fewer than [`ProcessorConfig::max_sensors`] are. Every sensor costs memory here, in the
    /// live view, the index and the archive; a producer that invents ids must not grow them
    /// without bound, so the caller sets such readings aside (the dead-letter topic) and counts
    /// them. Costs no lookup while below the limit.
    #[inline]
    pub fn admits(&self, sensor_id: &str) -> bool {
        self.sensors.len() < self.config.max_sensors || self.sensors.contains_key(sensor_id)
    }

    /// Processes one reading that arrived at processing time `now_ms` (epoch ms), appending
    /// what it causes to `out`; returns the reading's level.
    #[inline]
    pub fn process(&mut self, reading: &Reading, now_ms: i64, out: &mut Output) -> Level {
        let event_ms = reading.event_time_ms();
        let config = &self.config;
        let state = match self.sensors.get_mut(reading.sensor_id.as_str()) {
            Some(s) => {
                out.alerts.extend(s.liveness.seen(
                    &reading.sensor_id,
                    now_ms,
                    event_ms,
                    reading.temperature,
                    config.offline_after_ms,
                ));
                s
            }
            None => self.sensors.entry(reading.sensor_id.as_str().into()).or_insert_with(|| {
                SensorState {
                    thresholds: *config.thresholds.of(&reading.sensor_id),
                    episode: Episode::default(),
                    windows: SensorWindows::default(),
                    liveness: Liveness::new(now_ms, event_ms, reading.temperature),
                    changed: true,
                }
            }),
        };
        state.changed = true;
        out.alerts.extend(state.episode.observe(reading, &state.thresholds));
        let before = out.windows.len();
        let placement = state.windows.add(
            &reading.sensor_id,
            event_ms,
            reading.temperature,
            &state.thresholds,
            &config.windows,
            out,
        );
        self.counters.readings += 1;
        match placement {
            Placement::OnTime => {}
            Placement::Late => self.counters.late += 1,
            Placement::TooLate => self.counters.too_late += 1,
        }
        if out.windows.len() != before {
            count_windows(&mut self.counters, &out.windows[before..]);
        }
        state.thresholds.classify(reading.temperature)
    }

    /// Lets processing time `now_ms` pass: idle sensors' watermarks advance (closing their
    /// windows), silent sensors go offline.
    pub fn tick(&mut self, now_ms: i64, out: &mut Output) {
        let before = out.windows.len();
        for (id, s) in &mut self.sensors {
            let (alerts, windows) = (out.alerts.len(), out.windows.len());
            out.alerts.extend(s.liveness.check(id, now_ms, self.config.offline_after_ms));
            let idle = s.liveness.idle_ms(now_ms);
            s.windows.advance_idle(id, idle, &s.thresholds, &self.config.windows, out);
            // A watermark that moved without closing anything is recomputed after a restart;
            // only what was emitted must be persisted.
            s.changed |= out.alerts.len() != alerts || out.windows.len() != windows;
        }
        count_windows(&mut self.counters, &out.windows[before..]);
    }

    /// Snapshots of the sensors whose state changed since the last call.
    pub fn take_changed(&mut self, out: &mut Vec<SensorSnapshot>) {
        for (id, s) in &mut self.sensors {
            if std::mem::take(&mut s.changed) {
                out.push(SensorSnapshot {
                    sensor_id: id.to_string(),
                    episode: s.episode,
                    windows: s.windows.clone(),
                    liveness: s.liveness,
                });
            }
        }
    }

    /// Restores sensors from snapshots after a restart at processing time `now_ms`.
    pub fn restore(&mut self, snapshots: Vec<SensorSnapshot>, now_ms: i64) {
        for snap in snapshots {
            let mut liveness = snap.liveness;
            liveness.resume(now_ms);
            let state = SensorState {
                thresholds: *self.config.thresholds.of(&snap.sensor_id),
                episode: snap.episode,
                windows: snap.windows,
                liveness,
                changed: false,
            };
            self.sensors.insert(snap.sensor_id.into_boxed_str(), state);
        }
    }

    /// Judges every sensor by `table` from its next reading on (an operator changed a
    /// sensor's thresholds). Open episodes continue and are re-judged by the new values.
    /// Visits every sensor: operators' changes are rare, readings are not.
    pub fn set_thresholds(&mut self, table: Arc<ThresholdTable>) {
        for (id, state) in &mut self.sensors {
            state.thresholds = *table.of(id);
        }
        self.config.thresholds = table;
    }

    /// Drops a sensor's state (its readings now go to another instance); true if it was kept.
    pub fn forget(&mut self, sensor_id: &str) -> bool {
        self.sensors.remove(sensor_id).is_some()
    }

    /// The window of a sensor still collecting readings, for the live view.
    pub fn in_progress(&self, sensor_id: &str) -> Option<WindowStats> {
        self.sensors.get(sensor_id)?.windows.in_progress(&self.config.windows)
    }

    /// The severity of the open instant episode of a sensor, if any.
    pub fn open_severity(&self, sensor_id: &str) -> Option<Level> {
        self.sensors.get(sensor_id).and_then(|s| s.episode.severity())
    }

    /// Number of sensors seen.
    pub fn sensors(&self) -> usize {
        self.sensors.len()
    }
}

fn count_windows(counters: &mut Counters, emitted: &[SensorWindow]) {
    for w in emitted {
        if w.stats.revision == 0 && w.stats.late == 0 {
            counters.windows_closed += 1;
        } else {
            counters.window_revisions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertKind, AlertState};

    fn reading(sensor: &str, t: f64, temp: f64) -> Reading {
        Reading { timestamp: t, sensor_id: sensor.into(), temperature: temp }
    }

    #[test]
    fn sensors_are_judged_by_their_own_thresholds() {
        let freezer = Thresholds { high: -15.0, critical: -10.0, hysteresis: 1.0 };
        let table = ThresholdTable {
            per_sensor: [("freezer".to_owned(), freezer)].into(),
            ..ThresholdTable::default()
        };
        let mut p = Processor::new(ProcessorConfig {
            thresholds: Arc::new(table),
            ..ProcessorConfig::default()
        });
        let mut out = Output::default();
        assert_eq!(p.process(&reading("freezer", 1.0, -12.0), 1_000, &mut out), Level::High);
        assert_eq!(p.process(&reading("oven", 1.0, -12.0), 1_000, &mut out), Level::Normal);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(out.alerts[0].sensor_id, "freezer");
        assert_eq!(out.alerts[0].threshold, -15.0);
    }

    #[test]
    fn sensors_beyond_the_limit_are_not_admitted_while_known_ones_are() {
        let config = ProcessorConfig { max_sensors: 2, ..ProcessorConfig::default() };
        let mut p = Processor::new(config);
        let mut out = Output::default();
        for id in ["a", "b"] {
            assert!(p.admits(id));
            p.process(&reading(id, 1.0, 20.0), 1_000, &mut out);
        }
        assert!(!p.admits("c"), "a third sensor is over the limit");
        assert!(p.admits("a") && p.admits("b"), "known sensors go on");
        assert!(p.forget("a"));
        assert!(p.admits("c"), "a forgotten sensor makes room");
    }

    #[test]
    fn episodes_are_tracked_per_sensor() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        p.process(&reading("a", 1.0, 85.0), 1_000, &mut out);
        p.process(&reading("b", 1.0, 95.0), 1_000, &mut out);
        p.process(&reading("a", 2.0, 70.0), 2_000, &mut out);
        assert_eq!(p.open_severity("a"), None);
        assert_eq!(p.open_severity("b"), Some(Level::Critical));
        let states: Vec<_> = out.alerts.iter().map(|a| (a.sensor_id.as_str(), a.state)).collect();
        assert_eq!(
            states,
            vec![("a", AlertState::Open), ("b", AlertState::Open), ("a", AlertState::Cleared)]
        );
    }

    #[test]
    fn windows_close_and_raise_window_alerts_with_the_sensor_id() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        for i in 0..300 {
            p.process(&reading("hot", f64::from(i), 85.0), i64::from(i) * 1000, &mut out);
        }
        assert_eq!(p.in_progress("hot").unwrap().count, 300);
        out.clear();
        p.process(&reading("hot", 330.0, 85.0), 330_000, &mut out);
        assert_eq!(out.windows.len(), 1);
        assert_eq!(out.windows[0].sensor_id, "hot");
        assert_eq!(out.windows[0].stats.count, 300);
        let window_alerts: Vec<_> =
            out.alerts.iter().filter(|a| a.kind == AlertKind::Window).collect();
        assert_eq!(window_alerts.len(), 1);
        assert_eq!(window_alerts[0].alert_id, "window-hot-0");
        assert_eq!(p.counters().windows_closed, 1);
    }

    #[test]
    fn tick_reports_silent_sensors_and_closes_idle_windows() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        p.process(&reading("quiet", 10.0, 20.0), 10_000, &mut out);
        p.tick(39_999, &mut out);
        assert!(out.is_empty());
        p.tick(40_000, &mut out);
        assert_eq!(out.alerts.len(), 1);
        assert_eq!(
            (out.alerts[0].kind, out.alerts[0].state),
            (AlertKind::Offline, AlertState::Open)
        );
        out.clear();
        p.tick(10_000 + 300_000 + 30_000, &mut out);
        assert_eq!(out.windows.len(), 1, "the idle sensor's window closed");
        out.clear();
        p.process(&reading("quiet", 400.0, 20.0), 400_000, &mut out);
        assert_eq!(out.alerts[0].state, AlertState::Cleared);
    }

    #[test]
    fn a_restored_processor_continues_episodes_and_windows() {
        let readings: Vec<Reading> = [70.0, 85.0, 95.0, 88.0, 70.0, 71.0]
            .iter()
            .enumerate()
            .map(|(i, &t)| reading("s", 100.0 * i as f64, t))
            .collect();
        let run = |p: &mut Processor, rs: &[Reading], out: &mut Output| {
            for r in rs {
                p.process(r, r.event_time_ms(), out);
            }
        };
        let mut whole = Processor::new(ProcessorConfig::default());
        let mut expected = Output::default();
        run(&mut whole, &readings, &mut expected);

        // Crash after the third reading; the snapshot taken then is restored.
        let mut first = Processor::new(ProcessorConfig::default());
        let mut got = Output::default();
        run(&mut first, &readings[..3], &mut got);
        let mut snaps = Vec::new();
        first.take_changed(&mut snaps);
        let json = serde_json::to_string(&snaps).unwrap();
        let mut second = Processor::new(ProcessorConfig::default());
        second.restore(serde_json::from_str(&json).unwrap(), 250_000);
        run(&mut second, &readings[3..], &mut got);
        assert_eq!(got, expected);

        let mut again = Vec::new();
        second.take_changed(&mut again);
        assert_eq!(again.len(), 1);
        second.take_changed(&mut again);
        assert_eq!(again.len(), 1, "nothing changed since");
    }

    #[test]
    fn a_restart_is_not_mistaken_for_silence() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        p.process(&reading("s", 1.0, 20.0), 1_000, &mut out);
        let mut snaps = Vec::new();
        p.take_changed(&mut snaps);
        let mut restarted = Processor::new(ProcessorConfig::default());
        restarted.restore(snaps, 3_600_000);
        restarted.tick(3_600_000 + 29_000, &mut out);
        assert!(out.alerts.is_empty());
    }

    #[test]
    fn new_thresholds_apply_from_the_next_reading_for_known_and_new_sensors() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        assert_eq!(p.process(&reading("s", 1.0, 85.0), 1_000, &mut out), Level::High);
        assert_eq!(p.process(&reading("other", 1.0, 85.0), 1_000, &mut out), Level::High);
        let relaxed = Thresholds { high: 90.0, critical: 95.0, hysteresis: 1.0 };
        let per_sensor = [("s".to_owned(), relaxed), ("later".to_owned(), relaxed)].into();
        p.set_thresholds(Arc::new(ThresholdTable { per_sensor, ..ThresholdTable::default() }));
        assert_eq!(p.process(&reading("s", 2.0, 85.0), 2_000, &mut out), Level::Normal);
        assert_eq!(p.process(&reading("later", 2.0, 92.0), 2_000, &mut out), Level::High);
        assert_eq!(p.process(&reading("other", 2.0, 85.0), 2_000, &mut out), Level::High);
        assert_eq!(p.config().thresholds.of("s"), &relaxed);
    }

    #[test]
    fn a_forgotten_sensor_is_never_reported_offline() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        p.process(&reading("gone", 1.0, 20.0), 1_000, &mut out);
        p.process(&reading("kept", 1.0, 20.0), 1_000, &mut out);
        assert!(p.forget("gone"));
        assert!(!p.forget("never-seen"));
        p.tick(3_600_000, &mut out);
        let offline: Vec<&str> = out.alerts.iter().map(|a| a.sensor_id.as_str()).collect();
        assert_eq!(offline, ["kept"]);
        assert_eq!(p.sensors(), 1);
    }

    #[test]
    fn late_and_too_late_readings_are_counted() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut out = Output::default();
        p.process(&reading("s", 0.0, 20.0), 0, &mut out);
        p.process(&reading("s", 400.0, 20.0), 400_000, &mut out);
        p.process(&reading("s", 10.0, 20.0), 401_000, &mut out);
        p.process(&reading("s", 10_000.0, 20.0), 402_000, &mut out);
        p.process(&reading("s", 20.0, 20.0), 403_000, &mut out);
        let c = p.counters();
        assert_eq!((c.readings, c.late, c.too_late), (5, 1, 1));
        assert_eq!(c.window_revisions, 1);
    }
}
