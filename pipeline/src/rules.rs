//! Thresholds and the classification of a single temperature. Defaults come from the design
//! contract (HIGH above 80 °C, CRITICAL above 90 °C, 2 °C hysteresis); every sensor may
//! override them, at start (`THERMO_SENSOR_THRESHOLDS`, read here) or from the dashboard.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::Level;
use crate::parse::validate_sensor_id;

/// Default HIGH threshold (°C): readings strictly above it are HIGH.
pub const DEFAULT_HIGH: f64 = 80.0;
/// Default CRITICAL threshold (°C): readings strictly above it are CRITICAL.
pub const DEFAULT_CRITICAL: f64 = 90.0;
/// Default hysteresis (°C): an episode clears only below `high - hysteresis`.
pub const DEFAULT_HYSTERESIS: f64 = 2.0;

/// The limits one sensor is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub high: f64,
    pub critical: f64,
    pub hysteresis: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            high: DEFAULT_HIGH,
            critical: DEFAULT_CRITICAL,
            hysteresis: DEFAULT_HYSTERESIS,
        }
    }
}

/// Why a set of thresholds cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("thresholds must be finite numbers")]
    NotFinite,
    #[error("the HIGH threshold ({high}) must be below the CRITICAL one ({critical})")]
    HighNotBelowCritical { high: f64, critical: f64 },
    #[error("the hysteresis ({0}) must be zero or positive")]
    NegativeHysteresis(f64),
}

impl Thresholds {
    /// Checks that the thresholds make sense together.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        if !(self.high.is_finite() && self.critical.is_finite() && self.hysteresis.is_finite()) {
            return Err(ThresholdError::NotFinite);
        }
        if self.high >= self.critical {
            return Err(ThresholdError::HighNotBelowCritical {
                high: self.high,
                critical: self.critical,
            });
        }
        if self.hysteresis < 0.0 {
            return Err(ThresholdError::NegativeHysteresis(self.hysteresis));
        }
        Ok(())
    }

    /// The level of one temperature. Exactly at a threshold is still the level below it.
    pub fn classify(&self, temperature: f64) -> Level {
        if temperature > self.critical {
            Level::Critical
        } else if temperature > self.high {
            Level::High
        } else {
            Level::Normal
        }
    }

    /// The threshold of a level (`Normal` has none and maps to HIGH's, the one to stay below).
    pub fn threshold_of(&self, level: Level) -> f64 {
        match level {
            Level::Critical => self.critical,
            Level::High | Level::Normal => self.high,
        }
    }

    /// Whether a temperature is low enough to end an open episode.
    pub fn clears(&self, temperature: f64) -> bool {
        temperature < self.high - self.hysteresis
    }
}

/// Every sensor's thresholds: the defaults and each sensor's own. The one table the pipeline
/// judges by and the pages show. It is shared as an immutable snapshot (`Arc`): a change makes
/// a new table (see `thermoalert_app::settings`), the core takes it whole
/// ([`crate::processor::Processor::set_thresholds`]), and the index only keeps the changes
/// made from the dashboard, to build the table again at the next start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThresholdTable {
    /// The thresholds of sensors without their own.
    pub defaults: Thresholds,
    /// Each sensor's own.
    pub per_sensor: HashMap<String, Thresholds>,
}

impl ThresholdTable {
    /// The thresholds `sensor_id` is judged by.
    pub fn of(&self, sensor_id: &str) -> &Thresholds {
        self.per_sensor.get(sensor_id).unwrap_or(&self.defaults)
    }
}

/// Thresholds given for one sensor in `THERMO_SENSOR_THRESHOLDS`.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorThresholds {
    pub sensor: String,
    pub high: f64,
    pub critical: f64,
    /// Unset: the default hysteresis.
    pub hysteresis: Option<f64>,
}

/// The value of `THERMO_SENSOR_THRESHOLDS` (`--sensor-thresholds`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorThresholdList(pub Vec<SensorThresholds>);

