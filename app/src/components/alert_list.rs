//! Alerts as a list, most recent first.

use leptos::prelude::*;
use thermoalert_pipeline::model::Alert;

use crate::format;

#[component]
pub fn AlertList(alerts: Vec<Alert>) -> impl IntoView {
    if alerts.is_empty() {
        return view! { <p class="empty">"No alerts yet."</p> }.into_any();
    }
    let rows = alerts
        .into_iter()
        .map(|a| {
            let class = format!("alert {}", format::level_class(a.severity));
            let state = a.state.as_str();
            view! {
                <li class=class data-alert=a.alert_id.clone()>
                    <span class="severity">{a.severity.as_str()}</span>
                    <span class="kind">{a.kind.as_str()}</span>
                    <span class="sensor">{a.sensor_id.clone()}</span>
                    <span class="state">{state}</span>
                    <span class="value">{format::temperature(a.temperature)}</span>
                    <time>{format::clock(a.timestamp)}</time>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="alerts">{rows}</ul> }.into_any()
}
