//! Notifications: which alerts reach which people, through which contact points, how often,
//! and when not. [`spec`] is the notifications file as written (always built, so the pages
//! share it); behind the `notify` feature, [`config`] is its checked form, with the
//! [`matcher`] of routes and silences and the [`silence`] schedules (all pure: callers hand in
//! time and do the sending), and [`file`], which reads the file.

pub mod spec;

#[cfg(feature = "notify")]
pub mod config;
#[cfg(feature = "notify")]
pub mod file;
#[cfg(feature = "notify")]
pub mod matcher;
#[cfg(feature = "notify")]
pub mod plan;
#[cfg(feature = "notify")]
pub mod silence;

#[cfg(feature = "notify")]
pub use self::config::{
    ContactPoint, DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, Destination, Notify, NotifyError,
    Route, Secret, SmtpTls, Target,
};

/// An instant alert of `sensor` opened at 0 ms, for the notify modules' tests.
#[cfg(all(test, feature = "notify"))]
fn test_alert(
    sensor: &str,
    severity: crate::model::Level,
    state: crate::model::AlertState,
) -> crate::model::Alert {
    use crate::model::{Alert, AlertKind};
    Alert {
        alert_id: Alert::id_for(AlertKind::Instant, sensor, 0),
        kind: AlertKind::Instant,
        severity,
        state,
        sensor_id: sensor.into(),
        timestamp: 0.0,
        temperature: 95.0,
        threshold: 90.0,
        window: None,
    }
}
