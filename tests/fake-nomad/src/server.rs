//! The HTTP API of the fake: the endpoints nomad-alloc-table uses, with Nomad's status codes,
//! error bodies, headers, ACL rules and blocking-query semantics (`index`/`wait`, a 300 s cap
//! plus jitter, wake only when the index passes `index`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::json;
use crate::model::{Cluster, Policy};

/// The longest a blocking query may wait (`MaxBlockingRPCQueryTime`).
const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);

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
    pub stream: watch::Sender<crate::stream::StreamSettings>,
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
            stream: watch::Sender::new(crate::stream::StreamSettings::default()),
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
        self.count_bytes(crate::stream::ROUTE, bytes);
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
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/status/leader", get(status_leader))
        .route("/v1/nodes", get(nodes))
        .route("/v1/node/{node_id}", get(node))
        .route("/v1/node/{node_id}/allocations", get(node_allocations))
        .route("/v1/allocation/{alloc_id}", get(allocation))
        .route("/v1/allocations", get(allocations))
        .route("/v1/event/stream", get(crate::stream::event_stream))
        .route(
            "/v1/client/allocation/{alloc_id}/signal",
            post(signal_allocation)
                .put(signal_allocation)
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
    fn at_index(mut self, index: u64) -> ApiError {
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

/// The caller's policy, or the response to send when its token is unknown. With ACLs disabled
/// everything is allowed; without a token the anonymous policy (nothing) applies.
pub(crate) fn policy(cluster: &Cluster, headers: &HeaderMap) -> Result<Policy, ApiError> {
    if !cluster.acl_enabled {
        return Ok(Policy::management());
    }
    let from_header = headers.get("x-nomad-token").and_then(|v| v.to_str().ok());
    let from_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match from_header.or(from_bearer).filter(|t| !t.is_empty()) {
        None => Ok(Policy::default()),
        Some(secret) => cluster
            .tokens
            .get(secret)
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "ACL token not found")),
    }
}

/// `index` and `wait`, parsed the way Nomad's `parseWait` does.
struct Blocking {
    min_index: u64,
    wait: Duration,
    /// `stale`: any server may answer.
    stale: bool,
}

#[derive(Deserialize)]
struct BlockingQuery {
    index: Option<String>,
    wait: Option<String>,
    stale: Option<String>,
}

impl Blocking {
    fn parse(query: &BlockingQuery) -> Result<Blocking, ApiError> {
        let min_index = match &query.index {
            None => 0,
            Some(raw) => raw
                .parse::<u64>()
                .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Invalid index"))?,
        };
        let wait = match &query.wait {
            None => MAX_BLOCKING_WAIT,
            Some(raw) => parse_go_duration(raw)
                .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "Invalid wait time"))?,
        };
        // `parseConsistency`: a bare `stale` allows it, else the value must parse as a Go bool.
        let stale = match query.stale.as_deref() {
            None => false,
            Some("") => true,
            Some(raw) => parse_go_bool(raw).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "Expect `true` or `false` for `stale` query string parameter",
                )
            })?,
        };
        Ok(Blocking {
            min_index,
            wait: wait.min(MAX_BLOCKING_WAIT),
            stale,
        })
    }
}

/// Parses a bool as Go's `strconv.ParseBool` does.
fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses a Go duration such as `300ms`, `5s` or `1m30s`.
pub fn parse_go_duration(raw: &str) -> Option<Duration> {
    if raw == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = raw;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(number * scale);
    }
    Some(total)
}

/// Answers a read (after parsing `index`, `wait` and `stale`), blocking until its index passes
/// `index` or `wait` (plus up to wait/16 of jitter) runs out. `read` returns the index and
/// body, or an error response. A `stale` read is answered by the [`Follower`] when one is set.
async fn blocking_read<F, A>(shared: &Shared, query: &BlockingQuery, read: F) -> Response
where
    F: Fn(&Cluster) -> Result<A, ApiError>,
    A: Into<Answer>,
{
    let blocking = match Blocking::parse(query) {
        Ok(b) => b,
        Err(error) => return error.into_response(),
    };
    let jitter = blocking.wait.mul_f64(fastrand::f64() / 16.0);
    let deadline = tokio::time::Instant::now() + blocking.wait + jitter;
    let mut changes = shared.index.subscribe();
    loop {
        let follower = if blocking.stale {
            shared
                .follower
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        } else {
            None
        };
        let answer = match &follower {
            Some(follower) => read(&follower.frozen),
            None => read(&shared.cluster()),
        };
        let timed_out = tokio::time::Instant::now() >= deadline;
        let Answer {
            index,
            body,
            next_token,
        } = match answer {
            Ok(answer) => answer.into(),
            // Nomad's RPC blocks on the index first; the handler makes the 404 afterwards.
            Err(error)
                if !timed_out
                    && blocking.min_index != 0
                    && error.index.is_some_and(|index| index <= blocking.min_index) =>
            {
                if tokio::time::timeout_at(deadline, changes.changed())
                    .await
                    .is_ok_and(|changed| changed.is_err())
                {
                    return error.into_response();
                }
                continue;
            }
            Err(error) => return error.into_response(),
        };
        let respond = || {
            let mut response = match &follower {
                Some(f) => json_response_from(index, &body, f.known_leader, f.last_contact),
                None => json_response(index, &body),
            };
            if let Some(token) = next_token
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok())
            {
                response.headers_mut().insert("x-nomad-nexttoken", token);
            }
            response
        };
        let satisfied = blocking.min_index == 0 || index > blocking.min_index;
        if satisfied || timed_out {
            return respond();
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_ok_and(|changed| changed.is_err())
        {
            // The fake is shutting down.
            return respond();
        }
    }
}

