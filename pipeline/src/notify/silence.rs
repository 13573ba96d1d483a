//! Silences and maintenance windows: when matched alerts are not notified. A one-off silence
//! has two instants; a recurring one has weekdays and a local time range in an IANA time
//! zone, so that "every day 02:00–02:30 Europe/Paris" follows daylight saving time.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::matcher::Matcher;
use super::spec::SilenceSpec;
use crate::model::Alert;

/// When a silence holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// From `from_ms` (included) to `to_ms` (excluded), epoch ms.
    Once { from_ms: i64, to_ms: i64 },
    /// On `days` (Monday first), from `start` to `end` local time in `zone`; an `end` not
    /// after `start` ends the next day.
    Weekly { days: [bool; 7], start: NaiveTime, end: NaiveTime, zone: Tz },
}

/// A checked [`SilenceSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub matcher: Matcher,
    pub schedule: Schedule,
    pub comment: String,
    pub author: String,
}

impl Silence {
    pub fn from_spec(spec: &SilenceSpec) -> Result<Silence, String> {
        let matcher = Matcher::from_spec(&spec.matching)?;
        let weekly = spec.start.is_some() || spec.end.is_some() || !spec.days.is_empty();
        let once = spec.from.is_some() || spec.to.is_some();
        let schedule = match (once, weekly) {
            (true, true) => {
                return Err("either `from`/`to` (once) or `days`/`start`/`end` (weekly)".into());
            }
            (false, false) => return Err("needs `from` and `to`, or `start` and `end`".into()),
            (true, false) => {
                let at = |name: &str, v: &Option<String>| -> Result<i64, String> {
                    let v = v.as_deref().ok_or(format!("needs `{name}`"))?;
                    DateTime::parse_from_rfc3339(v)
                        .map(|t| t.timestamp_millis())
                        .map_err(|e| format!("`{name}` `{v}` is not an RFC 3339 time: {e}"))
                };
                let (from_ms, to_ms) = (at("from", &spec.from)?, at("to", &spec.to)?);
                if to_ms <= from_ms {
                    return Err("`to` must be after `from`".into());
                }
                Schedule::Once { from_ms, to_ms }
            }
            (false, true) => {
                let time = |name: &str, v: &Option<String>| -> Result<NaiveTime, String> {
                    let v = v.as_deref().ok_or(format!("needs `{name}`"))?;
                    NaiveTime::parse_from_str(v, "%H:%M")
                        .map_err(|_| format!("`{name}` `{v}` is not a time like 02:30"))
                };
                let (start, end) = (time("start", &spec.start)?, time("end", &spec.end)?);
                let mut days = [spec.days.is_empty(); 7];
                for day in &spec.days {
                    let d: Weekday = day
                        .parse()
                        .map_err(|_| format!("`{day}` is not a day of the week (mon … sun)"))?;
                    days[d.num_days_from_monday() as usize] = true;
                }
                let name = spec.time_zone.as_deref().unwrap_or("UTC");
                let zone: Tz = name
                    .parse()
                    .map_err(|_| format!("`{name}` is not an IANA time zone like Europe/Paris"))?;
                Schedule::Weekly { days, start, end, zone }
            }
        };
        Ok(Silence {
            matcher,
            schedule,
            comment: spec.comment.clone(),
            author: spec.author.clone(),
        })
    }

    /// Whether this silence holds `alert` back at `now_ms`.
    pub fn silences(&self, alert: &Alert, now_ms: i64) -> bool {
        self.is_active(now_ms) && self.matcher.matches(alert)
    }

    /// Whether the silence holds at `now_ms` (epoch ms).
    pub fn is_active(&self, now_ms: i64) -> bool {
        match &self.schedule {
            Schedule::Once { from_ms, to_ms } => (*from_ms..*to_ms).contains(&now_ms),
            Schedule::Weekly { days, start, end, zone } => {
                let Some(now) = Utc.timestamp_millis_opt(now_ms).single() else { return false };
                let local = now.with_timezone(zone);
                // The window that started today, or one that started yesterday and runs past
                // midnight.
                [0, 1].into_iter().any(|back| {
                    let day = local.date_naive() - Duration::days(back);
                    if !days[day.weekday().num_days_from_monday() as usize] {
                        return false;
                    }
                    let length =
                        if end > start { *end - *start } else { *end - *start + Duration::days(1) };
                    let Some(begin) = begins(zone, day.and_time(*start)) else { return false };
                    let from_ms = begin.timestamp_millis();
                    (from_ms..from_ms + length.num_milliseconds()).contains(&now_ms)
                })
            }
        }
    }
}

