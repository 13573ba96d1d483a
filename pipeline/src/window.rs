//! Event-time tumbling windows of one sensor, aligned to the epoch, closed by a watermark.
//!
//! The watermark is the latest event time seen minus the allowed lateness; a window is emitted
//! once the watermark passes its end. A reading whose window has already closed is *late*: if
//! the window is still within the revision horizon its statistics are updated and emitted again
//! with the next revision number; older than that, it is counted as dropped (the raw reading
//! is still archived). An idle sensor does not hold its windows open forever: the caller
//! advances the watermark with processing time ([`SensorWindows::advance_idle`]).
//!
//! The hot path (a reading for the newest open window) touches one accumulator and compares
//! one integer; everything else is rare.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::{Alert, AlertKind, AlertState, Level, SensorWindow, WindowStats};
use crate::processor::Output;
use crate::rules::Thresholds;

/// Default window length: 5 minutes.
pub const DEFAULT_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Default allowed lateness: 30 seconds.
pub const DEFAULT_LATENESS_MS: i64 = 30 * 1000;
/// Default revision horizon: a closed window accepts late data for one hour.
pub const DEFAULT_REVISE_FOR_MS: i64 = 60 * 60 * 1000;

/// How windows are cut and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Window length in milliseconds; windows start at multiples of it since the epoch.
    pub size_ms: i64,
    /// How far behind the latest event time the watermark trails.
    pub lateness_ms: i64,
    /// How long after closing a window still accepts late readings (and emits revisions).
    pub revise_for_ms: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size_ms: DEFAULT_WINDOW_MS,
            lateness_ms: DEFAULT_LATENESS_MS,
            revise_for_ms: DEFAULT_REVISE_FOR_MS,
        }
    }
}

/// Running statistics of one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Accum {
    count: u64,
    #[serde(with = "crate::exact_f64")]
    sum: f64,
    #[serde(with = "crate::exact_f64")]
    min: f64,
    #[serde(with = "crate::exact_f64")]
    max: f64,
}

impl Accum {
    fn of(t: f64) -> Accum {
        Accum { count: 1, sum: t, min: t, max: t }
    }

    #[inline]
    fn add(&mut self, t: f64) {
        self.count += 1;
        self.sum += t;
        self.min = self.min.min(t);
        self.max = self.max.max(t);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Closed {
    start: i64,
    accum: Accum,
    revision: u32,
    late: u64,
    /// Severity of the window alert last emitted for this window (`Normal`: none).
    alerted: Level,
}

/// Where a reading ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In an open window.
    OnTime,
    /// In a closed window, which was revised.
    Late,
    /// Its window closed longer ago than the revision horizon: not counted in any window.
    TooLate,
}

/// The windows of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorWindows {
    /// Ascending by start; usually one, two around a boundary.
    open: VecDeque<(i64, Accum)>,
    /// Ascending by start; those still within the revision horizon.
    closed: VecDeque<Closed>,
    max_event_ms: i64,
    watermark_ms: i64,
}

impl Default for SensorWindows {
    fn default() -> Self {
        SensorWindows {
            open: VecDeque::new(),
            closed: VecDeque::new(),
            max_event_ms: i64::MIN,
            watermark_ms: i64::MIN,
        }
    }
}

impl SensorWindows {
    /// The current watermark (epoch ms); `i64::MIN` before the first reading.
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// The latest event time seen (epoch ms).
    pub fn max_event_ms(&self) -> i64 {
        self.max_event_ms
    }

