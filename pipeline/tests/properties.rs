//! Properties of the pure core over random input, each against something computed apart from
//! the code under test: instant alerts equal the rules as written, window results equal a
//! brute-force recomputation whatever the order of arrival, a restart from a snapshot
//! continues as the uninterrupted run, and parsing never panics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use thermoalert_pipeline::model::{AlertKind, AlertState, Level, Reading, WindowStats};
use thermoalert_pipeline::parse::{ParseLimits, parse_reading};
use thermoalert_pipeline::processor::{Output, Processor, ProcessorConfig};
use thermoalert_pipeline::rules::Thresholds;
use thermoalert_pipeline::window::WindowConfig;

/// One step of a run: a reading arriving at a processing time, or a tick.
#[derive(Debug, Clone)]
enum Step {
    Reading { sensor: u8, event_ms: i64, temp: f64 },
    Tick,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let reading = (0u8..4, 0i64..3_600_000, 50.0f64..110.0)
        .prop_map(|(sensor, event_ms, temp)| Step::Reading { sensor, event_ms, temp });
    let step = prop_oneof![9 => reading, 1 => Just(Step::Tick)];
    prop::collection::vec(step, 1..400)
}

/// Temperatures as the runs send them: two decimals.
fn rounded(temp: f64) -> f64 {
    (temp * 100.0).round() / 100.0
}

/// The instant alerts of one sensor's readings in arrival order, from the rules as the
/// design states them, written here apart from `episode`: an episode opens when a reading is
/// above HIGH (or CRITICAL), escalates when one is above CRITICAL while it is HIGH, and clears
/// when one is below HIGH minus the hysteresis; exactly at a threshold is the level below.
fn expected_instant_alerts(temps: &[f64], t: &Thresholds) -> Vec<(AlertState, Level, f64)> {
    let mut open: Option<Level> = None;
    let mut alerts = Vec::new();
    for &x in temps {
        let level = if x > t.critical {
            Level::Critical
        } else if x > t.high {
            Level::High
        } else {
            Level::Normal
        };
        match open {
            None if level != Level::Normal => {
                open = Some(level);
                alerts.push((AlertState::Open, level, x));
            }
            Some(Level::High) if level == Level::Critical => {
                open = Some(Level::Critical);
                alerts.push((AlertState::Escalated, Level::Critical, x));
            }
            Some(severity) if x < t.high - t.hysteresis => {
                open = None;
                alerts.push((AlertState::Cleared, severity, x));
            }
            _ => {}
        }
    }
    alerts
}

