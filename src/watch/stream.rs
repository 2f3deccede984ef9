//! The event-stream watcher (`--watch events`). Every (re)connection lists the node's
//! allocations first and then subscribes from the listing's index + 1, so nothing between the
//! two is lost; frames at or below the cursor (Nomad replays the tail) are dropped; only this
//! node's allocations are passed on. Any end of the stream (EOF, silence past the read deadline,
//! a line that is not JSON) leads to a reconnect (with a listing) with exponential backoff and
//! jitter. Every [`RESUBSCRIBE_INTERVAL`] the stream is resubscribed from the cursor without a
//! listing (a subscription to `namespace=*` fixes its namespaces when it starts, so this
//! follows new ones); a full listing comes on every reconnect, every `--resync-interval` and on
//! request. The resync timer and requests cut a connection in any phase, a hung listing or
//! subscription included; the resubscribe counts from the subscription, so that a listing
//! slower than it is not cut and begun again for ever. The loop's state ([`WatchState`]) is
//! data, so that its transitions can be tested; it also meters what the stream costs against
//! blocking queries ([`cost`]).
//!
//! [`cost`]: super::cost

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::cost::CostMeter;
use super::report::{report_down, report_listing, report_up};
use crate::listing::{Parts, Source};
use crate::nomad::events::{Frame, Message};
use crate::nomad::types::{Allocation, Node};
use crate::nomad::{Error, NomadClient, StreamEnd};
use crate::observe::health::Health;
use crate::observe::metrics::Metrics;
use crate::retry::{Backoff, ErrorLog, MAX_BACKOFF};
use crate::run::machine::{ListingId, ResyncReason, Update};

/// How a failure is logged.
const CONNECTION_FAILED: &str = "Nomad connection failed; keeping the last table";
/// How often the stream is resubscribed from its cursor without a listing, to follow namespaces
/// created since it subscribed.
pub const RESUBSCRIBE_INTERVAL: Duration = Duration::from_secs(300);

/// What the watcher needs.
pub struct StreamWatcher {
    pub client: Arc<NomadClient>,
    /// What the table covers.
    pub source: Source,
    pub updates: mpsc::Sender<Update>,
    pub resync_interval: Duration,
    pub stream_timeout: Duration,
    /// How often the stream's cost is compared with blocking queries'.
    pub cost_report_interval: Duration,
    /// The wait blocking queries would use, for that comparison.
    pub blocking_wait: Duration,
    /// How long a subscription is followed before it is resubscribed from the cursor
    /// ([`RESUBSCRIBE_INTERVAL`], jittered; tests shorten it).
    pub resubscribe_interval: Duration,
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
    /// Why the next listing is taken...
    pub next_listing: ResyncReason,
    /// ...and whether the next connection takes one (a planned resubscribe does not, unless it
    /// cut the listing short).
    pub list_on_connect: bool,
    /// What the stream costs, against blocking queries.
    pub cost: CostMeter,
    /// How long the last listing took: a resync request does not cut a connection younger
    /// than that (see [`resync_allowed_from`]).
    pub last_listing_took: Duration,
}

impl WatchState {
    /// The state at start: no cursor, a listing on the first connect.
    pub fn new(cost: CostMeter) -> WatchState {
        WatchState {
            cursor: 0,
            backoff: Backoff::default(),
            exchanged: false,
            errors: ErrorLog::default(),
            next_listing: ResyncReason::Connect,
            list_on_connect: true,
            cost,
            last_listing_took: Duration::ZERO,
        }
    }
}

/// The least time between two listings that SIGHUPs ask for.
pub const MIN_RESYNC_GAP: Duration = Duration::from_secs(1);

/// When a SIGHUP's resync may cut a connection that began at `started`: once it is at least
/// [`MIN_RESYNC_GAP`] old and as old as the last listing took, so that a flood of SIGHUPs can
/// neither keep a listing from ever completing nor list back to back. A SIGHUP that comes
/// sooner waits (more are coalesced in their queue); a burst of unknown allocations, whose
/// fetches wait for the listing, and the resync timer are not held back.
pub fn resync_allowed_from(started: Instant, last_listing_took: Duration) -> Instant {
    started + last_listing_took.max(MIN_RESYNC_GAP)
}

