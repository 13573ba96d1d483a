//! The Kafka topic names and consumer group of the design contract, defined once.

/// Readings from sensors (key: sensor id, value: JSON reading).
pub const READINGS: &str = "temperature_data";
/// Alerts raised by ThermoAlert (key: sensor id, value: JSON alert).
pub const ALERTS: &str = "temperature_alerts";
/// Messages that are not valid readings, with the reason.
pub const DEAD_LETTERS: &str = "temperature_data_dlq";
/// The consumer group every ThermoAlert server joins.
pub const CONSUMER_GROUP: &str = "thermoalert";
/// Retention of the readings topic (one hour, as the seed had): the archive keeps history.
pub const READINGS_RETENTION_MS: i64 = 60 * 60 * 1000;
