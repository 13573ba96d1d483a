//! Which alerts a route or a silence applies to: severities, kinds, states, and glob
//! patterns on the sensor id.

use crate::model::{Alert, AlertKind, AlertState, Level, UnknownName};

use super::spec::MatchSpec;

/// A checked [`MatchSpec`]; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matcher {
    pub severities: Vec<Level>,
    pub kinds: Vec<AlertKind>,
    pub states: Vec<AlertState>,
    pub sensors: Vec<String>,
}

impl Matcher {
    pub fn from_spec(spec: &MatchSpec) -> Result<Matcher, String> {
        fn all<T>(
            names: &[String],
            parse: impl Fn(&str) -> Result<T, UnknownName>,
        ) -> Result<Vec<T>, String> {
            names.iter().map(|n| parse(n).map_err(|e| e.to_string())).collect()
        }
        for pattern in &spec.sensors {
            if pattern.is_empty() || pattern.len() > 256 {
                return Err(format!("sensor pattern `{pattern}` must have 1 to 256 characters"));
            }
        }
        Ok(Matcher {
            severities: all(&spec.severity, Level::severity)?,
            kinds: all(&spec.kind, str::parse)?,
            states: all(&spec.state, str::parse)?,
            sensors: spec.sensors.clone(),
        })
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        fn any<T: PartialEq>(list: &[T], v: &T) -> bool {
            list.is_empty() || list.contains(v)
        }
        any(&self.severities, &alert.severity)
            && any(&self.kinds, &alert.kind)
            && any(&self.states, &alert.state)
            && (self.sensors.is_empty() || self.sensors.iter().any(|p| glob(p, &alert.sensor_id)))
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (also none)
/// and `?` for one. Linear in practice: on a mismatch after a `*`, the star takes one more
/// character and matching resumes there.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last star seen, and where in `text` it currently ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_and_single_characters() {
        assert!(glob("freezer*", "freezer12"));
        assert!(glob("freezer*", "freezer"));
        assert!(glob("*", ""));
        assert!(glob("cold-room-?", "cold-room-3"));
        assert!(!glob("cold-room-?", "cold-room-10"));
        assert!(glob("*-room-*", "cold-room-b"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*a", "banana"));
        assert!(!glob("oven", "ovens"));
        assert!(!glob("", "x"));
    }

    use crate::notify::test_alert as alert;

    #[test]
    fn every_given_field_must_match_and_empty_ones_match_all() {
        let spec = MatchSpec {
            severity: vec!["critical".into()],
            sensors: vec!["freezer*".into(), "oven".into()],
            ..MatchSpec::default()
        };
        let m = Matcher::from_spec(&spec).unwrap();
        assert!(m.matches(&alert("freezer1", Level::Critical, AlertState::Open)));
        assert!(m.matches(&alert("oven", Level::Critical, AlertState::Cleared)));
        assert!(!m.matches(&alert("freezer1", Level::High, AlertState::Open)));
        assert!(!m.matches(&alert("fridge", Level::Critical, AlertState::Open)));
        assert!(Matcher::default().matches(&alert("any", Level::High, AlertState::Open)));
    }

    #[test]
    fn unknown_names_are_refused_with_what_was_expected() {
        let spec = MatchSpec { kind: vec!["hourly".into()], ..MatchSpec::default() };
        let e = Matcher::from_spec(&spec).unwrap_err();
        assert!(e.contains("`hourly` is not an alert kind"), "{e}");
        let spec = MatchSpec { severity: vec!["NORMAL".into()], ..MatchSpec::default() };
        assert!(Matcher::from_spec(&spec).unwrap_err().contains("HIGH, CRITICAL"));
    }
}
