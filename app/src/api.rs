//! Server functions the pages call. Their bodies run on the server only; the browser gets a
//! typed HTTP call. Endpoints are named so other clients can rely on the path.

use leptos::prelude::*;

use crate::live::Overview;

/// The live state of every sensor and the recent alerts, for the overview's first paint.
#[server(endpoint = "overview")]
pub async fn get_overview() -> Result<Overview, ServerFnError> {
    let hub = use_context::<crate::live::LiveHub>()
        .ok_or_else(|| ServerFnError::new("the live state is not available on this server"))?;
    Ok(hub.snapshot())
}
