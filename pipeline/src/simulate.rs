//! Synthetic sensors for the embedded default, the benchmark and the end-to-end tests: each
//! sensor has its own baseline, a daily cycle and noise, and now and then an excursion above
//! the HIGH and CRITICAL thresholds. Deterministic for a seed; the caller hands in the time.

use crate::model::Reading;

/// How the simulated sensors behave.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Number of sensors, named `sensor1`, `sensor2`, …
    pub sensors: usize,
    /// Seed of the pseudo-random generator: the same seed gives the same readings.
    pub seed: u64,
    /// Chance per reading that a quiet sensor starts an excursion.
    pub excursion_chance: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig { sensors: 5, seed: 1, excursion_chance: 0.004 }
    }
}

#[derive(Debug, Clone)]
struct SimSensor {
    id: String,
    baseline: f64,
    /// Remaining readings of the current excursion and its peak above the baseline.
    excursion: Option<(u32, u32, f64)>,
}

/// Generates readings for a fixed set of sensors.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimulatorConfig,
    rng: SplitMix64,
    sensors: Vec<SimSensor>,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        let mut rng = SplitMix64(config.seed);
        let sensors = (1..=config.sensors)
            .map(|i| SimSensor {
                id: format!("sensor{i}"),
                baseline: 55.0 + rng.next_f64() * 15.0,
                excursion: None,
            })
            .collect();
        Simulator { config, rng, sensors }
    }

    pub fn sensor_ids(&self) -> impl Iterator<Item = &str> {
        self.sensors.iter().map(|s| s.id.as_str())
    }

    /// One reading of every sensor at event time `now` (epoch seconds).
    pub fn tick(&mut self, now: f64, out: &mut Vec<Reading>) {
        let day_phase = (now.rem_euclid(86_400.0) / 86_400.0) * std::f64::consts::TAU;
        for s in &mut self.sensors {
            let cycle = 3.0 * day_phase.sin();
            let noise = (self.rng.next_f64() - 0.5) * 1.0;
            if s.excursion.is_none() && self.rng.next_f64() < self.config.excursion_chance {
                // Peaks land between just over HIGH and well over CRITICAL.
                let peak = 84.0 + self.rng.next_f64() * 14.0 - s.baseline;
                let len = 20 + (self.rng.next_f64() * 40.0) as u32;
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
            let temperature = ((s.baseline + cycle + noise + bump) * 100.0).round() / 100.0;
            out.push(Reading { timestamp: now, sensor_id: s.id.clone(), temperature });
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
