//! `/`: every sensor at a glance, the open alerts counted by severity, a live chart of the
//! last minutes, and the recent alerts. Rendered on the server from the live state, then kept
//! current over Server-Sent Events once hydrated.
//!
//! Live events are not drawn one by one: they are buffered and applied four times a second
//! (the chart redraws once a second), so a fast stream never freezes the page. A page that
//! fell behind the stream (the server skipped events for it) catches up from a fresh
//! snapshot, so that no alert it missed stays missing until a reload.

use std::collections::{BTreeMap, HashMap, VecDeque};

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use thermoalert_pipeline::model::{Alert, Level};

use crate::api::{OpenAlerts, count_open_alerts, get_overview};
use crate::chart;
use crate::components::alert_list::AlertList;
use crate::components::sensor_tile::SensorTile;
use crate::live::{MAX_CHARTED, Overview, RECENT_ALERTS, SensorView, StreamState, Trail};

/// Live buffers, applied to the page's signals on a timer.
#[cfg(feature = "hydrate")]
#[derive(Default)]
struct Pending {
    sensors: Vec<SensorView>,
    alerts: Vec<Alert>,
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    let query = use_query_map();
    // `?chart=a,b` picks the charted sensors; otherwise the server picks the most alarming.
    let charted = Memo::new(move |_| {
        query.with(|q| {
            q.get("chart")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    });
    let overview = Resource::new(move || charted.get(), get_overview);
    let alert_events = RwSignal::new(0u64);
    let counts = Resource::new(move || alert_events.get(), |_| count_open_alerts());
    let live_sensors = RwSignal::new(BTreeMap::<String, SensorView>::new());
    let live_alerts = RwSignal::new(Vec::<Alert>::new());
    let live_count = RwSignal::new(0u64);
    let live_offline = RwSignal::new(HashMap::<String, bool>::new());
    let chart_tick = RwSignal::new(0u64);
    let stream_state = RwSignal::new(StreamState::Connecting);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use std::time::Duration;
        let pending = StoredValue::new(Pending::default());
        crate::live::browser::connect(crate::live::browser::LiveSignals {
            on_reading: Some(Callback::new(move |view: SensorView| {
                pending.update_value(|p| p.sensors.push(view));
            })),
            on_alert: Some(Callback::new(move |alert: Alert| {
                pending.update_value(|p| p.alerts.push(alert));
            })),
            on_lagged: Some(Callback::new(move |_missed: u64| {
                leptos::task::spawn_local(async move {
                    if let Ok(snapshot) = get_overview(charted.get_untracked()).await {
                        live_sensors.update(|sensors| {
                            live_alerts.update(|alerts| {
                                live_offline
                                    .update(|offline| catch_up(snapshot, sensors, alerts, offline))
                            })
                        });
                        alert_events.update(|n| *n += 1);
                    }
                });
            })),
            state: stream_state,
            ..Default::default()
        });
        let apply = move || {
            let Pending { sensors, alerts } =
                pending.try_update_value(std::mem::take).unwrap_or_default();
            if !sensors.is_empty() {
                live_count.update(|n| *n += sensors.len() as u64);
                live_sensors.update(|m| {
                    for v in sensors {
                        m.insert(v.sensor_id.clone(), v);
                    }
                });
            }
            if !alerts.is_empty() {
                // A sensor's offline alert opens or clears its badge.
                let offline: Vec<(String, bool)> = alerts
                    .iter()
                    .filter(|a| a.kind == thermoalert_pipeline::model::AlertKind::Offline)
                    .map(|a| {
                        (
                            a.sensor_id.clone(),
                            a.state != thermoalert_pipeline::model::AlertState::Cleared,
                        )
                    })
                    .collect();
                if !offline.is_empty() {
                    live_offline.update(|m| m.extend(offline));
                }
                live_alerts.update(|v| {
                    for a in alerts {
                        v.insert(0, a);
                    }
                    v.truncate(RECENT_ALERTS);
                });
                alert_events.update(|n| *n += 1);
            }
        };
        let applying = set_interval_with_handle(apply, Duration::from_millis(250));
        let redrawing = set_interval_with_handle(
            move || chart_tick.update(|n| *n += 1),
            Duration::from_secs(1),
        );
        on_cleanup(move || {
            for handle in [applying, redrawing].into_iter().flatten() {
                handle.clear();
            }
        });
    });

