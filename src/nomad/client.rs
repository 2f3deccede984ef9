//! The typed client for the Nomad HTTP API endpoints the table needs. It speaks to an agent over
//! `http://`, `https://` (with Nomad's TLS settings) or `unix://` (a task's API socket), sends
//! the token as `X-Nomad-Token`, supports blocking queries, and turns every failure into an
//! [`Error`] that names the URL and what to do, never the token.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use super::acl::Needs;
use super::address::Address;
use super::body::{MAX_ANSWER, error_body, read_answer};
use super::error::{Error, root_cause, status_error, transport_error};
use super::events::{EventStream, STREAM_ROUTE};
use super::query::{Blocking, Consistency, Indexed, Staleness};
use super::tls::{self, TlsSettings};
use super::token::{Secret, TokenError, TokenSource};
use super::types::{AgentSelf, Allocation, AllocationStub, Node};
use super::urls::{Urls, path_segment};
use crate::observe::metrics::Metrics;

/// How long to wait for a TCP (or unix socket) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a non-blocking request may take in all (a listing of a busy node is megabytes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a non-blocking request or a subscription may wait for the response headers. Nomad
/// answers these from its state store in milliseconds; a request without headers after this
/// long sits on a half-open connection or a stuck proxy or server, and is better retried.
const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time over a blocking query's `wait` (Nomad adds up to wait/16 of jitter).
const BLOCKING_MARGIN: Duration = Duration::from_secs(15);

/// Where and how to reach Nomad.
#[derive(Debug)]
pub struct ConnectionSettings {
    pub address: Address,
    pub token: TokenSource,
    pub region: Option<String>,
    pub tls: TlsSettings,
    /// `NOMAD_HTTP_AUTH`: user and optional password for HTTP basic auth.
    pub basic_auth: Option<(String, Option<Secret>)>,
}

/// A client for one Nomad agent.
pub struct NomadClient {
    http: reqwest::Client,
    urls: Urls,
    token: TokenSource,
    basic_auth: Option<(String, Option<Secret>)>,
    /// Where requests are counted, once `run` has metrics.
    metrics: OnceLock<Arc<Metrics>>,
}

