//! The HTTP server: accepts connections and serves the router on each over HTTP/1.1.
//!
//! It is `axum::serve` with the settings that function does not expose, all of which matter
//! for a server that holds many long-lived live streams:
//! - what a connection may queue for a slow client is [`MAX_BUF`] (hyper's default, up to 16
//!   body chunks or ~400 KiB, let 1 000 lagging live-stream clients hold ~215 MB during a
//!   full-speed drain);
//! - `TCP_NODELAY`: live events are small writes, and with Nagle's algorithm one waited for
//!   the client's delayed ACK, 40 ms late, whenever the previous one was unacknowledged
//!   (measured: 4 % of readings);
//! - a client gets 30 s to send its request head (hyper's default once it has a timer;
//!   without one, a connection that never finishes its head is held forever);
//! - each request carries its client's address ([`ClientAddr`]), which login throttling
//!   counts failures by;
//! - connections are capped below the process's file-descriptor limit ([`max_connections`]):
//!   beyond the cap a client gets a 503 at once. 1 100 open live streams against
//!   `ulimit -n 1024` otherwise took every descriptor, and the archive could no longer open
//!   a file (nor the index, nor Kafka a socket).

use std::time::Duration;

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use thermoalert_app::auth::ClientAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;
use tracing::{debug, error};

use crate::telemetry;

/// The most a connection buffers for its client beyond what the socket takes (hyper's
/// minimum is 8 KiB; a live-stream batch is at most ~16 KiB).
const MAX_BUF: usize = 64 * 1024;

/// File descriptors kept for everything but HTTP connections: archive files, the index and
/// its journal, Kafka's sockets, the HDFS client's JVM.
const RESERVED_FDS: u64 = 256;
/// The fewest connections served whatever the limit.
const MIN_CONNECTIONS: usize = 16;

/// How many connections may be open at once: the file-descriptor limit (raised first to its
/// hard maximum, as far as the process may) less [`RESERVED_FDS`].
pub fn max_connections() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct handed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024 - RESERVED_FDS as usize;
        }
        let wanted = limit.rlim_max.min(1 << 20);
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = wanted;
            }
        }
    }
    let cap = limit.rlim_cur.saturating_sub(RESERVED_FDS);
    usize::try_from(cap).unwrap_or(usize::MAX).max(MIN_CONNECTIONS)
}

/// What a connection beyond the cap is told before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Retry-After: 5\r\nConnection: close\r\nContent-Length: 64\r\n\r\n\
{\"error\":\"too many connections to this server; try again later\"}";

/// Serves `app` on `listener` until `shutdown` changes (it is sent `true` once, to stop),
/// then lets every connection finish its response (live streams end by themselves at
/// shutdown) and returns. At most `max_connections` are open at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_BUF).timer(TokioTimer::new());
    // Every connection holds a receiver; the sender's `closed` says when all are gone.
    let (all_closed, open) = watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // Every connection holds a clone of `open`: their number is the receivers' but one.
        if all_closed.receiver_count() > max_connections {
            telemetry::refused_connection();
            tokio::spawn(async move {
                let mut tcp = tcp;
                let answer = tokio::io::AsyncWriteExt::write_all(&mut tcp, TOO_MANY);
                let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
            });
            continue;
        }
        if let Err(e) = tcp.set_nodelay(true) {
            debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
        let client = ClientAddr(peer.ip());
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(client);
            app.clone().call(request)
        });
        let connection = http.serve_connection(TokioIo::new(tcp), service);
        let (mut shutdown, open) = (shutdown.clone(), open.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = shutdown.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                debug!("connection ended: {e}");
            }
            drop(open);
        });
    }
    drop(open);
    all_closed.closed().await;
}

/// A refused or reset connection is the client's business; anything else (out of file
/// descriptors, say) is logged and waited out, as hyper used to.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    error!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
