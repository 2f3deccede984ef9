//! The HTTP API of the fake: the endpoints nomad-alloc-table uses, with Nomad's status codes,
//! error bodies, headers, ACL rules and blocking-query semantics. This file holds the state the
//! handlers share, the router, the error answer and the middleware that records every request
//! and injects faults; one file per concern beside it: the ACL check ([`authorize`]), blocking
//! reads ([`blocking`]), the node and allocation reads ([`reads`]), the paginated allocation
//! listing ([`allocations`]), the client's signal endpoint ([`signal`]) and the event stream
//! ([`stream`]).

mod allocations;
mod authorize;
mod blocking;
mod reads;
mod signal;
pub mod stream;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::model::Cluster;

pub use blocking::parse_go_duration;

/// A failure the fake answers every API request with, until cleared.
#[derive(Clone, Debug)]
pub enum Fault {
    /// A status with a text/plain body, e.g. `500` `rpc error: No cluster leader`.
    Status(u16, String),
    /// `200 OK` with `application/json` but a body that is not valid JSON.
    MalformedJson,
    /// No response headers, ever: the request is held open (a stuck server or proxy).
    NoHeaders,
}

/// A server that lost touch with the leader and answers `stale=true` reads from its own frozen
/// state, with the headers Nomad's `setQueryMeta` sets on a follower. Reads without `stale`
/// are forwarded to the leader and answer from the live state.
#[derive(Clone, Debug)]
pub struct Follower {
    /// The state it stopped at.
    pub frozen: Cluster,
    /// `X-Nomad-KnownLeader`.
    pub known_leader: bool,
    /// `X-Nomad-LastContact`.
    pub last_contact: Duration,
}

/// One request the fake received, for tests that check what a client sent.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub token: Option<String>,
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// A signal the fake's client endpoint delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalRecord {
    pub alloc_id: String,
    pub task: String,
    pub signal: String,
}

/// State shared by the handlers and the test's handle.
pub struct Shared {
    pub cluster: Mutex<Cluster>,
    pub index: watch::Sender<u64>,
    pub fault: Mutex<Option<Fault>>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub stream: watch::Sender<stream::StreamSettings>,
    /// Signals accepted by `/v1/client/allocation/:id/signal`, oldest first.
    pub signals: Mutex<Vec<SignalRecord>>,
    /// Response body bytes sent, event stream included.
    pub bytes_sent: std::sync::atomic::AtomicU64,
    /// Response body bytes by route (`/v1/node/{node_id}/allocations`, …).
    pub bytes_by_route: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Event-stream bytes by subscription, numbered from 0 in the order they arrived.
    pub bytes_by_subscriber: Mutex<Vec<u64>>,
    /// Answers `stale=true` reads when set.
    pub follower: Mutex<Option<Follower>>,
}

impl Shared {
    pub fn new(cluster: Cluster) -> Shared {
        let index = cluster.index;
        Shared {
            cluster: Mutex::new(cluster),
            index: watch::Sender::new(index),
            fault: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            stream: watch::Sender::new(stream::StreamSettings::default()),
            bytes_sent: std::sync::atomic::AtomicU64::new(0),
            bytes_by_route: Mutex::new(std::collections::BTreeMap::new()),
            bytes_by_subscriber: Mutex::new(Vec::new()),
            signals: Mutex::new(Vec::new()),
            follower: Mutex::new(None),
        }
    }

    /// Counts `bytes` of a response body served on `route`.
    pub fn count_bytes(&self, route: &str, bytes: u64) {
        self.bytes_sent
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        *self
            .bytes_by_route
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.to_owned())
            .or_default() += bytes;
    }

    /// A new event-stream subscription: its number for [`Shared::count_subscriber_bytes`].
    pub fn new_subscriber(&self) -> usize {
        let mut subscribers = self
            .bytes_by_subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subscribers.push(0);
        subscribers.len() - 1
    }

    /// Counts `bytes` of event-stream body sent to subscription `subscriber`.
    pub fn count_subscriber_bytes(&self, subscriber: usize, bytes: u64) {
        self.count_bytes(stream::ROUTE, bytes);
        if let Some(count) = self
            .bytes_by_subscriber
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(subscriber)
        {
            *count += bytes;
        }
    }

    pub fn cluster(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type AppState = Arc<Shared>;

/// The router for all endpoints.
pub fn router(shared: AppState) -> Router {
    Router::new()
        .route("/v1/agent/self", get(reads::agent_self))
        .route("/v1/status/leader", get(reads::status_leader))
        .route("/v1/nodes", get(reads::nodes))
        .route("/v1/node/{node_id}", get(reads::node))
        .route(
            "/v1/node/{node_id}/allocations",
            get(reads::node_allocations),
        )
        .route("/v1/allocation/{alloc_id}", get(reads::allocation))
        .route("/v1/allocations", get(allocations::allocations))
        .route("/v1/event/stream", get(stream::event_stream))
        .route(
            "/v1/client/allocation/{alloc_id}/signal",
            post(signal::signal_allocation)
                .put(signal::signal_allocation)
                .fallback(|| async { text(StatusCode::METHOD_NOT_ALLOWED, "Invalid method") }),
        )
        .fallback(|| async { text(StatusCode::NOT_FOUND, "404 page not found") })
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            record_and_fault,
        ))
        .with_state(shared)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// An error answer: a status with Nomad's text/plain body.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: String,
    /// The index the RPC reported before the HTTP handler turned its empty answer into this
    /// error (a 404 for an object not found): a blocking query below it keeps blocking.
    index: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, body: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: body.into(),
            index: None,
        }
    }

    /// The error of an answer at `index`.
    pub(crate) fn at_index(mut self, index: u64) -> ApiError {
        self.index = Some(index);
        self
    }

    pub(crate) fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Permission denied")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        text(self.status, self.body)
    }
}

async fn record_and_fault(
    State(shared): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
        token: header_text("x-nomad-token"),
        authorization: header_text("authorization"),
        at: Instant::now(),
    };
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(recorded);
    let fault = shared
        .fault
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    match fault {
        None => {
            let response = next.run(request).await;
            // Streamed bodies (the event stream) count their own chunks.
            if let Some(size) = axum::body::HttpBody::size_hint(response.body()).exact() {
                shared.count_bytes(&route, size);
            }
            response
        }
        Some(Fault::Status(code, body)) => text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        ),
        Some(Fault::NoHeaders) => std::future::pending().await,
        Some(Fault::MalformedJson) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "[{\"ID\": \"3f1c\", \"Job\": {\"TaskGroups\": [",
        )
            .into_response(),
    }
}
