//! Turns the raw bytes of a Kafka message into a [`Reading`], or into a [`Rejection`] that says
//! exactly why not. Rejections are values headed for the dead-letter topic: parsing never
//! panics and never drops a message silently.
//!
//! Good messages take one borrowed serde pass; only bad ones pay for a second, slower pass
//! that works out the precise reason.

use std::fmt;

use serde::Deserialize;

use crate::model::Reading;

/// Largest message accepted, in bytes. A reading is ~60 bytes; anything this big is not one.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Absolute zero: nothing measured in °C can be colder.
pub const MIN_TEMPERATURE: f64 = -273.15;
/// Hotter than any sensor ThermoAlert is meant for (industrial probes top out well below).
pub const MAX_TEMPERATURE: f64 = 2000.0;
/// Longest sensor id; ids become archive paths.
pub const MAX_SENSOR_ID_LEN: usize = 64;

/// Why a message is not a reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    TooLarge { bytes: usize },
    /// Not JSON, or not valid UTF-8, or not a JSON object.
    BadJson { detail: String },
    /// A required field is absent (or `null`).
    MissingField { field: &'static str },
    /// A field has the wrong JSON type.
    WrongType { field: &'static str, expected: &'static str },
    /// The temperature is outside what physics and real sensors allow.
    ImpossibleTemperature { value: f64 },
    /// The timestamp is negative or not a usable number.
    BadTimestamp { value: f64 },
    /// The sensor id breaks the contract's rules (it becomes a path).
    BadSensorId { reason: &'static str },
    /// The timestamp lies further in the future than the allowed clock skew.
    FromTheFuture { timestamp: f64, now: f64 },
    /// The timestamp lies further in the past than readings are accepted (each past hour
    /// would be an archive file of its own).
    TooOld { timestamp: f64, max_age_s: f64 },
}

impl Rejection {
    /// A short stable code for metrics and the DLQ (`reason` field).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too_large",
            Rejection::BadJson { .. } => "bad_json",
            Rejection::MissingField { .. } => "missing_field",
            Rejection::WrongType { .. } => "wrong_type",
            Rejection::ImpossibleTemperature { .. } => "impossible_temperature",
            Rejection::BadTimestamp { .. } => "bad_timestamp",
            Rejection::BadSensorId { .. } => "bad_sensor_id",
            Rejection::FromTheFuture { .. } => "from_the_future",
            Rejection::TooOld { .. } => "too_old",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooLarge { bytes } => {
                write!(f, "message of {bytes} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
            }
            Rejection::BadJson { detail } => write!(f, "not a JSON object: {detail}"),
            Rejection::MissingField { field } => write!(f, "missing field `{field}`"),
            Rejection::WrongType { field, expected } => {
                write!(f, "field `{field}` must be {expected}")
            }
            Rejection::ImpossibleTemperature { value } => write!(
                f,
                "temperature {value} °C is outside {MIN_TEMPERATURE}..={MAX_TEMPERATURE} °C"
            ),
            Rejection::BadTimestamp { value } => {
                write!(f, "timestamp {value} is not a non-negative epoch time in seconds")
            }
            Rejection::BadSensorId { reason } => write!(f, "invalid sensor_id: {reason}"),
            Rejection::FromTheFuture { timestamp, now } => {
                write!(f, "timestamp {timestamp} is {:.0} s ahead of the clock", timestamp - now)
            }
            Rejection::TooOld { timestamp, max_age_s } => write!(
                f,
                "timestamp {timestamp} is more than {:.0} days old (THERMO_MAX_READING_AGE)",
                max_age_s / 86_400.0
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// Limits that need a clock: the parser is handed `now`, it never reads one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParseLimits {
    /// How far ahead of `now` a timestamp may be (sensor clocks drift), in seconds.
    pub max_future_skew_s: f64,
    /// How far behind `now` a timestamp may be, in seconds: a logger that uploads a shipment's
    /// readings at its end is weeks behind, but readings of years ago, one archive file per
    /// past hour each, are a flood of files rather than data.
    pub max_age_s: f64,
}

/// Default of [`ParseLimits::max_age_s`]: 30 days.
pub const DEFAULT_MAX_AGE_S: f64 = 30.0 * 86_400.0;

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { max_future_skew_s: 300.0, max_age_s: DEFAULT_MAX_AGE_S }
    }
}

#[derive(Deserialize)]
struct Wire<'a> {
    timestamp: f64,
    #[serde(borrow)]
    sensor_id: std::borrow::Cow<'a, str>,
    temperature: f64,
}

