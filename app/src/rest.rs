//! The JSON API for other clients, and the CSV export: axum handlers beside the server
//! functions, over the same history and live board. Reads go through the SQLite index and
//! the archive; bad parameters get a 400 with one sentence, failures a 503 that says what is
//! unavailable. The server routes them (`server/src/web.rs`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thermoalert_pipeline::history::{HistoryError, ReadingChunks, ReadingsChunk};
use thermoalert_pipeline::model::Reading;

use thermoalert_pipeline::clock::now_ms;
use thermoalert_pipeline::history::History;
use thermoalert_pipeline::query::api::{self as params, BadParam, Params, Source};

use crate::live::LiveHub;

/// History queries refused because too many were running (counted here, where they are).
pub const BUSY: &str = "thermoalert_history_queries_refused_total";

/// What the JSON API reads.
#[derive(Clone)]
pub struct RestState {
    /// The index and the archive.
    pub history: History,
    /// The latest reading of each sensor.
    pub hub: LiveHub,
}

/// What an API call can fail with.
pub enum ApiError {
    BadRequest(String),
    Unavailable(String),
    /// Too many heavy queries at once: 503 with `Retry-After`.
    Busy(String),
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
            HistoryError::Busy => ApiError::Busy(e.to_string()),
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
            ApiError::Busy(m) => {
                metrics::counter!(BUSY).increment(1);
                let body = Json(json!({ "error": m }));
                return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], body)
                    .into_response();
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// `GET /api/sensors`: every sensor seen, with its latest live reading if any.
pub async fn sensors(
    State(state): State<RestState>,
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
    State(state): State<RestState>,
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

/// The raw readings of `sensor` in `[from, to)` (default: the last hour), with the range, as
/// they are read.
async fn raw_readings(
    state: &RestState,
    q: &Params,
) -> Result<(String, i64, i64, ReadingChunks), ApiError> {
    let (sensor, from, to) = params::readings(q, now_ms())?;
    let chunks = state.history.readings_in_chunks(&sensor, from, to).await?;
    Ok((sensor, from, to, chunks))
}

/// A body made of `head`, then the text of each chunk of readings (`row` writes one reading,
/// `sep` goes between two), then `tail(skipped lines)`: streamed as the archive is read, so
/// that no answer is ever held whole (2 M readings were ~2 GB as one JSON value). The reading
/// stops when the client goes away (the body is dropped, and with it the chunks).
fn streamed(
    head: String,
    chunks: ReadingChunks,
    sep: &'static str,
    row: fn(&mut String, &Reading),
    tail: fn(usize) -> String,
) -> Body {
    let state = (Some(head), chunks, false);
    let body = futures::stream::unfold(state, move |(head, mut chunks, mut started)| async move {
        if let Some(head) = head {
            return Some((Ok(head), (None, chunks, started)));
        }
        match chunks.next().await? {
            Ok(ReadingsChunk::Readings(readings)) => {
                let mut text = String::with_capacity(readings.len() * 64);
                for r in &readings {
                    if std::mem::replace(&mut started, true) {
                        text.push_str(sep);
                    }
                    row(&mut text, r);
                }
                Some((Ok(text), (None, chunks, started)))
            }
            Ok(ReadingsChunk::End { skipped_lines }) => {
                Some((Ok(tail(skipped_lines)), (None, chunks, started)))
            }
            // Headers are gone already: cutting the body short is how the client learns.
            Err(e) => {
                tracing::warn!("api: reading the archive failed mid-answer: {e}");
                Some((Err(std::io::Error::other(e.to_string())), (None, chunks, started)))
            }
        }
    });
    Body::from_stream(body)
}

/// `GET /api/readings?sensor=&from=&to=`: raw readings of one sensor (default: last hour).
pub async fn readings(
    State(state): State<RestState>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let (sensor, from, to, chunks) = raw_readings(&state, &q).await?;
    let head =
        json!({ "sensor_id": sensor, "from": from as f64 / 1000.0, "to": to as f64 / 1000.0 })
            .to_string();
    // The object without its closing brace, then the readings and the count of skipped lines.
    let head = format!("{},\"readings\":[", head.trim_end_matches('}'));
    let row = |text: &mut String, r: &Reading| {
        text.push_str(&serde_json::to_string(r).expect("readings serialize"));
    };
    let tail = |skipped: usize| format!("],\"skipped_lines\":{skipped}}}");
    let body = streamed(head, chunks, ",", row, tail);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/history/{sensor}?from=&to=&points=&source=raw|windows`: a chart series, raw
/// readings downsampled to at most `points` (extremes kept), or closed window statistics.
pub async fn history(
    State(state): State<RestState>,
    Path(sensor): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let sensor = thermoalert_pipeline::query::sensor(&sensor).map_err(BadParam::from)?;
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

/// `GET /api/export.csv?sensor=&from=&to=`: raw readings as CSV, streamed as the archive is
/// read.
pub async fn export_csv(
    State(state): State<RestState>,
    Query(q): Query<Params>,
) -> Result<Response, ApiError> {
    let (sensor, from, to, chunks) = raw_readings(&state, &q).await?;
    let row = |text: &mut String, r: &Reading| {
        // Sensor ids are [A-Za-z0-9_.-]: nothing in a row needs CSV quoting.
        text.push_str(&format!("{},{},{}\n", seconds(r.timestamp), r.sensor_id, r.temperature));
    };
    let head = "timestamp,sensor_id,temperature\n".to_owned();
    let body = streamed(head, chunks, "", row, |_| String::new());
    let filename = format!("attachment; filename=\"{sensor}-{}-{}.csv\"", from / 1000, to / 1000);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

fn seconds(t: f64) -> String {
    if t.fract() == 0.0 { format!("{}", t as i64) } else { format!("{t}") }
}
