//! `run`'s HTTP endpoints (`--listen`): `/metrics` (Prometheus text format 0.0.4), `/healthz`
//! (200 while the loop runs) and `/readyz` (200 when ready, else 503 with the reason in one
//! line). Served until the stop is broadcast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::observe::health::{Health, readiness};
use crate::observe::metrics::{self, Metrics};

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
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ListenError { address, source })?;
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
                metrics,
                health,
                listing_every,
            });
        if let Err(e) = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            warn!(error = %e, "the HTTP listener stopped");
        }
    }
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
