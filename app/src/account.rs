//! Logging in and out, and who is logged in: the server functions behind the login page and
//! the top bar, and [`require_operator`], which every write calls first.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::explain;

/// Longest password accepted: argon2's work per login stays bounded.
pub const MAX_PASSWORD: usize = 1024;

/// Checks an operator's name and password and opens a session (the cookie), then goes to
/// `next` (a path of this site; anything else goes to the overview).
///
/// A wrong name or password answers 401; a client (or name) that failed too often, or a
/// server with too many checks already waiting, 429 with `Retry-After` (see
/// [`crate::auth::throttle`]). A plain form post (no WASM yet) is sent back to the login page
/// with the reason instead, so that the page can say it.
#[server(endpoint = "login")]
pub async fn login(
    name: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::auth::throttle::{Attempt, Refusal};
    use http::StatusCode;
    use std::time::Instant;
    if password.len() > MAX_PASSWORD || name.len() > 64 {
        return ssr::refuse(StatusCode::UNAUTHORIZED, Failure::Wrong, None, next.as_deref());
    }
    let operators = ssr::operators()?;
    let known_name = operators.is_known(&name).then_some(name.as_str());
    let attempt = Attempt { client: ssr::client_addr(), known_name };
    let permit = match operators.throttle.admit(attempt, Instant::now()).await {
        Ok(permit) => permit,
        Err(refusal) => {
            tracing::warn!(client = %attempt.client, "login refused: {refusal}");
            let failure = match refusal {
                Refusal::Busy => Failure::Busy,
                Refusal::TooManyFailures { .. } => Failure::Throttled,
            };
            let (status, wait) = (StatusCode::TOO_MANY_REQUESTS, refusal.retry_after_secs());
            return ssr::refuse_with(
                status,
                failure,
                &refusal.to_string(),
                Some(wait),
                next.as_deref(),
            );
        }
    };
    let (who, ops) = (name.clone(), operators.clone());
    let token = operators
        .throttle
        .run(move || ops.login(&who, &password, Instant::now()))
        .await
        .ok_or_else(|| ServerFnError::new("login failed: no password check could run"))?;
    drop(permit);
    let Some(token) = token else {
        operators.throttle.failed(attempt, Instant::now());
        // The name is the requester's text: logged only if it is a valid name (no forged lines).
        let shown = if crate::auth::validate_name(&name).is_ok() { name.as_str() } else { "?" };
        tracing::warn!(operator = %shown, client = %attempt.client, "failed login");
        return ssr::refuse(StatusCode::UNAUTHORIZED, Failure::Wrong, None, next.as_deref());
    };
    operators.throttle.succeeded(attempt);
    ssr::set_cookie(&operators.cookie(&token))?;
    tracing::info!(operator = %name, "operator logged in");
    leptos_axum::redirect(&safe_next(next.as_deref()));
    Ok(())
}

/// Why a login failed, as the login page's `failed` parameter names it (a plain form post is
/// sent back there): a code, never text from the URL, so that a link cannot make the page say
/// anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A wrong name or password (the same for both: names cannot be probed).
    Wrong,
    /// Too many logins at once on the server.
    Busy,
    /// Too many failures from this client or for this name.
    Throttled,
}

impl Failure {
    pub fn code(self) -> &'static str {
        match self {
            Failure::Wrong => "wrong",
            Failure::Busy => "busy",
            Failure::Throttled => "throttled",
        }
    }

    pub fn from_code(code: &str) -> Option<Failure> {
        [Failure::Wrong, Failure::Busy, Failure::Throttled].into_iter().find(|f| f.code() == code)
    }

    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Failure::Wrong => "wrong name or password",
            Failure::Busy => "too many logins at once; try again in a few seconds",
            Failure::Throttled => "too many failed logins; wait a while before trying again",
        }
    }
}

/// Ends the session.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), ServerFnError> {
    let operators = ssr::operators()?;
    let cookie = ssr::cookie_header().await?;
    operators.logout(cookie.as_deref());
    ssr::set_cookie(&operators.expired_cookie())?;
    leptos_axum::redirect("/");
    Ok(())
}

/// The operator logged in on this browser, if any.
#[server(endpoint = "whoami")]
pub async fn current_operator() -> Result<Option<String>, ServerFnError> {
    let operators = ssr::operators()?;
    let cookie = ssr::cookie_header().await?;
    Ok(operators.operator(cookie.as_deref(), std::time::Instant::now()))
}

/// The name of the operator making this request, or the error a write answers with.
#[cfg(feature = "ssr")]
pub async fn require_operator() -> Result<String, ServerFnError> {
    current_operator()
        .await?
        .ok_or_else(|| ServerFnError::new("log in as an operator to do this (top right)"))
}

