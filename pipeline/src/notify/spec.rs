//! The notifications file as operators write it (`notify.toml`): contact points, routes and
//! silences, field for field. Always built (also for WASM) so that the pages show and edit the
//! same types; [`super::Notify::from_spec`] checks a spec and turns it into what the sender
//! runs by, and [`NotifySpec::from_toml`] / [`NotifySpec::to_toml`] read and write the file.
//!
//! Every table refuses fields it does not know, so a typo is an error, not a silent default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    #[serde(default, rename = "contact_point", skip_serializing_if = "Vec::is_empty")]
    pub contact_points: Vec<ContactPointSpec>,
    #[serde(default, rename = "route", skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    #[serde(default, rename = "silence", skip_serializing_if = "Vec::is_empty")]
    pub silences: Vec<SilenceSpec>,
}

/// Where messages go: `kind` says which of the other fields apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPointSpec {
    pub name: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// webhook, slack: where to POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// webhook: the environment variable holding the HMAC-SHA256 key of the signature header
    /// (the key itself is never written in the file, the index or the logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// webhook: extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// email: recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// email: the sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// email: the SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// email: its port (default 587 for `starttls`, 465 for `tls`, 25 for `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// email: `starttls` (the default), `tls` or `none` (loopback test servers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// email: the SMTP login, if the server wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// email: the environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

/// Which alerts a route or a silence applies to; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// `HIGH`, `CRITICAL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<String>,
    /// `instant`, `window`, `offline`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kind: Vec<String>,
    /// `open`, `escalated`, `cleared`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<String>,
    /// Glob patterns on `sensor_id` (`*` any run of characters, `?` one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensors: Vec<String>,
}

impl MatchSpec {
    pub fn is_empty(&self) -> bool {
        self.severity.is_empty()
            && self.kind.is_empty()
            && self.state.is_empty()
            && self.sensors.is_empty()
    }
}

/// Which alerts go to which contact points, and how often.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which alerts (a `match = { … }` inline table); none: every alert.
    #[serde(default, rename = "match", skip_serializing_if = "MatchSpec::is_empty")]
    pub matching: MatchSpec,
    pub contact_points: Vec<String>,
    /// Also try the routes after this one when it matched.
    #[serde(default, rename = "continue", skip_serializing_if = "std::ops::Not::not")]
    pub continue_matching: bool,
    /// How long the first alert of a group waits for others to join its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    /// How long a group waits, after a message, before the next one with what joined since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<String>,
    /// Remind this often while an alert is open and nobody acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_every: Option<String>,
    /// Unacknowledged this long after it opened: notify `escalate_to` as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<String>,
    /// Whether a cleared alert is notified (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_on_clear: Option<bool>,
}

/// Alerts that are raised, archived and shown but not notified for a while: once (`from`,
/// `to`: RFC 3339 times) or every week (`days`, `start`–`end` local times in `time_zone`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Which alerts (a `match = { … }` inline table); none: every alert.
    #[serde(default, rename = "match", skip_serializing_if = "MatchSpec::is_empty")]
    pub matching: MatchSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `mon` … `sun`; empty with `start`/`end`: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// `HH:MM`, local time; an `end` not after `start` ends the next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// An IANA time zone, e.g. `Europe/Paris` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
}

#[cfg(feature = "notify")]
impl NotifySpec {
    /// Reads a notifications file; a syntax error or an unknown field names its line.
    pub fn from_toml(text: &str) -> Result<NotifySpec, super::NotifyError> {
        toml::from_str(text)
            .map_err(|e| super::NotifyError { entry: "the file".into(), problem: e.to_string() })
    }

    /// The file's text, as [`NotifySpec::from_toml`] reads it back.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("notification specs serialize to TOML")
    }
}