/// What a read answers: its index, its body and, for a page of a paginated list, the token of
/// the next page (`X-Nomad-NextToken`).
pub(crate) struct Answer {
    index: u64,
    body: Value,
    next_token: Option<String>,
}

impl From<(u64, Value)> for Answer {
    fn from((index, body): (u64, Value)) -> Answer {
        Answer {
            index,
            body,
            next_token: None,
        }
    }
}

/// The leader's answer: it knows itself, and its last contact is 0.
fn json_response(index: u64, body: &Value) -> Response {
    json_response_from(index, body, true, Duration::ZERO)
}

fn json_response_from(
    index: u64,
    body: &Value,
    known_leader: bool,
    last_contact: Duration,
) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).expect("JSON values serialize"),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-nomad-index", HeaderValue::from(index));
    headers.insert(
        "x-nomad-knownleader",
        HeaderValue::from_static(if known_leader { "true" } else { "false" }),
    );
    headers.insert(
        "x-nomad-lastcontact",
        HeaderValue::from(u64::try_from(last_contact.as_millis()).unwrap_or(u64::MAX)),
    );
    response
}

async fn agent_self(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    let cluster = shared.cluster();
    match policy(&cluster, &headers) {
        Err(error) => error.into_response(),
        Ok(p) if !(p.management || p.agent_read) => ApiError::forbidden().into_response(),
        Ok(_) => {
            let body =
                serde_json::to_vec(&json::agent_self(&cluster)).expect("JSON values serialize");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

async fn node(
    State(shared): State<AppState>,
    Path(node_id): Path<String>,
    Query(query): Query<BlockingQuery>,
    headers: HeaderMap,
) -> Response {
    blocking_read(&shared, &query, |cluster| {
        let p = policy(cluster, &headers)?;
        if !p.allows_node_read() {
            return Err(ApiError::forbidden());
        }
        let node = cluster
            .nodes
            .get(&node_id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "node not found"))?;
        Ok((node.modify_index, json::node(node)))
    })
    .await
}

/// `GET /v1/nodes`: every node as a `NodeListStub`, by ID (ACL `node:read`); the index is the
/// nodes table's.
async fn nodes(
    State(shared): State<AppState>,
    Query(query): Query<BlockingQuery>,
    headers: HeaderMap,
) -> Response {
    blocking_read(&shared, &query, |cluster| {
        let p = policy(cluster, &headers)?;
        if !p.allows_node_read() {
            return Err(ApiError::forbidden());
        }
        let stubs = cluster.nodes.values().map(json::node_stub).collect();
        Ok((cluster.nodes_table_index, Value::Array(stubs)))
    })
    .await
}

/// `GET /v1/status/leader`: the leader's RPC address as a JSON string; no ACL needed.
async fn status_leader() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "\"127.0.0.1:4647\"",
    )
        .into_response()
}

async fn node_allocations(
    State(shared): State<AppState>,
    Path(node_id): Path<String>,
    Query(query): Query<BlockingQuery>,
    headers: HeaderMap,
) -> Response {
    blocking_read(&shared, &query, |cluster| {
        let p = policy(cluster, &headers)?;
        if !p.allows_node_read() {
            return Err(ApiError::forbidden());
        }
        // Allocations in namespaces the token cannot read are silently dropped.
        let allocs: Vec<Value> = cluster
            .node_allocations(&node_id)
            .into_iter()
            .filter(|a| p.allows_namespace(&a.namespace, "read-job"))
            .map(|a| json::allocation(a, true))
            .collect();
        Ok((
            cluster.node_allocations_index(&node_id),
            Value::Array(allocs),
        ))
    })
    .await
}

