//! A small typed client for the Nomad HTTP API endpoints the table needs. It speaks to an agent
//! over `http://`, `https://` (with Nomad's TLS settings) or `unix://` (a task's
//! `NOMAD_UNIX_ADDR`), sends the token as `X-Nomad-Token`, supports blocking queries, and turns
//! every failure into an error that names the URL and what to do, never the token.

pub mod events;
pub mod ndjson;
pub mod tls;
pub mod token;
pub mod types;

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

pub use tls::{TlsError, TlsSettings};
pub use token::{Secret, TokenError, TokenFile, TokenSource};
use types::{AgentSelf, Allocation, Node};

/// How long to wait for a TCP (or unix socket) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a non-blocking request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
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

/// A Nomad agent address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `http://` or `https://`.
    Url(Url),
    /// `unix:///path/to/api.sock`.
    Unix(PathBuf),
}

/// Why an address is not usable.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid Nomad address {address:?} (--address/NOMAD_ADDR): {reason}; use http://host:4646, https://host:4646 or unix:///path/to/api.sock"
)]
pub struct AddressError {
    address: String,
    reason: String,
}

impl Address {
    /// Parses `http://…`, `https://…` or `unix:///…`, as Nomad's `NOMAD_ADDR`.
    pub fn parse(raw: &str) -> Result<Address, AddressError> {
        let error = |reason: &str| AddressError {
            address: raw.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = raw.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(error("a unix socket path must be absolute"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let url = Url::parse(raw).map_err(|e| error(&e.to_string()))?;
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(Address::Url(url)),
            "http" | "https" => Err(error("no host")),
            other => Err(error(&format!("unsupported scheme {other:?}"))),
        }
    }

    fn is_https(&self) -> bool {
        matches!(self, Address::Url(url) if url.scheme() == "https")
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Url(url) => f.write_str(url.as_str().trim_end_matches('/')),
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Which class of failure an error is, for exit codes and for deciding to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Nomad could not be reached.
    Connection,
    /// The token is missing, unknown or lacks a capability.
    Auth,
    /// Nomad answered with an error.
    Nomad,
    /// Nomad's answer could not be understood.
    BadResponse,
    /// The client's own settings are wrong (TLS files, token file).
    Settings,
}

/// A failed request to Nomad. The messages name the URL (without the token) and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach Nomad at {url}: {cause}; check --address/NOMAD_ADDR and that the agent is running"
    )]
    Connect { url: String, cause: String },
    #[error("Nomad at {url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("Nomad refused {url} with 403 {body:?}: the token needs {needs}")]
    PermissionDenied {
        url: String,
        body: String,
        needs: &'static str,
    },
    #[error("Nomad answered {url} with {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Nomad's answer to {url} is not the JSON expected: {cause}")]
    Decode { url: String, cause: String },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl Error {
    /// The class of failure, for the exit code.
    pub fn class(&self) -> FailureClass {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } => FailureClass::Connection,
            Error::PermissionDenied { .. } => FailureClass::Auth,
            Error::Status { .. } => FailureClass::Nomad,
            Error::Decode { .. } => FailureClass::BadResponse,
            Error::Token(_) | Error::Tls(_) | Error::Address(_) | Error::Client(_) => {
                FailureClass::Settings
            }
        }
    }
}

/// A blocking query's parameters: return once the index passes `index`, or after `wait`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Blocking {
    pub index: u64,
    pub wait: Option<Duration>,
}

/// A decoded answer and its `X-Nomad-Index` (absent on endpoints that are not indexed).
#[derive(Clone, Debug, PartialEq)]
pub struct Indexed<T> {
    pub value: T,
    pub index: Option<u64>,
}

/// The ACL each endpoint needs, for 403 messages.
const NEEDS_NODE_READ: &str =
    "node:read (and namespace \"*\" { capabilities = [\"read-job\"] } to see allocations)";
const NEEDS_AGENT_READ: &str =
    "agent:read to ask the agent for its node ID; or pass --node-id (NOMAD_NODE_ID) instead";
const NEEDS_READ_JOB: &str = "namespace:read-job on the allocation's namespace";
const NEEDS_ALLOC_LIFECYCLE: &str =
    "namespace:alloc-lifecycle on the namespace of Vector's allocation (to signal its task)";
const NEEDS_READ_JOB_EVERYWHERE: &str = "namespace \"*\" { capabilities = [\"read-job\"] }: the stream of namespace=* needs read-job on every namespace";

/// A client for one Nomad agent.
pub struct NomadClient {
    http: reqwest::Client,
    /// The URL requests are built on (`http://127.0.0.1` for a unix socket).
    base: Url,
    address: Address,
    token: TokenSource,
    region: Option<String>,
    basic_auth: Option<(String, Option<Secret>)>,
}

