//! What the pages' URLs hold, read and written the same way on the server and in the
//! browser: the alert filters of `/alerts` and the time range of `/sensors/<id>`. URLs keep
//! the filters, so a view can be bookmarked and shared.

use serde::{Deserialize, Serialize};

use super::{
    check_range, check_time, kind, list, parse_time, sensor, severity, state, to_ms,
    validate_sensor,
};
use crate::model::{AlertFilter, AlertKind, AlertState, Level, MAX_FILTER_VALUES};

/// Filters of the alerts list. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertQuery {
    pub severities: Vec<Level>,
    pub sensors: Vec<String>,
    pub kinds: Vec<AlertKind>,
    pub states: Vec<AlertState>,
    /// Opened at or after (epoch seconds).
    pub from: Option<f64>,
    /// Opened before (epoch seconds).
    pub to: Option<f64>,
}

impl AlertQuery {
    /// Reads the filters from URL parameters (`get` returns every value of a name: a name
    /// may repeat, and each value may be a comma-separated list).
    pub fn from_params(get: impl Fn(&str) -> Vec<String>) -> Result<AlertQuery, String> {
        let time = |name: &str| -> Result<Option<f64>, String> {
            match get(name).into_iter().find(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(v) => parse_time(&v).map(Some).map_err(|e| format!("`{name}`: {e}")),
            }
        };
        let q = AlertQuery {
            severities: list("severity", get("severity").iter().map(String::as_str), severity)?,
            sensors: list("sensor", get("sensor").iter().map(String::as_str), sensor)?,
            kinds: list("kind", get("kind").iter().map(String::as_str), kind)?,
            states: list("state", get("state").iter().map(String::as_str), state)?,
            from: time("from")?,
            to: time("to")?,
        };
        q.validate()?;
        Ok(q)
    }

    /// The URL query string of these filters (without `?`), the inverse of `from_params`.
    /// Nothing needs escaping: sensor ids are `[A-Za-z0-9_.-]`, the rest are names and times.
    pub fn to_query_string(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |name: &str, values: Vec<&str>| {
            if !values.is_empty() {
                parts.push(format!("{name}={}", values.join(",")));
            }
        };
        add("severity", self.severities.iter().map(|l| l.as_str()).collect());
        add("sensor", self.sensors.iter().map(String::as_str).collect());
        add("kind", self.kinds.iter().map(|k| k.as_str()).collect());
        add("state", self.states.iter().map(|s| s.as_str()).collect());
        for (name, t) in [("from", self.from), ("to", self.to)] {
            if let Some(t) = t {
                parts.push(format!("{name}={}", url_time(t)));
            }
        }
        parts.join("&")
    }

    /// The checks the server applies to any query, whoever built it (a server function's
    /// argument is not a URL the server read).
    pub fn validate(&self) -> Result<(), String> {
        for (name, n) in [
            ("severity", self.severities.len()),
            ("sensor", self.sensors.len()),
            ("kind", self.kinds.len()),
            ("state", self.states.len()),
        ] {
            if n > MAX_FILTER_VALUES {
                return Err(format!("`{name}`: at most {MAX_FILTER_VALUES} values"));
            }
        }
        self.sensors.iter().try_for_each(|s| validate_sensor(s))?;
        for (name, t) in [("from", self.from), ("to", self.to)] {
            if let Some(t) = t {
                check_time(t).map_err(|e| format!("`{name}`: {e}"))?;
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to_ms(from) >= to_ms(to)
        {
            return Err("`from` must be before `to`".into());
        }
        Ok(())
    }

    /// The index's filter of this query, with at most `limit` alerts.
    pub fn filter(&self, limit: u32) -> AlertFilter {
        AlertFilter {
            severities: self.severities.clone(),
            sensors: self.sensors.clone(),
            kinds: self.kinds.clone(),
            states: self.states.clone(),
            from_ms: self.from.map(to_ms),
            to_ms: self.to.map(to_ms),
            limit,
        }
    }
}

/// A sensor page's time range: the last so many seconds, or between two times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Range {
    Last(u32),
    Between(f64, f64),
}

/// The preset ranges of the sensor page: URL value, label, seconds.
pub const PRESETS: [(&str, &str, u32); 4] = [
    ("1h", "Last hour", 3_600),
    ("24h", "Last day", 86_400),
    ("7d", "Last week", 7 * 86_400),
    ("30d", "Last 30 days", 30 * 86_400),
];

impl Default for Range {
    fn default() -> Self {
        Range::Last(3_600)
    }
}

impl Range {
    /// Reads `?range=1h` or `?from=…&to=…` (the custom range wins when both are given).
    pub fn from_params(get: impl Fn(&str) -> Option<String>) -> Result<Range, String> {
        let nonempty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let (Some(from), Some(to)) = (nonempty("from"), nonempty("to")) {
            let from = parse_time(&from).map_err(|e| format!("`from`: {e}"))?;
            let to = parse_time(&to).map_err(|e| format!("`to`: {e}"))?;
            let range = Range::Between(from, to);
            range.bounds(to)?;
            return Ok(range);
        }
        match nonempty("range") {
            None => Ok(Range::default()),
            Some(v) => PRESETS
                .iter()
                .find(|(name, _, _)| *name == v)
                .map(|&(_, _, secs)| Range::Last(secs))
                .ok_or_else(|| {
                    let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                    format!("`range`: `{}` is not one of {}", super::clip(&v), names.join(", "))
                }),
        }
    }

