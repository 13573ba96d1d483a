//! The browser entry point: hydrates the page the server rendered, after which it updates
//! itself from the live stream.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(thermoalert_app::App);
}