impl std::fmt::Debug for NomadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadClient")
            .field("address", &self.address.to_string())
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
            .no_proxy()
            .user_agent(concat!("nomad-alloc-table/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls);
        let base = match &settings.address {
            Address::Url(url) => url.clone(),
            Address::Unix(path) => {
                builder = builder.unix_socket(path.as_path());
                // Nomad's Go client uses this host for unix sockets too.
                Url::parse("http://127.0.0.1").expect("a valid constant URL")
            }
        };
        let http = builder.build().map_err(|e| Error::Client(root_cause(&e)))?;
        Ok(NomadClient {
            http,
            base,
            address: settings.address,
            token: settings.token,
            region: settings.region,
            basic_auth: settings.basic_auth,
        })
    }

    /// The address this client talks to, for messages.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// What to call a URL in messages: the user's address plus the path and query.
    fn display_url(&self, url: &Url) -> String {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        format!("{}{path_and_query}", self.address)
    }

    fn url(&self, path: &str, blocking: Blocking) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        {
            let mut query = url.query_pairs_mut();
            if let Some(region) = &self.region {
                query.append_pair("region", region);
            }
            if blocking.index > 0 {
                query.append_pair("index", &blocking.index.to_string());
            }
            if let Some(wait) = blocking.wait {
                query.append_pair("wait", &format!("{}ms", wait.as_millis()));
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
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

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        blocking: Blocking,
        needs: &'static str,
    ) -> Result<Indexed<T>, Error> {
        let url = self.url(path, blocking);
        let shown = self.display_url(&url);
        let timeout = match blocking.wait {
            Some(wait) => wait + wait / 16 + BLOCKING_MARGIN,
            None => REQUEST_TIMEOUT,
        };
        let response = self
            .request(reqwest::Method::GET, url)?
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e, timeout))?;
        let status = response.status();
        let index = response
            .headers()
            .get("X-Nomad-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(&shown, &e, timeout))?;
        if !status.is_success() {
            return Err(status_error(status, &body, shown, needs));
        }
        let value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            url: shown,
            cause: e.to_string(),
        })?;
        Ok(Indexed { value, index })
    }

    /// Subscribes to every Allocation event of every namespace from `index` (inclusive, as
    /// Nomad replays it). A status other than 200 is an error; on the hijacking transport of
    /// newer Nomad an ACL failure is a 200 that ends before its first heartbeat instead.
    pub async fn event_stream(&self, index: u64) -> Result<EventStream, Error> {
        let mut url = self.url("/v1/event/stream", Blocking::default());
        url.query_pairs_mut()
            .append_pair("topic", "Allocation:*")
            .append_pair("namespace", "*")
            .append_pair("index", &index.to_string());
        let shown = self.display_url(&url);
        let response = self
            .request(reqwest::Method::GET, url)?
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e, CONNECT_TIMEOUT))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(status_error(
                status,
                &body,
                shown,
                NEEDS_READ_JOB_EVERYWHERE,
            ));
        }
        Ok(EventStream {
            response,
            decoder: ndjson::LineDecoder::new(),
            lines: std::collections::VecDeque::new(),
            heartbeats: 0,
            url: shown,
        })
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
        let url = self.url(
            &format!("/v1/client/allocation/{}/signal", path_segment(alloc_id)),
            Blocking::default(),
        );
        let shown = self.display_url(&url);
        let body = serde_json::json!({"Signal": signal, "Task": task});
        let response = self
            .request(reqwest::Method::POST, url)?
            .timeout(REQUEST_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e, REQUEST_TIMEOUT))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(status_error(status, &body, shown, NEEDS_ALLOC_LIFECYCLE))
    }

    /// `GET /v1/agent/self` (ACL `agent:read`).
    pub async fn agent_self(&self) -> Result<AgentSelf, Error> {
        Ok(self
            .get("/v1/agent/self", Blocking::default(), NEEDS_AGENT_READ)
            .await?
            .value)
    }

    /// `GET /v1/node/:id` (ACL `node:read`).
    pub async fn node(&self, node_id: &str) -> Result<Indexed<Node>, Error> {
        self.get(
            &format!("/v1/node/{}", path_segment(node_id)),
            Blocking::default(),
            NEEDS_NODE_READ,
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
            blocking,
            NEEDS_NODE_READ,
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
            blocking,
            NEEDS_READ_JOB,
        )
        .await
    }
}

/// An error for a non-success answer: 403 names the ACL needed, others quote Nomad's body.
fn status_error(status: StatusCode, body: &[u8], url: String, needs: &'static str) -> Error {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect();
    match status {
        StatusCode::FORBIDDEN => Error::PermissionDenied {
            url,
            body: text,
            needs,
        },
        _ => Error::Status {
            url,
            status: status.as_u16(),
            body: if text.is_empty() {
                status.canonical_reason().unwrap_or("no body").to_owned()
            } else {
                text
            },
        },
    }
}

/// How an event stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamEnd {
    /// The server closed the body. Before the first heartbeat this means the subscription was
    /// refused (newer Nomad answers 200 and then closes on any error, 403 included).
    #[error("the event stream at {url} closed{}{}", if *.before_first_heartbeat { " before its first heartbeat" } else { "" }, if .tail.is_empty() { String::new() } else { format!(": {:?}", .tail) })]
    Closed {
        url: String,
        before_first_heartbeat: bool,
        /// Unterminated text at the end: the old transport's error, or half a frame.
        tail: String,
    },
    /// Nothing arrived for longer than the heartbeat interval allows.
    #[error(
        "the event stream at {url} was silent for {seconds} s (Nomad sends a heartbeat every 30 s)"
    )]
    Silent { url: String, seconds: u64 },
    #[error(transparent)]
    Transport(Error),
    #[error(
        "the event stream at {url} sent a line longer than {} bytes",
        ndjson::MAX_LINE
    )]
    LineTooLong { url: String },
}

