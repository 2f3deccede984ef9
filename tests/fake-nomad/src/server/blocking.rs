//! Blocking reads, as Nomad's HTTP agent and RPC layer serve them: `index`, `wait` and `stale`
//! parsed the way `parseWait` and `parseConsistency` do, a 300 s cap plus jitter, a wake only
//! when the index passes `index`, and the `X-Nomad-*` headers of the answer (a follower's when a
//! stale read reaches one).

use std::time::Duration;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::authorize::authorize;
use super::{ApiError, AppState};
use crate::model::{Capability, Cluster, Policy};

/// The longest a blocking query may wait (`MaxBlockingRPCQueryTime`).
const MAX_BLOCKING_WAIT: Duration = Duration::from_secs(300);

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

/// A blocking read of a request: what every read route takes from it (the shared state, its
/// `index`, `wait` and `stale`, and the headers with its token), answered by [`Read::answer`].
pub(super) struct Read {
    shared: AppState,
    query: BlockingQuery,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Read {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Read, Response> {
        let Query(query) = Query::<BlockingQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Read {
            shared: state.clone(),
            query,
            headers: parts.headers.clone(),
        })
    }
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

impl Read {
    /// Answers the read (after parsing `index`, `wait` and `stale`), blocking until its index
    /// passes `index` or `wait` (plus up to wait/16 of jitter) runs out. Each evaluation first
    /// checks the caller's token for `needs` (a token revoked while the query waits is refused
    /// then), then `read` returns the index and body, or an error response. A `stale` read is
    /// answered by the [`Follower`](super::Follower) when one is set.
    pub(super) async fn answer<F, A>(self, needs: &[Capability<'_>], read: F) -> Response
    where
        F: Fn(&Cluster, &Policy) -> Result<A, ApiError>,
        A: Into<Answer>,
    {
        let Read {
            shared,
            query,
            headers,
        } = self;
        let read = |cluster: &Cluster| read(cluster, &authorize(cluster, &headers, needs)?);
        let blocking = match Blocking::parse(&query) {
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
}

/// What a read answers: its index, its body and, for a page of a paginated list, the token of
/// the next page (`X-Nomad-NextToken`).
pub(super) struct Answer {
    pub(super) index: u64,
    pub(super) body: Value,
    pub(super) next_token: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("soon"), None);
    }
}
