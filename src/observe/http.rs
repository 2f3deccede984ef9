//! `run`'s HTTP endpoints (`--listen`): `/metrics` (Prometheus text format 0.0.4), `/healthz`
//! (200 while the loop runs) and `/readyz` (200 when ready, else 503 with the reason in one
//! line). Served until the stop is broadcast.
//!
//! The table must never depend on the listener's clients, so the listener is bounded: at most
//! [`MAX_CONNECTIONS`] connections are accepted at once (further ones wait in the kernel's
//! backlog of `LISTEN_BACKLOG` and take no descriptor of the process); a connection must send each request head
//! within [`HEADER_READ_TIMEOUT`] (slowloris, and idle keep-alive), and lives at most
//! [`CONNECTION_LIFETIME`] (a response that cannot be written is abandoned); a request head is
//! at most [`MAX_REQUEST_HEAD`] bytes. The anchors: Go's `ReadHeaderTimeout`, hyper's header
//! read timeout, Prometheus exporters' `--web.max-requests`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::observe::health::{Health, readiness};
use crate::observe::metrics::{self, Metrics};

/// Connections served at once. `run` itself needs a few dozen descriptors (the table, its
/// temporary file and directory, Nomad connections, the event stream, inotify, pidfds, the
/// runtime's own); with a soft limit as low as 256 open files this leaves most of them free.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a connection may take to send a request head, and to start the next one on a
/// kept-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may live, whatever it does: a scraper reconnects.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// The largest request head read: the endpoints take no body and no large header.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Connections the kernel completes and holds while [`MAX_CONNECTIONS`] are served (capped by
/// `net.core.somaxconn`); they take no descriptor of the process. Beyond it, clients' handshakes
/// wait.
const LISTEN_BACKLOG: u32 = 1024;
/// After a failed accept (descriptors exhausted elsewhere), wait this long before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {address} (--listen): {source}; pick a free address such as 127.0.0.1:9466"
)]
pub struct ListenError {
    address: SocketAddr,
    source: std::io::Error,
}

/// What the endpoints read.
#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    health: Health,
    listing_every: Duration,
}

/// A bound listener, ready to serve.
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Binds `address` at start, so that a bad address ends the program before it begins.
    pub async fn bind(address: SocketAddr) -> Result<Listener, ListenError> {
        let error = |source| ListenError { address, source };
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(error)?;
        socket.set_reuseaddr(true).map_err(error)?;
        socket.bind(address).map_err(error)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(error)?;
        Ok(Listener { listener })
    }

    /// Serves the endpoints until `stop` is cancelled.
    pub async fn serve(
        self,
        metrics: Arc<Metrics>,
        health: Health,
        listing_every: Duration,
        stop: CancellationToken,
    ) {
        let address = self.listener.local_addr().ok();
        info!(address = ?address, "serving /metrics, /healthz and /readyz");
        let router = Router::new()
            .route("/metrics", get(metrics_endpoint))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(Endpoints {
                metrics: metrics.clone(),
                health,
                listing_every,
            });
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = match permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    metrics.listener_full.inc();
                    let Some(Ok(permit)) = stop
                        .run_until_cancelled(permits.clone().acquire_owned())
                        .await
                    else {
                        return;
                    };
                    permit
                }
            };
            let Some(accepted) = stop.run_until_cancelled(self.listener.accept()).await else {
                return;
            };
            match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(
                        stream,
                        router.clone(),
                        permit,
                        metrics.clone(),
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    warn!(error = %e, "cannot accept a connection on the listener");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }
    }
}

/// Serves one connection within the listener's bounds; `permit` is its place among the
/// [`MAX_CONNECTIONS`].
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    metrics.listener_open.inc();
    let service = TowerToHyperService::new(router);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let reason = tokio::select! {
        served = connection.as_mut() => match served {
            Ok(()) => "done",
            Err(e) if e.is_timeout() => "timeout",
            Err(_) => "error",
        },
        () = tokio::time::sleep(CONNECTION_LIFETIME) => "timeout",
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(HEADER_READ_TIMEOUT, connection).await {
                Ok(_) => "done",
                Err(_) => "timeout",
            }
        }
    };
    metrics.listener_closed.with_label_values(&[reason]).inc();
    metrics.listener_open.dec();
    drop(permit);
}

async fn metrics_endpoint(State(endpoints): State<Endpoints>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        endpoints.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(endpoints): State<Endpoints>) -> Response {
    match readiness(
        &endpoints.health.snapshot(),
        Instant::now(),
        endpoints.listing_every,
    ) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}
