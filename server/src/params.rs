//! Parsing of HTTP query parameters, kept pure so every parser is unit-tested (and fuzzable):
//! each bad value becomes one sentence for a 400 response, never a 500.

use std::collections::BTreeMap;
use std::str::FromStr;

use thermoalert_pipeline::model::{AlertKind, AlertState, Level, UnknownName};
use thermoalert_pipeline::parse::validate_sensor_id;

/// Most values one list parameter may carry.
pub const MAX_LIST: usize = 100;
/// Longest time range any query may span: 10 years.
pub const MAX_SPAN_MS: i64 = 10 * 366 * 24 * 3600 * 1000;
/// Default range when none is given: the last hour.
pub const DEFAULT_SPAN_MS: i64 = 3600 * 1000;

/// A bad parameter, said as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam(pub String);

impl std::fmt::Display for BadParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Params = BTreeMap<String, String>;

fn bad(msg: impl Into<String>) -> BadParam {
    BadParam(msg.into())
}

/// Rejects parameters the endpoint does not know (a typo must not silently widen a query).
pub fn only(params: &Params, known: &[&str]) -> Result<(), BadParam> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(format!("unknown parameter `{k}` (known: {})", known.join(", ")))),
        None => Ok(()),
    }
}

/// A time: epoch seconds (integer or fractional) or RFC 3339 (`2026-11-24T12:00:00Z`).
pub fn time_ms(name: &str, value: &str) -> Result<i64, BadParam> {
    let v = value.trim();
    if let Ok(s) = v.parse::<f64>() {
        if !s.is_finite() || !(0.0..=253_402_300_799.0).contains(&s) {
            return Err(bad(format!("`{name}`: {v} is not an epoch time between 1970 and 9999")));
        }
        return Ok((s * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| bad(format!("`{name}`: `{v}` is neither epoch seconds nor an RFC 3339 time")))
}

/// The `[from, to)` range of `from`/`to` (epoch ms); `to` defaults to `now_ms`, `from` to
/// `default_span_ms` before `to`.
pub fn range(params: &Params, now_ms: i64, default_span_ms: i64) -> Result<(i64, i64), BadParam> {
    let to = params.get("to").map(|v| time_ms("to", v)).transpose()?.unwrap_or(now_ms);
    let from = params
        .get("from")
        .map(|v| time_ms("from", v))
        .transpose()?
        .unwrap_or(to.saturating_sub(default_span_ms));
    if from >= to {
        return Err(bad("`from` must be before `to`"));
    }
    if to - from > MAX_SPAN_MS {
        return Err(bad("the range may span at most 10 years"));
    }
    Ok((from, to))
}

/// A comma-separated list (also accepted repeated as `a,b`), at most [`MAX_LIST`] values.
pub fn list<T>(
    params: &Params,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, BadParam> {
    let Some(value) = params.get(name) else {
        return Ok(Vec::new());
    };
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.len() > MAX_LIST {
        return Err(bad(format!("`{name}`: at most {MAX_LIST} values")));
    }
    items.into_iter().map(|i| parse(i).map_err(|e| bad(format!("`{name}`: {e}")))).collect()
}

/// A whole number within `min..=max`, `default` when absent.
pub fn number<T>(params: &Params, name: &str, min: T, max: T, default: T) -> Result<T, BadParam>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(v) = params.get(name) else {
        return Ok(default);
    };
    match v.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(bad(format!("`{name}` must be a whole number from {min} to {max}"))),
    }
}

pub fn sensor(value: &str) -> Result<String, String> {
    validate_sensor_id(value).map_err(|e| e.to_string())?;
    Ok(value.to_owned())
}

/// The one sensor a query is about.
pub fn required_sensor(params: &Params) -> Result<String, BadParam> {
    let v = params.get("sensor").ok_or_else(|| bad("`sensor` is required"))?;
    sensor(v).map_err(|e| bad(format!("`sensor`: {e}")))
}

pub fn severity(value: &str) -> Result<Level, String> {
    Level::severity(value).map_err(|e| e.to_string())
}

pub fn kind(value: &str) -> Result<AlertKind, String> {
    value.parse().map_err(|e: UnknownName| e.to_string())
}

pub fn state(value: &str) -> Result<AlertState, String> {
    value.parse().map_err(|e: UnknownName| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn times_take_epoch_seconds_or_rfc3339() {
        assert_eq!(time_ms("from", "1700000000"), Ok(1_700_000_000_000));
        assert_eq!(time_ms("from", "1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(time_ms("from", "2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(time_ms("from", "yesterday").unwrap_err().0.contains("neither epoch"));
        assert!(time_ms("from", "-5").is_err());
        assert!(time_ms("from", "1e300").is_err());
        assert!(time_ms("from", "NaN").is_err());
    }

    #[test]
    fn ranges_default_to_the_last_span_and_are_bounded() {
        assert_eq!(range(&p(&[]), 10_000_000, 3_600_000), Ok((6_400_000, 10_000_000)));
        assert_eq!(range(&p(&[("from", "1"), ("to", "2")]), 0, 1), Ok((1000, 2000)));
        assert!(range(&p(&[("from", "2"), ("to", "1")]), 0, 1).unwrap_err().0.contains("before"));
        let century = p(&[("from", "0"), ("to", "3155760000")]);
        assert!(range(&century, 0, 1).unwrap_err().0.contains("10 years"));
    }

    #[test]
    fn lists_parse_each_value_and_are_bounded() {
        let params = p(&[("severity", "high, CRITICAL"), ("state", "open,bogus")]);
        assert_eq!(list(&params, "severity", severity), Ok(vec![Level::High, Level::Critical]));
        assert!(
            list(&params, "state", state).unwrap_err().0.contains("`bogus` is not an alert state")
        );
        assert_eq!(list(&params, "kind", kind), Ok(vec![]));
        let many = p(&[("sensor", &vec!["s"; 101].join(","))]);
        assert!(list(&many, "sensor", sensor).unwrap_err().0.contains("at most 100"));
        let hostile = p(&[("sensor", "../etc/passwd")]);
        assert!(list(&hostile, "sensor", sensor).is_err());
    }

    #[test]
    fn numbers_and_unknown_parameters_are_checked() {
        assert_eq!(number(&p(&[]), "limit", 1u32, 1000, 100), Ok(100));
        assert_eq!(number(&p(&[("limit", "5")]), "limit", 1u32, 1000, 100), Ok(5));
        assert!(number(&p(&[("limit", "0")]), "limit", 1u32, 1000, 100).is_err());
        assert!(number(&p(&[("limit", "x")]), "limit", 1u32, 1000, 100).is_err());
        assert!(
            only(&p(&[("sensr", "a")]), &["sensor"])
                .unwrap_err()
                .0
                .contains("unknown parameter `sensr`")
        );
        assert!(required_sensor(&p(&[])).unwrap_err().0.contains("required"));
        assert_eq!(required_sensor(&p(&[("sensor", "s1")])), Ok("s1".into()));
    }
}
