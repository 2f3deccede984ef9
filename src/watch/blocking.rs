//! The blocking-query watcher (`--watch blocking`): it long-polls this node's allocation
//! listing, `/v1/node/:id/allocations?index=<cursor>&wait=<wait>`, which Nomad wakes only when
//! one of the node's allocations changes (its index is their highest `ModifyIndex`, the same
//! per-node watch Nomad clients block on). Every answer is a full listing that replaces the
//! model; the answer at the end of the wait is the periodic resync. So a node's cost does not
//! grow with the rest of the cluster, unlike the event stream, which carries every node's events
//! to every subscriber.
//!
//! The cursor is always the answer's `X-Nomad-Index`. An index below the cursor from a stale
//! read may be a follower that is behind: the leader is asked, and its answer is the truth,
//! even when lower (a snapshot restore or a new cluster: the cursor restarts from it, as the
//! guidance for Nomad's and Consul's blocking queries says). After a failed query (a server
//! restart among the possible causes) the next one answers at once instead of blocking on a
//! cursor the restarted state may not reach for a long time. Queries are paced by
//! `--min-relist-interval`, so no answer (an index of 0 included) can make a tight loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::report::{report_down, report_listing, report_up};
use crate::nomad::query::Consistency;
use crate::nomad::{Blocking, Error, NomadClient};
use crate::observe::health::Health;
use crate::observe::metrics::Metrics;
use crate::retry::{Backoff, ErrorLog, MAX_BACKOFF};
use crate::run::machine::{ListingId, ResyncReason, Update};

/// How a failure is logged.
const QUERY_FAILED: &str = "Nomad query failed; keeping the last table";
/// Nomad caps a blocking query's wait at this (`MaxBlockingRPCQueryTime`).
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// What the watcher needs.
pub struct BlockingWatcher {
    pub client: Arc<NomadClient>,
    pub node_id: String,
    pub updates: mpsc::Sender<Update>,
    /// How long a query waits for a change: the resync interval, at most [`MAX_WAIT`].
    pub wait: Duration,
    pub min_relist_interval: Duration,
    pub metrics: Arc<Metrics>,
    pub health: Health,
}

/// The watcher's loop state, kept as data so that tests can assert its transitions.
#[derive(Debug)]
pub struct RelistState {
    /// The index of the last answer applied; 0 before the first.
    pub cursor: u64,
    /// Whether the next query blocks on the cursor: not at start, and not after a failure
    /// (the failure may have been a server restart that reset Nomad's indexes, and blocking on
    /// an index the new state has not reached would hang until the wait ends).
    pub blocking: bool,
    /// Delays before retries after failures.
    pub backoff: Backoff,
    /// The last error reported, so that a repeated one is logged once.
    pub errors: ErrorLog,
    /// Why the next answer is taken, when it does not say so itself: after a failure or at
    /// start, a (re)connect; after SIGHUP, the signal.
    pub next_reason: ResyncReason,
}

impl Default for RelistState {
    fn default() -> RelistState {
        RelistState {
            cursor: 0,
            blocking: false,
            backoff: Backoff::default(),
            errors: ErrorLog::default(),
            next_reason: ResyncReason::Connect,
        }
    }
}

/// What to do with an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it as a listing for this reason.
    Apply(ResyncReason),
    /// Its index went backwards on a stale read: ask the leader before believing it.
    AskLeader,
}

impl RelistState {
    /// The next query: blocking on the cursor, or answering at once (at start, after a
    /// failure or a resync request).
    pub fn query(&self, wait: Duration) -> Blocking {
        if !self.blocking {
            return Blocking::default();
        }
        Blocking {
            index: self.cursor,
            wait: Some(wait),
            consistency: Consistency::Stale,
        }
    }

    /// Judges an answer with `index`, read with `consistency`, and moves the cursor when it is
    /// to be applied.
    pub fn answered(&mut self, index: u64, consistency: Consistency) -> Verdict {
        self.backoff = Backoff::default();
        if index < self.cursor && consistency == Consistency::Stale {
            return Verdict::AskLeader;
        }
        let reason = match std::mem::replace(&mut self.next_reason, ResyncReason::Change) {
            ResyncReason::Change if index == self.cursor => ResyncReason::Interval,
            ResyncReason::Change if index < self.cursor => {
                info!(
                    index,
                    cursor = self.cursor,
                    "Nomad's index went backwards (a snapshot restore or a new cluster); following from it"
                );
                ResyncReason::Connect
            }
            other => other,
        };
        // An index of 0 would make the next query answer at once, for ever.
        self.cursor = index.max(1);
        self.blocking = true;
        Verdict::Apply(reason)
    }

    /// How a failed query is followed: a 403 waits the longest (a rotated token file cuts the
    /// wait short), anything else backs off.
    pub fn failed(&mut self, error: &Error) -> Duration {
        self.next_reason = ResyncReason::Connect;
        self.blocking = false;
        match error {
            Error::PermissionDenied { .. } | Error::UnknownToken { .. } => MAX_BACKOFF,
            _ => self.backoff.next_delay(),
        }
    }
}

