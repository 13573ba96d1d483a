//! Queries as clients write them: the filters and time ranges of the pages' URLs ([`page`])
//! and of the JSON API's parameters ([`api`]). One parser for each kind of value and one set
//! of limits, used by both, by the server functions and by the fuzz targets: a query one side
//! takes, the other takes too.
//!
//! Reading is strict: a value that is not understood is reported in one short sentence that
//! echoes at most 64 characters of it, never silently dropped (a filter that quietly drops
//! would show alerts the operator excluded) and never a panic.

pub mod api;
pub mod page;

use crate::model::{AlertKind, AlertState, Level, MAX_FILTER_VALUES, MAX_QUERY_SPAN_MS};
use crate::parse::validate_sensor_id;

/// The last millisecond of the year 9999: the latest time any query may name, in any form
/// (it is also the latest a `datetime-local` field and RFC 3339 can write).
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A time: epoch seconds (integer or fractional), RFC 3339 (`2026-11-24T12:00:00Z`), or a UTC
/// date-time as a `datetime-local` input gives it (`2026-11-24T10:00`, seconds optional);
/// from 1970 to 9999 in every form. Epoch seconds.
pub fn parse_time(v: &str) -> Result<f64, String> {
    let v = v.trim();
    let secs = if let Ok(secs) = v.parse::<f64>() {
        Some(secs)
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        Some(t.timestamp_millis() as f64 / 1000.0)
    } else {
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"].iter().find_map(|format| {
            let t = chrono::NaiveDateTime::parse_from_str(v, format).ok()?;
            Some(t.and_utc().timestamp_millis() as f64 / 1000.0)
        })
    };
    match secs {
        Some(secs) => check_time(secs)
            .map_err(|_| format!("`{}` is not a time between 1970 and 9999", clip(v))),
        None => Err(format!(
            "`{}` is neither epoch seconds nor a date-time like 2026-11-24T10:00",
            clip(v)
        )),
    }
}

/// Checks that epoch seconds `secs` name a time from 1970 to 9999 (to the millisecond).
pub fn check_time(secs: f64) -> Result<f64, String> {
    if secs.is_finite() && secs >= 0.0 && to_ms(secs) <= MAX_TIME_MS {
        Ok(secs)
    } else {
        Err(format!("{secs} is not a time between 1970 and 9999"))
    }
}

/// Epoch seconds as epoch milliseconds, rounded (saturating far outside the range).
pub fn to_ms(epoch_s: f64) -> i64 {
    (epoch_s * 1000.0).round() as i64
}

/// Checks a `[from, to)` range in epoch ms: not empty, at most [`MAX_QUERY_SPAN_MS`].
pub fn check_range(from_ms: i64, to_ms: i64) -> Result<(), String> {
    if from_ms >= to_ms {
        return Err("`from` must be before `to`".into());
    }
    if to_ms - from_ms > MAX_QUERY_SPAN_MS {
        return Err("the range may span at most 10 years".into());
    }
    Ok(())
}

/// The values of filter `name`: each of `raw` may be a comma-separated list (and a name may
/// repeat); at most [`MAX_FILTER_VALUES`] in all; each read by `parse`.
pub fn list<'a, T>(
    name: &str,
    raw: impl IntoIterator<Item = &'a str>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for v in raw.into_iter().flat_map(|r| r.split(',')).map(str::trim).filter(|v| !v.is_empty()) {
        if out.len() == MAX_FILTER_VALUES {
            return Err(format!("`{name}`: at most {MAX_FILTER_VALUES} values"));
        }
        out.push(parse(v).map_err(|e| format!("`{name}`: {e}"))?);
    }
    Ok(out)
}

/// A sensor id as a filter value.
pub fn sensor(v: &str) -> Result<String, String> {
    validate_sensor(v).map(|()| v.to_owned())
}

pub fn severity(v: &str) -> Result<Level, String> {
    Level::severity(v).map_err(|e| e.to_string())
}

pub fn kind(v: &str) -> Result<AlertKind, String> {
    v.parse().map_err(|e: crate::model::UnknownName| e.to_string())
}

pub fn state(v: &str) -> Result<AlertState, String> {
    v.parse().map_err(|e: crate::model::UnknownName| e.to_string())
}