/// Parses and validates one message. `now` is the processing time in epoch seconds.
pub fn parse_reading(bytes: &[u8], now: f64, limits: &ParseLimits) -> Result<Reading, Rejection> {
    let mut reading = Reading { timestamp: 0.0, sensor_id: String::new(), temperature: 0.0 };
    parse_reading_into(bytes, now, limits, &mut reading)?;
    Ok(reading)
}

/// [`parse_reading`] into an existing reading, reusing its `sensor_id` allocation: the hot
/// path of a consumer allocates nothing per message. On error `out` is left unspecified.
#[inline]
pub fn parse_reading_into(
    bytes: &[u8],
    now: f64,
    limits: &ParseLimits,
    out: &mut Reading,
) -> Result<(), Rejection> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Rejection::TooLarge { bytes: bytes.len() });
    }
    let wire: Wire<'_> = match serde_json::from_slice(bytes) {
        Ok(w) => w,
        Err(_) => return Err(diagnose(bytes)),
    };
    validate_sensor_id(&wire.sensor_id)?;
    if !wire.temperature.is_finite()
        || !(MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&wire.temperature)
    {
        return Err(Rejection::ImpossibleTemperature { value: wire.temperature });
    }
    if !wire.timestamp.is_finite() || wire.timestamp < 0.0 {
        return Err(Rejection::BadTimestamp { value: wire.timestamp });
    }
    if wire.timestamp > now + limits.max_future_skew_s {
        return Err(Rejection::FromTheFuture { timestamp: wire.timestamp, now });
    }
    if wire.timestamp < now - limits.max_age_s {
        return Err(Rejection::TooOld { timestamp: wire.timestamp, max_age_s: limits.max_age_s });
    }
    out.timestamp = wire.timestamp;
    out.temperature = wire.temperature;
    out.sensor_id.clear();
    out.sensor_id.push_str(&wire.sensor_id);
    Ok(())
}

/// The slow path: works out which rule a message that failed the fast parse broke.
fn diagnose(bytes: &[u8]) -> Rejection {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Rejection::BadJson { detail: e.to_string() };
        }
    };
    let Some(obj) = value.as_object() else {
        return Rejection::BadJson { detail: "expected an object".into() };
    };
    for (field, expected) in
        [("timestamp", "a number"), ("sensor_id", "a string"), ("temperature", "a number")]
    {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) => return Rejection::MissingField { field },
            Some(v) if expected == "a string" && !v.is_string() => {
                return Rejection::WrongType { field, expected };
            }
            Some(v) if expected == "a number" && !v.is_number() => {
                return Rejection::WrongType { field, expected };
            }
            Some(_) => {}
        }
    }
    // Every field has the right type, yet the fast path failed: a number that does not fit
    // an f64, or a duplicate key. Report serde's own words.
    match serde_json::from_slice::<Wire<'_>>(bytes) {
        Err(e) => Rejection::BadJson { detail: e.to_string() },
        Ok(_) => Rejection::BadJson { detail: "unparseable reading".into() },
    }
}

