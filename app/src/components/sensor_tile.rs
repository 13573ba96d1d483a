//! One sensor at a glance: value, trend, severity colour, last seen, offline badge; its name
//! links to the sensor's page.

use leptos::prelude::*;

use crate::format;
use crate::live::SensorView;

#[component]
pub fn SensorTile(sensor: SensorView) -> impl IntoView {
    let offline = if sensor.offline { " offline" } else { "" };
    let class = format!("tile {}{offline}", format::level_class(sensor.level));
    let href = format!("/sensors/{}", sensor.sensor_id);
    view! {
        <article class=class data-sensor=sensor.sensor_id.clone()>
            <h3 class="tile-name">
                <a href=href>{sensor.sensor_id.clone()}</a>
                {sensor.offline.then(|| view! { <span class="badge offline">"OFFLINE"</span> })}
            </h3>
            <p class="tile-value">
                <span class="value">{format::temperature(sensor.temperature)}</span>
                " "
                <span class="trend">{format::trend(sensor.previous, sensor.temperature)}</span>
            </p>
            <p class="tile-meta">
                <span class="level">{sensor.level.as_str()}</span>
                " · "
                <time class="seen">{format::clock(sensor.timestamp)}</time>
            </p>
        </article>
    }
}
