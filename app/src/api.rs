//! Server functions the pages call. Their bodies run on the server only; the browser gets a
//! typed HTTP call. Endpoints are named so other clients can rely on the path (they live
//! under `/api/` next to the JSON API, with names of their own).
//!
//! Every argument is checked here, on the server, whatever the page already checked.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use thermoalert_pipeline::model::{Alert, WindowStats};
use thermoalert_pipeline::rules::Thresholds;

use crate::live::{AlertAck, Overview, SensorView};
use thermoalert_pipeline::query::page::{AlertQuery, Range};

/// At most this many alerts are listed by one query.
pub const ALERTS_PAGE: u32 = 500;
/// Ranges up to this long are charted from raw readings; longer ones from window statistics.
pub const RAW_SPAN_S: f64 = 2.0 * 86_400.0;
/// Points of a raw chart after downsampling.
pub const CHART_POINTS: usize = 1000;

/// An alert as listed: its latest state and who acknowledged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub alert: Alert,
    pub acknowledged_by: Option<String>,
    /// Epoch seconds.
    pub acknowledged_at: Option<f64>,
}

/// What the sensor page shows above its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorInfo {
    pub sensor_id: String,
    pub thresholds: Thresholds,
    pub live: Option<SensorView>,
    /// Epoch seconds, from the index (absent until the first flush).
    pub first_seen: Option<f64>,
    pub last_seen: Option<f64>,
    pub recent_alerts: Vec<AlertRow>,
}

/// A chart's data: raw readings (downsampled) for short ranges, closed window statistics
/// (average with a min/max band) for long ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Series {
    Raw(Vec<(f64, f64)>),
    Windows(Vec<WindowStats>),
}

/// What a sensor's chart draws: its series over `[from, to)` (epoch seconds). (Not
/// `pipeline::history::History`, the queries that make it.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartData {
    pub sensor_id: String,
    pub from: f64,
    pub to: f64,
    pub series: Series,
}

impl ChartData {
    pub fn is_empty(&self) -> bool {
        match &self.series {
            Series::Raw(p) => p.is_empty(),
            Series::Windows(w) => w.is_empty(),
        }
    }
}

/// A dependency that does not answer (`kafka`, `archive`, `index`) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub what: String,
    pub error: String,
}

#[cfg(feature = "ssr")]
type ProblemsFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Problem>> + Send>>;

/// The server's readiness checks, handed to the app by the server (which owns the clients).
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct HealthProbe(std::sync::Arc<dyn Fn() -> ProblemsFuture + Send + Sync>);

#[cfg(feature = "ssr")]
impl HealthProbe {
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Vec<Problem>> + Send + 'static,
    {
        HealthProbe(std::sync::Arc::new(move || Box::pin(check())))
    }
}

/// What does not answer right now, for the banner on every page (empty: all is well).
#[server(endpoint = "health")]
pub async fn get_health() -> Result<Vec<Problem>, ServerFnError> {
    let probe: HealthProbe = use_context()
        .ok_or_else(|| ServerFnError::new("health checks are not available on this server"))?;
    Ok((probe.0)().await)
}

/// A server function's failure in the words the server gave, for the page.
pub fn explain(e: ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(message) => message,
        other => other.to_string(),
    }
}

/// The live state of every sensor, the recent alerts, and the recent trail of the `charted`
/// sensors (or of the most alarming few when none are named), for the overview.
#[server(endpoint = "overview", input = server_fn::codec::Json)]
pub async fn get_overview(charted: Vec<String>) -> Result<Overview, ServerFnError> {
    if charted.len() > crate::live::MAX_CHARTED {
        let max = crate::live::MAX_CHARTED;
        return Err(ServerFnError::new(format!("at most {max} sensors can be charted")));
    }
    charted
        .iter()
        .try_for_each(|s| thermoalert_pipeline::query::validate_sensor(s))
        .map_err(ServerFnError::new)?;
    let mut overview = server::hub()?.snapshot(&charted);
    overview.defaults = server::settings()?.defaults();
    Ok(overview)
}

/// Alerts not cleared yet, by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAlerts {
    pub high: u64,
    pub critical: u64,
}

/// How many alerts are open, for the overview's counters.
#[server(endpoint = "open_alerts")]
pub async fn count_open_alerts() -> Result<OpenAlerts, ServerFnError> {
    let (high, critical) =
        server::history()?.index().open_alerts().await.map_err(server::unavailable)?;
    Ok(OpenAlerts { high, critical })
}

/// Alerts matching `query`, most severe first, then most recent.
#[server(endpoint = "list_alerts", input = server_fn::codec::Json)]
pub async fn list_alerts(query: AlertQuery) -> Result<Vec<AlertRow>, ServerFnError> {
    query.validate().map_err(ServerFnError::new)?;
    let rows = server::history()?
        .index()
        .alerts(&query.filter(ALERTS_PAGE))
        .await
        .map_err(server::unavailable)?;
    Ok(rows.into_iter().map(server::row).collect())
}

