//! HTTP: the Leptos app (server-rendered pages and server functions), the live stream
//! (`/api/stream`, Server-Sent Events) and the health check.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use thermoalert_app::live::LiveHub;
use thermoalert_app::{App, shell};
use thermoalert_pipeline::history::History;
use tokio::sync::broadcast::error::RecvError;

use crate::api;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub hub: LiveHub,
    pub history: History,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let hub = state.hub.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .route("/api/stream", get(stream))
        .route("/api/sensors", get(api::sensors))
        .route("/api/alerts", get(api::alerts))
        .route("/api/readings", get(api::readings))
        .route("/api/history/{sensor}", get(api::history))
        .route("/api/export.csv", get(api::export_csv))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(hub.clone()),
            move || shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

/// `GET /api/stream`: `reading` and `alert` events as they happen. A client that falls
/// behind skips ahead and receives a `lagged` event with the number of events it missed.
async fn stream(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.hub.subscribe();
    let events = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(ev) => Event::default().event(ev.name()).json_data(&ev).unwrap_or_else(|e| {
                Event::default().event("error").data(format!("unencodable event: {e}"))
            }),
            Err(RecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
