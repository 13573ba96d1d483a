//! Durations as operators write them, in settings and in the notifications file.

use std::time::Duration;

/// A positive duration as people write it (`250ms`, `10s`, `5m`, `1h 30m`, `30d`: humantime's
/// units), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let duration = match s.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration like 10s, 500ms or 5m: {e}"))?,
    };
    if duration.is_zero() {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds_and_must_be_positive() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").unwrap_err().contains("positive"));
        assert!(parse_duration("0").unwrap_err().contains("positive"));
        assert!(parse_duration("ten").unwrap_err().contains("not a duration"));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert!(parse_duration("3x").unwrap_err().contains("not a duration"));
        assert!(parse_duration("-5s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("99999999999999999999999d").unwrap_err().contains("not a duration"));
    }
}