/// Checks a sensor id against the contract's rules.
pub fn validate_sensor(id: &str) -> Result<(), String> {
    validate_sensor_id(id).map_err(|e| format!("sensor `{}`: {e}", clip(id)))
}

/// Alert ids are built from kinds, sensor ids and times: short and plain.
pub fn validate_alert_id(id: &str) -> Result<(), String> {
    let plain = id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if id.is_empty() || id.len() > 128 || !plain {
        return Err(format!("`{}` is not an alert id", clip(id)));
    }
    Ok(())
}

/// Echoes at most 64 characters of what a client sent: an error message stays short
/// whatever the URL holds. Pages show it as text; the JSON API makes it [`inert`] too.
pub fn clip(v: &str) -> String {
    v.chars().take(64).collect()
}

/// `message` with markup and control characters shown as `?`, for answers a client may paste
/// into a page or a log line unescaped.
pub fn inert(message: &str) -> String {
    message.chars().map(|c| if c.is_control() || "<>&".contains(c) { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_epoch_seconds_rfc3339_or_a_datetime_local_value() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000.0));
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000.5));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000.0));
        assert_eq!(parse_time("2026-11-24T10:00"), Ok(1_795_514_400.0));
        assert_eq!(parse_time("2026-11-24T10:00:30"), Ok(1_795_514_430.0));
        assert!(parse_time("yesterday").unwrap_err().contains("neither epoch seconds"));
    }

    #[test]
    fn every_form_has_the_same_range_1970_to_9999() {
        assert_eq!(parse_time("9999-12-31T23:59:59.999Z").map(to_ms), Ok(MAX_TIME_MS));
        assert_eq!(parse_time("9999-12-31T23:59").map(to_ms), Ok(MAX_TIME_MS - 59_999));
        assert_eq!(parse_time("253402300799.999").map(to_ms), Ok(MAX_TIME_MS));
        assert_eq!(parse_time("0"), Ok(0.0));
        // Rounds past the last millisecond.
        for far in ["253402300799.9996", "1e300", "-1", "-5", "NaN", "inf", "1969-12-31T23:59"] {
            assert!(parse_time(far).unwrap_err().contains("between 1970 and 9999"), "{far}");
        }
        assert!(parse_time("0001-01-01T00:00:00Z").is_err());
        assert!(parse_time("+10000-01-01T00:00").is_err());
    }

    #[test]
    fn ranges_are_not_empty_and_span_at_most_ten_years() {
        assert_eq!(check_range(1, 2), Ok(()));
        assert!(check_range(2, 2).unwrap_err().contains("before"));
        assert_eq!(check_range(0, MAX_QUERY_SPAN_MS), Ok(()));
        assert!(check_range(0, MAX_QUERY_SPAN_MS + 1).unwrap_err().contains("10 years"));
    }

    #[test]
    fn lists_split_commas_and_repeats_parse_each_value_and_are_bounded() {
        assert_eq!(
            list("severity", ["high, CRITICAL"], severity),
            Ok(vec![Level::High, Level::Critical])
        );
        assert_eq!(list("sensor", ["s1", "s2,s3", " "], sensor).unwrap().len(), 3);
        let bad = list("state", ["open,bogus"], state).unwrap_err();
        assert!(bad.starts_with("`state`: ") && bad.contains("`bogus` is not an alert state"));
        let many = vec!["s"; MAX_FILTER_VALUES + 1].join(",");
        assert!(list("sensor", [many.as_str()], sensor).unwrap_err().contains("at most 100"));
        let hostile = list("sensor", ["../etc/passwd"], sensor).unwrap_err();
        assert!(hostile.contains("sensor `../etc/passwd`"), "{hostile}");
        let markup = list("sensor", ["<script>"], sensor).unwrap_err();
        assert!(markup.contains("sensor `<script>`"), "{markup}");
        assert_eq!(list("kind", [], kind), Ok(vec![]));
    }

    #[test]
    fn alert_ids_are_plain_and_echoes_are_short() {
        assert!(validate_alert_id("instant-sensor1-1700000000000").is_ok());
        assert!(validate_alert_id("../x").is_err());
        assert!(validate_alert_id("").is_err());
        assert!(validate_alert_id(&"a".repeat(129)).is_err());
        assert_eq!(clip(&"é".repeat(100)).chars().count(), 64);
        assert_eq!(inert("`<b a=\"1\">&x`\r\n"), "`?b a=\"1\"??x`??");
    }
}