async fn allocation(
    State(shared): State<AppState>,
    Path(alloc_id): Path<String>,
    Query(query): Query<BlockingQuery>,
    headers: HeaderMap,
) -> Response {
    blocking_read(&shared, &query, |cluster| {
        let p = policy(cluster, &headers)?;
        // Not found: the RPC answers with the allocs table's index.
        let alloc = cluster.allocations.get(&alloc_id).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "alloc not found")
                .at_index(cluster.allocs_table_index)
        })?;
        if !p.allows_namespace(&alloc.namespace, "read-job") {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Unknown allocation \"{alloc_id}\""),
            ));
        }
        Ok((alloc.modify_index, json::allocation(alloc, true)))
    })
    .await
}

/// `AllocSignalRequest`'s body.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignalBody {
    #[serde(default)]
    task: String,
    #[serde(default)]
    signal: String,
}

/// `POST /v1/client/allocation/:id/signal`: needs `alloc-lifecycle` in the allocation's
/// namespace; an empty `Task` signals every task, as Nomad does.
async fn signal_allocation(
    State(shared): State<AppState>,
    Path(alloc_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: SignalBody = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to decode body: {e}"),
            );
        }
    };
    let cluster = shared.cluster();
    let policy = match policy(&cluster, &headers) {
        Ok(policy) => policy,
        Err(error) => return error.into_response(),
    };
    let Some(alloc) = cluster.allocations.get(&alloc_id) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("Unknown allocation \"{alloc_id}\""),
        );
    };
    if !policy.allows_namespace(&alloc.namespace, "alloc-lifecycle") {
        return ApiError::forbidden().into_response();
    }
    let tasks: Vec<String> = alloc
        .job
        .task_group(&alloc.task_group)
        .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    if !request.task.is_empty() && !tasks.contains(&request.task) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Failed to signal task: {}, err: task not found",
                request.task
            ),
        );
    }
    let signalled = if request.task.is_empty() {
        tasks
    } else {
        vec![request.task]
    };
    // The client's task runner refuses a task without a driver handle (ErrTaskNotRunning).
    let not_running = signalled.iter().find(|task| {
        alloc
            .task_states
            .get(*task)
            .is_none_or(|state| state.state != "running")
    });
    if let Some(task) = not_running {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to signal task: {task}, err: Task not running"),
        );
    }
    let mut signals = shared.signals.lock().unwrap_or_else(|e| e.into_inner());
    for task in signalled {
        signals.push(SignalRecord {
            alloc_id: alloc_id.clone(),
            task,
            signal: request.signal.clone(),
        });
    }
    StatusCode::OK.into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    index: Option<String>,
    wait: Option<String>,
    stale: Option<String>,
    namespace: Option<String>,
    prefix: Option<String>,
    filter: Option<String>,
    task_states: Option<bool>,
    resources: Option<bool>,
    per_page: Option<String>,
    next_token: Option<String>,
}

/// One page of `items` (already in the list's order), as Nomad's paginator cuts it: items whose
/// token sorts before `next_token` are skipped, `per_page` (0: all) are kept, and the token of
/// the item after them is the next page's. `token` gives an item's token and compares it with
/// the target.
fn page<T>(
    items: Vec<T>,
    per_page: usize,
    next_token: Option<&str>,
    token: impl Fn(&T, &str) -> (String, std::cmp::Ordering),
) -> (Vec<T>, Option<String>) {
    let mut kept = Vec::new();
    let mut found = next_token.is_none_or(str::is_empty);
    for item in items {
        let (item_token, compared) = token(&item, next_token.unwrap_or_default());
        if !found && compared == std::cmp::Ordering::Less {
            continue;
        }
        found = true;
        if per_page != 0 && kept.len() == per_page {
            return (kept, Some(item_token));
        }
        kept.push(item);
    }
    (kept, None)
}

/// `CreateIndexAndIDTokenizer`: `<CreateIndex>.<ID>`, compared by index as a number, then by ID.
fn create_index_and_id_token(
    create_index: u64,
    id: &str,
    target: &str,
) -> (String, std::cmp::Ordering) {
    let token = format!("{create_index}.{id}");
    let compared = match target.split_once('.') {
        Some((index, target_id)) => match index.parse::<u64>() {
            Ok(index) => create_index.cmp(&index).then_with(|| id.cmp(target_id)),
            Err(_) => token.as_str().cmp(target),
        },
        None => token.as_str().cmp(target),
    };
    (token, compared)
}

