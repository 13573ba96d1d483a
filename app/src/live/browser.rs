//! The browser end of the live stream (`/api/stream`): an `EventSource` whose events update the page's signals.
//! `EventSource` reconnects by itself after a drop; the page shows the connection state.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use thermoalert_pipeline::model::Alert;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};

use crate::live::{AlertAck, LiveEvent, SensorView, StreamState};

/// Where the page's live data goes; events without a callback are not listened to.
#[derive(Clone, Copy)]
pub struct LiveSignals {
    pub on_reading: Option<Callback<SensorView>>,
    pub on_alert: Option<Callback<Alert>>,
    pub on_ack: Option<Callback<AlertAck>>,
    /// The page fell behind and the server skipped this many events for it.
    pub on_lagged: Option<Callback<u64>>,
    pub state: RwSignal<StreamState>,
}

impl Default for LiveSignals {
    fn default() -> Self {
        LiveSignals {
            on_reading: None,
            on_alert: None,
            on_ack: None,
            on_lagged: None,
            state: RwSignal::new(StreamState::Connecting),
        }
    }
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
    if let Some(on_reading) = signals.on_reading {
        listen(&source, LiveEvent::READING, on_reading);
    }
    if let Some(on_alert) = signals.on_alert {
        listen(&source, LiveEvent::ALERT, on_alert);
    }
    if let Some(on_ack) = signals.on_ack {
        listen(&source, LiveEvent::ACKNOWLEDGED, on_ack);
    }
    if let Some(on_lagged) = signals.on_lagged {
        listen(&source, LiveEvent::LAGGED, on_lagged);
    }
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

/// Calls `handle` with each `name` event's data, decoded; undecodable events are skipped.
fn listen<T>(source: &EventSource, name: &str, handle: Callback<T>)
where
    T: serde::de::DeserializeOwned + 'static,
{
    let callback = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(value) = e.data().as_string().and_then(|d| serde_json::from_str(&d).ok()) {
            handle.run(value);
        }
    });
    let _ = source.add_event_listener_with_callback(name, callback.as_ref().unchecked_ref());
    // The listener lives as long as the EventSource, which the page closes on cleanup.
    callback.forget();
}