    /// Adds one reading, emitting the windows it closes or revises.
    #[inline]
    pub fn add(
        &mut self,
        sensor_id: &str,
        event_ms: i64,
        temperature: f64,
        thresholds: &Thresholds,
        cfg: &WindowConfig,
        out: &mut Output,
    ) -> Placement {
        let start = event_ms.div_euclid(cfg.size_ms) * cfg.size_ms;
        if start + cfg.size_ms <= self.watermark_ms {
            return self.add_late(sensor_id, start, temperature, thresholds, cfg, out);
        }
        match self.open.back_mut() {
            Some((s, acc)) if *s == start => acc.add(temperature),
            Some((s, _)) if *s < start => self.open.push_back((start, Accum::of(temperature))),
            None => self.open.push_back((start, Accum::of(temperature))),
            Some(_) => match self.open.binary_search_by_key(&start, |(s, _)| *s) {
                Ok(i) => self.open[i].1.add(temperature),
                Err(i) => self.open.insert(i, (start, Accum::of(temperature))),
            },
        }
        if event_ms > self.max_event_ms {
            self.max_event_ms = event_ms;
            self.raise_watermark(
                event_ms.saturating_sub(cfg.lateness_ms),
                sensor_id,
                thresholds,
                cfg,
                out,
            );
        }
        Placement::OnTime
    }

    /// Advances the watermark of a sensor that has been idle: its event clock is taken to
    /// have moved on by the processing time elapsed since its last reading (`idle_ms`).
    pub fn advance_idle(
        &mut self,
        sensor_id: &str,
        idle_ms: i64,
        thresholds: &Thresholds,
        cfg: &WindowConfig,
        out: &mut Output,
    ) {
        if self.max_event_ms == i64::MIN || idle_ms <= 0 {
            return;
        }
        let candidate = self.max_event_ms.saturating_add(idle_ms).saturating_sub(cfg.lateness_ms);
        self.raise_watermark(candidate, sensor_id, thresholds, cfg, out);
    }

    /// The window still collecting readings with the latest start, for the live view.
    pub fn in_progress(&self, cfg: &WindowConfig) -> Option<WindowStats> {
        self.open.back().map(|(start, acc)| stats(*start, acc, cfg, 0, 0))
    }

    fn raise_watermark(
        &mut self,
        candidate: i64,
        sensor_id: &str,
        thresholds: &Thresholds,
        cfg: &WindowConfig,
        out: &mut Output,
    ) {
        if candidate <= self.watermark_ms {
            return;
        }
        self.watermark_ms = candidate;
        while let Some(&(start, acc)) = self.open.front() {
            if start + cfg.size_ms > candidate {
                break;
            }
            self.open.pop_front();
            let mut closed =
                Closed { start, accum: acc, revision: 0, late: 0, alerted: Level::Normal };
            emit(sensor_id, &mut closed, thresholds, cfg, out);
            self.closed.push_back(closed);
        }
        while self
            .closed
            .front()
            .is_some_and(|c| c.start + cfg.size_ms + cfg.revise_for_ms <= candidate)
        {
            self.closed.pop_front();
        }
    }

    fn add_late(
        &mut self,
        sensor_id: &str,
        start: i64,
        temperature: f64,
        thresholds: &Thresholds,
        cfg: &WindowConfig,
        out: &mut Output,
    ) -> Placement {
        if start + cfg.size_ms + cfg.revise_for_ms <= self.watermark_ms {
            return Placement::TooLate;
        }
        let i = match self.closed.binary_search_by_key(&start, |c| c.start) {
            Ok(i) => {
                let c = &mut self.closed[i];
                c.accum.add(temperature);
                c.revision += 1;
                i
            }
            Err(i) => {
                // The window closed empty; its first result arrives late.
                let c = Closed {
                    start,
                    accum: Accum::of(temperature),
                    revision: 0,
                    late: 0,
                    alerted: Level::Normal,
                };
                self.closed.insert(i, c);
                i
            }
        };
        let c = &mut self.closed[i];
        c.late += 1;
        emit(sensor_id, c, thresholds, cfg, out);
        Placement::Late
    }
}

fn stats(start: i64, acc: &Accum, cfg: &WindowConfig, revision: u32, late: u64) -> WindowStats {
    WindowStats {
        window_start: start as f64 / 1000.0,
        window_end: (start + cfg.size_ms) as f64 / 1000.0,
        count: acc.count,
        avg_temperature: acc.sum / acc.count as f64,
        min: acc.min,
        max: acc.max,
        revision,
        late,
    }
}

