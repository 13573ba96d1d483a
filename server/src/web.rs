//! HTTP: the Leptos app (server-rendered pages and server functions), the live stream
//! (`/api/stream`, Server-Sent Events) and the health check.

use std::convert::Infallible;

use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use thermoalert_app::api::{HealthProbe, Problem};
use thermoalert_app::auth::Operators;
use thermoalert_app::edge::{self, ReadsGate};
use thermoalert_app::live::LiveHub;
use thermoalert_app::live::follow::Follower;
use thermoalert_app::rest::{self, RestState};
use thermoalert_app::settings::Settings;
use thermoalert_app::{App, shell};
use thermoalert_pipeline::archive::Store;
use thermoalert_pipeline::history::History;
use thermoalert_pipeline::kafka;
use thermoalert_pipeline::topics;

use crate::telemetry;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: LiveHub,
    pub history: History,
    pub metrics: PrometheusHandle,
    /// A client of the broker the pipeline uses, for readiness checks.
    pub kafka: kafka::FutureProducer,
    pub store: Arc<dyn Store>,
    /// Thresholds of every sensor, as the pipeline judges them.
    pub settings: Settings,
    /// Who may write.
    pub operators: Operators,
    /// Whether reading needs a login too.
    pub reads_need_login: bool,
    /// Readings refused for the sensor limit, for the banner.
    pub sensor_limit: thermoalert_pipeline::runner::SensorLimit,
    /// How far behind the pipeline reads, for readiness.
    pub delay: thermoalert_pipeline::runner::ConsumerDelay,
    /// Turns true when the server shuts down: live streams end then, so that a graceful
    /// shutdown does not wait for every open page.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl FromRef<AppState> for ReadsGate {
    fn from_ref(state: &AppState) -> Self {
        ReadsGate { operators: state.operators.clone(), need_login: state.reads_need_login }
    }
}

impl FromRef<AppState> for RestState {
    fn from_ref(state: &AppState) -> Self {
        RestState { history: state.history.clone(), hub: state.hub.clone() }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let (hub, history, settings, operators) =
        (state.hub.clone(), state.history.clone(), state.settings.clone(), state.operators.clone());
    let probe_state = state.clone();
    let probe = HealthProbe::new(move || {
        let state = probe_state.clone();
        async move {
            let mut problems = readiness(&state).await;
            problems.extend(warnings(&state));
            problems
        }
    });
    let options = state.leptos_options.clone();
    Router::new()
        .route("/api/stream", get(stream))
        .route("/metrics", get(metrics))
        .route("/api/sensors", get(rest::sensors))
        .route("/api/alerts", get(rest::alerts))
        .route("/api/readings", get(rest::readings))
        .route("/api/history/{sensor}", get(rest::history))
        .route("/api/export.csv", get(rest::export_csv))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(hub.clone());
                provide_context(history.clone());
                provide_context(settings.clone());
                provide_context(probe.clone());
                provide_context(operators.clone());
            },
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::reads_gate))
        .layer(axum::middleware::from_fn(edge::security_headers))
        .layer(axum::middleware::from_fn(edge::same_origin))
        .layer(axum::middleware::from_fn(timed))
        .with_state(state)
}

