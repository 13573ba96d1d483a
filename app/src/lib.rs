//! ThermoAlert's web app. Compiled twice: with `ssr` for the server (first paint, server
//! functions, the JSON API) and with `hydrate` for the browser (live updates over
//! Server-Sent Events).

pub mod account;
pub mod api;
#[cfg(feature = "ssr")]
pub mod auth;
pub mod chart;
pub mod components;
#[cfg(feature = "ssr")]
pub mod edge;
pub mod format;
pub mod live;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod rest;
#[cfg(feature = "ssr")]
pub mod settings;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{ParamSegment, StaticSegment};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy header: scripts only from this site and only those
/// Leptos marks with this response's nonce (its hydration and resource scripts; what they
/// import follows through `'strict-dynamic'`), WASM compiled from them, no framing, forms
/// and connections to this site only. Inline `style` attributes stay allowed (the SVG charts
/// carry them); inline scripts without the nonce do not run.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    let (Some(nonce), Some(response)) =
        (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
    else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Set only in the browser, once hydrated: tests and operators can tell a live page from
    // a server-rendered one.
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/thermoalert.css"/>
        <Title text="ThermoAlert"/>
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">"ThermoAlert"</A>
                <nav class="nav" aria-label="Main">
                    <A href="/">"Overview"</A>
                    <A href="/alerts">"Alerts"</A>
                </nav>
                <account::OperatorCorner/>
            </header>
            <HealthBanner/>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=pages::overview::OverviewPage/>
                    <Route path=StaticSegment("alerts") view=pages::alerts::AlertsPage/>
                    <Route path=StaticSegment("login") view=account::LoginPage/>
                    <Route
                        path=(StaticSegment("sensors"), ParamSegment("id"))
                        view=pages::sensor::SensorPage
                    />
                </Routes>
            </main>
        </Router>
    }
}

/// Says on every page what does not answer (Kafka, the archive, the index) or what is being
/// refused (sensors beyond the limit), and what it means for the operator; rendered on the server too, so it shows before the WASM loads.
#[component]
fn HealthBanner() -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let health = Resource::new(move || tick.get(), |_| api::get_health());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let every = std::time::Duration::from_secs(15);
        let handle = set_interval_with_handle(move || tick.update(|n| *n += 1), every);
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    let meaning = |what: &str| match what {
        "kafka" => {
            "Readings are not coming in; nothing is lost, they are processed once it is back."
        }
        "archive" => "New readings are held and written once it is back; history may lag.",
        "backlog" => {
            "Readings older than the topic's retention are deleted before they are read: the \
             pipeline must catch up (more instances, or what slows it down)."
        }
        "sensors" => {
            "Their readings go to the dead-letter topic (reason sensor_limit); sensors already \
             tracked are unaffected. Raise THERMO_MAX_SENSORS if these sensors are real."
        }
        _ => "Alerts and history cannot be listed until it is back.",
    };
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match health.await {
                    Ok(problems) if problems.is_empty() => ().into_any(),
                    Ok(problems) => view! {
                        <div class="banner" id="health-banner" aria-live="polite">
                            {problems.into_iter().map(|p| view! {
                                <p><strong>{p.error}</strong> " " {meaning(&p.what)}</p>
                            }).collect_view()}
                        </div>
                    }.into_any(),
                    Err(e) => view! {
                        <div class="banner" id="health-banner" aria-live="polite">
                            <p><strong>"The server does not answer: " {api::explain(e)}</strong></p>
                        </div>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
