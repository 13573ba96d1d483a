//! The browser end of `/api/stream`: an `EventSource` whose events update the page's signals.
//! `EventSource` reconnects by itself after a drop; the page shows the connection state.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use thermoalert_pipeline::model::Alert;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};

use crate::live::{SensorView, StreamState};

/// Where the page's live data goes.
#[derive(Clone, Copy)]
pub struct LiveSignals {
    pub on_reading: Callback<SensorView>,
    pub on_alert: Callback<Alert>,
    pub state: RwSignal<StreamState>,
}

/// Opens the stream; it is closed when the calling component is cleaned up.
pub fn connect(signals: LiveSignals) {
    let source = match EventSource::new("/api/stream") {
        Ok(s) => s,
        Err(_) => {
            signals.state.set(StreamState::Reconnecting);
            return;
        }
    };
    listen(&source, "reading", move |data: &str| {
        if let Ok(view) = serde_json::from_str::<SensorView>(data) {
            signals.on_reading.run(view);
        }
    });
    listen(&source, "alert", move |data: &str| {
        if let Ok(alert) = serde_json::from_str::<Alert>(data) {
            signals.on_alert.run(alert);
        }
    });
    let state = signals.state;
    let on_open = Closure::<dyn FnMut()>::new(move || state.set(StreamState::Live));
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    on_open.forget();
    let on_error = Closure::<dyn FnMut()>::new(move || state.set(StreamState::Reconnecting));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    let source = SendWrapper::new(source);
    on_cleanup(move || source.close());
}

fn listen(source: &EventSource, name: &str, handle: impl Fn(&str) + 'static) {
    let callback = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(data) = e.data().as_string() {
            handle(&data);
        }
    });
    let _ = source.add_event_listener_with_callback(name, callback.as_ref().unchecked_ref());
    // The listener lives as long as the EventSource, which the page closes on cleanup.
    callback.forget();
}
