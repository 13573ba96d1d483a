//! Shrinks a long series to at most N points for a chart without losing its shape: Largest
//! Triangle Three Buckets (LTTB) picks, in each bucket, the point that spans the largest
//! triangle with its neighbours, so peaks and dips survive. On top of LTTB the series' global
//! minimum and maximum are always kept: an operator must never see a chart that hides the
//! hottest reading.

/// A point of a series: time (any unit, ascending) and value.
pub type Point = (f64, f64);

/// At most `max_points` points of `series` (which must be sorted by time), always including
/// the first, the last, the global minimum and the global maximum. Fewer than 4 allowed
/// points are raised to 4 so those can be kept.
pub fn downsample(series: &[Point], max_points: usize) -> Vec<Point> {
    let max_points = max_points.max(4);
    if series.len() <= max_points {
        return series.to_vec();
    }
    // LTTB with two points fewer, leaving room for the extremes.
    let mut picked = lttb_indices(series, max_points - 2);
    let (min_i, max_i) = extremes(series);
    for i in [min_i, max_i] {
        if let Err(pos) = picked.binary_search(&i) {
            picked.insert(pos, i);
        }
    }
    picked.into_iter().map(|i| series[i]).collect()
}

fn extremes(series: &[Point]) -> (usize, usize) {
    let mut min_i = 0;
    let mut max_i = 0;
    for (i, p) in series.iter().enumerate() {
        if p.1 < series[min_i].1 {
            min_i = i;
        }
        if p.1 > series[max_i].1 {
            max_i = i;
        }
    }
    (min_i, max_i)
}

/// Indices LTTB keeps, ascending; `threshold` < `series.len()`.
fn lttb_indices(series: &[Point], threshold: usize) -> Vec<usize> {
    let n = series.len();
    if threshold < 3 {
        return vec![0, n - 1];
    }
    let mut out = Vec::with_capacity(threshold);
    out.push(0);
    // Buckets between the fixed first and last points.
    let every = (n - 2) as f64 / (threshold - 2) as f64;
    let mut a = 0usize;
    for bucket in 0..threshold - 2 {
        let start = (bucket as f64 * every) as usize + 1;
        let end = (((bucket + 1) as f64 * every) as usize + 1).min(n - 1);
        // The average of the next bucket is the third corner of the triangle.
        let next_start = end;
        let next_end = (((bucket + 2) as f64 * every) as usize + 1).min(n);
        let next = &series[next_start..next_end.max(next_start + 1).min(n)];
        let (avg_x, avg_y) = next.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0, y + p.1));
        let (avg_x, avg_y) = (avg_x / next.len() as f64, avg_y / next.len() as f64);
        let (ax, ay) = series[a];
        let mut best = start;
        let mut best_area = -1.0;
        for (i, &(x, y)) in series.iter().enumerate().take(end).skip(start) {
            let area = ((ax - avg_x) * (y - ay) - (ax - x) * (avg_y - ay)).abs();
            if area > best_area {
                best_area = area;
                best = i;
            }
        }
        out.push(best);
        a = best;
    }
    out.push(n - 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize) -> Vec<Point> {
        (0..n).map(|i| (i as f64, (i as f64 / 50.0).sin() * 10.0 + 50.0)).collect()
    }

    #[test]
    fn short_series_are_returned_whole() {
        let s = wave(10);
        assert_eq!(downsample(&s, 100), s);
    }

    #[test]
    fn long_series_shrink_to_the_limit_keeping_ends_and_extremes() {
        let mut s = wave(100_000);
        s[31_337].1 = 99.0; // a spike LTTB alone could miss in a wide bucket
        s[77_000].1 = -5.0;
        let d = downsample(&s, 1000);
        assert!(d.len() <= 1000, "{}", d.len());
        assert!(d.len() >= 990);
        assert_eq!(d.first(), s.first());
        assert_eq!(d.last(), s.last());
        assert!(d.contains(&(31_337.0, 99.0)));
        assert!(d.contains(&(77_000.0, -5.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "time stays ascending");
    }

    #[test]
    fn tiny_limits_still_keep_the_extremes() {
        let s = wave(1000);
        let d = downsample(&s, 1);
        assert_eq!(d.len(), 4);
        let max = s.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        assert!(d.iter().any(|p| p.1 == max));
    }
}