/// `pairs` as a URL query (`a=1&b=x%2Fy`), each name and value form-encoded.
#[cfg(feature = "ssr")]
pub fn form_query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Where to go after logging in: a path of this site, never another site.
///
/// Browsers drop tabs and line breaks from a URL and read `\\` as `/`, so `/\t/evil.example`
/// and `/\\evil.example` lead off the site as `//evil.example` does; a server that decodes
/// `%2F` may do the same with `/%2F/evil.example`. None of these, no control character or
/// white space at all (a CR/LF would also break the `Location` header), nothing but ASCII
/// (a header value is), and nothing that does not start with a single `/`: those go to the
/// overview.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(path) = next else { return "/".into() };
    let bytes = path.as_bytes();
    let after_slash = path.get(1..).unwrap_or_default().to_ascii_lowercase();
    let on_site = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !after_slash.starts_with("%2f")
        && !after_slash.starts_with("%5c")
        && path.len() <= 2048
        && path.is_ascii()
        && !path.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if on_site { path.into() } else { "/".into() }
}

#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use crate::auth::Operators;

    pub fn operators() -> Result<Operators, ServerFnError> {
        use_context::<Operators>()
            .ok_or_else(|| ServerFnError::new("operator logins are not set up on this server"))
    }

    pub async fn cookie_header() -> Result<Option<String>, ServerFnError> {
        let headers: http::HeaderMap = leptos_axum::extract().await?;
        Ok(headers.get(http::header::COOKIE).and_then(|v| v.to_str().ok()).map(str::to_owned))
    }

    /// The address of the client, as the connection loop saw it (unspecified if unknown).
    pub fn client_addr() -> std::net::IpAddr {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::auth::ClientAddr>().copied())
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0)
    }

    /// [`refuse_with`] the failure's own message.
    pub fn refuse(
        status: http::StatusCode,
        failure: super::Failure,
        retry_after: Option<u64>,
        next: Option<&str>,
    ) -> Result<(), ServerFnError> {
        refuse_with(status, failure, failure.message(), retry_after, next)
    }

    /// A refused login: `status` (and `Retry-After`) and `reason` for a script, or for a plain
    /// form post a way back to the login page that names the failure.
    pub fn refuse_with(
        status: http::StatusCode,
        failure: super::Failure,
        reason: &str,
        retry_after: Option<u64>,
        next: Option<&str>,
    ) -> Result<(), ServerFnError> {
        let plain_form = use_context::<http::request::Parts>().is_some_and(|parts| {
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
        });
        if plain_form {
            let next = super::safe_next(next);
            let query = [("failed", failure.code()), ("next", next.as_str())];
            leptos_axum::redirect(&format!("/login?{}", super::form_query(&query)));
            return Ok(());
        }
        let response = expect_context::<leptos_axum::ResponseOptions>();
        response.set_status(status);
        if let Some(seconds) = retry_after {
            response.insert_header(http::header::RETRY_AFTER, seconds.into());
        }
        Err(ServerFnError::new(reason))
    }

    pub fn set_cookie(value: &str) -> Result<(), ServerFnError> {
        let value = http::HeaderValue::from_str(value).map_err(ServerFnError::new)?;
        expect_context::<leptos_axum::ResponseOptions>()
            .append_header(http::header::SET_COOKIE, value);
        Ok(())
    }
}

/// `/login`: name and password; works as a plain form before the WASM loads.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || safe_next(query.read().get("next").as_deref());
    // A failure of this page's action, or of a plain form post sent back here.
    let failed = move || {
        let text = match login.value().get() {
            Some(Err(e)) => explain(e),
            _ => Failure::from_code(&query.read().get("failed")?)?.message().to_owned(),
        };
        Some(view! { <p class="error" role="alert">{text}</p> })
    };
    view! {
        <section class="login">
            <h1>"Operator login"</h1>
            <p class="hint">"Acknowledging alerts and changing thresholds need an operator."</p>
            <ActionForm action=login>
                <input type="hidden" name="next" value=next/>
                <label>"Name " <input type="text" name="name" autocomplete="username" required/></label>
                <label>"Password " <input type="password" name="password" autocomplete="current-password" required/></label>
                <button type="submit">"Log in"</button>
            </ActionForm>
            {failed}
        </section>
    }
}

/// The top bar's corner: who is logged in and a way out, or a way in.
#[component]
pub fn OperatorCorner() -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    // Asked again after a logout and on every navigation (a login ends with one).
    let location = leptos_router::hooks::use_location();
    let who = Resource::new(
        move || (logout.version().get(), location.pathname.get()),
        |_| current_operator(),
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match who.await {
                    Ok(Some(name)) => view! {
                        <div class="operator" id="operator">
                            <span>"Operator " <strong>{name}</strong></span>
                            <ActionForm action=logout>
                                <button type="submit" class="link">"Log out"</button>
                            </ActionForm>
                        </div>
                    }.into_any(),
                    _ => view! {
                        <div class="operator" id="operator"><a href="/login">"Log in"</a></div>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_only_paths_of_this_site_are_followed() {
        assert_eq!(safe_next(Some("/alerts?state=open")), "/alerts?state=open");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "alerts",
            "/\t/evil.example",
            "/\n/evil.example",
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/alerts\r\nSet-Cookie: x=y",
            "/a b",
            "/caf\u{e9}",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/sensors/freezer%2F1")), "/sensors/freezer%2F1");
        assert_eq!(safe_next(None), "/");
    }
}