/// Marks an alert acknowledged and tells every open page.
#[server(endpoint = "acknowledge")]
pub async fn acknowledge(alert_id: String) -> Result<AlertAck, ServerFnError> {
    thermoalert_pipeline::query::validate_alert_id(&alert_id).map_err(ServerFnError::new)?;
    let by = crate::account::require_operator().await?;
    let at_ms = server::now_ms();
    let found = server::history()?
        .index()
        .acknowledge(&alert_id, &by, at_ms)
        .await
        .map_err(server::unavailable)?;
    if !found {
        return Err(ServerFnError::new(format!("there is no alert `{alert_id}`")));
    }
    let ack = AlertAck { alert_id, by, at: at_ms as f64 / 1000.0 };
    server::hub()?.publish_ack(&ack);
    Ok(ack)
}

/// The sensor page's header: thresholds, live value, recent alerts.
#[server(endpoint = "sensor")]
pub async fn sensor_detail(sensor_id: String) -> Result<SensorInfo, ServerFnError> {
    thermoalert_pipeline::query::validate_sensor(&sensor_id).map_err(ServerFnError::new)?;
    let history = server::history()?;
    let live = server::hub()?.sensor(&sensor_id);
    let known = history.index().sensor(&sensor_id).await.map_err(server::unavailable)?;
    if live.is_none() && known.is_none() {
        return Err(ServerFnError::new(format!("no sensor `{sensor_id}` has reported yet")));
    }
    let query = AlertQuery { sensors: vec![sensor_id.clone()], ..Default::default() };
    let recent_alerts = history
        .index()
        .alerts(&query.filter(20))
        .await
        .map_err(server::unavailable)?
        .into_iter()
        .map(server::row)
        .collect();
    Ok(SensorInfo {
        thresholds: server::settings()?.thresholds(&sensor_id),
        live,
        first_seen: known.as_ref().map(|k| k.first_seen_ms as f64 / 1000.0),
        last_seen: known.as_ref().map(|k| k.last_seen_ms as f64 / 1000.0),
        recent_alerts,
        sensor_id,
    })
}

/// Changes the thresholds of a sensor: saved in the index (they outlive restarts) and
/// applied by the pipeline from the sensor's next reading.
#[server(endpoint = "set_thresholds")]
pub async fn set_thresholds(
    sensor_id: String,
    high: f64,
    critical: f64,
    hysteresis: f64,
) -> Result<Thresholds, ServerFnError> {
    let by = crate::account::require_operator().await?;
    thermoalert_pipeline::query::validate_sensor(&sensor_id).map_err(ServerFnError::new)?;
    let thresholds = Thresholds { high, critical, hysteresis };
    thresholds.validate().map_err(|e| ServerFnError::new(e.to_string()))?;
    server::history()?
        .index()
        .save_thresholds(&sensor_id, &thresholds, server::now_ms())
        .await
        .map_err(server::unavailable)?;
    server::settings()?.set(&sensor_id, thresholds);
    tracing::info!(sensor = %sensor_id, ?thresholds, operator = %by, "thresholds changed from the dashboard");
    Ok(thresholds)
}

/// A sensor's history over `range`, ready to chart.
#[server(endpoint = "sensor_history", input = server_fn::codec::Json)]
pub async fn sensor_history(sensor_id: String, range: Range) -> Result<ChartData, ServerFnError> {
    use thermoalert_pipeline::history::HistoryError;
    thermoalert_pipeline::query::validate_sensor(&sensor_id).map_err(ServerFnError::new)?;
    let now = server::now_ms() as f64 / 1000.0;
    let (from, to) = range.bounds(now).map_err(ServerFnError::new)?;
    let (from_ms, to_ms) = ((from * 1000.0) as i64, (to * 1000.0) as i64);
    let history = server::history()?;
    let windows = || async {
        let w = history.index().windows(&sensor_id, from_ms, to_ms).await;
        w.map(Series::Windows).map_err(server::unavailable)
    };
    let series = if to - from > RAW_SPAN_S {
        windows().await?
    } else {
        match history.chart(&sensor_id, from_ms, to_ms, CHART_POINTS).await {
            Ok(points) => Series::Raw(points),
            // Too many readings to load raw: the window statistics say the same, coarser.
            Err(HistoryError::TooLarge { .. }) => windows().await?,
            Err(e) => return Err(server::unavailable(e)),
        }
    };
    Ok(ChartData { sensor_id, from, to, series })
}

/// Server-side helpers of the functions above.
#[cfg(feature = "ssr")]
mod server {
    use leptos::prelude::*;
    use thermoalert_pipeline::history::History;
    use thermoalert_pipeline::index::AlertRecord;

    use super::AlertRow;
    use crate::live::LiveHub;
    use crate::settings::Settings;

    fn context<T: Clone + Send + Sync + 'static>(what: &str) -> Result<T, ServerFnError> {
        use_context::<T>()
            .ok_or_else(|| ServerFnError::new(format!("{what} is not available on this server")))
    }

    pub fn hub() -> Result<LiveHub, ServerFnError> {
        context("the live state")
    }

    pub fn history() -> Result<History, ServerFnError> {
        context("the history")
    }

    pub fn settings() -> Result<Settings, ServerFnError> {
        context("the sensor settings")
    }

    /// An index or archive failure, worded for the page.
    pub fn unavailable(e: impl std::fmt::Display) -> ServerFnError {
        tracing::warn!("server function: {e}");
        ServerFnError::new(format!("the history is unavailable: {e}"))
    }

    pub use thermoalert_pipeline::clock::now_ms;

    pub fn row(r: AlertRecord) -> AlertRow {
        AlertRow {
            alert: r.alert,
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_ms.map(|ms| ms as f64 / 1000.0),
        }
    }
}
