//! `GET /v1/event/stream`, as Nomad's `command/agent/event_endpoint.go` serves it: NDJSON frames of the
//! Allocation topic, `{}` heartbeats (first, then on an interval not reset by traffic), replay
//! from the bounded buffer with Nomad's index rules, `namespace=*` snapshotted at subscribe time,
//! read-job checked per namespace, and both transports: the old one (real 4xx before streaming,
//! a bare-text error tail) and the hijacked one of Nomad ≥ 1.11.2 (`200` at once, then EOF on any
//! error). Faults can be injected into live and new subscriptions.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::authorize::{authorize, token};
use super::{ApiError, Shared};
use crate::model::{Capability, Cluster, EventFrame};

/// The error tail the old transport appends when the server ends a subscription.
const CLOSED_BY_SERVER: &str = "subscription closed by server, client should resubscribe";

/// Which HTTP transport the endpoint uses (the old streaming one, or the hijacked connection of
/// newer Nomad).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Nomad ≤ 1.11.1: errors before streaming are real statuses, later ones a bare-text tail.
    Chunked,
    /// Nomad ≥ 1.11.2 and 2.x: `200` before any check, `Connection: close`, EOF on any error.
    Hijacked,
}

/// A fault that live and new subscriptions suffer until it is cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFault {
    /// The next frame is cut in the middle and the connection closes.
    CloseMidFrame,
    /// Nothing more is sent, not even heartbeats; the connection stays open.
    Stall,
    /// A line that is not JSON (a proxy's error page, say) is written, then streaming goes on.
    GarbageLine,
    /// Every subscription gets a line that is not JSON, until the fault is cleared (a proxy
    /// that keeps answering with an error page).
    GarbageLines,
    /// New subscriptions fail with this status (an EOF on the hijacked transport).
    Status(u16),
    /// New subscriptions never get response headers: the request is held open, as a
    /// half-open connection, a proxy holding the request or a stalled forward does.
    NoHeaders,
}

/// How the endpoint behaves; tests change it while the fake runs.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub transport: Transport,
    /// Nomad sends `{}` every 30 s.
    pub heartbeat: Duration,
    pub fault: Option<StreamFault>,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            transport: Transport::Hijacked,
            heartbeat: Duration::from_secs(30),
            fault: None,
        }
    }
}

/// The keys asked for per topic: `None` is every key (`Topic` or `Topic:*`).
type TopicKeys = BTreeMap<String, Option<BTreeSet<String>>>;

/// What a subscription asked for.
#[derive(Debug)]
struct Request {
    index: u64,
    /// By topic name (`*` for every topic).
    topics: TopicKeys,
    namespace: String,
}

fn parse_request(raw_query: Option<&str>) -> Result<Request, ApiError> {
    let mut index = 0;
    let mut namespace = "default".to_owned();
    let mut raw_topics = Vec::new();
    for (key, value) in form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "index" => {
                index = value.parse::<u64>().map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("Unable to parse index: {e}"),
                    )
                })?;
            }
            "namespace" => namespace = value.into_owned(),
            "topic" => raw_topics.push(value.into_owned()),
            // region, filter and the rest are parsed by Nomad and ignored.
            _ => {}
        }
    }
    if raw_topics.is_empty() {
        // No topic means `*:*`, which only a management token may ask for.
        raw_topics.push("*:*".to_owned());
    }
    let mut asked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for topic in &raw_topics {
        let (name, key) = match topic.split(':').collect::<Vec<_>>()[..] {
            [name] => (name, "*"),
            [name, key] => (name, key),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid topic query: {topic}"),
                ));
            }
        };
        asked
            .entry(name.to_owned())
            .or_default()
            .push(key.to_owned());
    }
    // `*` is a wildcard only when it is the sole key for the topic.
    let topics = asked
        .into_iter()
        .map(|(name, keys)| {
            let keys = match keys.as_slice() {
                [only] if only == "*" => None,
                _ => Some(keys.into_iter().filter(|k| k != "*").collect()),
            };
            (name, keys)
        })
        .collect();
    Ok(Request {
        index,
        topics,
        namespace,
    })
}

/// The namespaces a subscription sees: `*` is expanded to the namespaces that exist now.
fn namespaces(cluster: &Cluster, request: &Request) -> BTreeSet<String> {
    if request.namespace == "*" {
        cluster.namespaces.clone()
    } else {
        BTreeSet::from([request.namespace.clone()])
    }
}

