//! The daemon's model: the node's allocations as Nomad last described them, plus the ones Nomad
//! no longer lists (or whose directory is gone) until their grace period ends, so that Vector can
//! finish reading their files. Pure: time is passed in.
//!
//! A full listing replaces the model (the resync rule); events patch it between listings,
//! never with anything older than what it holds.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::nomad::types::{Allocation, Job};

/// One allocation and, once it is leaving, when its rows go.
#[derive(Clone, Debug)]
struct Entry {
    alloc: Allocation,
    remove_at: Option<Instant>,
}

/// The node's allocations.
#[derive(Clone, Debug, Default)]
pub struct Store {
    entries: BTreeMap<String, Entry>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Replaces the model with a full listing taken at `list_index`. What the listing omits
    /// starts its grace period, except allocations known from events newer than the listing
    /// (created after it was taken). A listed allocation that the model holds in a newer state
    /// keeps that state.
    pub fn replace(
        &mut self,
        listed: Vec<Allocation>,
        list_index: u64,
        now: Instant,
        grace: Duration,
    ) {
        let mut fresh: BTreeMap<String, Entry> = BTreeMap::new();
        for alloc in listed {
            let alloc = match self.entries.remove(&alloc.id) {
                Some(known) if known.alloc.modify_index > alloc.modify_index => known.alloc,
                _ => alloc,
            };
            fresh.insert(
                alloc.id.clone(),
                Entry {
                    alloc,
                    remove_at: None,
                },
            );
        }
        for (id, mut entry) in std::mem::take(&mut self.entries) {
            if entry.alloc.modify_index <= list_index || entry.remove_at.is_some() {
                entry.remove_at.get_or_insert(now + grace);
            }
            fresh.insert(id, entry);
        }
        self.entries = fresh;
    }

    /// Applies an allocation that carries its `Job`, unless the model already holds it at the
    /// same or a newer `ModifyIndex` (replayed or duplicate frames). Returns whether it applied.
    pub fn upsert(&mut self, alloc: Allocation) -> bool {
        if let Some(known) = self.entries.get(&alloc.id)
            && known.alloc.modify_index >= alloc.modify_index
        {
            return false;
        }
        self.entries.insert(
            alloc.id.clone(),
            Entry {
                alloc,
                remove_at: None,
            },
        );
        true
    }

    /// The job an event's allocation runs, when the model knows it: the allocation is known and
    /// its `AllocModifyIndex` has not moved (no server-side change such as an in-place update).
    pub fn known_job(&self, event_alloc: &Allocation) -> Option<&Job> {
        let known = &self.entries.get(&event_alloc.id)?.alloc;
        (known.alloc_modify_index == event_alloc.alloc_modify_index)
            .then_some(known.job.as_ref())
            .flatten()
    }

    /// Whether the model holds the allocation at or beyond `modify_index`.
    pub fn has_seen(&self, id: &str, modify_index: u64) -> bool {
        self.entries
            .get(id)
            .is_some_and(|e| e.alloc.modify_index >= modify_index)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Starts the grace period of an allocation whose directory is gone. Returns whether it was
    /// known and not leaving already.
    pub fn depart(&mut self, id: &str, now: Instant, grace: Duration) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) if entry.remove_at.is_none() => {
                entry.remove_at = Some(now + grace);
                true
            }
            _ => false,
        }
    }

    /// Removes the allocations whose grace period has ended; returns their IDs.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.remove_at.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.entries.remove(id);
        }
        expired
    }

    /// When the next grace period ends.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.remove_at).min()
    }

    /// Every allocation with rows: live ones and those in their grace period.
    pub fn allocations(&self) -> impl Iterator<Item = &Allocation> {
        self.entries.values().map(|e| &e.alloc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, modify_index: u64) -> Allocation {
        Allocation {
            id: id.to_owned(),
            modify_index,
            alloc_modify_index: modify_index,
            client_status: format!("at-{modify_index}"),
            job: Some(Job {
                id: "web".to_owned(),
                version: 1,
                ..Job::default()
            }),
            ..Allocation::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(300);

    fn ids(store: &Store) -> Vec<&str> {
        store.allocations().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn a_listing_replaces_and_what_it_omits_waits_out_its_grace() {
        let now = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5), alloc("b", 6)], 6, now, GRACE);
        store.replace(vec![alloc("b", 7)], 7, now, GRACE);
        assert_eq!(ids(&store), ["a", "b"], "a stays during its grace");
        assert_eq!(store.next_expiry(), Some(now + GRACE));
        assert!(
            store
                .expire(now + GRACE - Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(store.expire(now + GRACE), ["a"]);
        assert_eq!(ids(&store), ["b"]);
    }

    #[test]
    fn a_relisted_allocation_leaves_its_grace_period() {
        let now = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5)], 5, now, GRACE);
        store.replace(vec![], 6, now, GRACE);
        assert!(store.next_expiry().is_some());
        store.replace(vec![alloc("a", 5)], 7, now, GRACE);
        assert_eq!(store.next_expiry(), None);
    }

    #[test]
    fn events_newer_than_a_slow_listing_survive_it() {
        let now = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5)], 5, now, GRACE);
        // While a listing taken at index 10 is in flight, events at 11 and 12 arrive.
        assert!(store.upsert(alloc("a", 11)));
        assert!(store.upsert(alloc("new", 12)));
        store.replace(vec![alloc("a", 9)], 10, now, GRACE);
        let a = store.allocations().find(|x| x.id == "a").expect("a");
        assert_eq!(a.modify_index, 11, "the newer event state is kept");
        assert_eq!(
            store.next_expiry(),
            None,
            "an allocation newer than the listing is not leaving"
        );
        assert_eq!(ids(&store), ["a", "new"]);
    }

    #[test]
    fn replayed_and_duplicate_events_do_not_apply() {
        let mut store = Store::new();
        assert!(store.upsert(alloc("a", 5)));
        assert!(!store.upsert(alloc("a", 5)));
        assert!(!store.upsert(alloc("a", 4)));
        assert!(store.upsert(alloc("a", 6)));
        assert!(store.has_seen("a", 6));
        assert!(!store.has_seen("a", 7));
    }

    #[test]
    fn the_job_is_reused_only_while_the_server_side_index_is_unchanged() {
        let mut store = Store::new();
        store.upsert(alloc("a", 5));
        let mut event = alloc("a", 8);
        event.job = None;
        event.alloc_modify_index = 5;
        assert_eq!(store.known_job(&event).map(|j| j.version), Some(1));
        event.alloc_modify_index = 8;
        assert!(
            store.known_job(&event).is_none(),
            "an in-place update may change the job"
        );
        event.id = "unknown".to_owned();
        assert!(store.known_job(&event).is_none());
    }

    #[test]
    fn a_removed_directory_starts_the_grace_period_once() {
        let now = Instant::now();
        let mut store = Store::new();
        store.upsert(alloc("a", 5));
        assert!(store.depart("a", now, GRACE));
        assert!(!store.depart("a", now + Duration::from_secs(10), GRACE));
        assert!(!store.depart("unknown", now, GRACE));
        assert_eq!(store.next_expiry(), Some(now + GRACE));
    }
}
