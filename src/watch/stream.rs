//! The event-stream watcher. Every (re)connection lists the node's allocations first and then
//! subscribes from the listing's index + 1, so nothing between the two is lost; frames at or
//! below the cursor (Nomad replays the tail) are dropped; only this node's allocations are
//! passed on. Any end of the stream (EOF, silence past the read deadline, a line that is not
//! JSON) leads to a reconnect with exponential backoff and jitter; a resync request or the
//! resync interval also reconnects, which re-snapshots `namespace=*` as a side effect. The
//! loop's state ([`WatchState`]) is data, so that its transitions can be tested.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ResyncReason, Update};
use crate::nomad::events::{Frame, Message};
use crate::nomad::types::Allocation;
use crate::nomad::{Blocking, Error, NomadClient, StreamEnd};
use crate::retry::{Backoff, ErrorLog, MAX_BACKOFF};

/// How a failure is logged.
const CONNECTION_FAILED: &str = "Nomad connection failed; keeping the last table";
/// A connection that stayed up this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What the watcher needs.
pub struct StreamWatcher {
    pub client: Arc<NomadClient>,
    pub node_id: String,
    pub updates: mpsc::Sender<Update>,
    /// Requests for a resync (SIGHUP, a burst of unknown allocations).
    pub resync: mpsc::Receiver<ResyncReason>,
    pub resync_interval: Duration,
    pub stream_timeout: Duration,
}

/// The watcher's loop state, kept as data so that tests can assert its transitions.
#[derive(Debug)]
pub struct WatchState {
    /// The index of the newest listing or frame applied: frames at or below it are replays.
    pub cursor: u64,
    /// Delays before the next reconnects.
    pub backoff: Backoff,
    /// The last error reported, so that a repeated one is logged once.
    pub errors: ErrorLog,
    /// Why the next listing is taken.
    pub next_listing: ResyncReason,
}

impl Default for WatchState {
    fn default() -> WatchState {
        WatchState {
            cursor: 0,
            backoff: Backoff::default(),
            errors: ErrorLog::default(),
            next_listing: ResyncReason::Connect,
        }
    }
}

impl WatchState {
    /// A listing taken at `index` was applied: the stream continues from there.
    pub fn listed(&mut self, index: u64) {
        self.cursor = index;
    }

    /// The allocations of `node_id` that a frame brings, or `None` for a replayed frame (at or
    /// below the cursor: Nomad re-sends the newest frame to every new subscriber).
    pub fn frame(&mut self, frame: Frame, node_id: &str) -> Option<Vec<Allocation>> {
        if frame.index <= self.cursor {
            debug!(
                index = frame.index,
                cursor = self.cursor,
                "dropping a replayed frame"
            );
            return None;
        }
        self.cursor = frame.index;
        Some(
            frame
                .events
                .into_iter()
                .filter_map(|event| event.payload.allocation)
                .filter(|alloc| alloc.node_id == node_id)
                .collect(),
        )
    }
}

/// Why one connection ended.
enum Ended {
    Stream(StreamEnd),
    Unparseable(String),
    /// A resync was asked for, or is due.
    Resync(ResyncReason),
    /// The loop is gone: stop.
    LoopGone,
}

/// `interval` ± 10 %, so that many nodes do not resync in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