async fn allocations(
    State(shared): State<AppState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let filter = match query.filter.as_deref().map(Filter::parse).transpose() {
        Ok(f) => f,
        Err(message) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("failed to read filter expression: {message}"),
            );
        }
    };
    let namespace = query
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let per_page = match query.per_page.as_deref().map(str::parse::<i32>).transpose() {
        Ok(per_page) => usize::try_from(per_page.unwrap_or(0)).unwrap_or(0),
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "Expect a number for `per_page` query string parameter",
            );
        }
    };
    let blocking = BlockingQuery {
        index: query.index.clone(),
        wait: query.wait.clone(),
        stale: query.stale.clone(),
    };
    blocking_read(&shared, &blocking, |cluster| {
        let p = policy(cluster, &headers)?;
        if namespace != "*" && !p.allows_namespace(&namespace, "read-job") {
            return Err(ApiError::forbidden());
        }
        let mut matching: Vec<_> = cluster
            .allocations
            .values()
            .filter(|a| namespace == "*" || a.namespace == namespace)
            .filter(|a| p.allows_namespace(&a.namespace, "read-job"))
            .filter(|a| {
                query
                    .prefix
                    .as_ref()
                    .is_none_or(|pre| a.id.starts_with(pre))
            })
            .filter(|a| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&json::allocation(a, true)))
            })
            .collect();
        let (matching, next_token) = if query.prefix.is_some() {
            matching.sort_by(|a, b| a.id.cmp(&b.id));
            // `IDTokenizer`.
            page(
                matching,
                per_page,
                query.next_token.as_deref(),
                |a, target| (a.id.clone(), a.id.as_str().cmp(target)),
            )
        } else {
            matching.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
            page(
                matching,
                per_page,
                query.next_token.as_deref(),
                |a, target| create_index_and_id_token(a.create_index, &a.id, target),
            )
        };
        let stubs = matching
            .into_iter()
            .map(|a| {
                json::allocation_stub(
                    a,
                    query.task_states.unwrap_or(true),
                    query.resources.unwrap_or(false),
                )
            })
            .collect();
        Ok(Answer {
            index: cluster.allocs_table_index,
            body: Value::Array(stubs),
            next_token,
        })
    })
    .await
}

/// The subset of go-bexpr the fake understands: `Selector == "value"` and `!=`, joined by
/// `and`, evaluated against the full allocation (as Nomad's paginator does).
struct Filter {
    clauses: Vec<(Vec<String>, bool, String)>,
}

impl Filter {
    fn parse(expression: &str) -> Result<Filter, String> {
        let clauses = expression
            .split(" and ")
            .map(|clause| {
                let (selector, equal, value) = if let Some((s, v)) = clause.split_once("!=") {
                    (s, false, v)
                } else if let Some((s, v)) = clause.split_once("==") {
                    (s, true, v)
                } else {
                    return Err(format!("unsupported expression {clause:?}"));
                };
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("value {value:?} must be a quoted string"))?;
                let path = selector.trim().split('.').map(str::to_owned).collect();
                Ok((path, equal, value.to_owned()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Filter { clauses })
    }

    fn matches(&self, alloc: &Value) -> bool {
        self.clauses.iter().all(|(path, equal, expected)| {
            let found = path
                .iter()
                .try_fold(alloc, |v, key| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default();
            (found == expected) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_nomads_paginator() {
        let items: Vec<(u64, &str)> = vec![(5, "b"), (5, "c"), (12, "a"), (102, "a")];
        let token =
            |item: &(u64, &str), target: &str| create_index_and_id_token(item.0, item.1, target);
        let (first, next) = page(items.clone(), 2, None, token);
        assert_eq!(first, [(5, "b"), (5, "c")]);
        assert_eq!(next.as_deref(), Some("12.a"));
        // "102" sorts after "12" as a number, not as text.
        let (second, next) = page(items.clone(), 2, next.as_deref(), token);
        assert_eq!(second, [(12, "a"), (102, "a")]);
        assert_eq!(next, None);
        let (all, next) = page(items, 0, None, token);
        assert_eq!((all.len(), next), (4, None));
    }

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn filters_match_nested_fields() {
        let f = Filter::parse(r#"NodeID == "n1" and Job.ParentID != """#).expect("parses");
        let alloc = serde_json::json!({"NodeID": "n1", "Job": {"ParentID": "p"}});
        assert!(f.matches(&alloc));
        let other = serde_json::json!({"NodeID": "n1", "Job": {"ParentID": ""}});
        assert!(!f.matches(&other));
        assert!(Filter::parse("NodeID matches x").is_err());
    }
}
