//! The watchers as their loops drive their real state: the blocking watcher's
//! [`RelistState`] (queries that block at the simulated servers, the leader asked when a stale
//! answer goes backwards) and the event-stream watcher's [`WatchState`] (a listing on every
//! connect, a subscription that replays from the cursor, cuts and resyncs).

use std::time::Duration;

use super::happening::Happening;
use super::nomad::{SimFrame, State};
use super::process::Process;
use super::world::{OTHER_NODE, OUR_NODE, World};
use crate::listing::Source;
use crate::nomad::Error;
use crate::nomad::events::{Event, Frame, Payload, StreamEnd};
use crate::nomad::query::Consistency;
use crate::nomad::types::Node;
use crate::run::machine::{ListingId, ResyncReason, Update};
use crate::watch::blocking::{RelistState, Verdict};
use crate::watch::stream::{Ended, Next, WatchState};

/// A blocking query waiting at the server.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) conn: u64,
    pub(super) min_index: u64,
    pub(super) deadline: Duration,
    pub(super) consistency: Consistency,
    pub(super) requested_at: Duration,
}

/// The watcher's side, as its loop keeps it.
pub(super) enum Watcher {
    Blocking {
        state: RelistState,
        /// When the last query was sent, for `--min-relist-interval`.
        issued: Option<Duration>,
        pending: Option<Pending>,
    },
    Stream {
        state: WatchState,
        /// Subscribed (the listing was applied) and receiving frames.
        following: bool,
        resync_at: Duration,
        /// When the listing in flight was requested.
        listing_since: Option<Duration>,
    },
}

impl World {
    pub(super) fn resync_request(&mut self, why: ResyncReason) {
        let Some(p) = self
            .process
            .as_mut()
            .filter(|p| !p.exited && p.conn != u64::MAX)
        else {
            return;
        };
        match &mut p.watcher {
            Watcher::Blocking {
                state,
                issued,
                pending,
            } => {
                // A fresh listing at once: the blocking one is dropped.
                state.next_reason = why;
                state.blocking = false;
                *pending = None;
                self.next_conn += 1;
                p.conn = self.next_conn;
                let conn = p.conn;
                let from = issued.map_or(self.now, |i| {
                    (i + self.timing.min_relist_interval).max(self.now)
                });
                self.at(from, Happening::Issue { conn });
            }
            Watcher::Stream { listing_since, .. } => {
                if listing_since.is_some() && why == ResyncReason::Burst {
                    // The listing under way answers it (the queue is drained at connect).
                    return;
                }
                p.resyncs_queued.push(why);
                self.stream_ended(Ended::Resync(why));
            }
        }
    }

