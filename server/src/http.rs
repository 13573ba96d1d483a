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
//!   without one, a connection that never finishes its head is held forever).

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, error};

/// The most a connection buffers for its client beyond what the socket takes (hyper's
/// minimum is 8 KiB; a live-stream batch is at most ~16 KiB).
const MAX_BUF: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` changes (it is sent `true` once, to stop),
/// then lets every connection finish its response (live streams end by themselves at
/// shutdown) and returns.
pub async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_BUF).timer(TokioTimer::new());
    // Every connection holds a receiver; the sender's `closed` says when all are gone.
    let (all_closed, open) = watch::channel(());
    loop {
        let tcp = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            debug!("cannot set TCP_NODELAY on a connection: {e}");
        }
        let connection =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone()));
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