/// Checks the contract's rule for sensor ids: 1–64 characters of `[A-Za-z0-9_.-]`, and not
/// `.` or `..` (ids name archive directories).
pub fn validate_sensor_id(id: &str) -> Result<(), Rejection> {
    if id.is_empty() {
        return Err(Rejection::BadSensorId { reason: "empty" });
    }
    if id.len() > MAX_SENSOR_ID_LEN {
        return Err(Rejection::BadSensorId { reason: "longer than 64 characters" });
    }
    if id == "." || id == ".." {
        return Err(Rejection::BadSensorId { reason: "`.` and `..` are not allowed" });
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(Rejection::BadSensorId {
            reason: "only letters, digits, `_`, `.` and `-` are allowed",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000.0;

    /// With no age limit: the cases below use all kinds of past timestamps.
    fn parse(s: &str) -> Result<Reading, Rejection> {
        let limits = ParseLimits { max_age_s: f64::INFINITY, ..ParseLimits::default() };
        parse_reading(s.as_bytes(), NOW, &limits)
    }

    #[test]
    fn readings_older_than_the_age_limit_are_refused_saying_so() {
        let limits = ParseLimits::default();
        let at = |t: f64| {
            let message = format!(r#"{{"timestamp":{t},"sensor_id":"s","temperature":1}}"#);
            parse_reading(message.as_bytes(), NOW, &limits)
        };
        assert!(at(NOW - 29.0 * 86_400.0).is_ok());
        assert!(at(NOW - DEFAULT_MAX_AGE_S).is_ok(), "the limit itself is accepted");
        let e = at(NOW - DEFAULT_MAX_AGE_S - 1.0).unwrap_err();
        assert_eq!(e.code(), "too_old");
        assert!(e.to_string().contains("more than 30 days old"), "{e}");
        assert_eq!(at(0.0).unwrap_err().code(), "too_old");
    }

    #[test]
    fn accepts_the_contract_message() {
        let r = parse(r#"{"timestamp": 1651234567, "sensor_id": "sensor1", "temperature": 78.5}"#)
            .unwrap();
        assert_eq!(
            r,
            Reading { timestamp: 1651234567.0, sensor_id: "sensor1".into(), temperature: 78.5 }
        );
    }

    #[test]
    fn accepts_fractional_timestamps_and_extra_fields() {
        let r = parse(r#"{"timestamp":1.5,"sensor_id":"a.b-c_d","temperature":-3,"unit":"C"}"#)
            .unwrap();
        assert_eq!(r.timestamp, 1.5);
        assert_eq!(r.temperature, -3.0);
    }

    #[test]
    fn names_the_reason_for_each_bad_message() {
        let cases: &[(&str, &str)] = &[
            ("not json", "bad_json"),
            ("[1,2]", "bad_json"),
            (r#"{"sensor_id":"s","temperature":1}"#, "missing_field"),
            (r#"{"timestamp":1,"sensor_id":"s","temperature":null}"#, "missing_field"),
            (r#"{"timestamp":"1","sensor_id":"s","temperature":1}"#, "wrong_type"),
            (r#"{"timestamp":1,"sensor_id":7,"temperature":1}"#, "wrong_type"),
            (r#"{"timestamp":1,"sensor_id":"s","temperature":1e999}"#, "bad_json"),
            (r#"{"timestamp":1,"sensor_id":"s","temperature":-300}"#, "impossible_temperature"),
            (r#"{"timestamp":1,"sensor_id":"s","temperature":5000}"#, "impossible_temperature"),
            (r#"{"timestamp":-1,"sensor_id":"s","temperature":1}"#, "bad_timestamp"),
            (r#"{"timestamp":1,"sensor_id":"../etc","temperature":1}"#, "bad_sensor_id"),
            (r#"{"timestamp":1,"sensor_id":"..","temperature":1}"#, "bad_sensor_id"),
            (r#"{"timestamp":1,"sensor_id":"","temperature":1}"#, "bad_sensor_id"),
            (r#"{"timestamp":1,"sensor_id":"<b>x</b>","temperature":1}"#, "bad_sensor_id"),
            (r#"{"timestamp":1e12,"sensor_id":"s","temperature":1}"#, "from_the_future"),
        ];
        for (input, code) in cases {
            let err = parse(input).expect_err(input);
            assert_eq!(err.code(), *code, "{input}: {err}");
        }
    }

    #[test]
    fn hostile_messages_are_rejected_in_bounded_work_with_a_reason() {
        let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
        let deep_field = format!(
            r#"{{"timestamp":1,"sensor_id":"s","temperature":1,"x":{}{}}}"#,
            "[".repeat(1500),
            "]".repeat(1500)
        );
        let msg = |id: &str| format!(r#"{{"timestamp":1,"sensor_id":"{id}","temperature":1}}"#);
        let cases: Vec<(String, &str)> = vec![
            (deep, "bad_json"),
            (msg(r"s\u0000"), "bad_sensor_id"),
            (msg(r"s\n1"), "bad_sensor_id"),
            (msg("température"), "bad_sensor_id"),
            (msg("s\u{202e}1"), "bad_sensor_id"),
            (msg(r"..\\..\\windows"), "bad_sensor_id"),
            (msg("a/b"), "bad_sensor_id"),
            (msg(&"s".repeat(65)), "bad_sensor_id"),
            (r#"{"timestamp":1e300,"sensor_id":"s","temperature":1}"#.into(), "from_the_future"),
            (r#"{"timestamp":NaN,"sensor_id":"s","temperature":1}"#.into(), "bad_json"),
            (r#"{"timestamp":1,"sensor_id":"s","temperature":Infinity}"#.into(), "bad_json"),
            ("\u{feff}{}".into(), "bad_json"),
            ("".into(), "bad_json"),
            ("\0\0\0".into(), "bad_json"),
        ];
        // How long each takes is measured by the core benchmark (`benches/core.rs`).
        for (input, code) in &cases {
            let err = parse(input).expect_err(input);
            assert_eq!(err.code(), *code, "{input:.80}: {err}");
        }
        // Extra fields are ignored however deep (the size limit bounds the work).
        assert_eq!(parse(&deep_field).unwrap().sensor_id, "s");
        // Duplicate keys: refused rather than one value silently kept.
        let dup = r#"{"timestamp":1,"sensor_id":"s","temperature":1,"temperature":99}"#;
        assert_eq!(parse(dup).unwrap_err().code(), "bad_json");
    }

    #[test]
    fn parsing_into_a_reading_reuses_it() {
        let mut r =
            parse(r#"{"timestamp":1,"sensor_id":"a-long-sensor-name","temperature":2}"#).unwrap();
        let msg = br#"{"timestamp":1699999999,"sensor_id":"b","temperature":4}"#;
        parse_reading_into(msg, NOW, &ParseLimits::default(), &mut r).unwrap();
        assert_eq!(
            r,
            Reading { timestamp: 1_699_999_999.0, sensor_id: "b".into(), temperature: 4.0 }
        );
    }

    #[test]
    fn rejects_oversized_messages_before_parsing() {
        let big = format!(
            r#"{{"timestamp":1,"sensor_id":"s","temperature":1,"pad":"{}"}}"#,
            "x".repeat(5000)
        );
        assert_eq!(parse(&big).unwrap_err().code(), "too_large");
    }

    #[test]
    fn sensor_id_length_limit_is_inclusive() {
        assert!(validate_sensor_id(&"a".repeat(64)).is_ok());
        assert!(validate_sensor_id(&"a".repeat(65)).is_err());
        assert!(validate_sensor_id("...").is_ok());
    }

    #[test]
    fn skew_allows_small_clock_drift() {
        let ok = format!(r#"{{"timestamp":{},"sensor_id":"s","temperature":1}}"#, NOW + 299.0);
        assert!(parse(&ok).is_ok());
        let late = format!(r#"{{"timestamp":{},"sensor_id":"s","temperature":1}}"#, NOW + 301.0);
        assert!(parse(&late).is_err());
    }
}
