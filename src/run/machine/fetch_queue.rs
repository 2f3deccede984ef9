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

/// The fetches in flight and waiting.
#[derive(Debug)]
pub struct FetchQueue {
    overflow: Overflow,
    /// Allocations being fetched, with what made them known.
    fetching: HashMap<String, ChangeReason>,
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
        if self.stopped || self.fetching.contains_key(&alloc_id) {
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
        self.fetching.insert(alloc_id.clone(), reason);
        effects.push(Effect::Fetch {
            alloc_id,
            modify_index,
        });
    }

    /// A fetch ended (fetched or failed): returns what made the allocation known, if it was
    /// being fetched, and starts queued fetches in the place it leaves.
    pub fn finished(&mut self, alloc_id: &str, effects: &mut Vec<Effect>) -> Option<ChangeReason> {
        let reason = self.fetching.remove(alloc_id);
        while self.fetching.len() < MAX_SEPARATE_FETCHES
            && let Some(next) = self.queued.pop_front()
        {
            self.request(next.alloc_id, next.modify_index, next.reason, effects);
        }
        reason
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
            queue.finished("a", &mut effects),
            Some(ChangeReason::NewAllocation)
        );
        assert_eq!(queue.finished("a", &mut effects), None, "ended already");
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
            queue.finished("a0", &mut after),
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
        queue.finished("a0", &mut after);
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
        queue.finished("a0", &mut next);
        queue.finished("a1", &mut next);
        assert_eq!(fetched(&next), ["a8", "a9"], "in order, each once");
        let mut last = Vec::new();
        queue.finished("a2", &mut last);
        assert_eq!(fetched(&last), ["a10"]);
    }
}