impl std::fmt::Debug for NomadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadClient")
            .field("address", &self.urls.address().to_string())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl NomadClient {
    /// Builds a client; fails only on bad local settings (TLS files, address).
    pub fn new(settings: ConnectionSettings) -> Result<NomadClient, Error> {
        let tls = tls::client_config(&settings.tls, settings.address.is_https())?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Nomad's API never redirects, and reqwest would carry X-Nomad-Token to another
            // host (it strips only Authorization and cookies).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("nomad-alloc-table/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls);
        if let Address::Unix(path) = &settings.address {
            builder = builder.unix_socket(path.as_path());
        }
        let http = builder.build().map_err(|e| Error::Client(root_cause(&e)))?;
        Ok(NomadClient {
            http,
            urls: Urls::new(settings.address, settings.region),
            token: settings.token,
            basic_auth: settings.basic_auth,
            metrics: OnceLock::new(),
        })
    }

    /// Whether a token is sent (from the flag, the environment or a file).
    pub fn has_token(&self) -> bool {
        !matches!(self.token, TokenSource::None)
    }

    /// Counts every request from now on in `metrics` (by route, never by URL).
    pub fn count_requests_in(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Sends `request`, failing when its response headers take longer than `headers_timeout`
    /// (the whole request is bounded by `timeout`, set on the request by the caller or, for the
    /// event stream, by its read deadline), and counts it under `route`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        route: &'static str,
        shown: &str,
        headers_timeout: Duration,
        timeout: Duration,
    ) -> Result<reqwest::Response, Error> {
        let started = Instant::now();
        let result = match tokio::time::timeout(headers_timeout, request.send()).await {
            Err(_) => Err(Error::NoHeaders {
                url: shown.to_owned(),
                seconds: headers_timeout.as_secs(),
            }),
            Ok(sent) => sent.map_err(|e| transport_error(shown, &e, timeout)),
        };
        if let Some(metrics) = self.metrics.get() {
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(Error::NoHeaders { .. } | Error::Timeout { .. }) => "timeout".to_owned(),
                Err(_) => "error".to_owned(),
            };
            metrics.request(route, &code, started.elapsed());
        }
        result
    }

    /// Counts response body bytes of `route`.
    fn count_bytes(&self, route: &'static str, bytes: usize) {
        if let Some(metrics) = self.metrics.get() {
            metrics.bytes(route, bytes);
        }
    }

    /// Resolves when the token file changes (a rotated token): a wait to retry after a
    /// refusal ends at once instead of after its full delay. Never resolves without a file.
    pub async fn token_rotated(&self) {
        self.token.rotated().await;
    }

    /// The address this client talks to, for messages.
    pub fn address(&self) -> &Address {
        self.urls.address()
    }

    /// A request to `url` carrying the token and basic auth.
    fn request(&self, method: reqwest::Method, url: Url) -> Result<reqwest::RequestBuilder, Error> {
        let mut request = self.http.request(method, url);
        if let Some(token) = self.token.current()? {
            let mut headers = HeaderMap::new();
            let mut value = HeaderValue::from_str(token.expose())
                .map_err(|_| Error::Token(TokenError::NotAHeaderValue))?;
            value.set_sensitive(true);
            headers.insert("X-Nomad-Token", value);
            request = request.headers(headers);
        }
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, password.as_ref().map(Secret::expose));
        }
        Ok(request)
    }

    /// A read; a stale read whose server has lost touch with the leader (no known leader, or
    /// no contact for longer than [`MAX_STALE`](super::query::MAX_STALE)), or that answers 404
    /// (a follower may not have applied a write the leader has), is repeated once against the
    /// leader.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
        route: &'static str,
        blocking: Blocking,
        needs: Needs,
    ) -> Result<Indexed<T>, Error> {
        let first = self.get_once(path, params, route, blocking, needs).await;
        if blocking.consistency == Consistency::Leader {
            return first.map(|(answer, _)| answer);
        }
        let why = match &first {
            Ok((_, Some(staleness))) => staleness.to_string(),
            Err(Error::Status { status: 404, .. }) => {
                "not found on a server that may be behind".to_owned()
            }
            _ => return first.map(|(answer, _)| answer),
        };
        debug!(path, why, "asking the leader");
        let leader = Blocking {
            consistency: Consistency::Leader,
            ..blocking
        };
        Ok(self.get_once(path, params, route, leader, needs).await?.0)
    }

    /// One read, and whether its answer is too stale to trust (and why).
    async fn get_once<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
        route: &'static str,
        blocking: Blocking,
        needs: Needs,
    ) -> Result<(Indexed<T>, Option<Staleness>), Error> {
        let url = self.urls.url(path, params, blocking);
        let shown = self.urls.shown(&url);
        // A blocking query answers (headers included) only when it returns.
        let (timeout, headers_timeout) = match blocking.wait {
            Some(wait) => {
                let timeout = wait + wait / 16 + BLOCKING_MARGIN;
                (timeout, timeout)
            }
            None => (REQUEST_TIMEOUT, HEADERS_TIMEOUT),
        };
        let request = self.request(reqwest::Method::GET, url)?.timeout(timeout);
        let response = self
            .send(request, route, &shown, headers_timeout, timeout)
            .await?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let index = header("X-Nomad-Index").and_then(|v| v.parse().ok());
        let next_token = header("X-Nomad-NextToken").filter(|t| !t.is_empty());
        let staleness = Staleness::of(
            header("X-Nomad-KnownLeader").as_deref(),
            header("X-Nomad-LastContact").as_deref(),
        );
        if !status.is_success() {
            let body = error_body(response).await;
            self.count_bytes(route, body.len());
            return Err(status_error(status, &body, shown, needs));
        }
        let body = read_answer(response, MAX_ANSWER, &shown, timeout).await?;
        self.count_bytes(route, body.len());
        let value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            url: shown,
            cause: e.to_string(),
        })?;
        Ok((
            Indexed {
                value,
                index,
                bytes: body.len(),
                next_token,
            },
            staleness,
        ))
    }

    /// Subscribes to every event of `topics` (e.g. `Allocation:*`) in every namespace from
    /// `index` (inclusive, as Nomad replays it). A status other than 200 is an error; on the
    /// hijacking transport of newer Nomad an ACL failure is a 200 that ends before its first
    /// heartbeat instead.
    pub async fn event_stream(&self, topics: &[&str], index: u64) -> Result<EventStream, Error> {
        let mut url = self.urls.url(STREAM_ROUTE, &[], Blocking::default());
        for topic in topics {
            url.query_pairs_mut().append_pair("topic", topic);
        }
        url.query_pairs_mut()
            .append_pair("namespace", "*")
            .append_pair("index", &index.to_string());
        let shown = self.urls.shown(&url);
        let request = self.request(reqwest::Method::GET, url)?;
        let response = self
            .send(
                request,
                STREAM_ROUTE,
                &shown,
                HEADERS_TIMEOUT,
                CONNECT_TIMEOUT,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            // The refusal's body is bounded in size and time like any other answer.
            let body = tokio::time::timeout(HEADERS_TIMEOUT, error_body(response))
                .await
                .unwrap_or_default();
            return Err(status_error(status, &body, shown, Needs::ReadJobEverywhere));
        }
        Ok(EventStream::new(
            response,
            shown,
            self.metrics.get().cloned(),
        ))
    }

    /// `POST /v1/client/allocation/:id/signal`: sends `signal` (e.g. `SIGHUP`) to `task` of the
    /// allocation, through the client that runs it (ACL `alloc-lifecycle`). Works for a Vector
    /// task in a Docker container or another PID namespace.
    pub async fn signal_allocation(
        &self,
        alloc_id: &str,
        task: &str,
        signal: &str,
    ) -> Result<(), Error> {
        let url = self.urls.url(
            &format!("/v1/client/allocation/{}/signal", path_segment(alloc_id)),
            &[],
            Blocking::default(),
        );
        let shown = self.urls.shown(&url);
        let body = serde_json::json!({"Signal": signal, "Task": task});
        let request = self
            .request(reqwest::Method::POST, url)?
            .timeout(REQUEST_TIMEOUT)
            .json(&body);
        let response = self
            .send(
                request,
                "/v1/client/allocation/:id/signal",
                &shown,
                REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = error_body(response).await;
        Err(status_error(status, &body, shown, Needs::AllocLifecycle))
    }

    /// `GET /v1/status/leader`: the leader's address. Needs no ACL: it tells whether the agent
    /// answers (and TLS verifies).
    pub async fn status_leader(&self) -> Result<String, Error> {
        Ok(self
            .get(
                "/v1/status/leader",
                &[],
                "/v1/status/leader",
                Blocking::AGENT,
                Needs::Nothing,
            )
            .await?
            .value)
    }

    /// `GET /v1/agent/self` (ACL `agent:read`).
    pub async fn agent_self(&self) -> Result<AgentSelf, Error> {
        Ok(self
            .get(
                "/v1/agent/self",
                &[],
                "/v1/agent/self",
                Blocking::AGENT,
                Needs::AgentRead,
            )
            .await?
            .value)
    }

    /// `GET /v1/node/:id` (ACL `node:read`).
    pub async fn node(&self, node_id: &str) -> Result<Indexed<Node>, Error> {
        self.get(
            &format!("/v1/node/{}", path_segment(node_id)),
            &[],
            "/v1/node/:id",
            Blocking::default(),
            Needs::NodeRead,
        )
        .await
    }

    /// `GET /v1/node/:id/allocations`: every allocation on the node with its `Job` (ACL
    /// `node:read`; allocations in namespaces without `read-job` are silently left out by Nomad).
    pub async fn node_allocations(
        &self,
        node_id: &str,
        blocking: Blocking,
    ) -> Result<Indexed<Vec<Allocation>>, Error> {
        self.get(
            &format!("/v1/node/{}/allocations", path_segment(node_id)),
            &[],
            "/v1/node/:id/allocations",
            blocking,
            Needs::NodeRead,
        )
        .await
    }

    /// `GET /v1/nodes`: every node, as `NodeListStub`s (ACL `node:read`).
    pub async fn nodes(&self) -> Result<Indexed<Vec<Node>>, Error> {
        self.get(
            "/v1/nodes",
            &[],
            "/v1/nodes",
            Blocking::default(),
            Needs::NodeReadCluster,
        )
        .await
    }

    /// `GET /v1/allocations?namespace=*`: one page of `AllocListStub`s of every namespace the
    /// token can read (Nomad skips the others), without task states (the job gives the task
    /// names), from `next_token` on. `Indexed::next_token` says where the next page starts.
    pub async fn allocation_stubs(
        &self,
        per_page: usize,
        next_token: Option<&str>,
    ) -> Result<Indexed<Vec<AllocationStub>>, Error> {
        let per_page = per_page.to_string();
        let mut params = vec![
            ("namespace", "*"),
            ("task_states", "false"),
            ("per_page", per_page.as_str()),
        ];
        if let Some(token) = next_token {
            params.push(("next_token", token));
        }
        self.get(
            "/v1/allocations",
            &params,
            "/v1/allocations",
            Blocking::default(),
            Needs::ReadJobEverywhere,
        )
        .await
    }

    /// `GET /v1/allocation/:id`, with its `Job` (ACL `read-job`).
    pub async fn allocation(
        &self,
        alloc_id: &str,
        blocking: Blocking,
    ) -> Result<Indexed<Allocation>, Error> {
        self.get(
            &format!("/v1/allocation/{}", path_segment(alloc_id)),
            &[],
            "/v1/allocation/:id",
            blocking,
            Needs::ReadJob,
        )
        .await
    }
}
