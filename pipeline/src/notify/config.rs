//! The checked notifications file: contact points with their secrets read, routes with their
//! durations and contact points resolved, silences with their schedules; and the two
//! questions the sender asks of it: where does this alert go, and is it silenced now.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::model::{Alert, AlertState};

use super::matcher::Matcher;
use super::silence::Silence;
use super::spec::{ContactPointSpec, NotifySpec, RouteSpec};

/// How long the first alert of a group waits for others, unless a route says otherwise.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(10);
/// How long a group waits after a message before the next, unless a route says otherwise.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(60);

/// A value read from the environment that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How an email contact point reaches its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (refused if the server does not offer it).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for servers on the loopback interface.
    None,
}

/// Where a contact point's messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A POST of the alerts as JSON, signed with HMAC-SHA256 when a secret is set.
    Webhook { url: String, secret: Option<Secret>, headers: Vec<(String, String)> },
    /// A Slack-compatible incoming webhook (also Mattermost, Rocket.Chat).
    Slack { url: String },
    Email {
        to: Vec<String>,
        from: String,
        host: String,
        port: u16,
        tls: SmtpTls,
        login: Option<(String, Secret)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContactPoint {
    pub name: String,
    pub target: Target,
}

/// A checked [`RouteSpec`]; contact points are indices into [`Notify::contact_points`].
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: Matcher,
    pub contact_points: Vec<usize>,
    pub continue_matching: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_every: Option<Duration>,
    /// Unacknowledged this long after opening: notify this contact point as well.
    pub escalate: Option<(Duration, usize)>,
    pub notify_on_clear: bool,
}

/// One place an alert's state change is to be notified: a route and one of its contact points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub route: usize,
    pub contact_point: usize,
}

/// A bad notifications file: which entry, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry}: {problem}")]
pub struct NotifyError {
    /// e.g. ``route 2 (`freezers`)``, or `the file` for a syntax error.
    pub entry: String,
    pub problem: String,
}

/// The checked notifications file: what the sender runs by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notify {
    pub contact_points: Vec<ContactPoint>,
    pub routes: Vec<Route>,
    pub silences: Vec<Silence>,
}

impl Notify {
    /// Checks `spec` entry by entry; `env` looks up the variables secrets are named by.
    pub fn from_spec(
        spec: &NotifySpec,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Notify, NotifyError> {
        let mut names = BTreeMap::new();
        let mut contact_points = Vec::with_capacity(spec.contact_points.len());
        for (i, cp) in spec.contact_points.iter().enumerate() {
            let entry = || format!("contact point {} (`{}`)", i + 1, cp.name);
            let fail = |problem: String| NotifyError { entry: entry(), problem };
            if names.insert(cp.name.clone(), i).is_some() {
                return Err(fail("another contact point has this name".into()));
            }
            contact_points.push(contact_point(cp, &env).map_err(fail)?);
        }
        let mut routes = Vec::with_capacity(spec.routes.len());
        for (i, r) in spec.routes.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("route {}", i + 1));
            let fail =
                |problem| NotifyError { entry: format!("route {} (`{name}`)", i + 1), problem };
            routes.push(route(r, name.clone(), &names).map_err(fail)?);
        }
        let mut silences = Vec::with_capacity(spec.silences.len());
        for (i, s) in spec.silences.iter().enumerate() {
            let entry = format!("silence {}{}", i + 1, described(&s.comment));
            silences.push(Silence::from_spec(s).map_err(|problem| NotifyError { entry, problem })?);
        }
        Ok(Notify { contact_points, routes, silences })
    }

    /// Where a state change of `alert` is notified: the first route that matches, and the
    /// routes after it while the matched ones say `continue`. A route with
    /// `notify_on_clear = false` is skipped for cleared alerts (and stops no search).
    pub fn destinations(&self, alert: &Alert) -> Vec<Destination> {
        let mut out = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            if !route.matcher.matches(alert) {
                continue;
            }
            if alert.state != AlertState::Cleared || route.notify_on_clear {
                for &cp in &route.contact_points {
                    out.push(Destination { route: i, contact_point: cp });
                }
            }
            if !route.continue_matching {
                break;
            }
        }
        out
    }

    /// The first silence that holds `alert` back at `now_ms`, if any.
    pub fn silenced_by(&self, alert: &Alert, now_ms: i64) -> Option<usize> {
        self.silences.iter().position(|s| s.silences(alert, now_ms))
    }
}

