//! The JSON API for other clients, and the CSV export. Reads go through the SQLite index and
//! the archive; bad parameters get a 400 with one sentence, failures a 503 that says what is
//! unavailable.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thermoalert_pipeline::history::{HistoryError, ReadingsPage};

use crate::params::{self, BadParam, Params, Source};
use crate::web::AppState;

/// What an API call can fail with.
pub enum ApiError {
    BadRequest(String),
    Unavailable(String),
}

impl From<BadParam> for ApiError {
    fn from(e: BadParam) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::TooLarge { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<thermoalert_pipeline::index::IndexError> for ApiError {
    fn from(e: thermoalert_pipeline::index::IndexError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unavailable(m) => {
                tracing::warn!("api: {m}");
                (StatusCode::SERVICE_UNAVAILABLE, m)
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `GET /api/sensors`: every sensor seen, with its latest live reading if any.
pub async fn sensors(
    State(state): State<AppState>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    params::only(&q, &[])?;
    let known = state.history.index().sensors().await?;
    let sensors: Vec<_> = known
        .into_iter()
        .map(|s| {
            let latest = state.hub.sensor(&s.sensor_id);
            json!({
                "sensor_id": s.sensor_id,
                "display_name": s.display_name,
                "first_seen": s.first_seen_ms as f64 / 1000.0,
                "last_seen": s.last_seen_ms as f64 / 1000.0,
                "latest": latest,
            })
        })
        .collect();
    Ok(Json(sensors).into_response())
}

/// `GET /api/alerts?severity=&sensor=&kind=&state=&from=&to=&limit=`: alerts from the index,
/// most severe first, then most recent.
pub async fn alerts(
    State(state): State<AppState>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let filter = params::alerts(&q)?;
    let rows = state.history.index().alerts(&filter).await?;
    let body: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r.alert).expect("alerts serialize");
            v["acknowledged_by"] = json!(r.acknowledged_by);
            v["acknowledged_at"] = json!(r.acknowledged_ms.map(|ms| ms as f64 / 1000.0));
            v
        })
        .collect();
    Ok(Json(body).into_response())
}

/// The raw readings of `sensor` in `[from, to)` (default: the last hour), with the range.
async fn raw_readings(
    state: &AppState,
    q: &Params,
) -> Result<(String, i64, i64, ReadingsPage), ApiError> {
    let (sensor, from, to) = params::readings(q, now_ms())?;
    let page = state.history.readings(&sensor, from, to).await?;
    Ok((sensor, from, to, page))
}

/// `GET /api/readings?sensor=&from=&to=`: raw readings of one sensor (default: last hour).
pub async fn readings(
    State(state): State<AppState>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let (sensor, from, to, page) = raw_readings(&state, &q).await?;
    Ok(Json(json!({
        "sensor_id": sensor,
        "from": from as f64 / 1000.0,
        "to": to as f64 / 1000.0,
        "readings": page.readings,
        "skipped_lines": page.skipped_lines,
    }))
    .into_response())
}

/// `GET /api/history/{sensor}?from=&to=&points=&source=raw|windows`: a chart series, raw
/// readings downsampled to at most `points` (extremes kept), or closed window statistics.
pub async fn history(
    State(state): State<AppState>,
    Path(sensor): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let sensor =
        params::sensor(&sensor).map_err(|e| ApiError::BadRequest(format!("sensor: {e}")))?;
    let chart = params::chart(&q, now_ms())?;
    let (from, to) = (chart.from_ms, chart.to_ms);
    let base =
        json!({ "sensor_id": sensor, "from": from as f64 / 1000.0, "to": to as f64 / 1000.0 });
    let body = match chart.source {
        Source::Raw => {
            let series = state.history.chart(&sensor, from, to, chart.points).await?;
            json!({ "source": "raw", "points": series, "meta": base })
        }
        Source::Windows => {
            let windows = state.history.index().windows(&sensor, from, to).await?;
            json!({ "source": "windows", "windows": windows, "meta": base })
        }
    };
    Ok(Json(body).into_response())
}

/// `GET /api/export.csv?sensor=&from=&to=`: raw readings as CSV, streamed in chunks.
pub async fn export_csv(
    State(state): State<AppState>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let (sensor, from, to, page) = raw_readings(&state, &q).await?;
    // The text is made chunk by chunk as the client reads, not all at once.
    let header_line = futures::stream::once(async {
        Ok::<_, std::io::Error>("timestamp,sensor_id,temperature\n".to_owned())
    });
    let rows = futures::stream::unfold((page.readings, 0usize), |(readings, i)| async move {
        if i >= readings.len() {
            return None;
        }
        let end = (i + 4096).min(readings.len());
        let mut text = String::with_capacity((end - i) * 40);
        for r in &readings[i..end] {
            // Sensor ids are [A-Za-z0-9_.-]: nothing in a row needs CSV quoting.
            text.push_str(&format!("{},{},{}\n", seconds(r.timestamp), r.sensor_id, r.temperature));
        }
        Some((Ok::<_, std::io::Error>(text), (readings, end)))
    });
    let filename = format!("attachment; filename=\"{sensor}-{}-{}.csv\"", from / 1000, to / 1000);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        Body::from_stream(futures::StreamExt::chain(header_line, rows)),
    )
        .into_response())
}

fn seconds(t: f64) -> String {
    if t.fract() == 0.0 { format!("{}", t as i64) } else { format!("{t}") }
}
