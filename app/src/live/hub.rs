//! The server's live state and its fan-out to every open page.
//!
//! One pipeline feeds many browsers, so the cost that matters is per event × per client.
//! Each event is therefore serialized once, straight into its Server-Sent Events frame, and
//! frames travel in batches: the publisher (the pipeline task) appends to an outbox and
//! [`LiveHub::flush`]es it whenever it has nothing else ready, or once a batch reaches
//! [`BATCH_BYTES`]. At a trickle a batch is one event and nothing waits; under a flood, one
//! broadcast item, one task wake-up and one socket write carry hundreds of events to each
//! client. A subscriber that falls behind skips ahead and is told how many events it missed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use thermoalert_pipeline::live::LiveView;
use thermoalert_pipeline::model::{
    Alert, AlertKind, AlertState, EncodedAlert, Level, Reading, SensorWindow,
};
use tokio::sync::broadcast;

use super::{AlertAck, LiveEvent, MAX_CHARTED, Overview, RECENT_ALERTS, SensorView, Trail};

/// A batch is sent once it holds this many bytes of frames (~120 reading events), which
/// bounds the broadcast's memory to its capacity × this.
pub const BATCH_BYTES: usize = 16 * 1024;

#[derive(Debug, Default)]
struct Board {
    sensors: BTreeMap<String, SensorView>,
    trails: HashMap<String, VecDeque<(f64, f64)>>,
    recent_alerts: VecDeque<Alert>,
    readings_seen: u64,
}

/// Events sent to subscribers as one item: `frames` holds `count` SSE frames, the first of
/// them the `first`-th event published to subscribers.
#[derive(Debug, Clone)]
struct Batch {
    first: u64,
    count: u64,
    frames: Bytes,
}

/// The frames published since the last flush.
#[derive(Debug, Default)]
struct Outbox {
    frames: Vec<u8>,
    count: u64,
    /// The number of the next event.
    next: u64,
}

impl Outbox {
    /// One frame of event `name` whose data `write_json` writes. serde_json writes no raw line
    /// break, so the JSON is one `data:` line.
    fn push(&mut self, name: &str, write_json: impl FnOnce(&mut Vec<u8>)) {
        let _ = write!(self.frames, "event: {name}\ndata: ");
        write_json(&mut self.frames);
        self.frames.extend_from_slice(b"\n\n");
        self.count += 1;
        self.next += 1;
    }

    fn take(&mut self) -> Option<Batch> {
        (self.count > 0).then(|| {
            let batch = Batch {
                first: self.next - self.count,
                count: self.count,
                frames: Bytes::from(std::mem::take(&mut self.frames)),
            };
            self.count = 0;
            batch
        })
    }
}

/// The server's live state, shared by the pipeline task (which publishes) and the web layer
/// (which reads snapshots and subscribes). Cheap to clone.
///
/// The broadcast is bounded: a subscriber that falls behind by more than its capacity (in
/// batches) skips ahead, so a slow browser never slows the pipeline nor grows memory. While
/// no one follows, events are not even made.
#[derive(Debug, Clone)]
pub struct LiveHub {
    board: Arc<RwLock<Board>>,
    outbox: Arc<Mutex<Outbox>>,
    tx: broadcast::Sender<Batch>,
}