/// What a subscription needs of its token (`validateNsOp`): the Allocation topic needs
/// read-job in every namespace it sees, Node needs node:read, anything else a management token.
fn needs<'a>(request: &Request, namespaces: &'a BTreeSet<String>) -> Vec<Capability<'a>> {
    request
        .topics
        .keys()
        .flat_map(|topic| match topic.as_str() {
            "Allocation" => namespaces
                .iter()
                .map(|ns| Capability::read_job(ns))
                .collect(),
            "Node" => vec![Capability::NodeRead],
            _ => vec![Capability::Management],
        })
        .collect()
}

/// The JSON line of one frame, with only the events that pass the subscription's filters; `None`
/// when none does (Nomad never sends empty frames).
fn frame_line(
    frame: &EventFrame,
    namespaces: &BTreeSet<String>,
    topics: &TopicKeys,
) -> Option<Vec<u8>> {
    let mut events = Vec::new();
    for event in &frame.events {
        if !event.namespace.is_empty() && !namespaces.contains(&event.namespace) {
            continue;
        }
        let Some(keys) = topics.get(&event.topic).or_else(|| topics.get("*")) else {
            continue;
        };
        match keys {
            None => events.push(&event.json),
            Some(keys) => {
                // An event matching two keys is appended twice, as Nomad does.
                let matches = std::iter::once(&event.key)
                    .chain(&event.filter_keys)
                    .filter(|k| keys.contains(*k))
                    .count();
                events.extend(std::iter::repeat_n(&event.json, matches));
            }
        }
    }
    if events.is_empty() {
        return None;
    }
    let mut line = serde_json::to_vec(&serde_json::json!({"Events": events, "Index": frame.index}))
        .expect("JSON values serialize");
    line.push(b'\n');
    Some(line)
}

/// The stream's route, as byte counts name it.
pub const ROUTE: &str = "/v1/event/stream";

/// The stream handler.
pub async fn event_stream(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let settings = shared.stream.borrow().clone();
    if settings.fault == Some(StreamFault::NoHeaders) {
        return std::future::pending().await;
    }
    let checked = parse_request(query.as_deref()).and_then(|request| {
        if let Some(StreamFault::Status(code)) = settings.fault {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(ApiError::new(status, "rpc error: stream failed"));
        }
        let cluster = shared.cluster();
        let namespaces = namespaces(&cluster, &request);
        authorize(&cluster, &headers, &needs(&request, &namespaces))?;
        let token = token(&headers).map(str::to_owned);
        // The start is fixed now, at subscribe time, as Nomad's broker fixes it.
        let cursor = cluster.events.cursor_before(request.index, cluster.index);
        Ok((
            request,
            namespaces,
            token,
            cluster.events.generation,
            cursor,
        ))
    });
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    }));
    match (settings.transport, checked) {
        (Transport::Chunked, Err(error)) => error.into_response(),
        (Transport::Hijacked, Err(_)) => {
            // The 200 went out before the check; the failure is only an EOF.
            drop(tx);
            hijacked_response(body)
        }
        (transport, Ok((request, namespaces, token, generation, cursor))) => {
            let subscription = Subscription {
                number: shared.new_subscriber(),
                shared: shared.clone(),
                tx,
                transport,
                namespaces,
                topics: request.topics,
                token,
                generation,
            };
            tokio::spawn(subscription.run(cursor));
            match transport {
                Transport::Chunked => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response(),
                Transport::Hijacked => hijacked_response(body),
            }
        }
    }
}

