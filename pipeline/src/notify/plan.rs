//! What the sender decides, without doing it: the key that makes each notification unique,
//! the reminders and escalations an open alert is due, and how long a failed delivery waits
//! before it is tried again. Pure; the sender hands in the time.

use std::time::Duration;

use super::{Destination, Notify};
use crate::model::{Alert, AlertState};

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The alert opened, escalated or cleared.
    Change,
    /// The `n`-th reminder of an alert still open and unacknowledged (`repeat_every`).
    Reminder(u32),
    /// Nobody acknowledged it within `escalate_after`: the next contact point.
    Escalation,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Change => "change",
            Reason::Reminder(_) => "reminder",
            Reason::Escalation => "escalation",
        }
    }
}

/// Deliveries tried at most, the first included; then the notification is dead (shown and
/// counted, no longer tried).
pub const MAX_ATTEMPTS: u32 = 10;

/// The wait before the next try after `failures` failed ones: 1 s, doubling, at most 5 min.
pub fn retry_delay(failures: u32) -> Duration {
    let seconds = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs(seconds.min(300))
}

/// What makes a notification unique: the alert, its state and revision, the contact point
/// and the reason (with a reminder's number). The same state change replayed after a crash
/// yields the same key, so it is recorded once; receivers get it as `Idempotency-Key`.
pub fn dedup_key(alert: &Alert, contact_point: &str, reason: Reason) -> String {
    let revision = alert.window.as_ref().map_or(0, |w| w.revision);
    let state = alert.state.as_str();
    let base = format!("{}/{state}/{revision}/{contact_point}", alert.alert_id);
    match reason {
        Reason::Change => base,
        Reason::Reminder(n) => format!("{base}/reminder-{n}"),
        Reason::Escalation => format!("{}/escalation/{contact_point}", alert.alert_id),
    }
}

/// The reminders and escalations due at `now_ms` for `alert`, open and unacknowledged since
/// its first notification at `since_ms` (processing time, so that replayed old readings do
/// not escalate at once). A reminder's number is the count of whole `repeat_every` periods
/// since then: however often the sender asks, each period yields one key.
pub fn follow_ups(
    notify: &Notify,
    alert: &Alert,
    since_ms: i64,
    now_ms: i64,
) -> Vec<(Destination, Reason)> {
    if alert.state == AlertState::Cleared {
        return Vec::new();
    }
    let open_for = Duration::from_millis(now_ms.saturating_sub(since_ms).max(0) as u64);
    let mut out = Vec::new();
    let mut seen_routes = Vec::new();
    for d in notify.destinations(alert) {
        let route = &notify.routes[d.route];
        if let Some(every) = route.repeat_every {
            let n = (open_for.as_millis() / every.as_millis().max(1)) as u32;
            if n >= 1 {
                out.push((d, Reason::Reminder(n)));
            }
        }
        if seen_routes.contains(&d.route) {
            continue;
        }
        seen_routes.push(d.route);
        if let Some((after, to)) = route.escalate
            && open_for >= after
        {
            out.push((Destination { route: d.route, contact_point: to }, Reason::Escalation));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use crate::notify::spec::NotifySpec;

    fn notify(route: &str) -> Notify {
        let text = format!(
            "[[contact_point]]\nname = \"a\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:1/a\"\n\
             [[contact_point]]\nname = \"b\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:1/b\"\n\
             [[route]]\ncontact_points = [\"a\"]\n{route}"
        );
        Notify::from_spec(&NotifySpec::from_toml(&text).unwrap(), |_| None).unwrap()
    }

    fn alert(state: AlertState) -> Alert {
        crate::notify::test_alert("s", Level::Critical, state)
    }

    #[test]
    fn retries_back_off_from_a_second_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn keys_differ_by_state_contact_point_and_reminder_but_not_by_replay() {
        let open = alert(AlertState::Open);
        let key = |a: &Alert, cp, r| dedup_key(a, cp, r);
        assert_eq!(key(&open, "a", Reason::Change), key(&open.clone(), "a", Reason::Change));
        assert_ne!(
            key(&open, "a", Reason::Change),
            key(&alert(AlertState::Cleared), "a", Reason::Change)
        );
        assert_ne!(key(&open, "a", Reason::Change), key(&open, "b", Reason::Change));
        assert_ne!(key(&open, "a", Reason::Reminder(1)), key(&open, "a", Reason::Reminder(2)));
        // An escalation is one per alert and contact point, whatever the state by then.
        let escalated = alert(AlertState::Escalated);
        assert_eq!(key(&open, "b", Reason::Escalation), key(&escalated, "b", Reason::Escalation));
    }

    #[test]
    fn reminders_count_whole_periods_and_escalation_waits_its_time() {
        let n = notify("repeat_every = \"10m\"\nescalate_after = \"15m\"\nescalate_to = \"b\"");
        let open = alert(AlertState::Open);
        let min = 60_000;
        assert_eq!(follow_ups(&n, &open, 0, 9 * min), []);
        let at_10 = follow_ups(&n, &open, 0, 10 * min);
        assert_eq!(at_10, [(Destination { route: 0, contact_point: 0 }, Reason::Reminder(1))]);
        let at_16 = follow_ups(&n, &open, 0, 16 * min);
        assert_eq!(
            at_16,
            [
                (Destination { route: 0, contact_point: 0 }, Reason::Reminder(1)),
                (Destination { route: 0, contact_point: 1 }, Reason::Escalation),
            ]
        );
        assert_eq!(follow_ups(&n, &open, 0, 21 * min)[0].1, Reason::Reminder(2));
        assert_eq!(follow_ups(&n, &alert(AlertState::Cleared), 0, 60 * min), []);
    }

    #[test]
    fn a_route_without_follow_ups_has_none() {
        assert_eq!(follow_ups(&notify(""), &alert(AlertState::Open), 0, 86_400_000), []);
    }
}
