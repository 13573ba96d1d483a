//! Thresholds and the classification of a single temperature. Defaults come from the design
//! contract (HIGH above 80 °C, CRITICAL above 90 °C, 2 °C hysteresis); every sensor may
//! override them.

use serde::{Deserialize, Serialize};

use crate::model::Level;

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

#[cfg(test)]
mod tests {
    use super::*;

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