/// Emits a window's (revised) statistics and the change of its alert, if any.
fn emit(
    sensor_id: &str,
    c: &mut Closed,
    thresholds: &Thresholds,
    cfg: &WindowConfig,
    out: &mut Output,
) {
    let s = stats(c.start, &c.accum, cfg, c.revision, c.late);
    let level = thresholds.classify(s.avg_temperature);
    let state = match (c.alerted, level) {
        (before, now) if before == now => None,
        (Level::Normal, _) => Some(AlertState::Open),
        (before, now) if now > before => Some(AlertState::Escalated),
        (_, Level::Normal) => Some(AlertState::Cleared),
        // CRITICAL revised down to HIGH: still open, at the lower severity.
        _ => Some(AlertState::Open),
    };
    if let Some(state) = state {
        let severity = if level == Level::Normal { c.alerted } else { level };
        out.alerts.push(Alert {
            alert_id: Alert::id_for(AlertKind::Window, sensor_id, c.start),
            kind: AlertKind::Window,
            severity,
            state,
            sensor_id: sensor_id.to_owned(),
            timestamp: s.window_start,
            temperature: s.avg_temperature,
            threshold: thresholds.threshold_of(severity),
            window: Some(s.clone()),
        });
        c.alerted = level;
    }
    out.windows.push(SensorWindow { sensor_id: sensor_id.to_owned(), stats: s });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn cfg() -> WindowConfig {
        WindowConfig { size_ms: 5 * MIN, lateness_ms: 30_000, revise_for_ms: 60 * MIN }
    }

    struct Harness {
        w: SensorWindows,
        out: Output,
        t: Thresholds,
        cfg: WindowConfig,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                w: SensorWindows::default(),
                out: Output::default(),
                t: Thresholds::default(),
                cfg: cfg(),
            }
        }
        fn add(&mut self, ms: i64, temp: f64) -> Placement {
            self.w.add("s", ms, temp, &self.t, &self.cfg, &mut self.out)
        }
        /// The window results and alerts emitted since the last call.
        fn take(&mut self) -> (Vec<WindowStats>, Vec<Alert>) {
            let out = std::mem::take(&mut self.out);
            (out.windows.into_iter().map(|w| w.stats).collect(), out.alerts)
        }
    }

    #[test]
    fn windows_align_to_the_epoch_and_close_when_the_watermark_passes_the_end() {
        let mut h = Harness::new();
        h.add(5 * MIN + 1_000, 20.0); // window [5, 10) min
        h.add(9 * MIN, 22.0);
        h.add(10 * MIN + 29_999, 30.0); // watermark 10 min − 1 ms: still open
        assert!(h.take().0.is_empty());
        h.add(10 * MIN + 30_000, 30.0); // watermark reaches 10 min: closes [5, 10)
        let (stats, alerts) = h.take();
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!((s.window_start, s.window_end), (300.0, 600.0));
        assert_eq!((s.count, s.min, s.max, s.avg_temperature), (2, 20.0, 22.0, 21.0));
        assert_eq!((s.revision, s.late), (0, 0));
        assert!(alerts.is_empty());
    }

    #[test]
    fn a_reading_exactly_at_the_end_belongs_to_the_next_window() {
        let mut h = Harness::new();
        h.add(5 * MIN - 1, 10.0);
        h.add(5 * MIN, 50.0);
        h.add(20 * MIN, 0.0);
        let (stats, _) = h.take();
        let counts: Vec<_> = stats.iter().map(|s| (s.window_start, s.count)).collect();
        assert_eq!(counts, vec![(0.0, 1), (300.0, 1)]);
    }

    #[test]
    fn out_of_order_readings_within_lateness_count_on_time() {
        let mut h = Harness::new();
        h.add(5 * MIN + 10_000, 20.0); // watermark 5:10 − 0:30 = 4:40
        assert_eq!(h.add(4 * MIN + 50_000, 40.0), Placement::OnTime); // window [0,5) still open
        h.add(5 * MIN + 30_000, 20.0); // watermark 5:00 closes [0,5)
        let (stats, _) = h.take();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].count, 1);
        assert_eq!(stats[0].avg_temperature, 40.0);
    }

    #[test]
    fn late_readings_revise_closed_windows_and_their_alerts() {
        let mut h = Harness::new();
        h.add(MIN, 79.0);
        h.add(2 * MIN, 80.0);
        h.add(6 * MIN, 20.0); // closes [0,5) at avg 79.5: no alert
        let (stats, alerts) = h.take();
        assert_eq!(stats[0].avg_temperature, 79.5);
        assert!(alerts.is_empty());

        assert_eq!(h.add(3 * MIN, 90.0), Placement::Late); // avg 83: HIGH
        let (stats, alerts) = h.take();
        assert_eq!((stats[0].revision, stats[0].late, stats[0].count), (1, 1, 3));
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(
            (a.kind, a.state, a.severity),
            (AlertKind::Window, AlertState::Open, Level::High)
        );
        assert_eq!(a.alert_id, "window-s-0");
        assert_eq!(a.window.as_ref().unwrap().revision, 1);

        h.add(4 * MIN, 200.0); // avg 112.25: escalates
        let a = &h.take().1[0];
        assert_eq!(
            (a.state, a.severity, a.threshold),
            (AlertState::Escalated, Level::Critical, 90.0)
        );

        for _ in 0..20 {
            h.add(4 * MIN, 0.0);
        }
        // The average falls through HIGH (still open, lower severity) to normal (cleared).
        let (stats, alerts) = h.take();
        assert_eq!(stats.last().unwrap().revision, 22);
        let changes: Vec<_> = alerts.iter().map(|a| (a.state, a.severity)).collect();
        assert_eq!(
            changes,
            vec![(AlertState::Open, Level::High), (AlertState::Cleared, Level::High)]
        );
        assert!(alerts.iter().all(|a| a.alert_id == "window-s-0"));
    }

    #[test]
    fn readings_older_than_the_revision_horizon_are_too_late() {
        let mut h = Harness::new();
        h.add(0, 20.0);
        h.add(70 * MIN, 20.0); // watermark 69:30; [0,5) + 60 min horizon ended at 65:00
        h.take();
        assert_eq!(h.add(MIN, 99.0), Placement::TooLate);
        assert!(h.take().0.is_empty());
        // A window closed 30 min ago still takes late data, even one that closed empty.
        assert_eq!(h.add(40 * MIN, 30.0), Placement::Late);
        let s = &h.take().0[0];
        assert_eq!((s.window_start, s.count, s.revision, s.late), (2400.0, 1, 0, 1));
    }

    #[test]
    fn idle_sensors_close_their_windows_by_processing_time() {
        let mut h = Harness::new();
        h.add(MIN, 85.0);
        let (t, cfg) = (h.t, h.cfg);
        h.w.advance_idle("s", 3 * MIN, &t, &cfg, &mut h.out); // event clock ~4:00, wm 3:30
        assert!(h.take().0.is_empty());
        h.w.advance_idle("s", 4 * MIN + 30_000, &t, &cfg, &mut h.out); // wm 5:00
        let (stats, alerts) = h.take();
        assert_eq!(stats.len(), 1);
        assert_eq!(alerts.len(), 1, "the window average of 85 raises a HIGH alert");
        assert_eq!(h.w.watermark_ms(), 5 * MIN);
    }

    #[test]
    fn the_in_progress_window_is_the_newest_open_one() {
        let mut h = Harness::new();
        assert_eq!(h.w.in_progress(&h.cfg), None);
        h.add(MIN, 10.0);
        h.add(6 * MIN, 30.0);
        h.add(7 * MIN, 40.0);
        let p = h.w.in_progress(&h.cfg).unwrap();
        assert_eq!((p.window_start, p.count, p.avg_temperature), (300.0, 2, 35.0));
    }

    #[test]
    fn negative_event_times_align_to_the_epoch_too() {
        let mut h = Harness::new();
        h.add(-1, 5.0);
        h.add(10 * MIN, 5.0);
        let s = &h.take().0[0];
        assert_eq!((s.window_start, s.window_end), (-300.0, 0.0));
    }
}