impl LiveHub {
    /// A hub whose subscribers may fall `capacity` batches behind before they skip ahead.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        LiveHub { board: Arc::default(), outbox: Arc::default(), tx }
    }

    /// Adds an event to the outbox, sending the batch if it is full.
    fn send(&self, event: impl FnOnce() -> LiveEvent) {
        self.send_frame(|outbox| {
            let event = event();
            outbox.push(event.name(), |frames| {
                serde_json::to_writer(frames, &event).expect("live events serialize")
            });
        });
    }

    /// Adds the frame `push` writes to the outbox (if anyone follows), sending the batch if it
    /// is full.
    fn send_frame(&self, push: impl FnOnce(&mut Outbox)) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let mut outbox = self.outbox.lock().expect("live outbox lock");
        push(&mut outbox);
        if outbox.frames.len() >= BATCH_BYTES
            && let Some(batch) = outbox.take()
        {
            let _ = self.tx.send(batch);
        }
    }

    /// Sends what was published since the last flush to every subscriber. The publisher
    /// calls this whenever it would otherwise wait ([`LiveHub::has_unsent`]).
    pub fn flush(&self) {
        let batch = self.outbox.lock().expect("live outbox lock").take();
        if let Some(batch) = batch {
            let _ = self.tx.send(batch);
        }
    }

    /// Whether events wait in the outbox for a [`LiveHub::flush`].
    pub fn has_unsent(&self) -> bool {
        self.outbox.lock().expect("live outbox lock").count > 0
    }

    pub fn publish_reading(&self, reading: &Reading, level: Level) {
        let view = {
            let mut board = self.board.write().expect("live board lock");
            board.readings_seen += 1;
            let view = match board.sensors.get_mut(reading.sensor_id.as_str()) {
                Some(view) => {
                    view.advance(reading, level);
                    view
                }
                None => board
                    .sensors
                    .entry(reading.sensor_id.clone())
                    .or_insert_with(|| SensorView::first(reading, level)),
            };
            // Copied out of the lock, and only for subscribers.
            let view = (self.tx.receiver_count() > 0).then(|| view.clone());
            let trail = match board.trails.get_mut(&reading.sensor_id) {
                Some(t) => t,
                None => board.trails.entry(reading.sensor_id.clone()).or_default(),
            };
            Trail::push(trail, reading.timestamp, reading.temperature);
            view
        };
        if let Some(view) = view {
            self.send(|| LiveEvent::Reading(view));
        }
    }

    /// An alert, sent as the JSON it carries (the same bytes as on the alerts topic; an
    /// alert event's data is the alert itself, [`LiveEvent::Alert`]).
    pub fn publish_alert(&self, encoded: &EncodedAlert) {
        let alert = encoded.alert();
        {
            let mut board = self.board.write().expect("live board lock");
            if alert.kind == AlertKind::Offline
                && let Some(view) = board.sensors.get_mut(&alert.sensor_id)
            {
                view.offline = alert.state != AlertState::Cleared;
            }
            board.recent_alerts.push_front(alert.clone());
            board.recent_alerts.truncate(RECENT_ALERTS);
        }
        self.send_frame(|outbox| {
            outbox.push(LiveEvent::ALERT, |frames| {
                frames.extend_from_slice(encoded.json().as_bytes())
            });
        });
    }

    /// A window result (first or revised); only streamed, the overview does not keep it.
    pub fn publish_window(&self, window: &SensorWindow) {
        self.send(|| LiveEvent::Window(window.clone()));
    }

    /// An acknowledgement, sent to every open page at once (it does not come from the
    /// pipeline task, which flushes its own events).
    pub fn publish_ack(&self, ack: &AlertAck) {
        self.send(|| LiveEvent::Acknowledged(ack.clone()));
        self.flush();
    }

    /// The latest state of one sensor, if it reported since the server started.
    pub fn sensor(&self, sensor_id: &str) -> Option<SensorView> {
        self.board.read().expect("live board lock").sensors.get(sensor_id).cloned()
    }

    /// The overview: every sensor, the recent alerts, and the trails of `charted` (of the
    /// most alarming sensors when empty).
    pub fn snapshot(&self, charted: &[String]) -> Overview {
        let board = self.board.read().expect("live board lock");
        let mut chosen: Vec<&SensorView> = if charted.is_empty() {
            board.sensors.values().collect()
        } else {
            charted.iter().filter_map(|id| board.sensors.get(id)).collect()
        };
        if charted.is_empty() {
            chosen.sort_by(|a, b| {
                b.level.cmp(&a.level).then(b.temperature.total_cmp(&a.temperature))
            });
        }
        let trails = chosen
            .into_iter()
            .take(MAX_CHARTED)
            .map(|v| Trail {
                sensor_id: v.sensor_id.clone(),
                points: board
                    .trails
                    .get(&v.sensor_id)
                    .map(|t| t.iter().copied().collect())
                    .unwrap_or_default(),
            })
            .collect();
        Overview {
            trails,
            defaults: Default::default(),
            sensors: board.sensors.values().cloned().collect(),
            recent_alerts: board.recent_alerts.iter().cloned().collect(),
            readings_seen: board.readings_seen,
        }
    }

    /// Follows the events published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription { rx: self.tx.subscribe(), next: None }
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// The hub is what the pipeline's run loop publishes to.
impl LiveView for LiveHub {
    fn publish_reading(&self, reading: &Reading, level: Level) {
        LiveHub::publish_reading(self, reading, level);
    }

    fn publish_window(&self, window: &SensorWindow) {
        LiveHub::publish_window(self, window);
    }

