//! `/`: every sensor at a glance and the recent alerts, rendered on the server from the live
//! state, then kept current over Server-Sent Events once hydrated.

use std::collections::BTreeMap;

use leptos::prelude::*;
use thermoalert_pipeline::model::Alert;

use crate::api::get_overview;
use crate::components::alert_list::AlertList;
use crate::components::sensor_tile::SensorTile;
use crate::live::{Overview, RECENT_ALERTS, SensorView, StreamState};

#[component]
pub fn OverviewPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| get_overview());
    let live_sensors = RwSignal::new(BTreeMap::<String, SensorView>::new());
    let live_alerts = RwSignal::new(Vec::<Alert>::new());
    let live_count = RwSignal::new(0u64);
    let stream_state = RwSignal::new(StreamState::Connecting);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        crate::stream::connect(crate::stream::LiveSignals {
            on_reading: Callback::new(move |view: SensorView| {
                live_count.update(|n| *n += 1);
                live_sensors.update(|m| {
                    m.insert(view.sensor_id.clone(), view);
                });
            }),
            on_alert: Callback::new(move |alert: Alert| {
                live_alerts.update(|v| {
                    v.insert(0, alert);
                    v.truncate(RECENT_ALERTS);
                });
            }),
            state: stream_state,
        });
    });

    view! {
        <section class="status-bar">
            <span id="stream-state" class=move || format!("stream {}", stream_state.get().label())>
                {move || stream_state.get().label()}
            </span>
            <span id="live-count">{move || live_count.get()} " live readings"</span>
        </section>
        <Suspense fallback=|| view! { <p class="loading">"Loading sensors…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(snapshot) => view! {
                        <Dashboard snapshot live_sensors live_alerts/>
                    }.into_any(),
                    Err(e) => view! {
                        <p class="error">"Cannot load the sensors: " {e.to_string()}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The server's snapshot with everything that arrived live laid over it.
#[component]
fn Dashboard(
    snapshot: Overview,
    live_sensors: RwSignal<BTreeMap<String, SensorView>>,
    live_alerts: RwSignal<Vec<Alert>>,
) -> impl IntoView {
    let Overview { sensors, recent_alerts, .. } = snapshot;
    let base: BTreeMap<String, SensorView> =
        sensors.into_iter().map(|s| (s.sensor_id.clone(), s)).collect();
    let tiles = move || {
        let mut all = base.clone();
        all.extend(live_sensors.get());
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
        <section class="tiles" aria-label="Sensors">{tiles}</section>
        <section class="recent-alerts">
            <h2>"Recent alerts"</h2>
            {alerts}
        </section>
    }
}