fn run(config: &ProcessorConfig, steps: &[Step]) -> (Output, Processor) {
    let mut p = Processor::new(config.clone());
    let mut out = Output::default();
    // Processing time moves on by 100 ms per step.
    for (i, step) in steps.iter().enumerate() {
        let now = i as i64 * 100;
        match step {
            Step::Reading { sensor, event_ms, temp } => {
                let r = Reading {
                    timestamp: *event_ms as f64 / 1000.0,
                    sensor_id: format!("s{sensor}"),
                    temperature: rounded(*temp),
                };
                p.process(&r, now, &mut out);
            }
            Step::Tick => p.tick(now, &mut out),
        }
    }
    (out, p)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn instant_alerts_follow_the_rules_as_written(steps in steps()) {
        let config = ProcessorConfig::default();
        let (out, _) = run(&config, &steps);
        let mut got: BTreeMap<String, Vec<(AlertState, Level, f64)>> = BTreeMap::new();
        for a in out.alerts.iter().filter(|a| a.kind == AlertKind::Instant) {
            got.entry(a.sensor_id.clone()).or_default().push((a.state, a.severity, a.temperature));
        }
        let mut temps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for step in &steps {
            if let Step::Reading { sensor, temp, .. } = step {
                temps.entry(format!("s{sensor}")).or_default().push(rounded(*temp));
            }
        }
        for (sensor, temps) in &temps {
            let expected = expected_instant_alerts(temps, &config.thresholds.defaults);
            prop_assert_eq!(got.remove(sensor).unwrap_or_default(), expected, "{}", sensor);
        }
        prop_assert!(got.is_empty(), "alerts of sensors that sent nothing: {:?}", got);
    }

    #[test]
    fn final_window_results_equal_a_brute_force_recomputation(
        steps in steps(),
        lateness_ms in 0i64..600_000,
    ) {
        let config = ProcessorConfig {
            windows: WindowConfig { size_ms: 300_000, lateness_ms, revise_for_ms: i64::MAX / 4 },
            ..ProcessorConfig::default()
        };
        let (mut out, mut p) = run(&config, &steps);
        // Far in the future every window has closed.
        p.tick(i64::MAX / 4, &mut out);

        let mut last: BTreeMap<(String, i64), WindowStats> = BTreeMap::new();
        for w in &out.windows {
            let key = (w.sensor_id.clone(), (w.stats.window_start * 1000.0) as i64);
            if let Some(prev) = last.get(&key) {
                prop_assert!(w.stats.revision >= prev.revision, "revisions only grow");
            }
            last.insert(key, w.stats.clone());
        }

        let mut expected: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
        for step in &steps {
            if let Step::Reading { sensor, event_ms, temp } = step {
                let start = event_ms.div_euclid(300_000) * 300_000;
                expected.entry((format!("s{sensor}"), start)).or_default().push((temp * 100.0).round() / 100.0);
            }
        }
        prop_assert_eq!(last.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
        for (key, temps) in &expected {
            let got = &last[key];
            let avg = temps.iter().sum::<f64>() / temps.len() as f64;
            prop_assert_eq!(got.count, temps.len() as u64);
            prop_assert_eq!(got.min, temps.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(got.max, temps.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            prop_assert!((got.avg_temperature - avg).abs() <= 1e-9 * avg.abs().max(1.0), "{} vs {}", got.avg_temperature, avg);
        }
        prop_assert_eq!(p.counters().too_late, 0);
    }

    #[test]
    fn a_restart_from_a_snapshot_continues_exactly(steps in steps(), split in 0usize..400) {
        // Readings only: ticks depend on processing time, which a restart resets on purpose.
        let steps: Vec<Step> = steps.into_iter().filter(|s| matches!(s, Step::Reading { .. })).collect();
        let split = split.min(steps.len());
        let config = ProcessorConfig::default();
        let (whole, _) = run(&config, &steps);

        let (mut first, mut p) = run(&config, &steps[..split]);
        let mut snaps = Vec::new();
        p.take_changed(&mut snaps);
        let json = serde_json::to_string(&snaps).unwrap();
        let mut restored = Processor::new(config.clone());
        restored.restore(serde_json::from_str(&json).unwrap(), split as i64 * 100);
        for (i, step) in steps.iter().enumerate().skip(split) {
            if let Step::Reading { sensor, event_ms, temp } = step {
                let r = Reading {
                    timestamp: *event_ms as f64 / 1000.0,
                    sensor_id: format!("s{sensor}"),
                    temperature: rounded(*temp),
                };
                restored.process(&r, i as i64 * 100, &mut first);
            }
        }
        prop_assert_eq!(first, whole);
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_reading(&bytes, 1.7e9, &ParseLimits::default());
    }

    #[test]
    fn parsing_never_panics_on_near_miss_json(
        ts in prop_oneof![Just("1".to_owned()), Just("-1e400".to_owned()), Just("\"x\"".to_owned()), Just("null".to_owned()), any::<f64>().prop_map(|f| f.to_string())],
        id in "[ -~]{0,70}",
        temp in prop_oneof![Just("1e309".to_owned()), Just("[]".to_owned()), any::<f64>().prop_map(|f| f.to_string())],
    ) {
        let msg = format!(r#"{{"timestamp":{ts},"sensor_id":{},"temperature":{temp}}}"#, serde_json::to_string(&id).unwrap());
        if let Ok(r) = parse_reading(msg.as_bytes(), 1.7e9, &ParseLimits::default()) {
            prop_assert!(r.temperature.is_finite());
            prop_assert!(thermoalert_pipeline::parse::validate_sensor_id(&r.sensor_id).is_ok());
        }
    }
}
