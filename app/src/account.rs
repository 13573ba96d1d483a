//! Logging in and out, and who is logged in: the server functions behind the login page and
//! the top bar, and [`require_operator`], which every write calls first.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::explain;

/// Longest password accepted: argon2's work per login stays bounded.
pub const MAX_PASSWORD: usize = 1024;

/// Checks an operator's name and password and opens a session (the cookie), then goes to
/// `next` (a path of this site; anything else goes to the overview).
#[server(endpoint = "login")]
pub async fn login(
    name: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    use std::time::{Duration, Instant};
    if password.len() > MAX_PASSWORD || name.len() > 64 {
        return Err(ServerFnError::new("wrong name or password"));
    }
    let operators = ssr::operators()?;
    let now = Instant::now();
    let (who, ops) = (name.clone(), operators.clone());
    let token = tokio::task::spawn_blocking(move || ops.login(&who, &password, now))
        .await
        .map_err(|e| ServerFnError::new(format!("login failed: {e}")))?;
    let Some(token) = token else {
        // Each failure costs the guesser a second more.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The name is the requester's text: logged only if it is a valid name (no forged lines).
        let shown = if crate::auth::validate_name(&name).is_ok() { name } else { "?".into() };
        tracing::warn!(operator = %shown, "failed login");
        return Err(ServerFnError::new("wrong name or password"));
    };
    ssr::set_cookie(&operators.cookie(&token))?;
    tracing::info!(operator = %name, "operator logged in");
    leptos_axum::redirect(&safe_next(next.as_deref()));
    Ok(())
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

/// Where to go after logging in: a path of this site, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
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
    let failed = move || match login.value().get() {
        Some(Err(e)) => Some(view! { <p class="error" role="alert">{explain(e)}</p> }),
        _ => None,
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
        for bad in ["https://evil.example/", "//evil.example/", "/\\evil.example", "alerts"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
