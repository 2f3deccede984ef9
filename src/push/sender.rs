//! Sends the queued rows to Vector's `http_server` source, one request at a time: a 2xx means
//! the memory table holds them (the source answers once its end-to-end acknowledgements came
//! back), anything else is retried with backoff and nothing is dropped. When the source
//! answers again after failing, Vector may have restarted with an empty memory table: the loop
//! is told, and sends everything.
//!
//! The task ends when the loop drops its [`PushHandle`] and the queue is empty; at a stop, the
//! loop gives it until the shutdown deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::PushUrl;
use super::queue::{Batch, PushQueue};
use super::rows::Pushed;
use crate::nomad::TlsSettings;
use crate::observe::metrics::{Metrics, unix_now};
use crate::retry::{Backoff, ErrorLog};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request and its acknowledgement: the memory table applies a few thousand keys in
/// milliseconds, so this long means Vector is stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error answer's body is kept for the log.
const ERROR_BODY: usize = 300;

/// Why a request did not deliver its rows.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot build the HTTP client for --memory-table-url: {0}")]
    Client(String),
    #[error(
        "cannot reach Vector's http_server source at {url}: {reason}; is Vector running with vector/aggregator-cluster-push.yaml?"
    )]
    Transport { url: String, reason: String },
    #[error(
        "Vector's http_server source at {url} answered {status}: {body}; its memory table did not acknowledge the rows"
    )]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// Rows of changes first made at an instant.
type Rows = (Vec<Pushed>, Instant);

/// The loop's end of the sender: rows go in; dropping it lets the sender finish.
#[derive(Debug)]
pub struct PushHandle {
    rows: mpsc::UnboundedSender<Rows>,
    /// Rows handed to the sender so far.
    handed: u64,
    /// Rows the sender had received, at the last moment when none of them waited any more
    /// (each was in a request, or acknowledged).
    caught_up: watch::Receiver<u64>,
}

impl PushHandle {
    /// Queues rows of changes first made at `since`.
    pub fn send(&mut self, rows: Vec<Pushed>, since: Instant) {
        if !rows.is_empty() {
            self.handed += rows.len() as u64;
            // The sender outlives the handle; a closed channel means the runtime is ending.
            let _ = self.rows.send((rows, since));
        }
    }

    /// Resolves once no row handed to the sender waits any more: the time to hand it the next
    /// part of a full push, so that at most one part waits while a request is in flight.
    pub async fn caught_up(&mut self) {
        let handed = self.handed;
        if self.caught_up.wait_for(|&r| r >= handed).await.is_err() {
            // The sender is gone: the runtime is ending.
            std::future::pending::<()>().await;
        }
    }
}

/// Starts the sender in `tasks`; `back` is told when the source answers again after failing.
pub fn spawn(
    url: &PushUrl,
    metrics: Arc<Metrics>,
    back: mpsc::Sender<()>,
    tasks: &TaskTracker,
) -> Result<PushHandle, PushError> {
    let client = http_client(url)?;
    let (rows, received) = mpsc::unbounded_channel();
    let (caught_up, caught_up_seen) = watch::channel(0);
    let sender = Sender {
        client,
        url: url.clone(),
        metrics,
        back,
        queue: PushQueue::new(),
        received: 0,
        caught_up,
    };
    tasks.spawn(sender.run(received));
    Ok(PushHandle {
        rows,
        handed: 0,
        caught_up: caught_up_seen,
    })
}