/// Parses `sensor=HIGH/CRITICAL[/HYSTERESIS],…` (empty: none).
pub fn parse_sensor_thresholds(s: &str) -> Result<SensorThresholdList, String> {
    let mut list = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (sensor, values) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: expected sensor=HIGH/CRITICAL[/HYSTERESIS]"))?;
        validate_sensor_id(sensor).map_err(|e| format!("`{item}`: {e}"))?;
        let numbers: Vec<f64> = values
            .split('/')
            .map(|v| {
                v.trim().parse::<f64>().map_err(|_| format!("`{item}`: `{v}` is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let (high, critical, hysteresis) = match numbers[..] {
            [h, c] => (h, c, None),
            [h, c, y] => (h, c, Some(y)),
            _ => {
                return Err(format!(
                    "`{item}`: expected HIGH/CRITICAL or HIGH/CRITICAL/HYSTERESIS"
                ));
            }
        };
        if list.iter().any(|o: &SensorThresholds| o.sensor == sensor) {
            return Err(format!("sensor `{sensor}` is given twice"));
        }
        list.push(SensorThresholds { sensor: sensor.to_owned(), high, critical, hysteresis });
    }
    Ok(SensorThresholdList(list))
}

impl SensorThresholdList {
    /// Each sensor's thresholds, those given without a hysteresis taking
    /// `default_hysteresis`, each checked.
    pub fn resolve(&self, default_hysteresis: f64) -> Result<HashMap<String, Thresholds>, String> {
        let mut map = HashMap::new();
        for o in &self.0 {
            let hysteresis = o.hysteresis.unwrap_or(default_hysteresis);
            let t = Thresholds { high: o.high, critical: o.critical, hysteresis };
            t.validate()
                .map_err(|e| format!("invalid thresholds for sensor `{}`: {e}", o.sensor))?;
            map.insert(o.sensor.clone(), t);
        }
        Ok(map)
    }
}

/// The list as it is written (`a=1/2,b=3/4/0.5`).
impl std::fmt::Display for SensorThresholdList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, o) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}={}/{}", o.sensor, o.high, o.critical)?;
            if let Some(h) = o.hysteresis {
                write!(f, "/{h}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_sensor_thresholds_parse_resolve_and_write_back() {
        let list = parse_sensor_thresholds("freezer1=-15/-10, oven=200/250/5").unwrap();
        let map = list.resolve(3.0).unwrap();
        assert_eq!(map["freezer1"], Thresholds { high: -15.0, critical: -10.0, hysteresis: 3.0 });
        assert_eq!(map["oven"], Thresholds { high: 200.0, critical: 250.0, hysteresis: 5.0 });
        assert_eq!(list.to_string(), "freezer1=-15/-10,oven=200/250/5");
        assert_eq!(parse_sensor_thresholds(&list.to_string()), Ok(list));
        assert_eq!(parse_sensor_thresholds(""), Ok(SensorThresholdList::default()));
    }

    #[test]
    fn bad_per_sensor_thresholds_say_what_is_wrong() {
        let err = |s: &str| parse_sensor_thresholds(s).unwrap_err();
        assert!(err("oven").contains("expected sensor=HIGH/CRITICAL"));
        assert!(err("oven=1").contains("expected HIGH/CRITICAL"));
        assert!(err("oven=a/2").contains("`a` is not a number"));
        assert!(err("../x=1/2").contains("invalid sensor_id"));
        assert!(err("a=1/2,a=3/4").contains("given twice"));
        let inverted = parse_sensor_thresholds("oven=9/5").unwrap().resolve(2.0).unwrap_err();
        assert!(inverted.contains("sensor `oven`") && inverted.contains("must be below"));
    }

    #[test]
    fn exact_threshold_values_stay_at_the_lower_level() {
        let t = Thresholds::default();
        assert_eq!(t.classify(80.0), Level::Normal);
        assert_eq!(t.classify(80.01), Level::High);
        assert_eq!(t.classify(90.0), Level::High);
        assert_eq!(t.classify(90.01), Level::Critical);
    }

    #[test]
    fn clearing_needs_the_hysteresis_band() {
        let t = Thresholds::default();
        assert!(!t.clears(78.0));
        assert!(t.clears(77.99));
    }

    #[test]
    fn rejects_inverted_or_broken_thresholds() {
        let inverted = Thresholds { high: 95.0, ..Thresholds::default() };
        assert!(matches!(inverted.validate(), Err(ThresholdError::HighNotBelowCritical { .. })));
        let nan = Thresholds { critical: f64::NAN, ..Thresholds::default() };
        assert_eq!(nan.validate(), Err(ThresholdError::NotFinite));
        let neg = Thresholds { hysteresis: -1.0, ..Thresholds::default() };
        assert_eq!(neg.validate(), Err(ThresholdError::NegativeHysteresis(-1.0)));
        assert!(Thresholds::default().validate().is_ok());
    }
}