    pub(super) fn issue(&mut self, conn: u64) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let now = self.now;
        let failed = now < self.outage_until;
        let status = self.outage_status;
        let wait = self.timing.resync_interval;
        let min_relist = self.timing.min_relist_interval;
        let p = self.process.as_mut().expect("a process watches");
        match &mut p.watcher {
            Watcher::Blocking {
                state,
                issued,
                pending,
            } => {
                if let Some(at) = *issued
                    && at + min_relist > now
                {
                    let from = at + min_relist;
                    self.at(from, Happening::Issue { conn });
                    return;
                }
                *issued = Some(now);
                let query = state.query(wait);
                if failed {
                    let delay = state.failed(&server_error(status));
                    *issued = None;
                    self.after(delay, Happening::Issue { conn });
                    return;
                }
                let jitter = query.wait.map_or(Duration::ZERO, |w| {
                    Duration::from_millis(self.rng.u64(0..=(w.as_millis() as u64) / 16))
                });
                let deadline = now + query.wait.unwrap_or_default() + jitter;
                *pending = Some(Pending {
                    conn,
                    min_index: if query.wait.is_some() { query.index } else { 0 },
                    deadline,
                    consistency: query.consistency,
                    requested_at: now,
                });
                self.at(deadline, Happening::Recheck);
                self.recheck_pending();
            }
            Watcher::Stream {
                state,
                resync_at,
                listing_since,
                following,
            } => {
                *following = false;
                if failed {
                    let delay = state.failed(&server_error(status));
                    self.next_conn += 1;
                    p.conn = self.next_conn;
                    let conn = p.conn;
                    self.after(delay, Happening::Issue { conn });
                    return;
                }
                if state.list_on_connect {
                    let jittered = wait.mul_f64(0.9 + self.rng.f64() * 0.2);
                    *resync_at = now + jittered;
                    p.resyncs_queued.clear();
                    *listing_since = Some(now);
                    let at = *resync_at;
                    self.at(at, Happening::ResyncDue { conn });
                    let lag = self.lag();
                    let state = self.nomad.follower(now, lag);
                    let answer = Some(self.listing_of(state));
                    let latency = self.jitter(1, 80);
                    self.after(
                        latency,
                        Happening::Listing {
                            conn,
                            requested_at: now,
                            consistency: Consistency::Stale,
                            answer,
                        },
                    );
                } else {
                    self.subscribe(conn);
                }
            }
        }
    }

    pub(super) fn listing_of(&self, state: &State) -> (Vec<crate::nomad::types::Allocation>, u64) {
        if self.mode.cluster() {
            state.cluster_listing()
        } else {
            (state.node_listing(OUR_NODE), state.node_index(OUR_NODE))
        }
    }

    /// Answers the blocking query in flight when its index passed or its wait ran out.
    pub(super) fn recheck_pending(&mut self) {
        let now = self.now;
        let lag = self.lag();
        let Some(p) = self.process.as_mut() else {
            return;
        };
        let Watcher::Blocking { pending, .. } = &mut p.watcher else {
            return;
        };
        let Some(query) = pending.as_ref() else {
            return;
        };
        let state = match query.consistency {
            Consistency::Stale => self.nomad.follower(now, lag),
            Consistency::Leader => &self.nomad.leader,
        };
        let index = state.node_index(OUR_NODE);
        if query.min_index != 0 && index <= query.min_index && now < query.deadline {
            return;
        }
        let query = pending.take().expect("checked above");
        let answer = Some((state.node_listing(OUR_NODE), index));
        let latency = self.jitter(1, 40);
        self.after(
            latency,
            Happening::Listing {
                conn: query.conn,
                requested_at: query.requested_at,
                consistency: query.consistency,
                answer,
            },
        );
    }

    pub(super) fn listing_answered(
        &mut self,
        conn: u64,
        requested_at: Duration,
        consistency: Consistency,
        answer: Option<(Vec<crate::nomad::types::Allocation>, u64)>,
    ) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let Some((mut allocations, index)) = answer else {
            return;
        };
        let listing = ListingId::next();
        if self.mode.cluster() && self.cluster_parts(listing, requested_at, &mut allocations) {
            return;
        }
        let p = self.process.as_mut().expect("a process watches");
        let reason = match &mut p.watcher {
            Watcher::Blocking { state, pending, .. } => match state.answered(index, consistency) {
                Verdict::AskLeader => {
                    *pending = Some(Pending {
                        conn,
                        min_index: 0,
                        deadline: self.now,
                        consistency: Consistency::Leader,
                        requested_at,
                    });
                    self.recheck_pending();
                    return;
                }
                Verdict::Apply(reason) => {
                    self.oracle.applied_listing(index, consistency, self.now);
                    self.after(Duration::ZERO, Happening::Issue { conn });
                    reason
                }
            },
            Watcher::Stream {
                state,
                listing_since,
                ..
            } => {
                *listing_since = None;
                state.last_listing_took = self.now - requested_at;
                state.listed(index);
                // The listing is the truth: the cursor follows it, even down.
                self.oracle.cursor_reset(index);
                let reason = state.next_listing;
                self.subscribe(conn);
                reason
            }
        };
        let requested_at = self.instant(requested_at);
        self.send(Update::Listed {
            listing,
            allocations,
            requested_at,
            reason,
        });
    }

    /// The cluster lister's parts before the last: the nodes, then pages as they come, which
    /// the loop takes while other inputs interleave; one listing in sixteen fails after some
    /// pages, as a lister whose next page is refused does. Leaves the last page in
    /// `allocations`; returns whether the listing failed.
    fn cluster_parts(
        &mut self,
        listing: ListingId,
        requested_at: Duration,
        allocations: &mut Vec<crate::nomad::types::Allocation>,
    ) -> bool {
        let Some(Process {
            watcher: Watcher::Stream { state, .. },
            ..
        }) = self.process.as_ref()
        else {
            unreachable!("the cluster scope watches the event stream");
        };
        let reason = state.next_listing;
        let nodes = [OUR_NODE, OTHER_NODE]
            .map(|id| Node {
                id: id.to_owned(),
                name: id.to_owned(),
                ..Node::default()
            })
            .to_vec();
        self.send(Update::NodesListed(nodes));
        let pages = self.rng.usize(1..=4);
        let fails = self.rng.u8(..16) == 0;
        let page_size = allocations.len().div_ceil(pages).max(1);
        let requested_at = self.instant(requested_at);
        while allocations.len() > page_size {
            let rest = allocations.split_off(page_size);
            let page = std::mem::replace(allocations, rest);
            self.send(Update::ListedPart {
                listing,
                allocations: page,
                requested_at,
                reason,
            });
        }
        if !fails {
            return false;
        }
        let p = self.process.as_mut().expect("a process watches");
        if let Watcher::Stream {
            state,
            listing_since,
            ..
        } = &mut p.watcher
        {
            *listing_since = None;
            let delay = state.failed(&server_error(500));
            self.next_conn += 1;
            p.conn = self.next_conn;
            let conn = p.conn;
            self.after(delay, Happening::Issue { conn });
            self.oracle.disturbed(self.now, self.now + delay);
        }
        true
    }

    /// Subscribes from the cursor: the buffered frames from there come first.
    pub(super) fn subscribe(&mut self, conn: u64) {
        let Some(Process {
            watcher: Watcher::Stream {
                state, following, ..
            },
            ..
        }) = self.process.as_mut()
        else {
            return;
        };
        *following = true;
        let from = state.cursor + 1;
        let mut at = self.now.max(self.stream_clock);
        for frame in self.nomad.replay(from) {
            at += Duration::from_millis(1);
            self.at(at, Happening::Frame { conn, frame });
        }
        self.stream_clock = at;
    }

    pub(super) fn frame(&mut self, conn: u64, frame: SimFrame) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let source = Source::Node(OUR_NODE.to_owned());
        let cluster = self.mode.cluster();
        let Some(Process {
            watcher: Watcher::Stream { state, .. },
            ..
        }) = self.process.as_mut()
        else {
            return;
        };
        let index = frame.index;
        let events = frame
            .allocs
            .iter()
            .map(|a| Event {
                topic: "Allocation".to_owned(),
                event_type: "AllocationUpdated".to_owned(),
                index,
                payload: Payload {
                    allocation: Some(a.to_api(false)),
                    node: None,
                },
            })
            .collect();
        let all: Vec<_> = frame.allocs.iter().map(|a| a.to_api(false)).collect();
        let Some(received) = state.frame(
            Frame {
                index,
                events,
                bytes: 1_000,
            },
            &source,
        ) else {
            return;
        };
        self.oracle.applied_frame(index, self.now);
        let own = if cluster { all } else { received.own };
        for alloc in own {
            self.send(Update::Event(Box::new(alloc)));
        }
    }

    pub(super) fn cut_stream(&mut self) {
        let following = matches!(
            self.process.as_ref().map(|p| &p.watcher),
            Some(Watcher::Stream {
                following: true,
                ..
            })
        );
        if following && self.current_conn().is_some() {
            self.stream_ended(Ended::Stream(StreamEnd::Closed {
                url: String::new(),
                before_first_heartbeat: false,
                tail: String::new(),
            }));
        }
    }

    /// The connection ended: reconnect at once or after the backoff.
    pub(super) fn stream_ended(&mut self, ended: Ended) {
        let Some(p) = self
            .process
            .as_mut()
            .filter(|p| !p.exited && p.conn != u64::MAX)
        else {
            return;
        };
        let Watcher::Stream {
            state,
            following,
            listing_since,
            ..
        } = &mut p.watcher
        else {
            return;
        };
        // A subscribed connection has had its heartbeats.
        state.exchanged = std::mem::take(following);
        *listing_since = None;
        let next = state.ended(&ended);
        self.next_conn += 1;
        p.conn = self.next_conn;
        let conn = p.conn;
        match next {
            Next::Now => self.after(Duration::ZERO, Happening::Issue { conn }),
            Next::After(delay) => self.after(delay, Happening::Issue { conn }),
            Next::Stop => {}
        }
    }
}

/// What an outage answers: a 403 refusal or a 5xx.
pub(super) fn server_error(status: u16) -> Error {
    if status == 403 {
        return Error::PermissionDenied {
            url: String::new(),
            body: "Permission denied".to_owned(),
            needs: crate::nomad::Needs::Nothing,
        };
    }
    Error::Status {
        url: String::new(),
        status,
        body: "rpc error: No cluster leader".to_owned(),
    }
}