    /// The URL name of a preset range.
    pub fn preset(&self) -> Option<&'static str> {
        match self {
            Range::Last(secs) => PRESETS.iter().find(|p| p.2 == *secs).map(|p| p.0),
            Range::Between(..) => None,
        }
    }

    /// `[from, to)` in epoch seconds at `now`, checked as the JSON API checks its ranges.
    pub fn bounds(&self, now: f64) -> Result<(f64, f64), String> {
        let (from, to) = match *self {
            Range::Last(secs) => (now - f64::from(secs), now),
            Range::Between(from, to) => (from, to),
        };
        if !(from.is_finite() && to.is_finite()) || from < 0.0 {
            return Err("the range must be between real times".into());
        }
        check_range(to_ms(from), to_ms(to))?;
        Ok((from, to))
    }
}

/// The `datetime-local` form of an epoch-seconds time (UTC).
pub fn format_time(epoch_s: f64) -> String {
    chrono::DateTime::from_timestamp_millis(to_ms(epoch_s))
        .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// A time as the app writes it into a URL: the readable `datetime-local` form when that is
/// exact (whole minutes), epoch seconds otherwise, so a URL always reads back as written.
fn url_time(epoch_s: f64) -> String {
    if epoch_s.rem_euclid(60.0) == 0.0 && !format_time(epoch_s).is_empty() {
        format_time(epoch_s)
    } else {
        format!("{epoch_s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Vec<String> + 'a {
        move |name| pairs.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()).collect()
    }

    #[test]
    fn alert_filters_round_trip_through_the_url() {
        let q = AlertQuery::from_params(params(&[
            ("severity", "critical"),
            ("severity", "high"),
            ("sensor", "s1,s2"),
            ("kind", "offline"),
            ("state", "open"),
            ("from", "2026-11-24T10:00"),
        ]))
        .unwrap();
        assert_eq!(q.severities, [Level::Critical, Level::High]);
        assert_eq!(q.sensors, ["s1", "s2"]);
        assert_eq!(q.from, Some(1_795_514_400.0));
        let url = q.to_query_string();
        assert_eq!(
            url,
            "severity=CRITICAL,HIGH&sensor=s1,s2&kind=offline&state=open&from=2026-11-24T10:00"
        );
        let pairs: Vec<(&str, &str)> = url.split('&').map(|p| p.split_once('=').unwrap()).collect();
        assert_eq!(AlertQuery::from_params(params(&pairs)).unwrap(), q);
        assert_eq!(AlertQuery::from_params(params(&[])).unwrap(), AlertQuery::default());
        // Times within a minute (found by fuzzing: written as the same minute, they were
        // refused on the way back) keep their seconds.
        let q = AlertQuery { from: Some(60.25), to: Some(90.0), ..AlertQuery::default() };
        assert_eq!(q.to_query_string(), "from=60.25&to=90");
        let pairs = [("from", "60.25"), ("to", "90")];
        assert_eq!(AlertQuery::from_params(params(&pairs)).unwrap(), q);
        // The last minute a URL can name reads back.
        let last = AlertQuery::from_params(params(&[("to", "9999-12-31T23:59")])).unwrap();
        assert_eq!(last.to_query_string(), "to=9999-12-31T23:59");
    }

    #[test]
    fn bad_filters_are_reported_not_dropped() {
        let bad = |pairs: &[(&str, &str)]| AlertQuery::from_params(params(pairs)).unwrap_err();
        assert!(bad(&[("severity", "hot")]).contains("`hot` is not a severity"));
        assert!(bad(&[("sensor", "<script>")]).contains("sensor `<script>`"));
        assert!(bad(&[("kind", "x")]).contains("not an alert kind"));
        assert!(bad(&[("from", "soon")]).contains("`from`"));
        assert!(bad(&[("from", "20"), ("to", "10")]).contains("before"));
        let many = vec!["s"; 101].join(",");
        assert!(bad(&[("sensor", &many)]).contains("at most 100"));
    }

    #[test]
    fn a_query_built_by_a_client_is_checked_like_a_url() {
        let far = AlertQuery { from: Some(1e13), ..AlertQuery::default() };
        assert!(far.validate().unwrap_err().contains("between 1970 and 9999"));
        let q = AlertQuery { from: Some(1.5), to: Some(2.0), ..AlertQuery::default() };
        assert_eq!(q.filter(7).from_ms, Some(1500));
        assert_eq!((q.filter(7).to_ms, q.filter(7).limit), (Some(2000), 7));
    }

    #[test]
    fn ranges_are_presets_or_custom_and_bounded() {
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(Range::from_params(get(&[])), Ok(Range::Last(3_600)));
        assert_eq!(Range::from_params(get(&[("range", "7d")])), Ok(Range::Last(604_800)));
        assert!(Range::from_params(get(&[("range", "1y")])).unwrap_err().contains("not one of"));
        assert_eq!(
            Range::from_params(get(&[("range", "7d"), ("from", "100"), ("to", "200")])),
            Ok(Range::Between(100.0, 200.0))
        );
        assert!(Range::from_params(get(&[("from", "0"), ("to", "4000000000")])).is_err());
        assert_eq!(Range::Last(86_400).bounds(100_000.0), Ok((13_600.0, 100_000.0)));
        assert!(Range::Between(5.0, 5.0).bounds(0.0).is_err());
        assert!(Range::Between(f64::NAN, 5.0).bounds(0.0).is_err());
        assert_eq!(Range::Last(86_400).preset(), Some("24h"));
    }
}
