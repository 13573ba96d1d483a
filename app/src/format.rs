//! How numbers and times read on screen, the same on the server and in the browser (so the
//! hydrated page matches the server-rendered one).

use thermoalert_pipeline::model::Level;

/// `78.5 °C`; non-finite values never reach the screen as `NaN` or `inf`.
pub fn temperature(t: f64) -> String {
    if t.is_finite() { format!("{t:.1} °C") } else { "—".into() }
}

/// `14:03:07 UTC` for an epoch-seconds time.
pub fn clock(epoch_s: f64) -> String {
    chrono::DateTime::from_timestamp_millis((epoch_s * 1000.0) as i64)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// `2026-11-24 14:03:07 UTC` for an epoch-seconds time.
pub fn date_time(epoch_s: f64) -> String {
    chrono::DateTime::from_timestamp_millis((epoch_s * 1000.0) as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// CSS class of a level.
pub fn level_class(level: Level) -> &'static str {
    match level {
        Level::Normal => "level-normal",
        Level::High => "level-high",
        Level::Critical => "level-critical",
    }
}

/// ▲ rising, ▼ falling, ▶ steady (within 0.05 °C), for the trend of a sensor.
pub fn trend(previous: Option<f64>, current: f64) -> &'static str {
    match previous {
        Some(p) if current - p > 0.05 => "▲",
        Some(p) if p - current > 0.05 => "▼",
        _ => "▶",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_for_people() {
        assert_eq!(temperature(78.46), "78.5 °C");
        assert_eq!(temperature(f64::INFINITY), "—");
        assert_eq!(clock(3_723.0), "01:02:03 UTC");
        assert_eq!(date_time(1_795_514_400.0), "2026-11-24 10:00:00 UTC");
        assert_eq!(trend(Some(20.0), 20.5), "▲");
        assert_eq!(trend(Some(20.0), 19.0), "▼");
        assert_eq!(trend(Some(20.0), 20.01), "▶");
        assert_eq!(trend(None, 20.0), "▶");
    }
}
