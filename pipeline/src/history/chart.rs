//! Charts of long ranges in bounded memory: every reading of the range's files only updates
//! the lowest and highest point of its slice of the range, files read in parallel, and the
//! archive's own lines read by a short path rather than the JSON parser (the 30-day raw
//! chart in BENCHMARKS.md, "The archive on the real HDFS").

use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::{Store, StoreError};
use crate::downsample::Point;

/// Slices of a chart's range per point finally drawn: enough that the downsampling after
/// them still chooses among real peaks and dips.
pub const BUCKETS_PER_POINT: usize = 4;

/// Files read at once by a chart query.
const CHART_READERS: usize = 4;

/// The time and value of an archived reading (its sensor is known from the file).
#[derive(serde::Deserialize)]
struct ChartLine {
    timestamp: f64,
    temperature: f64,
}

/// The time and value of an archived reading line. The archive's own lines (written by
/// serde_json: `{"timestamp":…,"sensor_id":…,"temperature":…}`) are read by a short path
/// that finds the two numbers; anything else goes through the JSON parser.
fn chart_line(line: &[u8]) -> Option<(f64, f64)> {
    fn number(bytes: &[u8]) -> Option<f64> {
        std::str::from_utf8(bytes).ok()?.parse().ok()
    }
    let quick = || {
        let rest = line.strip_prefix(b"{\"timestamp\":")?;
        let comma = rest.iter().position(|&b| b == b',')?;
        let tail = line.strip_suffix(b"}")?;
        let key = b"\"temperature\":";
        let at = tail.len().checked_sub(tail.iter().rev().position(|&b| b == b':')?)?;
        (tail.get(at - key.len()..at)? == key).then_some(())?;
        Some((number(&rest[..comma])?, number(&tail[at..])?))
    };
    quick().or_else(|| {
        let l = serde_json::from_slice::<ChartLine>(line).ok()?;
        Some((l.timestamp, l.temperature))
    })
}

/// Reads `paths` on up to [`CHART_READERS`] threads into copies of `empty`, merged; stops at
/// the next file once `cancelled` is set (the caller is gone: what is returned then is moot).
pub(super) fn reduce_files(
    store: &dyn Store,
    paths: &[String],
    empty: Buckets,
    cancelled: &AtomicBool,
) -> Result<Buckets, StoreError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read = || -> Result<Buckets, StoreError> {
        let mut buckets = empty.clone();
        loop {
            if cancelled.load(Ordering::Relaxed) {
                return Ok(buckets);
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else { return Ok(buckets) };
            let bytes = store.read_file(path)?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                // Damaged lines are skipped and counted, as `readings` does.
                match chart_line(line) {
                    Some((timestamp, temperature)) => buckets.add(timestamp, temperature),
                    None => buckets.skipped_lines += 1,
                }
            }
        }
    };
    let readers = CHART_READERS.min(paths.len()).max(1);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers).map(|_| scope.spawn(read)).collect();
        handles.into_iter().map(|h| h.join().expect("chart reader panicked")).collect()
    });
    let mut all = empty;
    for part in results {
        all.merge(&part?);
    }
    Ok(all)
}

/// The lowest and highest point of each equal slice of `[from_ms, to_ms)`.
#[derive(Debug, Clone)]
pub(super) struct Buckets {
    from_ms: i64,
    to_ms: i64,
    slices: Vec<Option<(Point, Point)>>,
    /// Damaged lines skipped.
    pub(super) skipped_lines: usize,
}

impl Buckets {
    pub(super) fn new(from_ms: i64, to_ms: i64, slices: usize) -> Self {
        Buckets { from_ms, to_ms, slices: vec![None; slices], skipped_lines: 0 }
    }

    fn add(&mut self, timestamp: f64, value: f64) {
        let ms = (timestamp * 1000.0).floor() as i64;
        if ms < self.from_ms || ms >= self.to_ms || !value.is_finite() {
            return;
        }
        let span = (self.to_ms - self.from_ms) as i128;
        let i = ((ms - self.from_ms) as i128 * self.slices.len() as i128 / span) as usize;
        let p = (timestamp, value);
        match &mut self.slices[i] {
            None => self.slices[i] = Some((p, p)),
            Some((lo, hi)) => {
                if lower(p, *lo) {
                    *lo = p;
                }
                if lower(*hi, p) {
                    *hi = p;
                }
            }
        }
    }

    fn merge(&mut self, other: &Buckets) {
        self.skipped_lines += other.skipped_lines;
        for (mine, theirs) in self.slices.iter_mut().zip(&other.slices) {
            match (mine.as_mut(), theirs) {
                (_, None) => {}
                (None, Some(t)) => *mine = Some(*t),
                (Some((lo, hi)), Some((tlo, thi))) => {
                    if lower(*tlo, *lo) {
                        *lo = *tlo;
                    }
                    if lower(*hi, *thi) {
                        *hi = *thi;
                    }
                }
            }
        }
    }

    /// Each slice's lowest and highest point, in time order.
    pub(super) fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for &(lo, hi) in self.slices.iter().flatten() {
            let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
            out.push(a);
            if b != a {
                out.push(b);
            }
        }
        out
    }
}

/// Orders points by value, then by time (the earliest of equal values wins): the same
/// readings give the same chart whichever thread saw them first.
fn lower(a: Point, b: Point) -> bool {
    a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)).is_lt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reading;

    fn r(sensor: &str, t: f64, temp: f64) -> Reading {
        Reading { timestamp: t, sensor_id: sensor.into(), temperature: temp }
    }

    #[test]
    fn chart_lines_are_read_by_the_short_path_or_the_parser() {
        let own = serde_json::to_vec(&r("s,\"x\":1", 12.5, -3.25)).unwrap();
        assert_eq!(chart_line(&own), Some((12.5, -3.25)));
        let other = br#"{ "temperature": 7, "sensor_id": "s", "timestamp": 1e3 }"#;
        assert_eq!(chart_line(other), Some((1000.0, 7.0)));
        for bad in [&b"{\"timestamp\": 3, trunc"[..], b"", b"{\"timestamp\":1,\"temperature\":}"] {
            assert_eq!(chart_line(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