/// What a new frame brought.
#[derive(Debug, PartialEq)]
pub struct Received {
    /// The allocations the table covers (this node's, or all in cluster scope).
    pub own: Vec<Allocation>,
    /// Nodes, from the Node topic (cluster scope).
    pub nodes: Vec<Node>,
    /// The frame's bytes, split by whose events they carry.
    pub own_bytes: u64,
    pub other_bytes: u64,
}

/// Why one connection ended.
#[derive(Debug)]
pub enum Ended {
    Stream(StreamEnd),
    Unparseable(String),
    /// A resync was asked for, or is due.
    Resync(ResyncReason),
    /// Time to resubscribe (without a listing).
    Resubscribe,
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
            Ended::Resubscribe => "resubscribe",
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
        // The listing this connection owed is taken: a planned resubscribe need not list.
        self.list_on_connect = false;
    }

    /// What a frame brings for `source`, or `None` for a replayed frame (at or below the
    /// cursor: Nomad re-sends the newest frame to every new subscriber).
    pub fn frame(&mut self, frame: Frame, source: &Source) -> Option<Received> {
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
        let all = frame.events.len();
        let mut own = Vec::new();
        let mut nodes = Vec::new();
        for payload in frame.events.into_iter().map(|event| event.payload) {
            if let Some(alloc) = payload.allocation.filter(|a| source.wants(a)) {
                own.push(alloc);
            }
            nodes.extend(payload.node);
        }
        let (own_bytes, other_bytes) = self.cost.frame(frame.bytes, own.len() + nodes.len(), all);
        Some(Received {
            own,
            nodes,
            own_bytes,
            other_bytes,
        })
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
        // A resubscribe comes only once the connection's listing is taken, and keeps whatever
        // is still owed: a listing's pages are in the model, and what it omits leaves only at
        // its end.
        self.list_on_connect |= !matches!(ended, Ended::Resubscribe);
        match ended {
            Ended::LoopGone => Next::Stop,
            Ended::Resubscribe => Next::Now,
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
        self.list_on_connect = true;
        match error {
            Error::PermissionDenied { .. } | Error::UnknownToken { .. } => MAX_BACKOFF,
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
        let mut state = WatchState::new(CostMeter::new(
            Instant::now(),
            self.cost_report_interval,
            self.blocking_wait,
        ));
        let mut resync_at = Instant::now() + jittered(self.resync_interval);
        loop {
            if state.list_on_connect {
                resync_at = Instant::now() + jittered(self.resync_interval);
                // The listing about to be taken answers every request already queued: a burst
                // that asked several times is one listing, not several cut short.
                while resync.try_recv().is_ok() {}
            }
            let requests_from = resync_allowed_from(Instant::now(), state.last_listing_took);
            // The resync timer and the requests cut the connection in any phase: a listing or
            // a subscription that never answers must not hold up the resync.
            let outcome = tokio::select! {
                outcome = self.connect_and_follow(&mut state, resync_at) => outcome,
                Some(why) = async {
                    let why = resync.recv().await?;
                    // A burst is answered at once (the fetches wait for it); a SIGHUP waits
                    // for the gap while the connection goes on.
                    if why == ResyncReason::Signal {
                        tokio::time::sleep_until(requests_from).await;
                    }
                    Some(why)
                } => Ok(Ended::Resync(why)),
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
                        Ended::Resync(_) | Ended::Resubscribe | Ended::LoopGone => {}
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
            // A SIGHUP shortens the wait, but not below the gap: a flood of them during an
            // outage reconnects at most once a second, not at every signal.
            let waiting_from = Instant::now();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                Some(why) = async {
                    let why = resync.recv().await?;
                    if why == ResyncReason::Signal {
                        tokio::time::sleep_until(resync_allowed_from(waiting_from, Duration::ZERO))
                            .await;
                    }
                    Some(why)
                } => state.next_listing = why,
                () = self.client.token_rotated() => {
                    info!("the token file changed: reconnecting at once");
                }
            }
        }
    }

    /// Lists (unless resubscribing), subscribes and follows the stream until it ends or, unless
    /// the resync at `resync_at` comes first, until it is time to resubscribe.
    async fn connect_and_follow(
        &self,
        state: &mut WatchState,
        resync_at: Instant,
    ) -> Result<Ended, Error> {
        if state.list_on_connect {
            if let Some(gone) = self.list(state).await? {
                return Ok(gone);
            }
        } else {
            debug!(cursor = state.cursor, "resubscribing from the cursor");
        }
        let mut stream = self
            .client
            .event_stream(self.source.topics(), state.cursor + 1)
            .await?;
        debug!(index = state.cursor, "event stream subscribed");
        // Counted from here, not from the connect: a listing that takes longer than this must
        // not be cut short and begun again at every attempt.
        let resubscribe_at = Instant::now() + jittered(self.resubscribe_interval);
        loop {
            let message = tokio::select! {
                message = stream.next(self.stream_timeout) => message,
                () = tokio::time::sleep_until(resubscribe_at), if resubscribe_at < resync_at => {
                    return Ok(Ended::Resubscribe);
                }
            };
            if matches!(message, Ok(Message::Heartbeat | Message::Frame(_))) && !state.exchanged {
                // The subscription answered: the stream is live.
                report_up(&self.metrics, &self.health);
            }
            // Only a node's table has per-node blocking queries to compare with.
            if let Source::Node(_) = self.source
                && let Some(comparison) = state.cost.due(Instant::now())
            {
                let cheaper = if comparison.blocking_is_cheaper() {
                    warn!("{comparison}; consider --watch blocking");
                    "blocking"
                } else {
                    debug!("{comparison}; the event stream is the cheaper watch here");
                    "events"
                };
                self.metrics
                    .cost_comparisons
                    .with_label_values(&[cheaper])
                    .inc();
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
            let Some(received) = state.frame(frame, &self.source) else {
                continue;
            };
            self.count_event_bytes(&received);
            for node in received.nodes {
                if self
                    .updates
                    .send(Update::NodeChanged(Box::new(node)))
                    .await
                    .is_err()
                {
                    return Ok(Ended::LoopGone);
                }
            }
            for alloc in received.own {
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

    /// Lists what the table covers and sends the listing to the loop part by part as it
    /// comes (the nodes first); `Some` when the loop is gone.
    async fn list(&self, state: &mut WatchState) -> Result<Option<Ended>, Error> {
        let requested_at = Instant::now();
        let mut parts = ToLoop {
            updates: &self.updates,
            listing: ListingId::next(),
            requested_at,
            reason: state.next_listing,
        };
        let Some(listed) = self.source.list(&self.client, &mut parts).await? else {
            return Ok(Some(Ended::LoopGone));
        };
        state.last_listing_took = requested_at.elapsed();
        if state.errors.recovered() {
            info!("Nomad answers again");
        }
        let end = Update::Listed {
            listing: parts.listing,
            allocations: Vec::new(),
            requested_at,
            reason: parts.reason,
        };
        if self.updates.send(end).await.is_err() {
            return Ok(Some(Ended::LoopGone));
        }
        // Only once its end is with the loop is the listing taken: a connection cut while the
        // end waits for room in the queue lists again.
        state.listed(listed.index);
        state.cost.listing(listed.bytes);
        report_listing(&self.metrics, &self.health, state.next_listing);
        Ok(None)
    }

    /// Counts a frame's bytes in `event_bytes_total`.
    fn count_event_bytes(&self, received: &Received) {
        self.metrics
            .event_bytes
            .with_label_values(&["own"])
            .inc_by(received.own_bytes);
        self.metrics
            .event_bytes
            .with_label_values(&["other"])
            .inc_by(received.other_bytes);
    }

    /// A connection ended (`reason` as labelled): the stream is down if it was up.
    fn stream_down(&self, reason: &'static str) {
        self.metrics
            .stream_reconnects
            .with_label_values(&[reason])
            .inc();
        report_down(&self.metrics, &self.health);
    }

    /// A 200 that closed before its first heartbeat: newer Nomad refuses a subscription that
    /// way, so ask a plain endpoint what is wrong.
    async fn explain_refused_subscription(&self, url: &str, tail: &str, errors: &mut ErrorLog) {
        let message = match self.source.probe(&self.client).await {
            Some(error) => error.to_string(),
            None => format!(
                "Nomad closed the event stream at {url} before its first heartbeat{}; the token can list what the table covers, so it most likely lacks namespace:read-job on some namespace (namespace=* needs it on every one)",
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

/// A listing's parts, sent to the loop as they come.
struct ToLoop<'a> {
    updates: &'a mpsc::Sender<Update>,
    listing: ListingId,
    requested_at: Instant,
    reason: ResyncReason,
}

impl Parts for ToLoop<'_> {
    async fn nodes(&mut self, nodes: Vec<Node>) -> bool {
        self.updates.send(Update::NodesListed(nodes)).await.is_ok()
    }

    async fn allocations(&mut self, page: Vec<Allocation>) -> bool {
        let part = Update::ListedPart {
            listing: self.listing,
            allocations: page,
            requested_at: self.requested_at,
            reason: self.reason,
        };
        self.updates.send(part).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::events::{Event, Payload};
    use crate::nomad::{Address, ConnectionSettings, TlsSettings, TokenSource};
    use fake_nomad::FakeNomad;
    use fake_nomad::server::stream::ROUTE as STREAM_ROUTE;

    #[test]
    fn a_resync_request_waits_for_the_gap_and_for_as_long_as_a_listing_takes() {
        let started = Instant::now();
        assert_eq!(
            resync_allowed_from(started, Duration::ZERO),
            started + MIN_RESYNC_GAP
        );
        let slow = Duration::from_secs(6);
        assert_eq!(resync_allowed_from(started, slow), started + slow);
    }

    fn state() -> WatchState {
        WatchState::new(CostMeter::new(
            Instant::now(),
            Duration::from_secs(3600),
            Duration::from_secs(300),
        ))
    }

    fn n1() -> Source {
        Source::Node("n1".to_owned())
    }

    fn frame(index: u64, nodes: &[&str]) -> Frame {
        Frame {
            index,
            bytes: 100 * nodes.len(),
            events: nodes
                .iter()
                .enumerate()
                .map(|(i, node)| Event {
                    topic: "Allocation".to_owned(),
                    event_type: "AllocationUpdated".to_owned(),
                    index,
                    payload: Payload {
                        allocation: Some(Allocation {
                            id: format!("a{i}").into(),
                            node_id: (*node).into(),
                            ..Allocation::default()
                        }),
                        node: None,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn frames_at_or_below_the_cursor_are_replays_and_other_nodes_are_dropped() {
        let mut state = state();
        state.listed(10);
        assert_eq!(
            state.frame(frame(10, &["n1"]), &n1()),
            None,
            "the replayed tail"
        );
        assert_eq!(state.cursor, 10);
        let mine = state
            .frame(frame(11, &["n1", "n2", "n1"]), &n1())
            .expect("new");
        assert_eq!(mine.own.len(), 2, "only this node's allocations");
        assert_eq!((mine.own_bytes, mine.other_bytes), (200, 100));
        assert_eq!(state.cursor, 11);
        assert_eq!(state.frame(frame(11, &["n1"]), &n1()), None);
    }

    #[test]
    fn a_listing_below_the_cursor_restarts_the_cursor_from_it() {
        let mut state = state();
        state.listed(900);
        state.listed(20);
        assert_eq!(state.cursor, 20);
        assert!(
            state.frame(frame(21, &["n1"]), &n1()).is_some(),
            "after an index reset"
        );
    }

    #[test]
    fn a_healthy_connection_resets_the_backoff_and_garbage_does_not() {
        let mut state = state();
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
    fn a_resubscribe_reconnects_at_once_without_a_listing_and_anything_else_lists() {
        let mut state = state();
        state.listed(10);
        assert_eq!(state.ended(&Ended::Resubscribe), Next::Now);
        assert!(!state.list_on_connect, "a resubscribe follows the cursor");
        assert_eq!(state.cursor, 10);
        let cut = Ended::Stream(StreamEnd::Silent {
            url: String::new(),
            seconds: 1,
        });
        assert!(matches!(state.ended(&cut), Next::After(_)));
        assert!(state.list_on_connect, "a reconnect lists first");
        state.list_on_connect = false;
        state.ended(&Ended::Resync(ResyncReason::Interval));
        assert!(state.list_on_connect, "a resync lists");
        state.list_on_connect = false;
        state.failed(&Error::Status {
            url: String::new(),
            status: 500,
            body: String::new(),
        });
        assert!(state.list_on_connect, "a failure lists on the next connect");
        assert_eq!(state.ended(&Ended::Resubscribe), Next::Now);
        assert!(
            state.list_on_connect,
            "a listing still owed stays owed through a resubscribe"
        );
    }

    /// A watcher of `node` on `fake` that resubscribes every [`SHORT_RESUBSCRIBE`], sending
    /// its updates to `updates`.
    fn watcher_of(fake: &FakeNomad, node: &str, updates: mpsc::Sender<Update>) -> StreamWatcher {
        let client = NomadClient::new(ConnectionSettings {
            address: Address::parse(fake.address()).expect("address"),
            token: TokenSource::None,
            region: None,
            tls: TlsSettings::default(),
            basic_auth: None,
        })
        .expect("client");
        StreamWatcher {
            client: Arc::new(client),
            source: Source::Node(node.to_owned()),
            updates,
            resync_interval: Duration::from_secs(3600),
            stream_timeout: Duration::from_secs(60),
            cost_report_interval: Duration::from_secs(3600),
            blocking_wait: Duration::from_secs(300),
            resubscribe_interval: SHORT_RESUBSCRIBE,
            metrics: Arc::new(Metrics::new()),
            health: Health::default(),
        }
    }

    const SHORT_RESUBSCRIBE: Duration = Duration::from_millis(50);

    /// The fake's requests whose path ends with `suffix`.
    fn requests_to(fake: &FakeNomad, suffix: &str) -> usize {
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count()
    }

    fn fake_with_a_node() -> (FakeNomad, String) {
        let mut cluster = fake_nomad::Cluster::new(42);
        let node = cluster.add_node(fake_nomad::Node::new("client-1"));
        (FakeNomad::start(cluster), node)
    }

    #[tokio::test]
    async fn a_listing_slower_than_the_resubscribe_interval_is_not_cut_short_and_begun_again() {
        let (fake, node) = fake_with_a_node();
        fake.set_fault(Some(fake_nomad::Fault::NoHeaders));
        let (updates, _incoming) = mpsc::channel(16);
        let (_requests, resync) = mpsc::channel(1);
        let watching = tokio::spawn(watcher_of(&fake, &node, updates).run(resync));
        // Ten resubscribe intervals: a listing cut by each would have been asked ten times.
        tokio::time::sleep(SHORT_RESUBSCRIBE * 10).await;
        watching.abort();
        assert_eq!(
            requests_to(&fake, "/allocations"),
            1,
            "the hung listing is waited for (until the resync or the headers deadline)"
        );
        assert_eq!(requests_to(&fake, STREAM_ROUTE), 0);
    }

    #[tokio::test]
    async fn a_followed_stream_is_resubscribed_from_the_cursor_without_listing_again() {
        let (fake, node) = fake_with_a_node();
        let (updates, mut incoming) = mpsc::channel(16);
        let (_requests, resync) = mpsc::channel(1);
        let watching = tokio::spawn(watcher_of(&fake, &node, updates).run(resync));
        let deadline = Instant::now() + Duration::from_secs(20);
        while requests_to(&fake, STREAM_ROUTE) < 3 {
            assert!(Instant::now() < deadline, "no third subscription");
            tokio::time::sleep(SHORT_RESUBSCRIBE / 5).await;
        }
        watching.abort();
        assert_eq!(requests_to(&fake, "/allocations"), 1, "listed once");
        let mut ends = 0;
        while let Ok(update) = incoming.try_recv() {
            ends += usize::from(matches!(update, Update::Listed { .. }));
        }
        assert_eq!(ends, 1, "the loop got the listing's end once");
    }

    #[test]
    fn a_resync_reconnects_at_once_with_its_reason_and_a_refusal_waits_longest() {
        let mut state = state();
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