/// The instant local time `at` is in `zone`: the earlier one when clocks went back over it,
/// an hour later (the length of the gap) when they jumped forward over it.
fn begins(zone: &Tz, at: NaiveDateTime) -> Option<DateTime<Tz>> {
    let earliest = |at| zone.from_local_datetime(&at).earliest();
    earliest(at).or_else(|| earliest(at + Duration::hours(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis()
    }

    fn weekly(days: &[&str], start: &str, end: &str, zone: &str) -> Silence {
        Silence::from_spec(&SilenceSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: Some(start.into()),
            end: Some(end.into()),
            time_zone: Some(zone.into()),
            ..SilenceSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn a_one_off_silence_holds_from_its_start_to_before_its_end() {
        let s = Silence::from_spec(&SilenceSpec {
            from: Some("2026-12-24T00:00:00Z".into()),
            to: Some("2026-12-26T00:00:00+00:00".into()),
            ..SilenceSpec::default()
        })
        .unwrap();
        assert!(!s.is_active(ms("2026-12-23T23:59:59Z")));
        assert!(s.is_active(ms("2026-12-24T00:00:00Z")));
        assert!(s.is_active(ms("2026-12-25T23:59:59Z")));
        assert!(!s.is_active(ms("2026-12-26T00:00:00Z")));
    }

    #[test]
    fn a_daily_window_follows_its_time_zone_across_daylight_saving_time() {
        let defrost = weekly(&[], "02:00", "02:30", "Europe/Paris");
        // Winter: Paris is UTC+1; summer: UTC+2.
        assert!(defrost.is_active(ms("2026-12-07T01:10:00Z")));
        assert!(!defrost.is_active(ms("2026-12-07T02:10:00Z")));
        assert!(defrost.is_active(ms("2026-07-07T00:10:00Z")));
        assert!(!defrost.is_active(ms("2026-07-07T01:10:00Z")));
        // 2026-03-29 02:00 does not exist in Paris: the window starts at 03:00 local.
        assert!(defrost.is_active(ms("2026-03-29T01:10:00Z")));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let night = weekly(&["fri"], "22:00", "06:00", "UTC");
        assert!(night.is_active(ms("2026-12-11T23:00:00Z")), "Friday night");
        assert!(night.is_active(ms("2026-12-12T05:59:00Z")), "Saturday morning");
        assert!(!night.is_active(ms("2026-12-12T06:00:00Z")));
        assert!(!night.is_active(ms("2026-12-10T23:00:00Z")), "Thursday night");
    }

    #[test]
    fn bad_silences_say_what_is_wrong() {
        let e = |spec: SilenceSpec| Silence::from_spec(&spec).unwrap_err();
        assert!(e(SilenceSpec::default()).contains("needs"));
        let zone = SilenceSpec {
            start: Some("02:00".into()),
            end: Some("03:00".into()),
            time_zone: Some("Mars/Olympus".into()),
            ..SilenceSpec::default()
        };
        assert!(e(zone).contains("`Mars/Olympus` is not an IANA time zone"));
        let day = SilenceSpec {
            days: vec!["someday".into()],
            start: Some("02:00".into()),
            end: Some("03:00".into()),
            ..SilenceSpec::default()
        };
        assert!(e(day).contains("`someday` is not a day"));
        let order = SilenceSpec {
            from: Some("2026-12-26T00:00:00Z".into()),
            to: Some("2026-12-24T00:00:00Z".into()),
            ..SilenceSpec::default()
        };
        assert!(e(order).contains("after"));
        let time = SilenceSpec {
            start: Some("2am".into()),
            end: Some("03:00".into()),
            ..SilenceSpec::default()
        };
        assert!(e(time).contains("`2am` is not a time"));
    }
}
