//! The event-stream watcher. Every (re)connection lists the node's allocations first and then
//! subscribes from the listing's index + 1, so nothing between the two is lost; frames at or
//! below the cursor (Nomad replays the tail) are dropped; only this node's allocations are
//! passed on. Any end of the stream (EOF, silence past the read deadline, a line that is not
//! JSON) leads to a reconnect with exponential backoff and jitter; a resync request or the
//! resync interval also reconnects, which re-snapshots `namespace=*` as a side effect.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ResyncReason, Update};
use crate::nomad::events::Message;
use crate::nomad::{Blocking, Error, NomadClient, StreamEnd};
use crate::retry::{ErrorLog, MAX_BACKOFF, backoff};

/// How a failure is logged.
const CONNECTION_FAILED: &str = "Nomad connection failed; keeping the last table";
/// A connection that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What the watcher needs.
pub struct StreamWatcher {
    pub client: Arc<NomadClient>,
    pub node_id: String,
    pub updates: mpsc::Sender<Update>,
    /// Notified to force a resync (SIGHUP, a burst of unknown allocations).
    pub resync: Arc<Notify>,
    pub resync_interval: Duration,
    pub stream_timeout: Duration,
}

/// Why one connection ended.
enum Ended {
    Stream(StreamEnd),
    Unparseable(String),
    Resync(ResyncReason),
    /// The loop is gone: stop.
    LoopGone,
}

/// `interval` ± 10 %, so that many nodes do not resync in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

impl StreamWatcher {
    /// Runs until the loop that receives the updates goes away.
    pub async fn run(self) {
        let mut delays = backoff();
        let mut errors = ErrorLog::default();
        let mut reason = ResyncReason::Connect;
        loop {
            let connected_at = Instant::now();
            let outcome = self.connect_and_follow(reason, &mut errors).await;
            if connected_at.elapsed() >= HEALTHY_AFTER {
                delays = backoff();
            }
            let delay = match outcome {
                Ok(Ended::LoopGone) => return,
                Ok(Ended::Resync(why)) => {
                    reason = why;
                    continue;
                }
                Ok(Ended::Unparseable(line)) => {
                    warn!(line = %line, "the event stream sent a line that is not an event; resyncing");
                    // Backed off like any failure: a proxy that keeps answering garbage must
                    // not turn this into a tight loop of listings.
                    delays.next().unwrap_or(MAX_BACKOFF)
                }
                Ok(Ended::Stream(StreamEnd::Closed {
                    before_first_heartbeat: true,
                    url,
                    tail,
                })) => {
                    self.explain_refused_subscription(&url, &tail, &mut errors)
                        .await;
                    MAX_BACKOFF
                }
                Ok(Ended::Stream(end)) => {
                    info!(reason = %end, "event stream ended; reconnecting");
                    delays.next().unwrap_or(MAX_BACKOFF)
                }
                Err(error) => {
                    let delay = match error {
                        Error::PermissionDenied { .. } => MAX_BACKOFF,
                        _ => delays.next().unwrap_or(MAX_BACKOFF),
                    };
                    errors.report(CONNECTION_FAILED, &error.to_string(), delay);
                    delay
                }
            };
            reason = ResyncReason::Connect;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.resync.notified() => reason = ResyncReason::Requested,
            }
        }
    }

    /// Lists, subscribes and follows the stream until it ends.
    async fn connect_and_follow(
        &self,
        reason: ResyncReason,
        errors: &mut ErrorLog,
    ) -> Result<Ended, Error> {
        let listed = self
            .client
            .node_allocations(&self.node_id, Blocking::default())
            .await?;
        let index = listed.index.unwrap_or(0);
        if errors.recovered() {
            info!("Nomad answers again");
        }
        if self
            .updates
            .send(Update::Listed {
                allocations: listed.value,
                index,
                reason,
            })
            .await
            .is_err()
        {
            return Ok(Ended::LoopGone);
        }
        let mut stream = self.client.event_stream(index + 1).await?;
        debug!(index, "event stream subscribed");
        let mut cursor = index;
        let resync_at = Instant::now() + jittered(self.resync_interval);
        loop {
            let message = tokio::select! {
                message = stream.next(self.stream_timeout) => message,
                () = self.resync.notified() => return Ok(Ended::Resync(ResyncReason::Requested)),
                () = tokio::time::sleep_until(resync_at) => return Ok(Ended::Resync(ResyncReason::Interval)),
            };
            let frame = match message {
                Ok(Message::Heartbeat) => continue,
                Ok(Message::Frame(frame)) => frame,
                Ok(Message::Unparseable(line)) => return Ok(Ended::Unparseable(line)),
                Err(end) => return Ok(Ended::Stream(end)),
            };
            if frame.index <= cursor {
                debug!(index = frame.index, cursor, "dropping a replayed frame");
                continue;
            }
            cursor = frame.index;
            for event in frame.events {
                let Some(alloc) = event.payload.allocation else {
                    continue;
                };
                if alloc.node_id != self.node_id {
                    continue;
                }
                if self.updates.send(Update::Event(alloc)).await.is_err() {
                    return Ok(Ended::LoopGone);
                }
            }
        }
    }

    /// A 200 that closed before its first heartbeat: newer Nomad refuses a subscription that
    /// way, so ask a plain endpoint what is wrong.
    async fn explain_refused_subscription(&self, url: &str, tail: &str, errors: &mut ErrorLog) {
        let message = match self
            .client
            .node_allocations(&self.node_id, Blocking::default())
            .await
        {
            Err(error) => error.to_string(),
            Ok(_) => format!(
                "Nomad closed the event stream at {url} before its first heartbeat{}; the token can list the node, so it most likely lacks namespace:read-job on some namespace (namespace=* needs it on every one)",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(" ({tail:?})")
                }
            ),
        };
        errors.report(CONNECTION_FAILED, &message, MAX_BACKOFF);
    }
}
