//! `/sensors/<id>`: one sensor's live value, thresholds and recent alerts, and its history
//! from the archive: a time range from the URL (presets or custom), a chart drawn by
//! plotters on the server and redrawn in the browser, and the same range as CSV.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{ChartData, SensorInfo, SetThresholds, explain, sensor_detail, sensor_history};
use crate::chart;
use crate::components::alert_list::AlertList;
use crate::format;
use crate::live::{SensorView, StreamState};
use thermoalert_pipeline::query::page::{PRESETS, Range, format_time};

#[component]
pub fn SensorPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let sensor_id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let range = Memo::new(move |_| query.with(|q| Range::from_params(|name| q.get(name))));
    let detail = Resource::new(
        move || sensor_id.get(),
        |id| async move { sensor_detail(id).await.map_err(explain) },
    );
    let history = Resource::new(
        move || (sensor_id.get(), range.get()),
        |(id, range)| async move {
            match range {
                Ok(range) => sensor_history(id, range).await.map_err(explain),
                Err(e) => Err(e),
            }
        },
    );
    let live = RwSignal::new(None::<SensorView>);
    let stream_state = RwSignal::new(StreamState::Connecting);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let id = sensor_id.get_untracked();
        crate::live::browser::connect(crate::live::browser::LiveSignals {
            on_reading: Some(Callback::new(move |view: SensorView| {
                if view.sensor_id == id {
                    live.set(Some(view));
                }
            })),
            state: stream_state,
            ..Default::default()
        });
    });

    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading the sensor…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <Header detail=d live stream_state/> }.into_any(),
                    Err(e) => view! {
                        <h1>"Sensor"</h1>
                        <p class="error" role="alert">{e}</p>
                        <p><a href="/">"Back to the overview"</a></p>
                    }.into_any(),
                }
            })}
        </Suspense>
        <section class="history" aria-label="History">
            <h2>"History"</h2>
            <RangePicker sensor_id range/>
            <Suspense fallback=|| view! { <p class="loading">"Loading the history…"</p> }>
                {move || Suspend::new(async move {
                    // An unknown sensor is said once, above.
                    let Ok(thresholds) = detail.await.map(|d| d.thresholds) else {
                        return ().into_any();
                    };
                    match history.await {
                        Ok(h) => view! { <HistoryChart history=h thresholds/> }.into_any(),
                        Err(e) => view! {
                            <p class="error" role="alert">"Cannot load the history: " {e}</p>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Header(
    detail: SensorInfo,
    live: RwSignal<Option<SensorView>>,
    stream_state: RwSignal<StreamState>,
) -> impl IntoView {
    let SensorInfo { sensor_id, thresholds, live: first, first_seen, last_seen, recent_alerts } =
        detail;
    let current = move || live.get().or(first.clone());
    let value = move || match current() {
        Some(v) => view! {
            <span class=format!("big-value {}", format::level_class(v.level))>
                {format::temperature(v.temperature)}
                " " <span class="trend">{format::trend(v.previous, v.temperature)}</span>
            </span>
            <span class="seen">"at " {format::clock(v.timestamp)}</span>
        }
        .into_any(),
        None => {
            view! { <span class="empty">"No reading since the server started."</span> }.into_any()
        }
    };
    let alerts: Vec<_> = recent_alerts.into_iter().map(|r| r.alert).collect();
    let alerts_href = format!("/alerts?sensor={sensor_id}");
    let save = ServerAction::<SetThresholds>::new();
    let current = move || match save.value().get() {
        Some(Ok(saved)) => saved,
        _ => thresholds,
    };
    let saved_message = move || match save.value().get() {
        Some(Ok(_)) => {
            view! { <p class="saved" role="status">"Saved: applied from the next reading."</p> }
                .into_any()
        }
        Some(Err(e)) => {
            view! { <p class="error" role="alert">"Not saved: " {explain(e)}</p> }.into_any()
        }
        None => ().into_any(),
    };
    view! {
        <h1 class="sensor-title">{sensor_id.clone()}</h1>
        <section class="sensor-head">
            <div class="live-value" id="live-value">{value}</div>
            <dl class="facts">
                <dt>"High"</dt><dd id="threshold-high">{move || format::temperature(current().high)}</dd>
                <dt>"Critical"</dt><dd id="threshold-critical">{move || format::temperature(current().critical)}</dd>
                <dt>"Hysteresis"</dt><dd>{move || format!("{:.1} °C", current().hysteresis)}</dd>
                <dt>"First seen"</dt><dd>{first_seen.map_or("—".into(), format::date_time)}</dd>
                <dt>"Last archived"</dt><dd>{last_seen.map_or("—".into(), format::date_time)}</dd>
                <dt>"Live stream"</dt>
                <dd id="stream-state" class=move || format!("stream {}", stream_state.get().label())>
                    {move || stream_state.get().label()}
                </dd>
            </dl>
        </section>
        <details class="edit-thresholds">
            <summary>"Edit thresholds"</summary>
            <ActionForm action=save attr:class="thresholds-form">
                <input type="hidden" name="sensor_id" value=sensor_id.clone()/>
                <label>"High (°C) "
                    <input type="number" name="high" step="0.1" required value=thresholds.high/></label>
                <label>"Critical (°C) "
                    <input type="number" name="critical" step="0.1" required value=thresholds.critical/></label>
                <label>"Hysteresis (°C) "
                    <input type="number" name="hysteresis" step="0.1" min="0" required value=thresholds.hysteresis/></label>
                <button type="submit">"Save thresholds"</button>
            </ActionForm>
            {saved_message}
        </details>
        <section class="recent-alerts">
            <h2>"Recent alerts " <a class="more" href=alerts_href>"all alerts of this sensor"</a></h2>
            <AlertList alerts/>
        </section>
    }
}

/// Preset links and a custom range form; both only change the URL.
#[component]
fn RangePicker(sensor_id: Memo<String>, range: Memo<Result<Range, String>>) -> impl IntoView {
    let presets = move || {
        let id = sensor_id.get();
        let current = range.get().ok().and_then(|r| r.preset());
        PRESETS
            .iter()
            .map(|&(name, label, _)| {
                let selected = current == Some(name);
                view! {
                    <a href=format!("/sensors/{id}?range={name}")
                        class=if selected { "preset selected" } else { "preset" }
                        aria-current=if selected { Some("true") } else { None }>
                        {label}
                    </a>
                }
            })
            .collect_view()
    };
    let custom = move || match range.get() {
        Ok(Range::Between(from, to)) => (format_time(from), format_time(to)),
        _ => (String::new(), String::new()),
    };
    view! {
        <nav class="range-picker" aria-label="Time range">
            {presets}
            <form method="get" class="custom-range">
                <label>"From (UTC) " <input type="datetime-local" name="from" value=move || custom().0 required/></label>
                <label>"To (UTC) " <input type="datetime-local" name="to" value=move || custom().1 required/></label>
                <button type="submit">"Show"</button>
            </form>
        </nav>
    }
}

#[component]
fn HistoryChart(
    history: ChartData,
    thresholds: thermoalert_pipeline::rules::Thresholds,
) -> impl IntoView {
    let csv = format!(
        "/api/export.csv?sensor={}&from={}&to={}",
        history.sensor_id,
        history.from.floor(),
        history.to.ceil()
    );
    let caption = format!(
        "{} to {}{}",
        format::date_time(history.from),
        format::date_time(history.to),
        match &history.series {
            crate::api::Series::Raw(p) => format!(" · {} points from raw readings", p.len()),
            crate::api::Series::Windows(w) =>
                format!(" · {} windows: average with min/max band", w.len()),
        }
    );
    let body = if history.is_empty() {
        view! { <p class="empty" id="history-empty">"No readings in this range."</p> }.into_any()
    } else {
        let svg = chart::history_svg(&history, &thresholds);
        view! { <div class="chart" id="history-chart" inner_html=svg></div> }.into_any()
    };
    view! {
        <figure class="history-figure">
            {body}
            <figcaption>
                {caption} " · "
                <a href=csv id="csv-download" download>"Download CSV"</a>
            </figcaption>
        </figure>
    }
}
