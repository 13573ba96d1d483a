//! What the run loop tells the live view (the dashboard's hub, which lives in the app): a
//! trait, so that the loop needs neither the app nor its web types.

use crate::model::{EncodedAlert, Level, Reading, SensorWindow};

/// The live view as the run loop sees it. The loop calls it for every reading, so publishing
/// must be cheap and must never wait; events may be held back and sent as a batch, which the
/// loop asks for ([`LiveView::flush`]) whenever it has nothing else ready.
pub trait LiveView: Send + Sync + 'static {
    fn publish_reading(&self, reading: &Reading, level: Level);
    /// A window result, first or revised.
    fn publish_window(&self, window: &SensorWindow);
    /// An alert, with the JSON it is sent as.
    fn publish_alert(&self, alert: &EncodedAlert);
    /// Whether published events wait to be sent.
    fn has_unsent(&self) -> bool;
    /// Sends what waits.
    fn flush(&self);
}
