//! Widgets the pages are built from.

pub mod alert_list;
pub mod sensor_tile;