fn hijacked_response(body: Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// One live subscription.
struct Subscription {
    shared: Arc<Shared>,
    /// Its number, for the byte count by subscriber.
    number: usize,
    tx: mpsc::Sender<Bytes>,
    transport: Transport,
    namespaces: BTreeSet<String>,
    topics: TopicKeys,
    token: Option<String>,
    generation: u64,
}

/// Why a subscription ends.
enum End {
    /// The client went away.
    ClientGone,
    /// The server ends it (broker replaced, token revoked, reader too slow).
    Server(&'static str),
    /// Cut in the middle of a frame.
    MidFrame,
}

impl Subscription {
    async fn send(&self, bytes: impl Into<Bytes>) -> Result<(), End> {
        let bytes = bytes.into();
        self.shared
            .count_subscriber_bytes(self.number, bytes.len() as u64);
        self.tx.send(bytes).await.map_err(|_| End::ClientGone)
    }

    /// Frames after `cursor` (the index of the last frame sent, or the one before the start),
    /// or why the subscription must end first.
    fn pending(&self, cursor: &mut u64) -> Result<Vec<Vec<u8>>, End> {
        let cluster = self.shared.cluster();
        if cluster.events.generation != self.generation {
            return Err(End::Server(CLOSED_BY_SERVER));
        }
        // A revoked token (or one that lost read-job) ends the subscription.
        let still_allowed: Vec<Capability<'_>> = self
            .namespaces
            .iter()
            .map(|ns| Capability::read_job(ns))
            .collect();
        if cluster
            .policy_of(self.token.as_deref(), &still_allowed)
            .is_err()
        {
            return Err(End::Server(CLOSED_BY_SERVER));
        }
        let buffer = &cluster.events;
        if buffer.evicted_through > *cursor {
            // A frame this reader had not read yet has fallen out of the buffer.
            return Err(End::Server("event dropped from buffer"));
        }
        let mut lines = Vec::new();
        let after = *cursor;
        for frame in buffer.frames.iter().filter(|f| f.index > after) {
            *cursor = frame.index;
            if let Some(line) = frame_line(frame, &self.namespaces, &self.topics) {
                lines.push(line);
            }
        }
        Ok(lines)
    }

    async fn run(self, cursor: u64) {
        let end = self.stream(cursor).await;
        match (end, self.transport) {
            (End::Server(reason), Transport::Chunked) => {
                let _ = self.tx.send(Bytes::from_static(reason.as_bytes())).await;
            }
            (End::ClientGone | End::MidFrame | End::Server(_), _) => {}
        }
    }

    async fn stream(&self, mut cursor: u64) -> End {
        let mut settings = self.shared.stream.subscribe();
        let mut changes = self.shared.index.subscribe();
        if let Err(end) = self.send(&b"{}\n"[..]).await {
            return end;
        }
        let heartbeat_every = settings.borrow().heartbeat;
        let mut heartbeat = tokio::time::interval_at(
            tokio::time::Instant::now() + heartbeat_every,
            heartbeat_every,
        );
        loop {
            let fault = settings.borrow_and_update().fault.clone();
            match fault {
                Some(StreamFault::Stall) => {
                    // Silence until the fault is cleared or the client leaves.
                    tokio::select! {
                        changed = settings.changed() => if changed.is_err() { return End::ClientGone },
                        () = self.tx.closed() => return End::ClientGone,
                    }
                    continue;
                }
                Some(fault @ (StreamFault::GarbageLine | StreamFault::GarbageLines)) => {
                    if let Err(end) = self
                        .send(&b"<html><body>502 Bad Gateway</body></html>\n"[..])
                        .await
                    {
                        return end;
                    }
                    if fault == StreamFault::GarbageLine {
                        self.shared.stream.send_modify(|s| s.fault = None);
                    }
                }
                _ => {}
            }
            let lines = match self.pending(&mut cursor) {
                Ok(lines) => lines,
                Err(end) => return end,
            };
            for line in lines {
                if settings.borrow().fault == Some(StreamFault::CloseMidFrame) {
                    let half = line.len() / 2;
                    let _ = self.send(line[..half].to_vec()).await;
                    self.shared.stream.send_modify(|s| s.fault = None);
                    return End::MidFrame;
                }
                if let Err(end) = self.send(line).await {
                    return end;
                }
            }
            tokio::select! {
                _ = heartbeat.tick() => {
                    if settings.borrow().fault != Some(StreamFault::Stall)
                        && let Err(end) = self.send(&b"{}\n"[..]).await
                    {
                        return end;
                    }
                }
                changed = changes.changed() => if changed.is_err() { return End::ClientGone },
                changed = settings.changed() => if changed.is_err() { return End::ClientGone },
                () = self.tx.closed() => return End::ClientGone,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_like_nomads() {
        let r = parse_request(Some("topic=Allocation:*&namespace=*&index=7")).expect("valid");
        assert_eq!((r.index, r.namespace.as_str()), (7, "*"));
        assert_eq!(r.topics, BTreeMap::from([("Allocation".to_owned(), None)]));
        let r = parse_request(Some("topic=Allocation")).expect("valid");
        assert_eq!(r.topics["Allocation"], None);
        assert_eq!(r.namespace, "default");
        let r = parse_request(Some("topic=Allocation:web&topic=Allocation:*")).expect("valid");
        assert_eq!(
            r.topics["Allocation"],
            Some(BTreeSet::from(["web".to_owned()]))
        );
        let r = parse_request(Some("topic=Allocation:*&topic=Node:*")).expect("valid");
        assert_eq!(
            r.topics,
            BTreeMap::from([("Allocation".to_owned(), None), ("Node".to_owned(), None)])
        );
        let r = parse_request(None).expect("valid");
        assert_eq!(r.topics, BTreeMap::from([("*".to_owned(), None)]));
        assert!(parse_request(Some("topic=Allocation:a:b")).is_err());
        assert!(parse_request(Some("index=x")).is_err());
    }
}