fn described(comment: &str) -> String {
    if comment.is_empty() { String::new() } else { format!(" (`{comment}`)") }
}

fn contact_point(
    cp: &ContactPointSpec,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<ContactPoint, String> {
    if cp.name.trim().is_empty() || cp.name.len() > 64 {
        return Err("`name` must have 1 to 64 characters".into());
    }
    let secret = |var: &Option<String>| -> Result<Option<Secret>, String> {
        match var {
            None => Ok(None),
            Some(var) => match env(var) {
                Some(v) if !v.is_empty() => Ok(Some(Secret(v))),
                _ => Err(format!("the environment variable `{var}` is not set")),
            },
        }
    };
    let unused = |fields: &[(&str, bool)]| -> Result<(), String> {
        match fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => {
                Err(format!("`{field}` does not apply to a {} contact point", cp.kind))
            }
            None => Ok(()),
        }
    };
    let email_fields = [
        ("to", !cp.to.is_empty()),
        ("from", cp.from.is_some()),
        ("smtp_host", cp.smtp_host.is_some()),
        ("smtp_port", cp.smtp_port.is_some()),
        ("tls", cp.tls.is_some()),
        ("username", cp.username.is_some()),
        ("password_env", cp.password_env.is_some()),
    ];
    let target = match cp.kind.as_str() {
        "webhook" => {
            unused(&email_fields)?;
            let headers = cp.headers.iter().map(|(k, v)| header(k, v)).collect::<Result<_, _>>()?;
            Target::Webhook { url: http_url(&cp.url)?, secret: secret(&cp.secret_env)?, headers }
        }
        "slack" => {
            unused(&email_fields)?;
            unused(&[
                ("secret_env", cp.secret_env.is_some()),
                ("headers", !cp.headers.is_empty()),
            ])?;
            Target::Slack { url: http_url(&cp.url)? }
        }
        "email" => {
            let webhook_fields = [
                ("url", cp.url.is_some()),
                ("secret_env", cp.secret_env.is_some()),
                ("headers", !cp.headers.is_empty()),
            ];
            unused(&webhook_fields)?;
            if cp.to.is_empty() {
                return Err("`to` needs at least one address".into());
            }
            for address in &cp.to {
                mail_address(address)?;
            }
            let from = cp.from.clone().ok_or("needs `from`")?;
            mail_address(&from)?;
            let host = cp.smtp_host.clone().filter(|h| !h.is_empty()).ok_or("needs `smtp_host`")?;
            let tls = match cp.tls.as_deref().unwrap_or("starttls") {
                "starttls" => SmtpTls::StartTls,
                "tls" => SmtpTls::Tls,
                "none" => SmtpTls::None,
                other => return Err(format!("`tls` `{other}` is not starttls, tls or none")),
            };
            let port = cp.smtp_port.unwrap_or(match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            });
            let login = match (&cp.username, secret(&cp.password_env)?) {
                (Some(user), Some(password)) => Some((user.clone(), password)),
                (None, None) => None,
                _ => return Err("`username` and `password_env` go together".into()),
            };
            Target::Email { to: cp.to.clone(), from, host, port, tls, login }
        }
        other => return Err(format!("`kind` `{other}` is not webhook, slack or email")),
    };
    Ok(ContactPoint { name: cp.name.clone(), target })
}

