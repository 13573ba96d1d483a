//! Synthetic sensors for the embedded default, the benchmark and the end-to-end tests: each
//! sensor has its own baseline, a daily cycle and noise, and now and then an excursion above
//! the HIGH and CRITICAL thresholds. Faults can be injected: stuck sensors, dropouts, late
//! (delayed, so out-of-order) readings and malformed messages. Deterministic for a seed; the
//! caller hands in the time. A fault whose chance is zero draws nothing from the generator, so
//! adding fault options never changes the readings of a run without faults.

use crate::model::Reading;

/// Chance per reading that a quiet simulated sensor starts an excursion: about one per
/// sensor every four minutes at one reading per second.
pub const DEFAULT_EXCURSION_CHANCE: f64 = 0.004;

/// How the simulated sensors behave.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Number of sensors, named `sensor1`, `sensor2`, …
    pub sensors: usize,
    /// Seed of the pseudo-random generator: the same seed gives the same readings.
    pub seed: u64,
    /// Chance per reading that a quiet sensor starts an excursion.
    pub excursion_chance: f64,
    /// Chance per reading that a sensor gets stuck, repeating one value for 10–120 readings.
    pub stuck_chance: f64,
    /// Chance per reading that a sensor drops out, sending nothing for 5–60 ticks.
    pub dropout_chance: f64,
    /// Chance per reading that it is held back 5–120 s and sent late (out of order).
    pub late_chance: f64,
    /// Chance per sensor and tick of a malformed message (see [`Simulator::tick_malformed`]).
    pub malformed_chance: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            sensors: 5,
            seed: 1,
            excursion_chance: DEFAULT_EXCURSION_CHANCE,
            stuck_chance: 0.0,
            dropout_chance: 0.0,
            late_chance: 0.0,
            malformed_chance: 0.0,
        }
    }
}

#[derive(Debug, Clone)]
struct SimSensor {
    id: String,
    baseline: f64,
    /// Remaining readings of the current excursion and its peak above the baseline.
    excursion: Option<(u32, u32, f64)>,
    /// Remaining readings stuck at a value.
    stuck: Option<(u32, f64)>,
    /// Remaining ticks without a reading.
    dropout: u32,
}

/// Generates readings for a fixed set of sensors.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimulatorConfig,
    rng: SplitMix64,
    sensors: Vec<SimSensor>,
    /// Late readings waiting for their send time (epoch s).
    delayed: Vec<(f64, Reading)>,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        let mut rng = SplitMix64(config.seed);
        let sensors = (1..=config.sensors)
            .map(|i| SimSensor {
                id: format!("sensor{i}"),
                baseline: 55.0 + rng.next_f64() * 15.0,
                excursion: None,
                stuck: None,
                dropout: 0,
            })
            .collect();
        Simulator { config, rng, sensors, delayed: Vec::new() }
    }

    pub fn sensor_ids(&self) -> impl Iterator<Item = &str> {
        self.sensors.iter().map(|s| s.id.as_str())
    }

    /// One reading of every sensor at event time `now` (epoch seconds), less those dropped
    /// out or held back, plus the held-back readings whose time has come.
    pub fn tick(&mut self, now: f64, out: &mut Vec<Reading>) {
        let day_phase = (now.rem_euclid(86_400.0) / 86_400.0) * std::f64::consts::TAU;
        let rng = &mut self.rng;
        let cfg = &self.config;
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                out.push(self.delayed.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        for s in &mut self.sensors {
            if s.dropout > 0 {
                s.dropout -= 1;
                continue;
            }
            if rng.chance(cfg.dropout_chance) {
                s.dropout = 4 + (rng.next_f64() * 56.0) as u32;
                continue;
            }
            let cycle = 3.0 * day_phase.sin();
            let noise = (rng.next_f64() - 0.5) * 1.0;
            if s.excursion.is_none() && rng.next_f64() < cfg.excursion_chance {
                // Peaks land between just over HIGH and well over CRITICAL.
                let peak = 84.0 + rng.next_f64() * 14.0 - s.baseline;
                let len = 20 + (rng.next_f64() * 40.0) as u32;
                s.excursion = Some((len, len, peak));
            }
            let bump = match s.excursion {
                Some((left, len, peak)) => {
                    // A smooth rise and fall over the excursion's length.
                    let progress = 1.0 - f64::from(left) / f64::from(len);
                    s.excursion = if left > 1 { Some((left - 1, len, peak)) } else { None };
                    peak * (progress * std::f64::consts::PI).sin()
                }
                None => 0.0,
            };
            let mut temperature = ((s.baseline + cycle + noise + bump) * 100.0).round() / 100.0;
            match s.stuck {
                Some((left, value)) => {
                    temperature = value;
                    s.stuck = (left > 1).then_some((left - 1, value));
                }
                None if rng.chance(cfg.stuck_chance) => {
                    s.stuck = Some((10 + (rng.next_f64() * 110.0) as u32, temperature));
                }
                None => {}
            }
            let reading = Reading { timestamp: now, sensor_id: s.id.clone(), temperature };
            if rng.chance(cfg.late_chance) {
                self.delayed.push((now + 5.0 + rng.next_f64() * 115.0, reading));
            } else {
                out.push(reading);
            }
        }
    }
}

