//! ThermoAlert's web app. Compiled twice: with `ssr` for the server (first paint, server
//! functions) and with `hydrate` for the browser (live updates over Server-Sent Events).

pub mod api;
pub mod chart;
pub mod components;
pub mod format;
pub mod live;
pub mod pages;
pub mod query;
#[cfg(feature = "ssr")]
pub mod settings;
#[cfg(feature = "hydrate")]
pub mod stream;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{ParamSegment, StaticSegment};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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
            </header>
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=pages::overview::OverviewPage/>
                    <Route path=StaticSegment("alerts") view=pages::alerts::AlertsPage/>
                    <Route
                        path=(StaticSegment("sensors"), ParamSegment("id"))
                        view=pages::sensor::SensorPage
                    />
                </Routes>
            </main>
        </Router>
    }
}
