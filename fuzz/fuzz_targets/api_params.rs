//! Any query string of the JSON API, decoded as axum's `Query<Params>` decodes it, given to
//! the parser of each endpoint. None panics; what one accepts is within the documented
//! bounds; what one refuses is said in one bounded sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermoalert_pipeline::parse::validate_sensor_id;

use thermoalert_pipeline::model::{MAX_FILTER_VALUES, MAX_QUERY_SPAN_MS};
use thermoalert_pipeline::query::api::{self as params, BadParam, Params};

const NOW_MS: i64 = 1_800_000_000_000;

fn sentence(e: &BadParam) {
    assert!(!e.0.is_empty() && e.0.len() <= 512, "{}", e.0);
}

fn range_ok(from: i64, to: i64) {
    assert!(0 <= from && from < to, "{from}, {to}");
    assert!(to - from <= MAX_QUERY_SPAN_MS);
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = serde_urlencoded::from_bytes::<Params>(data) else { return };
    match params::alerts(&q) {
        Ok(f) => {
            for n in [f.severities.len(), f.sensors.len(), f.kinds.len(), f.states.len()] {
                assert!(n <= MAX_FILTER_VALUES);
            }
            assert!(f.sensors.iter().all(|s| validate_sensor_id(s).is_ok()));
            assert!((1..=10_000).contains(&f.limit));
            assert!(f.from_ms.is_none_or(|t| t >= 0) && f.to_ms.is_none_or(|t| t >= 0));
        }
        Err(e) => sentence(&e),
    }
    match params::readings(&q, NOW_MS) {
        Ok((sensor, from, to)) => {
            assert!(validate_sensor_id(&sensor).is_ok());
            range_ok(from, to);
        }
        Err(e) => sentence(&e),
    }
    match params::chart(&q, NOW_MS) {
        Ok(c) => {
            range_ok(c.from_ms, c.to_ms);
            assert!((4..=10_000).contains(&c.points));
        }
        Err(e) => sentence(&e),
    }
});
