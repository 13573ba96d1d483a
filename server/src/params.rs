//! Parsing of HTTP query parameters, kept pure so every parser is unit-tested (and fuzzable):
//! each bad value becomes one sentence for a 400 response, never a 500.

use std::collections::BTreeMap;
use std::str::FromStr;

use thermoalert_pipeline::model::{
    AlertFilter, AlertKind, AlertState, Level, MAX_FILTER_VALUES, MAX_QUERY_SPAN_MS, UnknownName,
};
use thermoalert_pipeline::parse::validate_sensor_id;

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

/// Echoes at most 64 characters of what a client sent: an error message stays short
/// whatever the URL holds.
fn clip(v: &str) -> String {
    v.chars().take(64).collect()
}

/// Rejects parameters the endpoint does not know (a typo must not silently widen a query).
pub fn only(params: &Params, known: &[&str]) -> Result<(), BadParam> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => {
            Err(bad(format!("unknown parameter `{}` (known: {})", clip(k), known.join(", "))))
        }
        None => Ok(()),
    }
}

/// The last millisecond of the year 9999: the latest time any parameter may name.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A time: epoch seconds (integer or fractional) or RFC 3339 (`2026-11-24T12:00:00Z`),
/// from 1970 to 9999 in either form.
pub fn time_ms(name: &str, value: &str) -> Result<i64, BadParam> {
    let v = value.trim();
    let ms = if let Ok(s) = v.parse::<f64>() {
        // Rounded in f64 first: far outside the range, `as i64` saturates and stays out.
        (s.is_finite()).then(|| (s * 1000.0).round() as i64)
    } else {
        let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|_| {
            bad(format!("`{name}`: `{}` is neither epoch seconds nor an RFC 3339 time", clip(v)))
        })?;
        Some(t.timestamp_millis())
    };
    match ms {
        Some(ms) if (0..=MAX_TIME_MS).contains(&ms) => Ok(ms),
        _ => Err(bad(format!("`{name}`: {} is not a time between 1970 and 9999", clip(v)))),
    }
}

/// The `[from, to)` range of `from`/`to` (epoch ms); `to` defaults to `now_ms`, `from` to
/// `default_span_ms` before `to`.
pub fn range(params: &Params, now_ms: i64, default_span_ms: i64) -> Result<(i64, i64), BadParam> {
    let to = params.get("to").map(|v| time_ms("to", v)).transpose()?.unwrap_or(now_ms);
    let from = params
        .get("from")
        .map(|v| time_ms("from", v))
        .transpose()?
        .unwrap_or(to.saturating_sub(default_span_ms).max(0));
    if from >= to {
        return Err(bad("`from` must be before `to`"));
    }
    if to - from > MAX_QUERY_SPAN_MS {
        return Err(bad("the range may span at most 10 years"));
    }
    Ok((from, to))
}

/// A comma-separated list (also accepted repeated as `a,b`), at most
/// [`MAX_FILTER_VALUES`] values.
pub fn list<T>(
    params: &Params,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, BadParam> {
    let Some(value) = params.get(name) else {
        return Ok(Vec::new());
    };
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.len() > MAX_FILTER_VALUES {
        return Err(bad(format!("`{name}`: at most {MAX_FILTER_VALUES} values")));
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

/// `GET /api/alerts`: the filter of `severity`, `sensor`, `kind`, `state`, `from`, `to` and
/// `limit` (1 to 10 000, default 200).
pub fn alerts(q: &Params) -> Result<AlertFilter, BadParam> {
    only(q, &["severity", "sensor", "kind", "state", "from", "to", "limit"])?;
    Ok(AlertFilter {
        severities: list(q, "severity", severity)?,
        sensors: list(q, "sensor", sensor)?,
        kinds: list(q, "kind", kind)?,
        states: list(q, "state", state)?,
        from_ms: q.get("from").map(|v| time_ms("from", v)).transpose()?,
        to_ms: q.get("to").map(|v| time_ms("to", v)).transpose()?,
        limit: number(q, "limit", 1, 10_000, 200)?,
    })
}

/// `GET /api/readings` and `GET /api/export.csv`: the required `sensor` and its
/// `[from, to)` range in epoch ms (default: the hour before `now_ms`).
pub fn readings(q: &Params, now_ms: i64) -> Result<(String, i64, i64), BadParam> {
    only(q, &["sensor", "from", "to"])?;
    let sensor = required_sensor(q)?;
    let (from, to) = range(q, now_ms, DEFAULT_SPAN_MS)?;
    Ok((sensor, from, to))
}

/// Where a chart's series comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Raw readings, downsampled.
    Raw,
    /// Closed window statistics from the index.
    Windows,
}

/// What `GET /api/history/{sensor}` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    pub from_ms: i64,
    pub to_ms: i64,
    /// At most this many points (4 to 10 000, default 1 000).
    pub points: usize,
    pub source: Source,
}

/// `GET /api/history/{sensor}`: `from`, `to`, `points` and `source=raw|windows`.
pub fn chart(q: &Params, now_ms: i64) -> Result<Chart, BadParam> {
    only(q, &["from", "to", "points", "source"])?;
    let (from_ms, to_ms) = range(q, now_ms, DEFAULT_SPAN_MS)?;
    let points = number(q, "points", 4, 10_000, 1000)?;
    let source = match q.get("source").map(|s| s.trim()).unwrap_or("raw") {
        "raw" => Source::Raw,
        "windows" => Source::Windows,
        other => {
            return Err(bad(format!("`source`: `{}` is neither raw nor windows", clip(other))));
        }
    };
    Ok(Chart { from_ms, to_ms, points, source })
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
        assert!(time_ms("from", "0001-01-01T00:00:00Z").unwrap_err().0.contains("between 1970"));
        assert_eq!(time_ms("to", "9999-12-31T23:59:59.999Z"), Ok(MAX_TIME_MS));
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

    #[test]
    fn each_endpoint_reads_its_own_parameters() {
        let f = alerts(&p(&[("severity", "critical"), ("limit", "7"), ("from", "1")])).unwrap();
        assert_eq!(
            (f.severities, f.limit, f.from_ms, f.to_ms),
            (vec![Level::Critical], 7, Some(1000), None)
        );
        assert_eq!(alerts(&p(&[])).unwrap().limit, 200);
        assert!(alerts(&p(&[("points", "5")])).unwrap_err().0.contains("unknown parameter"));
        assert_eq!(
            readings(&p(&[("sensor", "s1"), ("from", "1"), ("to", "2")]), 0),
            Ok(("s1".into(), 1000, 2000))
        );
        assert!(readings(&p(&[("from", "1")]), 0).unwrap_err().0.contains("`sensor` is required"));
        let c = chart(&p(&[("source", "windows"), ("points", "10")]), 7_200_000).unwrap();
        assert_eq!(
            c,
            Chart { from_ms: 3_600_000, to_ms: 7_200_000, points: 10, source: Source::Windows }
        );
        assert_eq!(chart(&p(&[]), 7_200_000).unwrap().source, Source::Raw);
        assert!(chart(&p(&[("source", "disk")]), 1).unwrap_err().0.contains("neither raw"));
        assert!(chart(&p(&[("points", "3")]), 1).unwrap_err().0.contains("from 4 to 10000"));
    }
}