    fn publish_alert(&self, alert: &EncodedAlert) {
        LiveHub::publish_alert(self, alert);
    }

    fn has_unsent(&self) -> bool {
        LiveHub::has_unsent(self)
    }

    fn flush(&self) {
        LiveHub::flush(self);
    }
}

/// One page following the live stream.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Batch>,
    /// The number of the next event expected, once one batch arrived.
    next: Option<u64>,
}

/// What a subscriber writes next: SSE frames, and how many events it skipped before them.
#[derive(Debug)]
pub struct Delivery {
    /// Events missed since the last delivery (the subscriber fell behind); the frames then
    /// start with a `lagged` event carrying this number.
    pub missed: u64,
    pub frames: Bytes,
}

impl Subscription {
    /// The next frames to write to the client, or `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.recv().await {
                Ok(batch) => return Some(self.deliver(batch)),
                // The next batch received tells how many events were skipped.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn deliver(&mut self, batch: Batch) -> Delivery {
        let missed = self.next.map_or(0, |next| batch.first.saturating_sub(next));
        self.next = Some(batch.first + batch.count);
        if missed == 0 {
            return Delivery { missed, frames: batch.frames };
        }
        let mut frames = format!("event: {}\ndata: {missed}\n\n", LiveEvent::LAGGED).into_bytes();
        frames.extend_from_slice(&batch.frames);
        Delivery { missed, frames: frames.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::TRAIL_POINTS;

    #[test]
    fn trails_keep_one_point_per_step_and_a_bounded_length() {
        let mut t = VecDeque::new();
        for i in 0..1000 {
            Trail::push(&mut t, f64::from(i) * 0.5, f64::from(i));
        }
        assert_eq!(t.len(), TRAIL_POINTS);
        assert!(t.iter().zip(t.iter().skip(1)).all(|(a, b)| b.0 - a.0 >= 2.0));
        Trail::push(&mut t, 0.0, 1.0);
        assert_eq!(t.back().unwrap().0, 498.0, "an older reading is not appended");
    }

    fn reading(s: &str, t: f64, temp: f64) -> Reading {
        Reading { timestamp: t, sensor_id: s.into(), temperature: temp }
    }

    /// The SSE frames of a delivery as (event name, data) pairs, checking the framing.
    fn frames(delivery: &Delivery) -> Vec<(String, String)> {
        let text = std::str::from_utf8(&delivery.frames).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.trim_end_matches("\n\n")
            .split("\n\n")
            .map(|frame| {
                let (event, data) = frame.split_once('\n').unwrap();
                let event = event.strip_prefix("event: ").unwrap();
                let data = data.strip_prefix("data: ").unwrap();
                assert!(!data.contains('\n'), "one data line: {frame:?}");
                (event.to_owned(), data.to_owned())
            })
            .collect()
    }

    fn next_now(sub: &mut Subscription) -> Option<Delivery> {
        use std::future::Future;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(sub.next()).poll(&mut cx) {
            std::task::Poll::Ready(delivery) => delivery,
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn snapshot_keeps_latest_per_sensor_with_previous_value() {
        let hub = LiveHub::new(8);
        hub.publish_reading(&reading("b", 1.0, 20.0), Level::Normal);
        hub.publish_reading(&reading("a", 1.0, 30.0), Level::Normal);
        hub.publish_reading(&reading("a", 2.0, 85.0), Level::High);
        let snap = hub.snapshot(&[]);
        assert_eq!(snap.readings_seen, 3);
        // The hottest sensor is charted first; its second reading came too soon.
        let charted: Vec<_> = snap.trails.iter().map(|t| t.sensor_id.as_str()).collect();
        assert_eq!(charted, ["a", "b"]);
        assert_eq!(snap.trails[0].points, [(1.0, 30.0)]);
        let only_b = hub.snapshot(&["b".into(), "nope".into()]);
        assert_eq!(only_b.trails.len(), 1);
        assert_eq!(only_b.trails[0].sensor_id, "b");
        let ids: Vec<_> = snap.sensors.iter().map(|s| s.sensor_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(snap.sensors[0].temperature, 85.0);
        assert_eq!(snap.sensors[0].previous, Some(30.0));
        assert_eq!(snap.sensors[0].level, Level::High);
    }

    #[test]
    fn an_offline_alert_marks_the_sensor_until_it_clears() {
        let hub = LiveHub::new(8);
        let mut sub = hub.subscribe();
        hub.publish_reading(&reading("a", 1.0, 20.0), Level::Normal);
        let offline = |state| Alert {
            alert_id: "offline-a-1000".into(),
            kind: AlertKind::Offline,
            severity: Level::High,
            state,
            sensor_id: "a".into(),
            timestamp: 31.0,
            temperature: 20.0,
            threshold: 30.0,
            window: None,
        };
        hub.publish_alert(&offline(AlertState::Open).into());
        assert!(hub.sensor("a").unwrap().offline);
        hub.publish_alert(&offline(AlertState::Cleared).into());
        assert!(!hub.sensor("a").unwrap().offline);
        hub.flush();
        let sent = frames(&next_now(&mut sub).expect("one batch"));
        let events: Vec<LiveEvent> =
            sent.iter().skip(1).map(|(_, data)| serde_json::from_str(data).unwrap()).collect();
        assert_eq!(sent[1].0, "alert");
        assert_eq!(
            events,
            [
                LiveEvent::Alert(offline(AlertState::Open)),
                LiveEvent::Alert(offline(AlertState::Cleared))
            ]
        );
    }

    #[test]
    fn events_wait_for_a_flush_and_go_out_together_as_sse_frames() {
        let hub = LiveHub::new(8);
        let mut sub = hub.subscribe();
        hub.publish_reading(&reading("a", 1.0, 20.0), Level::Normal);
        hub.publish_reading(&reading("b", 2.0, 91.5), Level::Critical);
        assert!(hub.has_unsent());
        assert!(next_now(&mut sub).is_none(), "nothing is sent before the flush");
        hub.flush();
        assert!(!hub.has_unsent());
        let delivery = next_now(&mut sub).expect("one batch");
        assert_eq!(delivery.missed, 0);
        let frames = frames(&delivery);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|(event, _)| event == "reading"));
        let b: SensorView = serde_json::from_str(&frames[1].1).unwrap();
        assert_eq!((b.sensor_id.as_str(), b.temperature, b.level), ("b", 91.5, Level::Critical));
        hub.flush();
        assert!(next_now(&mut sub).is_none(), "an empty flush sends nothing");
    }

    #[test]
    fn a_full_batch_goes_out_without_a_flush_and_acks_go_out_at_once() {
        let hub = LiveHub::new(64);
        let mut sub = hub.subscribe();
        let mut published: u32 = 0;
        let full = loop {
            hub.publish_reading(&reading("a", f64::from(published), 20.0), Level::Normal);
            published += 1;
            assert!(published < 1000, "a batch is bounded");
            if let Some(delivery) = next_now(&mut sub) {
                break delivery;
            }
        };
        assert!(full.frames.len() >= BATCH_BYTES);
        assert_eq!(frames(&full).len(), published as usize, "every event published so far");
        assert!(!hub.has_unsent());
        let ack = AlertAck { alert_id: "x".into(), by: "ops".into(), at: 5.0 };
        hub.publish_ack(&ack);
        let acked = frames(&next_now(&mut sub).expect("sent without a flush"));
        assert_eq!(acked, [("acknowledged".to_owned(), serde_json::to_string(&ack).unwrap())]);
    }

    #[test]
    fn a_slow_subscriber_skips_ahead_and_is_told_how_many_events_it_missed() {
        let hub = LiveHub::new(4);
        let mut sub = hub.subscribe();
        // Ten batches of three events; the subscriber reads the first, then falls behind.
        for i in 0..10 {
            for j in 0..3 {
                hub.publish_reading(&reading("a", f64::from(i * 3 + j), 20.0), Level::Normal);
            }
            hub.flush();
            if i == 0 {
                assert_eq!(frames(&next_now(&mut sub).unwrap()).len(), 3);
            }
        }
        // Batches 1..=5 were overwritten: 15 events missed, then batch 6 (events 18..21).
        let delivery = next_now(&mut sub).unwrap();
        assert_eq!(delivery.missed, 15);
        let frames = frames(&delivery);
        assert_eq!(frames[0], ("lagged".to_owned(), "15".to_owned()));
        let view: SensorView = serde_json::from_str(&frames[1].1).unwrap();
        assert_eq!(view.timestamp, 18.0);
        assert_eq!(frames.len(), 4);
        // Unwatched, the hub still keeps the board and makes no events.
        drop(sub);
        hub.publish_reading(&reading("a", 40.0, 25.0), Level::Normal);
        assert!(!hub.has_unsent());
        assert_eq!(hub.sensor("a").unwrap().temperature, 25.0);
    }
}