/// An open subscription to the event stream.
pub struct EventStream {
    response: reqwest::Response,
    decoder: ndjson::LineDecoder,
    lines: std::collections::VecDeque<Vec<u8>>,
    heartbeats: u64,
    url: String,
}

impl EventStream {
    /// The next message; fails when nothing at all arrives for `idle` (the read deadline).
    pub async fn next(&mut self, idle: Duration) -> Result<events::Message, StreamEnd> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                let message = events::parse_line(&line);
                if message == events::Message::Heartbeat {
                    self.heartbeats += 1;
                }
                return Ok(message);
            }
            let chunk = tokio::time::timeout(idle, self.response.chunk())
                .await
                .map_err(|_| StreamEnd::Silent {
                    url: self.url.clone(),
                    seconds: idle.as_secs(),
                })?
                .map_err(|e| StreamEnd::Transport(transport_error(&self.url, &e, idle)))?;
            match chunk {
                Some(bytes) => {
                    let lines = self
                        .decoder
                        .push(&bytes)
                        .map_err(|_| StreamEnd::LineTooLong {
                            url: self.url.clone(),
                        })?;
                    self.lines.extend(lines);
                }
                None => {
                    let tail = String::from_utf8_lossy(self.decoder.remainder());
                    return Err(StreamEnd::Closed {
                        url: self.url.clone(),
                        before_first_heartbeat: self.heartbeats == 0,
                        tail: tail.chars().take(200).collect(),
                    });
                }
            }
        }
    }
}

/// Percent-encodes one path segment (IDs are UUIDs, but never trust input to be one).
fn path_segment(raw: &str) -> String {
    let mut url = Url::parse("http://x/").expect("a valid constant URL");
    url.path_segments_mut()
        .expect("http URLs have path segments")
        .push(raw);
    url.path().trim_start_matches('/').to_owned()
}

/// The innermost cause of an error chain: what actually went wrong ("Connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn transport_error(url: &str, error: &reqwest::Error, timeout: Duration) -> Error {
    if error.is_timeout() {
        Error::Timeout {
            url: url.to_owned(),
            seconds: timeout.as_secs(),
        }
    } else {
        Error::Connect {
            url: url.to_owned(),
            cause: root_cause(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_nomad_addr() {
        assert!(matches!(
            Address::parse("http://127.0.0.1:4646"),
            Ok(Address::Url(_))
        ));
        assert!(matches!(
            Address::parse("https://nomad.example:4646"),
            Ok(Address::Url(_))
        ));
        assert_eq!(
            Address::parse("unix:///secrets/api.sock").expect("valid"),
            Address::Unix(PathBuf::from("/secrets/api.sock"))
        );
        for bad in [
            "127.0.0.1:4646",
            "ftp://x",
            "unix://relative.sock",
            "http://",
        ] {
            let err = Address::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("NOMAD_ADDR"), "{err}");
        }
    }

    #[test]
    fn addresses_display_as_given() {
        let addr = Address::parse("unix:///run/nomad.sock").expect("valid");
        assert_eq!(addr.to_string(), "unix:///run/nomad.sock");
        let addr = Address::parse("http://127.0.0.1:4646/").expect("valid");
        assert_eq!(addr.to_string(), "http://127.0.0.1:4646");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("abc-123"), "abc-123");
        assert_eq!(path_segment("../x y"), "..%2Fx%20y");
    }

    fn client(address: &str, region: Option<&str>) -> NomadClient {
        NomadClient::new(ConnectionSettings {
            address: Address::parse(address).expect("valid"),
            token: TokenSource::None,
            region: region.map(str::to_owned),
            tls: TlsSettings::default(),
            basic_auth: None,
        })
        .expect("client")
    }

    #[test]
    fn urls_carry_region_and_blocking_parameters() {
        let c = client("http://127.0.0.1:4646", Some("eu"));
        let url = c.url(
            "/v1/node/n1/allocations",
            Blocking {
                index: 42,
                wait: Some(Duration::from_secs(5)),
            },
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4646/v1/node/n1/allocations?region=eu&index=42&wait=5000ms"
        );
        let plain =
            client("http://127.0.0.1:4646", None).url("/v1/agent/self", Blocking::default());
        assert_eq!(plain.as_str(), "http://127.0.0.1:4646/v1/agent/self");
    }

    #[test]
    fn unix_socket_urls_are_shown_with_the_socket_path() {
        let c = client("unix:///tmp/api.sock", None);
        let url = c.url("/v1/agent/self", Blocking::default());
        assert_eq!(c.display_url(&url), "unix:///tmp/api.sock/v1/agent/self");
    }
}
