//! The event-stream watcher. Every (re)connection lists the node's allocations first and then
//! subscribes from the listing's index + 1, so nothing between the two is lost; frames at or
//! below the cursor (Nomad replays the tail) are dropped; only this node's allocations are
//! passed on. Any end of the stream (EOF, silence past the read deadline, a line that is not
//! JSON) leads to a reconnect with exponential backoff and jitter; a resync request or the
//! resync interval also reconnects, which re-snapshots `namespace=*` as a side effect. The
//! resync timer and requests cut a connection in any phase, a hung listing or subscription
//! included. The loop's state ([`WatchState`]) is data, so that its transitions can be tested.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ResyncReason, Update};
use crate::health::Health;
use crate::metrics::{Metrics, unix_now};
use crate::nomad::events::{Frame, Message};
use crate::nomad::types::Allocation;
use crate::nomad::{Blocking, Error, NomadClient, StreamEnd};
use crate::retry::{Backoff, ErrorLog, MAX_BACKOFF};

/// How a failure is logged.
const CONNECTION_FAILED: &str = "Nomad connection failed; keeping the last table";

/// What the watcher needs.
pub struct StreamWatcher {
    pub client: Arc<NomadClient>,
    pub node_id: String,
    pub updates: mpsc::Sender<Update>,
    pub resync_interval: Duration,
    pub stream_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub health: Health,
}

/// The watcher's loop state, kept as data so that tests can assert its transitions.
#[derive(Debug)]
pub struct WatchState {
    /// The index of the newest listing or frame applied: frames at or below it are replays.
    pub cursor: u64,
    /// Delays before the next reconnects.
    pub backoff: Backoff,
    /// The current connection has exchanged a heartbeat or an event with Nomad: when it ends,
    /// the backoff starts over.
    pub exchanged: bool,
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
            exchanged: false,
            errors: ErrorLog::default(),
            next_listing: ResyncReason::Connect,
        }
    }
}

/// Why one connection ended.
#[derive(Debug)]
pub enum Ended {
    Stream(StreamEnd),
    Unparseable(String),
    /// A resync was asked for, or is due.
    Resync(ResyncReason),
    /// The loop is gone: stop.
    LoopGone,
}

/// What to do after a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Reconnect at once (a resync).
    Now,
    /// Wait this long, then reconnect.
    After(Duration),
    /// Stop watching.
    Stop,
}

impl Ended {
    /// The `reason` label of `stream_reconnects_total`.
    fn label(&self) -> &'static str {
        match self {
            Ended::Stream(StreamEnd::Closed {
                before_first_heartbeat: true,
                ..
            }) => "refused",
            Ended::Stream(StreamEnd::Closed { .. }) => "closed",
            Ended::Stream(StreamEnd::Silent { .. }) => "silent",
            Ended::Stream(StreamEnd::Transport(_) | StreamEnd::LineTooLong { .. }) => "transport",
            Ended::Unparseable(_) => "unparseable",
            Ended::Resync(_) | Ended::LoopGone => "resync",
        }
    }
}

impl WatchState {
    /// A listing taken at `index` was applied: the stream continues from there. The index may
    /// be lower than the cursor (the node's newest allocation was collected, or Nomad's indexes
    /// were reset by a snapshot restore): the listing is the truth, and the cursor starts over.
    pub fn listed(&mut self, index: u64) {
        if index < self.cursor {
            debug!(
                index,
                cursor = self.cursor,
                "the listing's index is below the cursor; following from it"
            );
        }
        self.cursor = index;
    }