    view! {
        <section class="status-bar">
            <span id="stream-state" class=move || format!("stream {}", stream_state.get().label())>
                {move || stream_state.get().label()}
            </span>
            <span id="live-count">{move || live_count.get()} " live readings"</span>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match counts.await {
                        Ok(c) => view! { <OpenCounters counts=c/> }.into_any(),
                        Err(e) => view! {
                            <span class="error">"Open alerts unknown: " {crate::api::explain(e)}</span>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
        <Suspense fallback=|| view! { <p class="loading">"Loading sensors…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(snapshot) => view! {
                        <Dashboard snapshot live_sensors live_alerts live_offline chart_tick/>
                    }.into_any(),
                    Err(e) => view! {
                        <p class="error" role="alert">"Cannot load the sensors: " {crate::api::explain(e)}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Lays a fresh snapshot under what arrived live, for a page that missed events: a sensor
/// takes the snapshot's view when it is newer than its live one (and its offline state), and
/// the recent alerts gain those the page missed, newest first.
#[cfg(any(feature = "hydrate", test))]
fn catch_up(
    snapshot: Overview,
    sensors: &mut BTreeMap<String, SensorView>,
    alerts: &mut Vec<Alert>,
    offline: &mut HashMap<String, bool>,
) {
    for view in snapshot.sensors {
        offline.insert(view.sensor_id.clone(), view.offline);
        if sensors.get(&view.sensor_id).is_none_or(|live| live.timestamp < view.timestamp) {
            sensors.insert(view.sensor_id.clone(), view);
        }
    }
    for alert in snapshot.recent_alerts {
        if !alerts.iter().any(|a| a.alert_id == alert.alert_id && a.state == alert.state) {
            alerts.push(alert);
        }
    }
    alerts.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp));
    alerts.truncate(RECENT_ALERTS);
}

/// `3 CRITICAL · 5 HIGH open`, each linking to the matching alerts.
#[component]
fn OpenCounters(counts: OpenAlerts) -> impl IntoView {
    let link = |level: Level| format!("/alerts?severity={}&state=open,escalated", level.as_str());
    view! {
        <span class="open-counts" id="open-alerts">
            <a class="count level-critical" href=link(Level::Critical)>
                <strong>{counts.critical}</strong> " CRITICAL"
            </a>
            " · "
            <a class="count level-high" href=link(Level::High)>
                <strong>{counts.high}</strong> " HIGH"
            </a>
            " open"
        </span>
    }
}

/// The server's snapshot with everything that arrived live laid over it.
#[component]
fn Dashboard(
    snapshot: Overview,
    live_sensors: RwSignal<BTreeMap<String, SensorView>>,
    live_alerts: RwSignal<Vec<Alert>>,
    live_offline: RwSignal<HashMap<String, bool>>,
    chart_tick: RwSignal<u64>,
) -> impl IntoView {
    let Overview { sensors, trails, recent_alerts, defaults, .. } = snapshot;
    let base: BTreeMap<String, SensorView> =
        sensors.into_iter().map(|s| (s.sensor_id.clone(), s)).collect();
    let tiles = move || {
        let mut all = base.clone();
        all.extend(live_sensors.get());
        // The latest offline alert of a sensor says whether it is offline (a sensor that
        // reports again gets its offline alert cleared).
        live_offline.with(|offline| {
            for (id, &is_offline) in offline {
                if let Some(v) = all.get_mut(id) {
                    v.offline = is_offline;
                }
            }
        });
        if all.is_empty() {
            return view! { <p class="empty">"No readings yet: waiting for sensors."</p> }
                .into_any();
        }
        all.into_values().map(|sensor| view! { <SensorTile sensor/> }).collect_view().into_any()
    };
    let alerts = move || {
        // An alert can reach both the snapshot and the stream around page load: keep one.
        let mut all = live_alerts.get();
        let fresh =
            |a: &&Alert| !all.iter().any(|l| l.alert_id == a.alert_id && l.state == a.state);
        let older: Vec<Alert> = recent_alerts.iter().filter(fresh).cloned().collect();
        all.extend(older);
        all.truncate(RECENT_ALERTS);
        view! { <AlertList alerts=all/> }
    };
    view! {
        <LiveChart trails thresholds=defaults live_sensors chart_tick/>
        <section class="tiles" aria-label="Sensors">{tiles}</section>
        <section class="recent-alerts">
            <h2>"Recent alerts " <a class="more" href="/alerts">"all alerts"</a></h2>
            {alerts}
        </section>
    }
}

/// The last minutes of the charted sensors, redrawn once a second from the live readings.
#[component]
fn LiveChart(
    trails: Vec<Trail>,
    thresholds: thermoalert_pipeline::rules::Thresholds,
    live_sensors: RwSignal<BTreeMap<String, SensorView>>,
    chart_tick: RwSignal<u64>,
) -> impl IntoView {
    if trails.is_empty() {
        return ().into_any();
    }
    let ids: Vec<String> = trails.iter().map(|t| t.sensor_id.clone()).collect();
    let series = StoredValue::new(
        trails
            .into_iter()
            .map(|t| (t.sensor_id, t.points.into_iter().collect::<VecDeque<_>>()))
            .collect::<HashMap<_, _>>(),
    );
    let svg = {
        let ids = ids.clone();
        move || {
            chart_tick.track();
            // Latest readings since the last redraw join the trails.
            live_sensors.with_untracked(|live| {
                series.update_value(|s| {
                    for (id, points) in s.iter_mut() {
                        if let Some(v) = live.get(id) {
                            Trail::push(points, v.timestamp, v.temperature);
                        }
                    }
                });
            });
            let lines: Vec<(String, Vec<(f64, f64)>)> = series.with_value(|s| {
                ids.iter()
                    .map(|id| {
                        (
                            id.clone(),
                            s.get(id).map(|p| p.iter().copied().collect()).unwrap_or_default(),
                        )
                    })
                    .collect()
            });
            let to = lines.iter().flat_map(|(_, p)| p.last().map(|x| x.0)).fold(0.0, f64::max);
            let from = to - crate::live::TRAIL_STEP_S * crate::live::TRAIL_POINTS as f64;
            chart::live_svg(&lines, from, to.max(from + 1.0), &thresholds)
        }
    };
    let legend = ids
        .iter()
        .take(MAX_CHARTED)
        .enumerate()
        .map(|(i, id)| {
            let style = format!("background:{}", chart::series_colour(i));
            view! {
                <li><span class="swatch" style=style></span>
                    <a href=format!("/sensors/{id}")>{id.clone()}</a></li>
            }
        })
        .collect_view();
    view! {
        <section class="live-chart" aria-label="Live chart">
            <div class="chart" id="live-chart" inner_html=svg></div>
            <ul class="legend">{legend}</ul>
        </section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermoalert_pipeline::model::{AlertKind, AlertState};

    fn view(id: &str, t: f64, temp: f64, offline: bool) -> SensorView {
        SensorView {
            sensor_id: id.into(),
            timestamp: t,
            temperature: temp,
            level: Level::Normal,
            previous: None,
            offline,
        }
    }

    fn alert(id: &str, t: f64, state: AlertState) -> Alert {
        Alert {
            alert_id: id.into(),
            kind: AlertKind::Instant,
            severity: Level::High,
            state,
            sensor_id: "a".into(),
            timestamp: t,
            temperature: 85.0,
            threshold: 80.0,
            window: None,
        }
    }

    #[test]
    fn a_page_that_missed_events_takes_what_is_newer_from_the_snapshot() {
        let mut sensors = BTreeMap::from([
            ("a".to_owned(), view("a", 20.0, 21.0, false)),
            ("b".to_owned(), view("b", 5.0, 30.0, false)),
        ]);
        let mut alerts = vec![alert("x", 18.0, AlertState::Open)];
        let mut offline = HashMap::new();
        let snapshot = Overview {
            sensors: vec![
                view("a", 10.0, 99.0, false), // older than the live view: kept live
                view("b", 15.0, 31.0, true),  // newer: taken, and it is offline
                view("c", 12.0, 40.0, false), // unknown to the page: taken
            ],
            recent_alerts: vec![
                alert("y", 19.0, AlertState::Open),    // missed
                alert("x", 18.0, AlertState::Open),    // already shown
                alert("x", 17.0, AlertState::Cleared), // the same alert, another state
            ],
            ..Default::default()
        };
        catch_up(snapshot, &mut sensors, &mut alerts, &mut offline);
        let temps: Vec<_> =
            sensors.values().map(|v| (v.sensor_id.as_str(), v.temperature)).collect();
        assert_eq!(temps, [("a", 21.0), ("b", 31.0), ("c", 40.0)]);
        assert_eq!(offline.get("b"), Some(&true));
        assert_eq!(offline.get("a"), Some(&false));
        let shown: Vec<_> = alerts.iter().map(|a| (a.alert_id.as_str(), a.timestamp)).collect();
        assert_eq!(shown, [("y", 19.0), ("x", 18.0), ("x", 17.0)]);
    }
}
