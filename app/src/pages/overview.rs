//! `/`: every sensor at a glance, the open alerts counted by severity, a live chart of the
//! last minutes, and the recent alerts. Rendered on the server from the live state, then kept
//! current over Server-Sent Events once hydrated.
//!
//! Live events are not drawn one by one: they are buffered and applied four times a second
//! (the chart redraws once a second), so a fast stream never freezes the page.

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
        crate::stream::connect(crate::stream::LiveSignals {
            on_reading: Some(Callback::new(move |view: SensorView| {
                pending.update_value(|p| p.sensors.push(view));
            })),
            on_alert: Some(Callback::new(move |alert: Alert| {
                pending.update_value(|p| p.alerts.push(alert));
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