/// How long a readiness check may wait for each dependency.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks Kafka, the archive and the index, each within [`READY_TIMEOUT`]: what failed, by
/// dependency (`kafka`, `archive`, `index`), in that order.
async fn readiness(state: &AppState) -> Vec<Problem> {
    let producer = state.kafka.clone();
    let kafka = tokio::task::spawn_blocking(move || {
        kafka::reachable(&producer, READY_TIMEOUT).map_err(|e| format!("Kafka unreachable: {e}"))
    });
    let store = Arc::clone(&state.store);
    // A NameNode that is down makes the HDFS client retry for a long while: answer anyway.
    let archive = tokio::time::timeout(
        READY_TIMEOUT,
        tokio::task::spawn_blocking(move || {
            store.list("/").map(|_| ()).map_err(|e| format!("archive unreachable: {e}"))
        }),
    );
    let index = tokio::time::timeout(READY_TIMEOUT, state.history.index().ping());
    let (kafka, archive, index) = tokio::join!(kafka, archive, index);
    let kafka = kafka.unwrap_or_else(|e| Err(e.to_string()));
    let archive = match archive {
        Ok(joined) => joined.unwrap_or_else(|e| Err(e.to_string())),
        Err(_) => Err(format!("archive did not answer within {READY_TIMEOUT:?}")),
    };
    let index = match index {
        Ok(r) => r.map_err(|e| format!("index unavailable: {e}")),
        Err(_) => Err(format!("index did not answer within {READY_TIMEOUT:?}")),
    };
    let backlog = backlog(state.delay.behind());
    [("kafka", kafka), ("archive", archive), ("index", index), ("backlog", backlog)]
        .into_iter()
        .filter_map(|(what, r)| r.err().map(|error| Problem { what: what.into(), error }))
        .collect()
}

/// Share of the readings topic's retention the consumer may fall behind before it is not
/// ready: beyond, readings are soon deleted unread.
const BACKLOG_SHARE: f64 = 0.5;

/// An error when the pipeline reads messages older than [`BACKLOG_SHARE`] of the retention.
fn backlog(behind: Duration) -> Result<(), String> {
    let retention = Duration::from_millis(topics::READINGS_RETENTION_MS.unsigned_abs());
    if behind.as_secs_f64() <= retention.as_secs_f64() * BACKLOG_SHARE {
        return Ok(());
    }
    Err(format!(
        "The pipeline reads readings {} min old, more than {:.0} % of the readings topic's {} min \
         retention.",
        behind.as_secs() / 60,
        BACKLOG_SHARE * 100.0,
        retention.as_secs() / 60
    ))
}

/// What the banner says beside the readiness checks: what the server refuses while ready.
fn warnings(state: &AppState) -> Vec<Problem> {
    let refused = state.sensor_limit.refused();
    if refused == 0 {
        return Vec::new();
    }
    let max = state.settings.max_sensors();
    let error = format!(
        "Sensor limit reached: {refused} readings of sensors beyond the {max} tracked were refused."
    );
    vec![Problem { what: "sensors".into(), error }]
}

/// `GET /readyz`: 200 when Kafka, the archive and the index all answer and the pipeline is not
/// far behind (`backlog`), 503 otherwise, with a line per check saying what failed.
async fn readyz(State(state): State<AppState>) -> Response {
    let problems = readiness(&state).await;
    let check = |name: &str| match problems.iter().find(|p| p.what == name) {
        None => json!({ "ok": true }),
        Some(p) => json!({ "ok": false, "error": p.error }),
    };
    let ready = problems.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "kafka": check("kafka"),
            "archive": check("archive"),
            "index": check("index"),
            "backlog": check("backlog"),
        },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// Records the latency of every request by its route (not its raw path: bounded labels).
async fn timed(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry::http(route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /api/stream`: `reading`, `alert`, `window` and `acknowledged` events as they happen
/// (see `thermoalert_app::live::follow`). The hub hands over ready-made SSE frames in batches,
/// written as they are: one write per batch, whatever the number of events in it.
async fn stream(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    // With reads for operators only, the stream lasts as long as the session that opened it.
    let login = state.reads_need_login.then(|| {
        let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (state.operators.clone(), cookie)
    });
    let follower = Follower::new(&state.hub, state.shutdown, login);
    let frames = futures::stream::unfold(follower, |mut f| async move {
        Some((Ok::<_, Infallible>(f.next().await?), f))
    });
    let headers =
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    (headers, Body::from_stream(frames)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_past_half_the_retention_is_not_ready() {
        assert!(backlog(Duration::ZERO).is_ok());
        assert!(backlog(Duration::from_secs(29 * 60)).is_ok());
        let e = backlog(Duration::from_secs(31 * 60)).unwrap_err();
        assert!(e.contains("31 min old") && e.contains("60 min"), "{e}");
    }
}
