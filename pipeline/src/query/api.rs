//! The JSON API's query parameters (`/api/alerts`, `/api/readings`, `/api/export.csv`,
//! `/api/history/{sensor}`): each bad value becomes one sentence for a 400 answer, with no
//! markup in it (a client may show it in a page as it is).

use std::collections::BTreeMap;
use std::str::FromStr;

use super::{check_range, clip, inert, kind, list, parse_time, sensor, severity, state, to_ms};
use crate::model::AlertFilter;

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

impl From<String> for BadParam {
    fn from(sentence: String) -> Self {
        bad(sentence)
    }
}

fn bad(sentence: impl AsRef<str>) -> BadParam {
    BadParam(inert(sentence.as_ref()))
}

/// The parameters of one request, by name.
pub type Params = BTreeMap<String, String>;

/// Rejects parameters the endpoint does not know (a typo must not silently widen a query).
pub fn only(params: &Params, known: &[&str]) -> Result<(), BadParam> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => {
            Err(bad(format!("unknown parameter `{}` (known: {})", clip(k), known.join(", "))))
        }
        None => Ok(()),
    }
}

/// Time parameter `name`, if given, in epoch ms.
pub fn time_ms(params: &Params, name: &str) -> Result<Option<i64>, BadParam> {
    let Some(v) = params.get(name) else { return Ok(None) };
    let secs = parse_time(v).map_err(|e| bad(format!("`{name}`: {e}")))?;
    Ok(Some(to_ms(secs)))
}

/// The `[from, to)` range of `from`/`to` (epoch ms); `to` defaults to `now_ms`, `from` to
/// `default_span_ms` before `to`.
pub fn range(params: &Params, now_ms: i64, default_span_ms: i64) -> Result<(i64, i64), BadParam> {
    let to = time_ms(params, "to")?.unwrap_or(now_ms);
    let from = time_ms(params, "from")?.unwrap_or(to.saturating_sub(default_span_ms).max(0));
    check_range(from, to)?;
    Ok((from, to))
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

/// The one sensor a query is about.
pub fn required_sensor(params: &Params) -> Result<String, BadParam> {
    let v = params.get("sensor").ok_or_else(|| bad("`sensor` is required"))?;
    sensor(v).map_err(|e| bad(format!("`sensor`: {e}")))
}

/// `GET /api/alerts`: the filter of `severity`, `sensor`, `kind`, `state`, `from`, `to` and
/// `limit` (1 to 10 000, default 200).
pub fn alerts(q: &Params) -> Result<AlertFilter, BadParam> {
    only(q, &["severity", "sensor", "kind", "state", "from", "to", "limit"])?;
    let values = |name: &str| q.get(name).map(String::as_str);
    Ok(AlertFilter {
        severities: list("severity", values("severity"), severity)?,
        sensors: list("sensor", values("sensor"), sensor)?,
        kinds: list("kind", values("kind"), kind)?,
        states: list("state", values("state"), state)?,
        from_ms: time_ms(q, "from")?,
        to_ms: time_ms(q, "to")?,
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
            let e = format!("`source`: `{}` is neither raw nor windows", clip(other));
            return Err(bad(e));
        }
    };
    Ok(Chart { from_ms, to_ms, points, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use crate::query::MAX_TIME_MS;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn times_are_read_as_the_pages_read_them_in_ms() {
        let t = |v: &str| time_ms(&p(&[("from", v)]), "from");
        assert_eq!(t("1700000000"), Ok(Some(1_700_000_000_000)));
        assert_eq!(t("1700000000.5"), Ok(Some(1_700_000_000_500)));
        assert_eq!(t("2023-11-14T22:13:20Z"), Ok(Some(1_700_000_000_000)));
        assert_eq!(t("2023-11-14T22:13"), Ok(Some(1_699_999_980_000)));
        assert_eq!(t("9999-12-31T23:59:59.999Z"), Ok(Some(MAX_TIME_MS)));
        assert!(t("yesterday").unwrap_err().0.starts_with("`from`: "));
        assert!(t("0001-01-01T00:00:00Z").unwrap_err().0.contains("between 1970"));
        assert_eq!(time_ms(&p(&[]), "from"), Ok(None));
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
    fn numbers_and_unknown_parameters_are_checked() {
        assert_eq!(number(&p(&[]), "limit", 1u32, 1000, 100), Ok(100));
        assert_eq!(number(&p(&[("limit", "5")]), "limit", 1u32, 1000, 100), Ok(5));
        assert!(number(&p(&[("limit", "0")]), "limit", 1u32, 1000, 100).is_err());
        assert!(number(&p(&[("limit", "x")]), "limit", 1u32, 1000, 100).is_err());
        let unknown = only(&p(&[("sensr", "a")]), &["sensor"]).unwrap_err();
        assert!(unknown.0.contains("unknown parameter `sensr`"));
        assert!(required_sensor(&p(&[])).unwrap_err().0.contains("required"));
        assert_eq!(required_sensor(&p(&[("sensor", "s1")])), Ok("s1".into()));
    }

    #[test]
    fn each_endpoint_reads_its_own_parameters() {
        let f = alerts(&p(&[("severity", "critical,high"), ("limit", "7"), ("from", "1")]));
        let f = f.unwrap();
        assert_eq!(
            (f.severities, f.limit, f.from_ms, f.to_ms),
            (vec![Level::Critical, Level::High], 7, Some(1000), None)
        );
        assert_eq!(alerts(&p(&[])).unwrap().limit, 200);
        assert!(alerts(&p(&[("points", "5")])).unwrap_err().0.contains("unknown parameter"));
        assert!(alerts(&p(&[("state", "bogus")])).unwrap_err().0.starts_with("`state`: "));
        let markup = alerts(&p(&[("sensor", "<script>")])).unwrap_err().0;
        assert!(markup.contains("sensor `?script?`"), "{markup}");
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
