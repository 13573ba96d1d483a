//! One module per page of the app.

pub mod alerts;
pub mod overview;
pub mod sensor;