/// The HTTP client for the memory table's source: system roots for https, no redirects, no
/// proxies from the environment.
pub(crate) fn http_client(url: &PushUrl) -> Result<reqwest::Client, PushError> {
    let https = url.url().scheme() == "https";
    let tls = crate::nomad::tls::client_config(&TlsSettings::default(), https)
        .map_err(|e| PushError::Client(e.to_string()))?;
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("nomad-alloc-table/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| PushError::Client(e.to_string()))
}

struct Sender {
    client: reqwest::Client,
    url: PushUrl,
    metrics: Arc<Metrics>,
    back: mpsc::Sender<()>,
    queue: PushQueue,
    /// Rows received from the loop so far.
    received: u64,
    caught_up: watch::Sender<u64>,
}

impl Sender {
    fn add(&mut self, rows: Vec<Pushed>, since: Instant) {
        self.received += rows.len() as u64;
        self.queue.add(rows, since);
    }

    /// Tells the loop when nothing received waits any more.
    fn show_caught_up(&self) {
        if self.queue.nothing_waits() {
            let received = self.received;
            self.caught_up.send_if_modified(|seen| {
                let changed = *seen != received;
                *seen = received;
                changed
            });
        }
    }

    async fn run(mut self, mut received: mpsc::UnboundedReceiver<Rows>) {
        let mut backoff = Backoff::default();
        let mut errors = ErrorLog::default();
        let mut failing = false;
        let mut open = true;
        let mut retry_at: Option<Instant> = None;
        loop {
            while let Ok((rows, since)) = received.try_recv() {
                self.add(rows, since);
            }
            self.show_depth();
            let ready = retry_at.is_none_or(|at| at <= Instant::now());
            let body = match self.queue.next_batch() {
                Some(batch) if ready => Some(batch.body.clone()),
                _ => None,
            };
            self.show_caught_up();
            let Some(body) = body else {
                if !open && self.queue.is_empty() {
                    return;
                }
                tokio::select! {
                    got = received.recv(), if open => match got {
                        Some((rows, since)) => self.add(rows, since),
                        None => open = false,
                    },
                    () = sleep_until(retry_at) => retry_at = None,
                }
                continue;
            };
            let request = post(self.client.clone(), self.url.clone(), body);
            tokio::pin!(request);
            let outcome = loop {
                tokio::select! {
                    outcome = &mut request => break outcome,
                    got = received.recv(), if open => match got {
                        Some((rows, since)) => self.add(rows, since),
                        None => open = false,
                    },
                }
            };
            match outcome {
                Ok(()) => {
                    let batch = self.queue.acknowledged();
                    self.acknowledged(batch.as_ref());
                    backoff = Backoff::default();
                    retry_at = None;
                    if std::mem::take(&mut failing) {
                        info!(
                            "Vector's memory table answers again; sending it everything, in case Vector restarted"
                        );
                        errors = ErrorLog::default();
                        let _ = self.back.try_send(());
                    }
                }
                Err(e) => {
                    self.queue.failed();
                    self.metrics
                        .memory_table_requests
                        .with_label_values(&["failed"])
                        .inc();
                    failing = true;
                    let delay = backoff.next_delay();
                    errors.report(
                        "cannot push changes to Vector's memory table; retrying (nothing is dropped)",
                        &e.to_string(),
                        delay,
                    );
                    retry_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    /// Counts an acknowledged request.
    fn acknowledged(&self, batch: Option<&Batch>) {
        let Some(batch) = batch else { return };
        let metrics = &self.metrics;
        metrics
            .memory_table_requests
            .with_label_values(&["acknowledged"])
            .inc();
        metrics.memory_table_rows.inc_by(batch.rows() as u64);
        metrics.memory_table_bytes.inc_by(batch.body.len() as u64);
        metrics.memory_table_last_push.set(unix_now());
        metrics
            .change_to_push
            .observe(batch.since.elapsed().as_secs_f64());
        debug!(
            rows = batch.rows(),
            bytes = batch.body.len(),
            "pushed to Vector's memory table"
        );
    }

    fn show_depth(&self) {
        self.metrics
            .memory_table_queue
            .set(i64::try_from(self.queue.depth()).unwrap_or(i64::MAX));
    }
}

/// One request: a 2xx is the memory table's acknowledgement. An empty body is a probe that
/// writes nothing (the source decodes no event and answers at once).
pub(crate) async fn post(
    client: reqwest::Client,
    target: PushUrl,
    body: Vec<u8>,
) -> Result<(), PushError> {
    let url = target.to_string();
    let response = client
        .post(target.url().clone())
        .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
        .timeout(REQUEST_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| PushError::Transport {
            url: url.clone(),
            reason: reason(&e),
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(PushError::Status {
        url,
        status: status.as_u16(),
        body: crate::text::one_line(&text, ERROR_BODY),
    })
}

/// What went wrong with a request, without the URL (it is in the message already).
fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut current: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
