//! One browser following the live stream: the hub's batches of ready-made SSE frames as they
//! come, a keep-alive comment when the stream is idle, and the end of the stream when the
//! server shuts down or, when reads need a login, when the session that opened it ends (the
//! browser reconnects by itself, and is then asked to log in).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::{LiveHub, Subscription};
use crate::auth::Operators;

pub const SSE_CLIENTS: &str = "thermoalert_sse_clients";
pub const SSE_LAGGED: &str = "thermoalert_sse_lagged_events_total";

/// An SSE comment sent to an idle stream so that proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const COMMENT: &[u8] = b":\n\n";

/// The operator's session a live stream was opened with.
struct Session {
    cookie: Option<String>,
    /// Changes whenever any session ends.
    ends: watch::Receiver<u64>,
    operators: Operators,
}

impl Session {
    fn open(&self) -> bool {
        self.operators.operator(self.cookie.as_deref(), Instant::now()).is_some()
    }
}

/// One live-stream client, counted while it is connected.
pub struct Follower {
    sub: Subscription,
    shutdown: watch::Receiver<bool>,
    /// The session the stream needs, when reads need one.
    session: Option<Session>,
}

impl Follower {
    /// Follows `hub` until `shutdown` turns true; with `login` (the operators and the
    /// request's cookie header), only as long as that cookie's session lasts.
    pub fn new(
        hub: &LiveHub,
        shutdown: watch::Receiver<bool>,
        login: Option<(Operators, Option<String>)>,
    ) -> Follower {
        metrics::gauge!(SSE_CLIENTS).increment(1.0);
        let session = login.map(|(operators, cookie)| Session {
            cookie,
            ends: operators.session_ends(),
            operators,
        });
        Follower { sub: hub.subscribe(), shutdown, session }
    }

    /// The next frames to write; `None` once the stream ends. A client that fell behind
    /// skips ahead: the frames then start with a `lagged` event, and the events it missed
    /// are counted.
    pub async fn next(&mut self) -> Option<Bytes> {
        tokio::select! {
            _ = self.shutdown.changed() => None,
            Some(()) = async { self.session.as_mut()?.ends.changed().await.ok() } => {
                self.session.as_ref().is_some_and(Session::open).then(|| Bytes::from_static(COMMENT))
            }
            delivery = self.sub.next() => {
                let delivery = delivery?;
                if delivery.missed > 0 {
                    metrics::counter!(SSE_LAGGED).increment(delivery.missed);
                }
                Some(delivery.frames)
            }
            () = tokio::time::sleep(KEEP_ALIVE) => {
                // A session may also just expire.
                if self.session.as_ref().is_some_and(|s| !s.open()) {
                    return None;
                }
                Some(Bytes::from_static(COMMENT))
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        metrics::gauge!(SSE_CLIENTS).decrement(1.0);
    }
}
