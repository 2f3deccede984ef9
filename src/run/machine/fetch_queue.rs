//! Fetches of allocations the model does not know the job of: each allocation is fetched once
//! while its fetch runs, at most [`MAX_SEPARATE_FETCHES`] run at once, and beyond that a burst
//! is either one listing (node scope: the node's listing is cheap) or waits in a queue
//! (cluster scope: a listing of the whole cluster is not worth a burst). Pure.

use std::collections::{HashMap, VecDeque};

use super::input::{ChangeReason, Effect};

/// More unknown allocations than this in flight at once (a deployment, a burst of batch jobs)
/// are fetched with one listing instead of one request each, or queued.
pub const MAX_SEPARATE_FETCHES: usize = 8;

/// What to do with a burst beyond [`MAX_SEPARATE_FETCHES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Ask for one listing (node scope).
    Relist,
    /// Queue the fetch until one ends (cluster scope).
    Queue,
}

/// A fetch waiting for a place.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Queued {
    alloc_id: String,
    modify_index: u64,
    reason: ChangeReason,
}

/// A fetch in flight.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    /// What made the allocation known.
    reason: ChangeReason,
    /// The `ModifyIndex` the fetch asked for, and the highest one asked for since (an event
    /// that came while it ran): an answer older than that is fetched again.
    asked: u64,
    wanted: u64,
}

/// The fetches in flight and waiting.
#[derive(Debug)]
pub struct FetchQueue {
    overflow: Overflow,
    /// Allocations being fetched.
    fetching: HashMap<String, InFlight>,
    queued: VecDeque<Queued>,
    /// A stop is under way: nothing new is fetched, queued fetches are dropped.
    stopped: bool,
}

impl FetchQueue {
    pub fn new(overflow: Overflow) -> FetchQueue {
        FetchQueue {
            overflow,
            fetching: HashMap::new(),
            queued: VecDeque::new(),
            stopped: false,
        }
    }

