//! `/alerts`: every alert in the index, most severe first, filtered by what the URL says.
//! The filter form is a plain GET form, so it works before the WASM loads and the URL always
//! holds the filters. Acknowledging is a server function behind a form too; once hydrated,
//! the page follows the live stream, so an acknowledgement or a state change made anywhere
//! shows here at once.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use thermoalert_pipeline::model::{Alert, AlertKind, AlertState, Level};

use crate::api::{Acknowledge, AlertRow, explain, list_alerts};
use crate::format;
use crate::live::{AlertAck, StreamState};
use thermoalert_pipeline::query::page::{AlertQuery, format_time};

#[component]
pub fn AlertsPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        params.with(|p| AlertQuery::from_params(|name| p.get_all(name).unwrap_or_default()))
    });
    let rows = Resource::new(
        move || query.get(),
        // Filters that do not parse are reported by the form above; nothing is listed.
        |q| async move {
            match q {
                Ok(q) => Some(list_alerts(q).await.map_err(explain)),
                Err(_) => None,
            }
        },
    );
    let acks = RwSignal::new(HashMap::<String, AlertAck>::new());
    let changes = RwSignal::new(HashMap::<String, Alert>::new());
    let stream_state = RwSignal::new(StreamState::Connecting);
    let acknowledge = ServerAction::<Acknowledge>::new();
    // The acknowledging page updates from the server's answer (and the stream, like others).
    Effect::new(move |_| {
        if let Some(Ok(ack)) = acknowledge.value().get() {
            acks.update(|m| {
                m.insert(ack.alert_id.clone(), ack);
            });
        }
    });

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        crate::live::browser::connect(crate::live::browser::LiveSignals {
            on_alert: Some(Callback::new(move |alert: Alert| {
                changes.update(|m| {
                    m.insert(alert.alert_id.clone(), alert);
                });
            })),
            on_ack: Some(Callback::new(move |ack: AlertAck| {
                acks.update(|m| {
                    m.insert(ack.alert_id.clone(), ack);
                });
            })),
            state: stream_state,
            ..Default::default()
        });
    });

    let ack_error = move || match acknowledge.value().get() {
        Some(Err(e)) => Some(view! {
            <p class="error" role="alert" id="ack-error">"Not acknowledged: " {crate::api::explain(e)}</p>
        }),
        _ => None,
    };
    view! {
        <h1>"Alerts"</h1>
        {ack_error}
        {move || match query.get() {
            Ok(q) => view! { <Filters query=q/> }.into_any(),
            Err(e) => view! {
                <p class="error" role="alert">"These filters cannot be used: " {e}</p>
                <p><a href="/alerts">"Show all alerts"</a></p>
            }.into_any(),
        }}
        <p class="status-bar">
            <span id="stream-state" class=move || format!("stream {}", stream_state.get().label())>
                {move || stream_state.get().label()}
            </span>
        </p>
        <Suspense fallback=|| view! { <p class="loading">"Loading alerts…"</p> }>
            {move || Suspend::new(async move {
                match rows.await {
                    None => ().into_any(),
                    Some(Ok(rows)) if rows.is_empty() => view! {
                        <p class="empty">"No alert matches these filters."</p>
                    }.into_any(),
                    Some(Ok(rows)) => view! {
                        <AlertTable rows acks changes acknowledge/>
                    }.into_any(),
                    Some(Err(e)) => view! {
                        <p class="error" role="alert">"Cannot list the alerts: " {e}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The filter form, filled in from the current URL.
#[component]
fn Filters(query: AlertQuery) -> impl IntoView {
    let checks = |name: &'static str, options: Vec<(&'static str, bool)>| {
        options
            .into_iter()
            .map(|(value, checked)| {
                view! {
                    <label class="check">
                        <input type="checkbox" name=name value=value checked=checked/>
                        " " {value}
                    </label>
                }
            })
            .collect_view()
    };
    let severities = [Level::Critical, Level::High]
        .map(|l| (l.as_str(), query.severities.contains(&l)))
        .to_vec();
    let kinds = AlertKind::ALL.map(|k| (k.as_str(), query.kinds.contains(&k))).to_vec();
    let states = AlertState::ALL.map(|s| (s.as_str(), query.states.contains(&s))).to_vec();
    view! {
        <form class="filters" method="get" action="/alerts" aria-label="Filter alerts">
            <fieldset>
                <legend>"Severity"</legend>
                {checks("severity", severities)}
            </fieldset>
            <fieldset>
                <legend>"Kind"</legend>
                {checks("kind", kinds)}
            </fieldset>
            <fieldset>
                <legend>"State"</legend>
                {checks("state", states)}
            </fieldset>
            <fieldset>
                <legend>"Sensor and time (UTC)"</legend>
                <label>
                    "Sensors "
                    <input type="text" name="sensor" placeholder="sensor1,sensor2"
                        value=query.sensors.join(",")/>
                </label>
                <label>
                    "From "
                    <input type="datetime-local" name="from"
                        value=query.from.map(format_time).unwrap_or_default()/>
                </label>
                <label>
                    "To "
                    <input type="datetime-local" name="to"
                        value=query.to.map(format_time).unwrap_or_default()/>
                </label>
            </fieldset>
            <div class="filter-actions">
                <button type="submit">"Apply filters"</button>
                <a href="/alerts">"Clear"</a>
            </div>
        </form>
    }
}

#[component]
fn AlertTable(
    rows: Vec<AlertRow>,
    acks: RwSignal<HashMap<String, AlertAck>>,
    changes: RwSignal<HashMap<String, Alert>>,
    acknowledge: ServerAction<Acknowledge>,
) -> impl IntoView {
    let rows = rows
        .into_iter()
        .map(|row| {
            let id = row.alert.alert_id.clone();
            let (id_ack, id_change) = (id.clone(), id.clone());
            let initial_ack = row
                .acknowledged_by
                .clone()
                .zip(row.acknowledged_at)
                .map(|(by, at)| AlertAck { alert_id: id.clone(), by, at });
            let ack = move || acks.with(|m| m.get(&id_ack).cloned()).or(initial_ack.clone());
            let base = row.alert.clone();
            let alert =
                move || changes.with(|m| m.get(&id_change).cloned()).unwrap_or(base.clone());
            let sensor = row.alert.sensor_id.clone();
            let href = format!("/sensors/{sensor}");
            let class = {
                let alert = alert.clone();
                let ack = ack.clone();
                move || {
                    let a = alert();
                    let acked = if ack().is_some() { " acknowledged" } else { "" };
                    format!("alert-row {}{acked}", format::level_class(a.severity))
                }
            };
            let state = {
                let alert = alert.clone();
                move || alert().state.as_str()
            };
            let severity = {
                let alert = alert.clone();
                move || alert().severity.as_str()
            };
            let value = {
                let alert = alert.clone();
                move || format::temperature(alert().temperature)
            };
            let opened = format::date_time(row.alert.timestamp);
            let ack_cell = {
                let ack = ack.clone();
                let id = id.clone();
                move || match ack() {
                    Some(a) => view! {
                        <span class="acked">"✓ " {a.by} " · " {format::clock(a.at)}</span>
                    }
                    .into_any(),
                    None => {
                        let id = id.clone();
                        view! {
                            <ActionForm action=acknowledge>
                                <input type="hidden" name="alert_id" value=id/>
                                <button type="submit" class="ack">"Acknowledge"</button>
                            </ActionForm>
                        }
                        .into_any()
                    }
                }
            };
            view! {
                <tr class=class data-alert=id.clone()>
                    <td class="severity">{severity}</td>
                    <td class="kind">{row.alert.kind.as_str()}</td>
                    <td class="sensor"><a href=href>{sensor}</a></td>
                    <td class="state">{state}</td>
                    <td class="value">{value}</td>
                    <td><time>{opened}</time></td>
                    <td class="ack-cell">{ack_cell}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="alert-table">
            <thead>
                <tr>
                    <th scope="col">"Severity"</th>
                    <th scope="col">"Kind"</th>
                    <th scope="col">"Sensor"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Value"</th>
                    <th scope="col">"Time (UTC)"</th>
                    <th scope="col">"Acknowledged"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