fn route(r: &RouteSpec, name: String, names: &BTreeMap<String, usize>) -> Result<Route, String> {
    let find = |cp: &str| names.get(cp).copied().ok_or(format!("no contact point is named `{cp}`"));
    if r.contact_points.is_empty() {
        return Err("`contact_points` needs at least one name".into());
    }
    let contact_points = r.contact_points.iter().map(|c| find(c)).collect::<Result<_, _>>()?;
    let duration = |field: &str, v: &Option<String>| -> Result<Option<Duration>, String> {
        v.as_deref().map(|v| parse_duration(v).map_err(|e| format!("`{field}`: {e}"))).transpose()
    };
    let escalate = match (duration("escalate_after", &r.escalate_after)?, &r.escalate_to) {
        (Some(after), Some(to)) => Some((after, find(to)?)),
        (None, None) => None,
        _ => return Err("`escalate_after` and `escalate_to` go together".into()),
    };
    Ok(Route {
        name,
        matcher: Matcher::from_spec(&r.matching)?,
        contact_points,
        continue_matching: r.continue_matching,
        group_wait: duration("group_wait", &r.group_wait)?.unwrap_or(DEFAULT_GROUP_WAIT),
        group_interval: duration("group_interval", &r.group_interval)?
            .unwrap_or(DEFAULT_GROUP_INTERVAL),
        repeat_every: duration("repeat_every", &r.repeat_every)?,
        escalate,
        notify_on_clear: r.notify_on_clear.unwrap_or(true),
    })
}

/// An `http://` or `https://` URL with a host.
fn http_url(url: &Option<String>) -> Result<String, String> {
    let url = url.as_deref().ok_or("needs `url`")?;
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(format!("`url` `{url}` is not an http:// or https:// URL")),
    }
}