    /// A stop began: fetches in flight end as they may, nothing else is fetched.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.queued.clear();
    }

    /// Asks for `alloc_id` to be fetched (as of `modify_index` at least, 0 for any); pushes
    /// the effect it needs, if any: a fetch, or one listing for a burst.
    pub fn request(
        &mut self,
        alloc_id: String,
        modify_index: u64,
        reason: ChangeReason,
        effects: &mut Vec<Effect>,
    ) {
        if self.stopped {
            return;
        }
        if let Some(in_flight) = self.fetching.get_mut(&alloc_id) {
            in_flight.wanted = in_flight.wanted.max(modify_index);
            return;
        }
        if self.fetching.len() >= MAX_SEPARATE_FETCHES {
            match self.overflow {
                Overflow::Queue => {
                    if !self.queued.iter().any(|q| q.alloc_id == alloc_id) {
                        self.queued.push_back(Queued {
                            alloc_id,
                            modify_index,
                            reason,
                        });
                    }
                }
                Overflow::Relist => {
                    if !effects.contains(&Effect::Resync) {
                        effects.push(Effect::Resync);
                    }
                }
            }
            return;
        }
        self.fetching.insert(
            alloc_id.clone(),
            InFlight {
                reason,
                asked: modify_index,
                wanted: modify_index,
            },
        );
        effects.push(Effect::Fetch {
            alloc_id,
            modify_index,
        });
    }

    /// A fetch ended with the allocation at `got` (its `ModifyIndex`), or failed (`None`: a
    /// follower that does not have it yet answers 404): returns what made the allocation
    /// known, if it was being fetched. An event that came while it ran with a newer state
    /// than the answer fetches it again, as of that state (the event itself was dropped for
    /// the fetch); otherwise queued fetches start in the place it leaves.
    pub fn finished(
        &mut self,
        alloc_id: &str,
        got: Option<u64>,
        effects: &mut Vec<Effect>,
    ) -> Option<ChangeReason> {
        let in_flight = self.fetching.remove(alloc_id);
        if let Some(f) = in_flight
            && f.wanted > f.asked
            && f.wanted > got.unwrap_or(0)
        {
            self.request(alloc_id.to_owned(), f.wanted, f.reason, effects);
        }
        while self.fetching.len() < MAX_SEPARATE_FETCHES
            && let Some(next) = self.queued.pop_front()
        {
            self.request(next.alloc_id, next.modify_index, next.reason, effects);
        }
        in_flight.map(|f| f.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(effects: &[Effect]) -> Vec<&str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Fetch { alloc_id, .. } => Some(alloc_id.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_event_that_came_during_a_fetch_is_fetched_again_when_the_answer_is_older() {
        let mut queue = FetchQueue::new(Overflow::Relist);
        let mut effects = Vec::new();
        // A new directory: fetched as of any state; its placement event comes meanwhile.
        queue.request("a".into(), 0, ChangeReason::NewAllocDir, &mut effects);
        queue.request("a".into(), 11, ChangeReason::NewAllocation, &mut effects);
        assert_eq!(fetched(&effects), ["a"]);
        // A follower that did not have it yet answered 404: fetched again, as of the event.
        let mut again = Vec::new();
        assert_eq!(
            queue.finished("a", None, &mut again),
            Some(ChangeReason::NewAllocDir)
        );
        assert_eq!(
            again,
            [Effect::Fetch {
                alloc_id: "a".into(),
                modify_index: 11
            }]
        );
        // An answer at the event's state (or newer) ends it; one older than it does not.
        let mut done = Vec::new();
        queue.finished("a", Some(11), &mut done);
        assert!(done.is_empty());
        queue.request("b".into(), 5, ChangeReason::NewAllocation, &mut done);
        queue.request("b".into(), 9, ChangeReason::NewAllocation, &mut done);
        let mut older = Vec::new();
        queue.finished("b", Some(7), &mut older);
        assert_eq!(fetched(&older), ["b"]);
        // An answer that failed for the index it asked is not retried for ever.
        let mut last = Vec::new();
        queue.finished("b", None, &mut last);
        assert!(last.is_empty());
    }

    #[test]
    fn an_allocation_is_fetched_once_while_its_fetch_runs() {
        let mut queue = FetchQueue::new(Overflow::Relist);
        let mut effects = Vec::new();
        queue.request("a".into(), 7, ChangeReason::NewAllocation, &mut effects);
        queue.request("a".into(), 8, ChangeReason::NewAllocation, &mut effects);
        assert_eq!(
            effects,
            [Effect::Fetch {
                alloc_id: "a".into(),
                modify_index: 7
            }]
        );
        assert_eq!(
            queue.finished("a", Some(8), &mut effects),
            Some(ChangeReason::NewAllocation)
        );
        assert_eq!(
            queue.finished("a", None, &mut effects),
            None,
            "ended already"
        );
        queue.request("a".into(), 9, ChangeReason::NewAllocDir, &mut effects);
        assert_eq!(fetched(&effects), ["a", "a"], "fetched again once ended");
    }

    #[test]
    fn once_stopped_nothing_is_fetched_and_the_queue_is_dropped() {
        let mut queue = FetchQueue::new(Overflow::Queue);
        let mut effects = Vec::new();
        for i in 0..MAX_SEPARATE_FETCHES + 2 {
            queue.request(
                format!("a{i}"),
                0,
                ChangeReason::NewAllocation,
                &mut effects,
            );
        }
        queue.stop();
        let mut after = Vec::new();
        queue.request("b".into(), 0, ChangeReason::NewAllocDir, &mut after);
        assert_eq!(
            queue.finished("a0", Some(1), &mut after),
            Some(ChangeReason::NewAllocation)
        );
        assert!(after.is_empty(), "{after:?}");
    }

    #[test]
    fn in_node_scope_a_burst_beyond_the_limit_is_one_listing() {
        let mut queue = FetchQueue::new(Overflow::Relist);
        let mut effects = Vec::new();
        for i in 0..MAX_SEPARATE_FETCHES + 5 {
            queue.request(
                format!("a{i}"),
                0,
                ChangeReason::NewAllocation,
                &mut effects,
            );
        }
        assert_eq!(fetched(&effects).len(), MAX_SEPARATE_FETCHES);
        assert_eq!(
            effects.iter().filter(|e| **e == Effect::Resync).count(),
            1,
            "{effects:?}"
        );
        let mut after = Vec::new();
        queue.finished("a0", Some(1), &mut after);
        assert!(after.is_empty(), "nothing was queued: {after:?}");
    }

    #[test]
    fn in_cluster_scope_a_burst_waits_and_starts_as_places_free_up_in_order() {
        let mut queue = FetchQueue::new(Overflow::Queue);
        let mut effects = Vec::new();
        for i in 0..MAX_SEPARATE_FETCHES + 3 {
            queue.request(
                format!("a{i}"),
                0,
                ChangeReason::NewAllocation,
                &mut effects,
            );
        }
        queue.request("a9".into(), 0, ChangeReason::NewAllocation, &mut effects);
        assert_eq!(fetched(&effects).len(), MAX_SEPARATE_FETCHES);
        assert!(!effects.contains(&Effect::Resync));
        let mut next = Vec::new();
        queue.finished("a0", Some(1), &mut next);
        queue.finished("a1", Some(1), &mut next);
        assert_eq!(fetched(&next), ["a8", "a9"], "in order, each once");
        let mut last = Vec::new();
        queue.finished("a2", Some(1), &mut last);
        assert_eq!(fetched(&last), ["a10"]);
    }
}
