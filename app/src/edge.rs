//! The edge of the web app, as axum middleware the server layers around every route: the
//! headers every answer carries, the same-origin check that protects every write, and the
//! login asked for before any read when reads are for operators only.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::account::form_query;
use crate::auth::Operators;

/// What [`reads_gate`] needs.
#[derive(Clone)]
pub struct ReadsGate {
    pub operators: Operators,
    /// `THERMO_READS=operators`: reading needs a login too.
    pub need_login: bool,
}

/// Refuses a write (any method but GET, HEAD and OPTIONS) that a browser says comes from
/// another site: the `Sec-Fetch-Site` header when the browser sends it, else `Origin` against
/// `Host`. This is the CSRF protection of the server functions and any write: a page
/// elsewhere cannot make an operator's browser act with the operator's session. Clients
/// that are not browsers send neither header and are let through (they carry no ambient
/// cookie to abuse).
pub async fn same_origin(request: Request, next: Next) -> Response {
    use axum::http::Method;
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cross_site = match (text("sec-fetch-site"), text("origin")) {
        (Some(site), _) => !matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            Some(origin_host) != text("host")
        }
        (None, None) => false,
    };
    if cross_site {
        let body = "cross-site requests may not change anything here";
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    next.run(request).await
}

/// Headers every response carries: no MIME sniffing, no framing, no referrer to other sites,
/// and a Content-Security-Policy that allows nothing for responses that did not set their
/// own (pages set theirs, with the nonce of their scripts: `thermoalert_app::shell`).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(header::HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    response
}

/// Paths open to everyone even when reads need a login: the login itself (page, server
/// function, and what the page around it asks), the site's files, and the probes.
const OPEN_PATHS: [&str; 7] =
    ["/login", "/api/login", "/api/whoami", "/api/health", "/healthz", "/readyz", "/metrics"];

/// With `THERMO_READS=operators`, sends a browser without a session to `/login` (and back
/// afterwards), and answers API calls without one with 401.
pub async fn reads_gate(State(gate): State<ReadsGate>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !gate.need_login
        || OPEN_PATHS.contains(&path)
        || path.starts_with("/pkg/")
        || path == "/favicon.ico"
    {
        return next.run(request).await;
    }
    let cookie = request.headers().get(header::COOKIE).and_then(|v| v.to_str().ok());
    if gate.operators.operator(cookie, Instant::now()).is_some() {
        return next.run(request).await;
    }
    if path.starts_with("/api/") {
        let body = axum::Json(json!({ "error": "log in as an operator to read this" }));
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let wanted = request.uri().path_and_query().map_or(path, |p| p.as_str());
    let to = format!("/login?{}", form_query(&[("next", wanted)]));
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}
