//! One sensor at a glance: value, trend, severity colour, last seen.

use leptos::prelude::*;

use crate::format;
use crate::live::SensorView;

#[component]
pub fn SensorTile(sensor: SensorView) -> impl IntoView {
    let class = format!("tile {}", format::level_class(sensor.level));
    view! {
        <article class=class data-sensor=sensor.sensor_id.clone()>
            <h3 class="tile-name">{sensor.sensor_id.clone()}</h3>
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