/// A header name and value a request can carry.
fn header(name: &str, value: &str) -> Result<(String, String), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("`{name}` is not a header name"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("the value of header `{name}` holds a control character"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A plausible mail address (the sender checks it fully).
fn mail_address(address: &str) -> Result<(), String> {
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !address.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') =>
        {
            Ok(())
        }
        _ => Err(format!("`{address}` is not a mail address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;

    const FILE: &str = r#"
[[contact_point]]
name = "ops-hook"
kind = "webhook"
url = "https://hooks.example.com/thermo"
secret_env = "HOOK_KEY"
headers = { "X-Team" = "cold-room" }

[[contact_point]]
name = "chat"
kind = "slack"
url = "http://127.0.0.1:9/hooks/abc"

[[contact_point]]
name = "night-shift"
kind = "email"
to = ["oncall@example.com"]
from = "thermoalert@example.com"
smtp_host = "smtp.example.com"
username = "thermo"
password_env = "SMTP_PASSWORD"

[[route]]
name = "freezers"
match = { severity = ["CRITICAL"], sensors = ["freezer*"] }
contact_points = ["night-shift", "chat"]
continue = true
group_wait = "30s"
repeat_every = "1h"
escalate_after = "15m"
escalate_to = "ops-hook"

[[route]]
contact_points = ["chat"]
notify_on_clear = false

[[silence]]
match = { sensors = ["freezer2"] }
days = ["mon", "thu"]
start = "02:00"
end = "02:30"
time_zone = "Europe/Paris"
comment = "defrost"
author = "alice"
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK_KEY" => Some("k3y".into()),
            "SMTP_PASSWORD" => Some("pw".into()),
            _ => None,
        }
    }

    use crate::notify::test_alert as alert;

    #[test]
    fn a_whole_file_is_read_checked_and_written_back_the_same() {
        let spec = NotifySpec::from_toml(FILE).unwrap();
        assert_eq!(NotifySpec::from_toml(&spec.to_toml()).unwrap(), spec);
        let notify = Notify::from_spec(&spec, env).unwrap();
        assert_eq!(notify.contact_points.len(), 3);
        let Target::Email { port, tls, login, .. } = &notify.contact_points[2].target else {
            panic!("an email contact point: {:?}", notify.contact_points[2]);
        };
        assert_eq!((*port, *tls), (587, SmtpTls::StartTls));
        assert_eq!(login.as_ref().map(|(u, p)| (u.as_str(), p.expose())), Some(("thermo", "pw")));
        let freezers = &notify.routes[0];
        assert_eq!(freezers.group_wait, Duration::from_secs(30));
        assert_eq!(freezers.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(freezers.escalate, Some((Duration::from_secs(900), 0)));
        assert_eq!(notify.routes[1].name, "route 2");
    }

    #[test]
    fn secrets_are_never_printed() {
        let notify = Notify::from_spec(&NotifySpec::from_toml(FILE).unwrap(), env).unwrap();
        let printed = format!("{notify:?}");
        assert!(!printed.contains("k3y") && !printed.contains("\"pw\""), "{printed}");
    }

    #[test]
    fn the_first_matching_route_wins_unless_it_continues() {
        let notify = Notify::from_spec(&NotifySpec::from_toml(FILE).unwrap(), env).unwrap();
        let to = |a: &Alert| {
            notify.destinations(a).iter().map(|d| (d.route, d.contact_point)).collect::<Vec<_>>()
        };
        // freezers (night-shift, chat) and, since it continues, the catch-all (chat).
        assert_eq!(
            to(&alert("freezer1", Level::Critical, AlertState::Open)),
            [(0, 2), (0, 1), (1, 1)]
        );
        assert_eq!(to(&alert("freezer1", Level::High, AlertState::Open)), [(1, 1)]);
        // The catch-all does not notify clears.
        assert_eq!(to(&alert("oven", Level::High, AlertState::Cleared)), []);
        assert_eq!(to(&alert("freezer1", Level::Critical, AlertState::Cleared)), [(0, 2), (0, 1)]);
    }

    #[test]
    fn silences_hold_back_only_what_they_match_while_they_hold() {
        let notify = Notify::from_spec(&NotifySpec::from_toml(FILE).unwrap(), env).unwrap();
        // Monday 2026-12-07 02:10 in Paris is 01:10 UTC.
        let monday_night = chrono::DateTime::parse_from_rfc3339("2026-12-07T01:10:00Z")
            .unwrap()
            .timestamp_millis();
        let a = alert("freezer2", Level::Critical, AlertState::Open);
        assert_eq!(notify.silenced_by(&a, monday_night), Some(0));
        assert_eq!(notify.silenced_by(&a, monday_night + 3_600_000), None);
        let other = alert("freezer1", Level::Critical, AlertState::Open);
        assert_eq!(notify.silenced_by(&other, monday_night), None);
    }

    #[test]
    fn every_bad_entry_is_named_with_its_problem() {
        let check = |text: &str| {
            let spec = NotifySpec::from_toml(text)?;
            Notify::from_spec(&spec, env).map(|_| ())
        };
        let e = |text: &str| check(text).unwrap_err().to_string();
        assert!(
            e("[[route]]\ncontact_points = [\"nobody\"]")
                .contains("route 1 (`route 1`): no contact point is named `nobody`")
        );
        let hook = "[[contact_point]]\nname = \"h\"\nkind = \"webhook\"\n";
        assert!(e(&format!("{hook}url = \"ftp://x\"")).contains("contact point 1 (`h`): `url`"));
        assert!(
            e(&format!("{hook}url = \"https://x\"\nsecret_env = \"NOPE\""))
                .contains("`NOPE` is not set")
        );
        assert!(
            e(&format!("{hook}url = \"https://x\"\nto = [\"a@b\"]"))
                .contains("`to` does not apply")
        );
        assert!(
            e(&format!("{hook}url = \"https://x\"\n{hook}url = \"https://y\""))
                .contains("contact point 2 (`h`): another")
        );
        assert!(e(&format!("{hook}urll = \"https://x\"")).contains("unknown field `urll`"));
        assert!(e(&format!("{hook}url = \"https://x\"\n[[route]]\ncontact_points = [\"h\"]\ngroup_wait = \"soon\"")).contains("`group_wait`"));
        assert!(e(&format!("{hook}url = \"https://x\"\n[[route]]\ncontact_points = [\"h\"]\nescalate_after = \"5m\"")).contains("go together"));
        assert!(e("[[silence]]\ncomment = \"x\"").contains("silence 1 (`x`): needs"));
        assert!(e("[[contact_point]\n").contains("the file"));
        assert!(check("").is_ok(), "an empty file notifies nobody");
    }
}