impl BlockingWatcher {
    /// Runs until the loop that receives the updates goes away; the caller stops it at any
    /// await point. `resync` carries requests for an immediate listing (SIGHUP, a burst).
    pub async fn run(self, mut resync: mpsc::Receiver<ResyncReason>) {
        let mut state = RelistState::default();
        let mut issued: Option<Instant> = None;
        loop {
            if let Some(issued) = issued {
                tokio::time::sleep_until(issued + self.min_relist_interval).await;
            }
            issued = Some(Instant::now());
            let outcome = tokio::select! {
                outcome = self.list(&mut state) => outcome,
                Some(why) = resync.recv() => {
                    // A fresh listing at once: drop the blocking one.
                    state.next_reason = why;
                    state.blocking = false;
                    continue;
                }
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    report_down(&self.metrics, &self.health);
                    self.health
                        .update(|h| h.last_error = Some(error.to_string()));
                    let delay = state.failed(&error);
                    state.errors.report(QUERY_FAILED, &error.to_string(), delay);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        Some(why) = resync.recv() => state.next_reason = why,
                        () = self.client.token_rotated() => {
                            info!("the token file changed: querying again at once");
                        }
                    }
                    // The wait was the pause.
                    issued = None;
                }
            }
        }
    }

    /// One query, and the leader's answer when the index went backwards; sends the listing.
    /// Returns whether the loop is still there.
    async fn list(&self, state: &mut RelistState) -> Result<bool, Error> {
        let requested_at = Instant::now();
        let query = state.query(self.wait);
        let mut answer = self.client.node_allocations(&self.node_id, query).await?;
        let mut verdict = state.answered(answer.index.unwrap_or(0), query.consistency);
        if verdict == Verdict::AskLeader {
            debug!(
                index = answer.index,
                cursor = state.cursor,
                "a stale read went backwards; asking the leader"
            );
            let leader = Blocking {
                consistency: Consistency::Leader,
                ..Blocking::default()
            };
            answer = self.client.node_allocations(&self.node_id, leader).await?;
            verdict = state.answered(answer.index.unwrap_or(0), Consistency::Leader);
        }
        let Verdict::Apply(reason) = verdict else {
            unreachable!("the leader's answer is applied");
        };
        if state.errors.recovered() {
            info!("Nomad answers again");
        }
        report_listing(&self.metrics, &self.health, reason);
        report_up(&self.metrics, &self.health);
        let listing = Update::Listed {
            listing: ListingId::next(),
            allocations: answer.value,
            requested_at,
            reason,
        };
        Ok(self.updates.send(listing).await.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(300);

    #[test]
    fn the_first_query_answers_at_once_and_the_next_block_on_the_answers_index() {
        let mut state = RelistState::default();
        assert_eq!(state.query(WAIT).wait, None);
        assert_eq!(
            state.answered(40, Consistency::Stale),
            Verdict::Apply(ResyncReason::Connect)
        );
        let next = state.query(WAIT);
        assert_eq!((next.index, next.wait), (40, Some(WAIT)));
        assert_eq!(next.consistency, Consistency::Stale);
        assert_eq!(
            state.answered(41, Consistency::Stale),
            Verdict::Apply(ResyncReason::Change)
        );
        assert_eq!(
            state.answered(41, Consistency::Stale),
            Verdict::Apply(ResyncReason::Interval),
            "the same index: the wait ended"
        );
    }

    #[test]
    fn an_index_going_backwards_is_checked_with_the_leader_and_then_followed() {
        let mut state = RelistState::default();
        state.answered(900, Consistency::Stale);
        assert_eq!(state.answered(20, Consistency::Stale), Verdict::AskLeader);
        assert_eq!(state.cursor, 900, "a stale answer does not move the cursor");
        assert_eq!(
            state.answered(20, Consistency::Leader),
            Verdict::Apply(ResyncReason::Connect)
        );
        assert_eq!(state.cursor, 20, "the leader's lower index is the truth");
        assert_eq!(state.query(WAIT).index, 20);
    }

    #[test]
    fn an_index_of_zero_never_makes_a_query_that_answers_at_once() {
        let mut state = RelistState::default();
        state.answered(0, Consistency::Leader);
        let next = state.query(WAIT);
        assert_eq!((next.index, next.wait), (1, Some(WAIT)));
    }

    #[test]
    fn a_failure_makes_the_next_answer_a_reconnect_and_a_refusal_waits_longest() {
        let mut state = RelistState::default();
        state.answered(5, Consistency::Stale);
        let refused = Error::PermissionDenied {
            url: String::new(),
            needs: crate::nomad::Needs::Nothing,
            body: String::new(),
        };
        assert_eq!(state.failed(&refused), MAX_BACKOFF);
        assert_eq!(
            state.query(WAIT).wait,
            None,
            "after a failure (perhaps a server restart) the next query answers at once"
        );
        assert_eq!(
            state.answered(6, Consistency::Stale),
            Verdict::Apply(ResyncReason::Connect)
        );
    }
}