impl Simulator {
    /// Malformed messages, each with the sensor it claims to come from (the Kafka key): on
    /// average `malformed_chance` per sensor per call, of every kind the parser rejects.
    pub fn tick_malformed(&mut self, now: f64, out: &mut Vec<(String, Vec<u8>)>) {
        if self.config.malformed_chance <= 0.0 {
            return;
        }
        for s in &self.sensors {
            if !self.rng.chance(self.config.malformed_chance) {
                continue;
            }
            let id = &s.id;
            let text = match (self.rng.next_f64() * 7.0) as u32 {
                0 => format!(r#"{{"timestamp": {now}, "sensor_id": "{id}", "tempera"#),
                1 => {
                    format!(r#"{{"timestamp": {now}, "sensor_id": "{id}", "temperature": "hot"}}"#)
                }
                2 => format!(r#"{{"timestamp": {now}, "temperature": 21.5}}"#),
                3 => format!(
                    r#"{{"timestamp": {now}, "sensor_id": "../{id}", "temperature": 21.5}}"#
                ),
                4 => format!(r#"{{"timestamp": {now}, "sensor_id": "{id}", "temperature": -500}}"#),
                5 => format!(
                    r#"{{"timestamp": {}, "sensor_id": "{id}", "temperature": 21.5}}"#,
                    now + 86_400.0
                ),
                _ => "not json at all".to_owned(),
            };
            out.push((id.clone(), text.into_bytes()));
        }
    }
}

/// A tiny, fast, seedable generator (SplitMix64): plenty for synthetic signals and keeps the
/// core free of dependencies.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`; draws nothing when `p` is zero.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use crate::rules::Thresholds;

    fn run(config: SimulatorConfig, ticks: usize) -> Vec<Reading> {
        let mut sim = Simulator::new(config);
        let mut out = Vec::new();
        for i in 0..ticks {
            sim.tick(1_700_000_000.0 + i as f64, &mut out);
        }
        out
    }

    #[test]
    fn same_seed_same_readings() {
        let a = run(SimulatorConfig::default(), 100);
        let b = run(SimulatorConfig::default(), 100);
        assert_eq!(a, b);
        let c = run(SimulatorConfig { seed: 2, ..SimulatorConfig::default() }, 100);
        assert_ne!(a, c);
    }

    #[test]
    fn one_reading_per_sensor_per_tick_with_valid_ids() {
        let out = run(SimulatorConfig { sensors: 7, ..SimulatorConfig::default() }, 3);
        assert_eq!(out.len(), 21);
        assert!(out.iter().all(|r| crate::parse::validate_sensor_id(&r.sensor_id).is_ok()));
    }

    #[test]
    fn faults_are_injected_and_late_readings_arrive_later() {
        let faulty = SimulatorConfig {
            sensors: 20,
            stuck_chance: 0.01,
            dropout_chance: 0.01,
            late_chance: 0.02,
            ..SimulatorConfig::default()
        };
        let mut sim = Simulator::new(faulty);
        let mut out = Vec::new();
        let mut late = 0;
        for i in 0..600 {
            let now = 1_700_000_000.0 + f64::from(i);
            let before = out.len();
            sim.tick(now, &mut out);
            late += out[before..].iter().filter(|r| r.timestamp < now).count();
        }
        assert!(late > 0, "some readings arrive late");
        assert!(out.len() < 20 * 600, "dropouts and held-back readings thin the stream");
        let by_sensor: Vec<f64> =
            out.iter().filter(|r| r.sensor_id == "sensor1").map(|r| r.temperature).collect();
        let repeats = by_sensor.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(repeats > 5, "a stuck sensor repeats its value ({repeats} repeats)");
    }

    #[test]
    fn malformed_messages_are_all_rejected_by_the_parser() {
        let mut sim = Simulator::new(SimulatorConfig {
            sensors: 50,
            malformed_chance: 0.5,
            ..SimulatorConfig::default()
        });
        let mut bad = Vec::new();
        for i in 0..20 {
            sim.tick_malformed(1_700_000_000.0 + f64::from(i), &mut bad);
        }
        assert!(bad.len() > 300);
        let mut codes = std::collections::BTreeSet::new();
        for (_, bytes) in &bad {
            let err = crate::parse::parse_reading(bytes, 1_700_000_100.0, &Default::default())
                .expect_err("malformed");
            codes.insert(err.code());
        }
        assert_eq!(codes.len(), 6, "{codes:?}");
    }

    #[test]
    fn fault_options_at_zero_do_not_change_the_readings() {
        // Same stream as before faults existed: zero chances draw nothing.
        let a = run(SimulatorConfig::default(), 50);
        let b = run(
            SimulatorConfig {
                malformed_chance: 0.0,
                late_chance: 0.0,
                ..SimulatorConfig::default()
            },
            50,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn excursions_reach_high_and_critical_but_baselines_stay_normal() {
        let t = Thresholds::default();
        let quiet =
            run(SimulatorConfig { excursion_chance: 0.0, ..SimulatorConfig::default() }, 500);
        assert!(quiet.iter().all(|r| t.classify(r.temperature) == Level::Normal));
        let busy =
            run(SimulatorConfig { excursion_chance: 0.05, ..SimulatorConfig::default() }, 2000);
        let levels: Vec<_> = busy.iter().map(|r| t.classify(r.temperature)).collect();
        assert!(levels.contains(&Level::High));
        assert!(levels.contains(&Level::Critical));
    }
}