impl StreamWatcher {
    /// Runs until the loop that receives the updates goes away; the caller stops it at any
    /// await point (it holds nothing that a stop could lose).
    pub async fn run(mut self) {
        let mut state = WatchState::default();
        loop {
            let connected_at = Instant::now();
            let outcome = self.connect_and_follow(&mut state).await;
            if connected_at.elapsed() >= HEALTHY_AFTER {
                state.backoff = Backoff::default();
            }
            let delay = match outcome {
                Ok(Ended::LoopGone) => return,
                Ok(Ended::Resync(why)) => {
                    state.next_listing = why;
                    continue;
                }
                Ok(Ended::Unparseable(line)) => {
                    warn!(line = %line, "the event stream sent a line that is not an event; resyncing");
                    // Backed off like any failure: a proxy that keeps answering garbage must
                    // not turn this into a tight loop of listings.
                    state.backoff.next_delay()
                }
                Ok(Ended::Stream(StreamEnd::Closed {
                    before_first_heartbeat: true,
                    url,
                    tail,
                })) => {
                    self.explain_refused_subscription(&url, &tail, &mut state.errors)
                        .await;
                    MAX_BACKOFF
                }
                Ok(Ended::Stream(end)) => {
                    info!(reason = %end, "event stream ended; reconnecting");
                    state.backoff.next_delay()
                }
                Err(error) => {
                    let delay = match error {
                        Error::PermissionDenied { .. } => MAX_BACKOFF,
                        _ => state.backoff.next_delay(),
                    };
                    state
                        .errors
                        .report(CONNECTION_FAILED, &error.to_string(), delay);
                    delay
                }
            };
            state.next_listing = ResyncReason::Connect;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                Some(why) = self.resync.recv() => state.next_listing = why,
            }
        }
    }

    /// Lists, subscribes and follows the stream until it ends.
    async fn connect_and_follow(&mut self, state: &mut WatchState) -> Result<Ended, Error> {
        let listed = self
            .client
            .node_allocations(&self.node_id, Blocking::default())
            .await?;
        let index = listed.index.unwrap_or(0);
        if state.errors.recovered() {
            info!("Nomad answers again");
        }
        state.listed(index);
        let listing = Update::Listed {
            allocations: listed.value,
            index,
            reason: state.next_listing,
        };
        if self.updates.send(listing).await.is_err() {
            return Ok(Ended::LoopGone);
        }
        let mut stream = self.client.event_stream(index + 1).await?;
        debug!(index, "event stream subscribed");
        let resync_at = Instant::now() + jittered(self.resync_interval);
        loop {
            let message = tokio::select! {
                message = stream.next(self.stream_timeout) => message,
                Some(why) = self.resync.recv() => return Ok(Ended::Resync(why)),
                () = tokio::time::sleep_until(resync_at) => return Ok(Ended::Resync(ResyncReason::Interval)),
            };
            let frame = match message {
                Ok(Message::Heartbeat) => continue,
                Ok(Message::Frame(frame)) => frame,
                Ok(Message::Unparseable(line)) => return Ok(Ended::Unparseable(line)),
                Err(end) => return Ok(Ended::Stream(end)),
            };
            for alloc in state.frame(frame, &self.node_id).unwrap_or_default() {
                if self
                    .updates
                    .send(Update::Event(Box::new(alloc)))
                    .await
                    .is_err()
                {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::events::{Event, Payload};

    fn frame(index: u64, nodes: &[&str]) -> Frame {
        Frame {
            index,
            events: nodes
                .iter()
                .enumerate()
                .map(|(i, node)| Event {
                    topic: "Allocation".to_owned(),
                    event_type: "AllocationUpdated".to_owned(),
                    index,
                    payload: Payload {
                        allocation: Some(Allocation {
                            id: format!("a{i}"),
                            node_id: (*node).to_owned(),
                            ..Allocation::default()
                        }),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn frames_at_or_below_the_cursor_are_replays_and_other_nodes_are_dropped() {
        let mut state = WatchState::default();
        state.listed(10);
        assert_eq!(
            state.frame(frame(10, &["n1"]), "n1"),
            None,
            "the replayed tail"
        );
        assert_eq!(state.cursor, 10);
        let mine = state
            .frame(frame(11, &["n1", "n2", "n1"]), "n1")
            .expect("new");
        assert_eq!(mine.len(), 2, "only this node's allocations");
        assert_eq!(state.cursor, 11);
        assert_eq!(state.frame(frame(11, &["n1"]), "n1"), None);
    }
}