    /// The allocations of `node_id` that a frame brings, or `None` for a replayed frame (at or
    /// below the cursor: Nomad re-sends the newest frame to every new subscriber).
    pub fn frame(&mut self, frame: Frame, node_id: &str) -> Option<Vec<Allocation>> {
        self.exchanged = true;
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

    /// How a connection that ended with `ended` is followed. A connection that exchanged a
    /// heartbeat or an event with Nomad proved it healthy: the backoff starts over, so that a
    /// cut after a burst of failures is not paid with the grown delay. (A listing alone does
    /// not count: a proxy that answers listings but breaks every subscription would otherwise
    /// cost a full listing every 250 ms.) A line that is not an event never resets it.
    pub fn ended(&mut self, ended: &Ended) -> Next {
        let exchanged = std::mem::take(&mut self.exchanged);
        if exchanged && !matches!(ended, Ended::Unparseable(_)) {
            self.backoff = Backoff::default();
        }
        match ended {
            Ended::LoopGone => Next::Stop,
            Ended::Resync(why) => {
                self.next_listing = *why;
                Next::Now
            }
            Ended::Stream(StreamEnd::Closed {
                before_first_heartbeat: true,
                ..
            }) => {
                self.next_listing = ResyncReason::Connect;
                Next::After(MAX_BACKOFF)
            }
            Ended::Unparseable(_) | Ended::Stream(_) => {
                self.next_listing = ResyncReason::Connect;
                Next::After(self.backoff.next_delay())
            }
        }
    }

    /// How a failed request is followed: a 403 waits the longest (a token does not fix itself
    /// quickly; a rotated token file cuts the wait short), anything else backs off.
    pub fn failed(&mut self, error: &Error) -> Duration {
        self.exchanged = false;
        self.next_listing = ResyncReason::Connect;
        match error {
            Error::PermissionDenied { .. } => MAX_BACKOFF,
            _ => self.backoff.next_delay(),
        }
    }
}

/// `interval` ± 10 %, so that many nodes do not resync in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

impl StreamWatcher {
    /// Runs until the loop that receives the updates goes away; the caller stops it at any
    /// await point (it holds nothing that a stop could lose). `resync` carries requests for a
    /// resync (SIGHUP, a burst of unknown allocations).
    pub async fn run(self, mut resync: mpsc::Receiver<ResyncReason>) {
        let mut state = WatchState::default();
        loop {
            // The timer and the requests cut the connection in any phase: a listing or a
            // subscription that never answers must not hold up the resync.
            let resync_at = Instant::now() + jittered(self.resync_interval);
            let outcome = tokio::select! {
                outcome = self.connect_and_follow(&mut state) => outcome,
                Some(why) = resync.recv() => Ok(Ended::Resync(why)),
                () = tokio::time::sleep_until(resync_at) => Ok(Ended::Resync(ResyncReason::Interval)),
            };
            if matches!(outcome, Ok(Ended::LoopGone)) {
                return;
            }
            self.stream_down(match &outcome {
                Ok(ended) => ended.label(),
                Err(_) => "error",
            });
            let delay = match outcome {
                Ok(ended) => {
                    match &ended {
                        Ended::Unparseable(line) => {
                            warn!(line = %line, "the event stream sent a line that is not an event; resyncing")
                        }
                        Ended::Stream(StreamEnd::Closed {
                            before_first_heartbeat: true,
                            url,
                            tail,
                        }) => {
                            self.explain_refused_subscription(url, tail, &mut state.errors)
                                .await;
                        }
                        Ended::Stream(end) => {
                            info!(reason = %end, "event stream ended; reconnecting")
                        }
                        Ended::Resync(_) | Ended::LoopGone => {}
                    }
                    match state.ended(&ended) {
                        Next::Stop => return,
                        Next::Now => continue,
                        Next::After(delay) => delay,
                    }
                }
                Err(error) => {
                    self.health
                        .update(|h| h.last_error = Some(error.to_string()));
                    let delay = state.failed(&error);
                    state
                        .errors
                        .report(CONNECTION_FAILED, &error.to_string(), delay);
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                Some(why) = resync.recv() => state.next_listing = why,
                () = self.client.token_rotated() => {
                    info!("the token file changed: reconnecting at once");
                }
            }
        }
    }

    /// Lists, subscribes and follows the stream until it ends.
    async fn connect_and_follow(&self, state: &mut WatchState) -> Result<Ended, Error> {
        let requested_at = Instant::now();
        let listed = self
            .client
            .node_allocations(&self.node_id, Blocking::default())
            .await?;
        let index = listed.index.unwrap_or(0);
        if state.errors.recovered() {
            info!("Nomad answers again");
        }
        state.listed(index);
        self.metrics
            .resyncs
            .with_label_values(&[state.next_listing.label()])
            .inc();
        self.metrics.last_sync.set(unix_now());
        self.health.update(|h| {
            h.last_listing = Some(Instant::now());
            h.last_error = None;
        });
        let listing = Update::Listed {
            allocations: listed.value,
            requested_at,
            reason: state.next_listing,
        };
        if self.updates.send(listing).await.is_err() {
            return Ok(Ended::LoopGone);
        }
        let mut stream = self.client.event_stream(index + 1).await?;
        debug!(index, "event stream subscribed");
        loop {
            let message = stream.next(self.stream_timeout).await;
            if matches!(message, Ok(Message::Heartbeat | Message::Frame(_))) && !state.exchanged {
                self.stream_up();
            }
            let frame = match message {
                Ok(Message::Heartbeat) => {
                    state.exchanged = true;
                    continue;
                }
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

    /// The subscription answered: the stream is live.
    fn stream_up(&self) {
        self.metrics.stream_up.set(1);
        self.health.update(|h| {
            h.stream_up_since = Some(Instant::now());
            h.stream_down_since = None;
        });
    }

    /// A connection ended (`reason` as labelled): the stream is down if it was up.
    fn stream_down(&self, reason: &'static str) {
        self.metrics
            .stream_reconnects
            .with_label_values(&[reason])
            .inc();
        self.metrics.stream_up.set(0);
        self.health.update(|h| {
            if h.stream_up_since.take().is_some() || h.stream_down_since.is_none() {
                h.stream_down_since = Some(Instant::now());
            }
        });
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

    #[test]
    fn a_listing_below_the_cursor_restarts_the_cursor_from_it() {
        let mut state = WatchState::default();
        state.listed(900);
        state.listed(20);
        assert_eq!(state.cursor, 20);
        assert!(
            state.frame(frame(21, &["n1"]), "n1").is_some(),
            "after an index reset"
        );
    }

    #[test]
    fn a_healthy_connection_resets_the_backoff_and_garbage_does_not() {
        let mut state = WatchState::default();
        let cut = || {
            Ended::Stream(StreamEnd::Silent {
                url: String::new(),
                seconds: 1,
            })
        };
        // A burst of failures grows the delay...
        for _ in 0..6 {
            state.failed(&Error::Status {
                url: String::new(),
                status: 500,
                body: String::new(),
            });
        }
        // ...and a connection that exchanged a heartbeat before its cut starts it over.
        state.exchanged = true;
        let Next::After(delay) = state.ended(&cut()) else {
            panic!("a cut is followed by a wait");
        };
        assert!(delay < Duration::from_millis(500), "{delay:?}");
        // A connection that only ever sent garbage does not reset it.
        for _ in 0..6 {
            state.exchanged = true;
            state.ended(&Ended::Unparseable("<html>".to_owned()));
        }
        let Next::After(delay) = state.ended(&cut()) else {
            panic!("a cut is followed by a wait");
        };
        assert!(delay >= Duration::from_secs(8), "{delay:?}");
    }

    #[test]
    fn a_resync_reconnects_at_once_with_its_reason_and_a_refusal_waits_longest() {
        let mut state = WatchState::default();
        assert_eq!(state.ended(&Ended::Resync(ResyncReason::Signal)), Next::Now);
        assert_eq!(state.next_listing, ResyncReason::Signal);
        let refused = Ended::Stream(StreamEnd::Closed {
            url: String::new(),
            before_first_heartbeat: true,
            tail: String::new(),
        });
        assert_eq!(state.ended(&refused), Next::After(MAX_BACKOFF));
        assert_eq!(state.next_listing, ResyncReason::Connect);
        assert_eq!(state.ended(&Ended::LoopGone), Next::Stop);
    }
}
