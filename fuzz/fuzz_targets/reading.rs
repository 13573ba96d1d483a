//! Any bytes a Kafka message can hold. `parse_reading` never panics; a reading it accepts
//! keeps the contract (finite temperature within physics, a timestamp neither too far ahead
//! nor too old, a sensor id fit for a path); the reading written back as JSON parses to the
//! same reading; the allocation-reusing path agrees with the plain one; every rejection has a
//! code and a sentence of bounded length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermoalert_pipeline::model::Reading;
use thermoalert_pipeline::parse::{
    MAX_TEMPERATURE, MIN_TEMPERATURE, ParseLimits, parse_reading, parse_reading_into,
    validate_sensor_id,
};

/// The clock handed to the parser (it never reads one).
const NOW: f64 = 1_800_000_000.0;

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits::default();
    let parsed = parse_reading(data, NOW, &limits);
    let mut reused = Reading { timestamp: 1.0, sensor_id: "previous".into(), temperature: 2.0 };
    let into = parse_reading_into(data, NOW, &limits, &mut reused);
    match parsed {
        Ok(reading) => {
            assert_eq!(into, Ok(()));
            assert_eq!(reused, reading);
            assert!((MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&reading.temperature));
            assert!(reading.timestamp >= 0.0);
            assert!(reading.timestamp >= NOW - limits.max_age_s);
            assert!(reading.timestamp <= NOW + limits.max_future_skew_s);
            assert!(validate_sensor_id(&reading.sensor_id).is_ok());
            let written = serde_json::to_vec(&reading).expect("a reading serializes");
            assert_eq!(parse_reading(&written, NOW, &limits), Ok(reading));
        }
        Err(rejection) => {
            assert_eq!(into, Err(rejection.clone()));
            assert!(!rejection.code().is_empty());
            let sentence = rejection.to_string();
            assert!(!sentence.is_empty() && sentence.len() <= 512, "{sentence}");
        }
    }
});
