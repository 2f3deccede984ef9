//! `run`'s model: the node's allocations as Nomad last described them, plus the ones Nomad
//! no longer lists (or whose directory is gone) until their grace period ends, so that Vector can
//! finish reading their files. Pure: time is passed in.
//!
//! A full listing replaces the model (the resync rule), taken part by part as it comes; events
//! patch it between listings, never with anything older than what it holds. A listing is a
//! complete snapshot: what none of its parts lists is gone (grace applies), unless the model
//! learnt of it after the listing was requested. Time, not Nomad's index, decides that: a
//! listing's index is the highest `ModifyIndex` among the node's allocations, so it goes down
//! when the newest one is collected, and all indexes go backwards after a snapshot restore or
//! in a rebuilt cluster.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::input::ListingId;
use crate::nomad::types::{Allocation, Job};
use crate::table::incremental;

/// One allocation and, once it is leaving, when its rows go.
#[derive(Clone, Debug)]
struct Entry {
    alloc: Allocation,
    /// When the model learnt this state of the allocation.
    seen_at: Instant,
    remove_at: Option<Instant>,
    /// Changes with every change of `alloc`, so that a rendering can reuse the rows of an
    /// allocation whose generation it has rendered.
    generation: u64,
    /// The last full listing that listed it: at a listing's end, what it did not list leaves.
    listed_in: Option<ListingId>,
}

/// The node's allocations.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Boxed: an entry is some 350 bytes, and a B-tree's nodes hold eleven values, about half
    /// of them used when keys come in order, as listings bring them (at 60,000 allocations,
    /// inline entries took 38 MB).
    entries: BTreeMap<Arc<str>, Box<Entry>>,
    /// The entries in their grace period, by when it ends: what expires next is found without
    /// a walk of the model, which the loop would otherwise make at each of its steps (some
    /// milliseconds at 100,000 allocations).
    departing: BTreeSet<(Instant, Arc<str>)>,
    /// The last generation given to an entry.
    generation: u64,
}

/// Sets `entry`'s end of grace, keeping `departing` in step.
fn set_remove_at(
    departing: &mut BTreeSet<(Instant, Arc<str>)>,
    entry: &mut Entry,
    remove_at: Option<Instant>,
) {
    if entry.remove_at == remove_at {
        return;
    }
    if let Some(at) = entry.remove_at {
        departing.remove(&(at, entry.alloc.id.clone()));
    }
    if let Some(at) = remove_at {
        departing.insert((at, entry.alloc.id.clone()));
    }
    entry.remove_at = remove_at;
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// A live entry for `alloc` with a new generation.
    fn live(&mut self, alloc: Allocation, seen_at: Instant) -> Box<Entry> {
        self.generation += 1;
        Box::new(Entry {
            alloc,
            seen_at,
            remove_at: None,
            generation: self.generation,
            listed_in: None,
        })
    }

    /// Takes a part of the full listing `listing`, requested at `requested_at`: a listed
    /// allocation keeps the model's state only when that state was learnt after the request and
    /// is newer; otherwise the listing wins, even with a lower index (an index reset). Taken
    /// as it comes, page by page, so that a listing is never held whole beside the model.
    pub fn take_listed(
        &mut self,
        listing: ListingId,
        listed: Vec<Allocation>,
        requested_at: Instant,
    ) {
        for alloc in listed {
            let Some(known) = self.entries.get_mut(&alloc.id) else {
                let mut entry = self.live(alloc, requested_at);
                entry.listed_in = Some(listing);
                self.entries.insert(entry.alloc.id.clone(), entry);
                continue;
            };
            known.listed_in = Some(listing);
            // Newer than the snapshot, and so is a grace begun since (its directory went
            // after the request): both stand.
            if known.seen_at > requested_at && known.alloc.modify_index > alloc.modify_index {
                continue;
            }
            // Most of a resync is what the model holds already: its rows stay rendered.
            if known.alloc == alloc {
                known.seen_at = requested_at;
                set_remove_at(&mut self.departing, known, None);
                continue;
            }
            let mut entry = self.live(alloc, requested_at);
            entry.listed_in = Some(listing);
            // The known key is kept, and with it the one copy of the ID the caches share.
            if let Some(known) = self.entries.get_mut(&entry.alloc.id) {
                set_remove_at(&mut self.departing, known, None);
                entry.alloc.id = known.alloc.id.clone();
                *known = entry;
            }
        }
    }

    /// Ends the full listing `listing` requested at `requested_at`, whose every part was
    /// taken: what none of them listed starts its grace period, except what the model learnt
    /// after the request (it may be newer than the snapshot).
    pub fn end_listing(
        &mut self,
        listing: ListingId,
        requested_at: Instant,
        now: Instant,
        grace: Duration,
    ) {
        for entry in self.entries.values_mut() {
            if entry.listed_in != Some(listing)
                && entry.seen_at <= requested_at
                && entry.remove_at.is_none()
            {
                set_remove_at(&mut self.departing, entry, Some(now + grace));
            }
        }
    }

    /// Replaces the model with a full listing in one part.
    #[cfg(test)]
    pub fn replace(
        &mut self,
        listed: Vec<Allocation>,
        requested_at: Instant,
        now: Instant,
        grace: Duration,
    ) {
        let listing = ListingId::next();
        self.take_listed(listing, listed, requested_at);
        self.end_listing(listing, requested_at, now, grace);
    }

    /// Applies an allocation that carries its `Job`, learnt at `now`, unless the model already
    /// holds it at the same or a newer `ModifyIndex` (replayed or duplicate frames). Returns
    /// whether it applied.
    pub fn upsert(&mut self, alloc: Allocation, now: Instant) -> bool {
        if let Some(known) = self.entries.get(&alloc.id)
            && known.alloc.modify_index >= alloc.modify_index
        {
            return false;
        }
        let mut entry = self.live(alloc, now);
        match self.entries.get_mut(&entry.alloc.id) {
            // Still listed by the listing under way: a newer state of it is no absence. The
            // known key is kept, and with it the one copy of the ID the caches share.
            Some(known) => {
                set_remove_at(&mut self.departing, known, None);
                entry.listed_in = known.listed_in;
                entry.alloc.id = known.alloc.id.clone();
                *known = entry;
            }
            None => {
                self.entries.insert(entry.alloc.id.clone(), entry);
            }
        }
        true
    }

    /// The job an event's allocation runs, when the model knows it: the allocation is known and
    /// had no server-side change (such as an in-place update) since the state the model holds.
    /// A server-side change sets `AllocModifyIndex` to its own index, above the `ModifyIndex`
    /// of any earlier state; a stub from the cluster listing carries no `AllocModifyIndex`,
    /// but its `ModifyIndex` bounds it.
    pub fn known_job(&self, event_alloc: &Allocation) -> Option<&Arc<Job>> {
        let known = &self.entries.get(&event_alloc.id)?.alloc;
        (event_alloc.alloc_modify_index <= known.modify_index)
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
                set_remove_at(&mut self.departing, entry, Some(now + grace));
                true
            }
            _ => false,
        }
    }

    /// Removes the allocations whose grace period has ended; returns their IDs.
    pub fn expire(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut expired = Vec::new();
        while self.departing.first().is_some_and(|(at, _)| *at <= now) {
            let (_, id) = self.departing.pop_first().expect("checked above");
            self.entries.remove(&id);
            expired.push(id);
        }
        expired
    }

    /// When the next grace period ends.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.departing.first().map(|(at, _)| *at)
    }

    /// How many allocations are live, and how many in their grace period.
    pub fn counts(&self) -> (usize, usize) {
        let departing = self.departing.len();
        (self.entries.len() - departing, departing)
    }

    /// Every allocation with rows (live ones and those in their grace period) in key order,
    /// with the generation of each entry, for an incremental rendering.
    pub fn entries(&self) -> impl Iterator<Item = incremental::Entry<'_>> {
        self.entries.values().map(|e| incremental::Entry {
            alloc: &e.alloc,
            generation: e.generation,
            remove_at: e.remove_at,
        })
    }

    /// The nodes that allocations with rows are on.
    pub fn node_ids(&self) -> HashSet<&str> {
        self.entries.values().map(|e| &*e.alloc.node_id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(id: &str, modify_index: u64) -> Allocation {
        Allocation {
            id: id.into(),
            modify_index,
            alloc_modify_index: modify_index,
            client_status: format!("at-{modify_index}").into(),
            job: Some(Arc::new(Job {
                id: "web".into(),
                version: 1,
                ..Job::default()
            })),
            ..Allocation::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(300);
    const SECOND: Duration = Duration::from_secs(1);

    fn ids(store: &Store) -> Vec<&str> {
        store.entries().map(|e| e.alloc).map(|a| &*a.id).collect()
    }

    #[test]
    fn a_listing_replaces_and_what_it_omits_waits_out_its_grace() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5), alloc("b", 6)], t0, t0, GRACE);
        let t1 = t0 + SECOND;
        store.replace(vec![alloc("b", 7)], t1, t1, GRACE);
        assert_eq!(ids(&store), ["a", "b"], "a stays during its grace");
        assert_eq!(store.next_expiry(), Some(t1 + GRACE));
        assert!(store.expire(t1 + GRACE - SECOND).is_empty());
        assert_eq!(store.expire(t1 + GRACE), ["a".into()]);
        assert_eq!(ids(&store), ["b"]);
    }

    #[test]
    fn a_listing_in_parts_leaves_only_what_none_of_its_parts_listed() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(
            vec![alloc("a", 5), alloc("b", 6), alloc("c", 7)],
            t0,
            t0,
            GRACE,
        );
        let t1 = t0 + SECOND;
        let listing = ListingId::next();
        store.take_listed(listing, vec![alloc("a", 5)], t1);
        assert_eq!(store.counts(), (3, 0), "nothing leaves before the end");
        store.take_listed(listing, vec![alloc("c", 8)], t1);
        store.end_listing(listing, t1, t1 + SECOND, GRACE);
        assert_eq!(store.counts(), (2, 1));
        assert_eq!(
            store.next_expiry(),
            Some(t1 + SECOND + GRACE),
            "b, listed by no part"
        );
        assert!(store.has_seen("c", 8));
    }

    /// Under a paused clock a listing that failed half-way and the next one may share their
    /// request instant: what only the failed one listed is not listed by the next.
    #[test]
    fn the_parts_of_a_listing_that_never_ended_do_not_count_for_the_next() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5), alloc("b", 6)], t0, t0, GRACE);
        let failed = ListingId::next();
        store.take_listed(failed, vec![alloc("a", 5), alloc("b", 6)], t0);
        let next = ListingId::next();
        store.take_listed(next, vec![alloc("a", 5)], t0);
        store.end_listing(next, t0, t0, GRACE);
        assert_eq!(store.counts(), (1, 1), "b was collected meanwhile");
    }

    /// Between two parts of a listing an event may bring a newer state of an allocation the
    /// first part listed: it is still listed, not absent.
    #[test]
    fn an_allocation_changed_between_parts_is_still_listed() {
        let t0 = Instant::now();
        let mut store = Store::new();
        let listing = ListingId::next();
        store.take_listed(listing, vec![alloc("a", 5)], t0);
        assert!(store.upsert(alloc("a", 6), t0));
        store.take_listed(listing, vec![alloc("b", 5)], t0);
        store.end_listing(listing, t0, t0, GRACE);
        assert_eq!(store.counts(), (2, 0));
        assert!(store.has_seen("a", 6));
    }

    /// The index of grace periods agrees with the entries after any sequence of listings in
    /// parts, events, departures and expiries.
    #[test]
    fn the_index_of_grace_periods_agrees_with_the_entries() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let t0 = Instant::now();
            let mut store = Store::new();
            let mut listing = ListingId::next();
            let mut requested_at = t0;
            for step in 0..60 {
                let now = t0 + step * SECOND;
                let id = ["a", "b", "c", "d", "e"][rng.usize(..5)];
                match rng.u8(..6) {
                    0 => store.take_listed(listing, vec![alloc(id, rng.u64(1..9))], requested_at),
                    1 => {
                        store.end_listing(listing, requested_at, now, 3 * SECOND);
                        listing = ListingId::next();
                        requested_at = now;
                    }
                    2 => drop(store.upsert(alloc(id, rng.u64(1..9)), now)),
                    3 => drop(store.depart(id, now, rng.u32(0..4) * SECOND)),
                    4 => drop(store.expire(now)),
                    _ => listing = ListingId::next(),
                }
                let scanned: Vec<(Instant, &str)> = {
                    let mut v: Vec<_> = store
                        .entries
                        .values()
                        .filter_map(|e| e.remove_at.map(|at| (at, &*e.alloc.id)))
                        .collect();
                    v.sort();
                    v
                };
                let indexed: Vec<(Instant, &str)> = store
                    .departing
                    .iter()
                    .map(|(at, id)| (*at, &**id))
                    .collect();
                assert_eq!(indexed, scanned, "seed {seed}, step {step}");
            }
        }
    }

    /// The learnt-after-the-request rule is strict on both counts: a state learnt at the very
    /// instant of the request may be in the snapshot, and so may one with the same index.
    #[test]
    fn only_what_was_learnt_strictly_after_the_request_and_is_strictly_newer_survives_a_listing() {
        let t0 = Instant::now();
        let mut store = Store::new();
        assert!(store.upsert(alloc("a", 7), t0));
        store.replace(vec![alloc("a", 6)], t0, t0 + SECOND, GRACE);
        assert!(
            !store.has_seen("a", 7),
            "learnt at the request's instant: the listing wins"
        );
        let mut same = alloc("b", 5);
        same.client_status = "learnt-later".into();
        assert!(store.upsert(same, t0 + 2 * SECOND));
        let mut listed = alloc("b", 5);
        listed.client_status = "listed".into();
        store.replace(vec![listed], t0 + SECOND, t0 + 3 * SECOND, GRACE);
        let b = store.entries().find(|e| &*e.alloc.id == "b").expect("b");
        assert_eq!(
            &*b.alloc.client_status, "listed",
            "the same index: the listing wins"
        );
    }

    /// A listing that repeats what the model learnt after its request makes it known as of the
    /// request, so that a later listing requested before the model learnt it, and omitting
    /// it, still starts its grace (blocking queries are sent before the last answer is applied).
    #[test]
    fn a_repeated_allocation_counts_as_known_from_the_request_of_the_listing_that_repeats_it() {
        let t0 = Instant::now();
        let mut store = Store::new();
        assert!(store.upsert(alloc("a", 5), t0 + 10 * SECOND));
        store.replace(
            vec![alloc("a", 5)],
            t0 + 5 * SECOND,
            t0 + 12 * SECOND,
            GRACE,
        );
        store.replace(vec![], t0 + 8 * SECOND, t0 + 20 * SECOND, GRACE);
        assert_eq!(
            store.next_expiry(),
            Some(t0 + 20 * SECOND + GRACE),
            "omitted by a listing requested after the one that repeated it"
        );
    }

    /// A directory removed after a listing was requested is newer than the listing: the grace
    /// it began stands, even though the listing still has the allocation.
    #[test]
    fn a_grace_begun_after_the_request_survives_the_listing() {
        let t0 = Instant::now();
        let mut store = Store::new();
        assert!(store.upsert(alloc("a", 7), t0 + 10 * SECOND));
        assert!(store.depart("a", t0 + 11 * SECOND, GRACE));
        store.replace(
            vec![alloc("a", 6)],
            t0 + 5 * SECOND,
            t0 + 12 * SECOND,
            GRACE,
        );
        assert_eq!(store.next_expiry(), Some(t0 + 11 * SECOND + GRACE));
    }

    #[test]
    fn counts_tell_live_allocations_from_departing_ones() {
        let t0 = Instant::now();
        let mut store = Store::new();
        assert_eq!(store.counts(), (0, 0));
        store.replace(
            vec![alloc("a", 5), alloc("b", 6), alloc("c", 7)],
            t0,
            t0,
            GRACE,
        );
        assert_eq!(store.counts(), (3, 0));
        store.depart("b", t0 + SECOND, GRACE);
        store.replace(vec![alloc("a", 5)], t0 + SECOND, t0 + SECOND, GRACE);
        assert_eq!(store.counts(), (1, 2));
    }

    #[test]
    fn a_relisted_allocation_leaves_its_grace_period() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5)], t0, t0, GRACE);
        store.replace(vec![], t0 + SECOND, t0 + SECOND, GRACE);
        assert!(store.next_expiry().is_some());
        store.replace(vec![alloc("a", 5)], t0 + 2 * SECOND, t0 + 2 * SECOND, GRACE);
        assert_eq!(store.next_expiry(), None);
    }

    #[test]
    fn what_was_learnt_while_a_slow_listing_ran_survives_it() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5)], t0, t0, GRACE);
        // A listing is requested at t1; while it runs, events at 11 and 12 arrive.
        let t1 = t0 + SECOND;
        assert!(store.upsert(alloc("a", 11), t1 + SECOND));
        assert!(store.upsert(alloc("new", 12), t1 + SECOND));
        store.replace(vec![alloc("a", 9)], t1, t1 + 2 * SECOND, GRACE);
        let a = store
            .entries()
            .map(|e| e.alloc)
            .find(|x| &*x.id == "a")
            .expect("a");
        assert_eq!(a.modify_index, 11, "the newer event state is kept");
        assert_eq!(
            store.next_expiry(),
            None,
            "an allocation learnt after the request is not leaving"
        );
        assert_eq!(ids(&store), ["a", "new"]);
    }

    #[test]
    fn the_newest_allocation_collected_leaves_though_the_listing_index_went_down() {
        // Nomad's listing index is the highest ModifyIndex of the node's allocations: when the
        // newest is collected, the next listing's index is below that allocation's.
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("old", 5), alloc("newest", 9)], t0, t0, GRACE);
        let t1 = t0 + SECOND;
        store.replace(vec![alloc("old", 5)], t1, t1, GRACE);
        assert_eq!(store.next_expiry(), Some(t1 + GRACE));
        assert_eq!(store.expire(t1 + GRACE), ["newest".into()]);
    }

    #[test]
    fn after_an_index_reset_the_listing_wins_and_later_events_apply() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 900)], t0, t0, GRACE);
        // A snapshot restore: the same allocation now lists at index 20, with a new job version.
        let t1 = t0 + SECOND;
        let mut restored = alloc("a", 20);
        Arc::make_mut(restored.job.as_mut().expect("job")).version = 2;
        store.replace(vec![restored], t1, t1, GRACE);
        let a = store.entries().map(|e| e.alloc).next().expect("a");
        assert_eq!(
            (a.modify_index, a.job.as_ref().map(|j| j.version)),
            (20, Some(2))
        );
        assert!(!store.has_seen("a", 21), "an event at 21 is new again");
        assert!(store.upsert(alloc("a", 21), t1 + SECOND));
    }

    #[test]
    fn replayed_and_duplicate_events_do_not_apply() {
        let now = Instant::now();
        let mut store = Store::new();
        assert!(store.upsert(alloc("a", 5), now));
        assert!(!store.upsert(alloc("a", 5), now));
        assert!(!store.upsert(alloc("a", 4), now));
        assert!(store.upsert(alloc("a", 6), now));
        assert!(store.has_seen("a", 6));
        assert!(!store.has_seen("a", 7));
    }

    #[test]
    fn the_job_is_reused_only_while_the_server_side_index_is_unchanged() {
        let mut store = Store::new();
        store.upsert(alloc("a", 5), Instant::now());
        let mut event = alloc("a", 8);
        event.job = None;
        event.alloc_modify_index = 5;
        assert_eq!(store.known_job(&event).map(|j| j.version), Some(1));
        event.alloc_modify_index = 8;
        assert!(
            store.known_job(&event).is_none(),
            "an in-place update may change the job"
        );
        // A stub's state: no AllocModifyIndex, ModifyIndex 5 bounds it.
        let mut stub = alloc("s", 5);
        stub.alloc_modify_index = 0;
        store.upsert(stub, Instant::now());
        let mut event = alloc("s", 9);
        event.job = None;
        event.alloc_modify_index = 4;
        assert!(
            store.known_job(&event).is_some(),
            "no server-side change since 5"
        );
        event.alloc_modify_index = 6;
        assert!(store.known_job(&event).is_none());
        event.id = "unknown".into();
        assert!(store.known_job(&event).is_none());
    }

    fn generation(store: &Store, id: &str) -> u64 {
        store
            .entries()
            .find(|e| &*e.alloc.id == id)
            .expect("present")
            .generation
    }

    #[test]
    fn the_generation_moves_only_when_the_allocation_changes() {
        let t0 = Instant::now();
        let mut store = Store::new();
        store.replace(vec![alloc("a", 5), alloc("b", 5)], t0, t0, GRACE);
        let (a, b) = (generation(&store, "a"), generation(&store, "b"));
        assert_ne!(a, b);
        store.replace(vec![alloc("a", 5), alloc("b", 6)], t0, t0 + SECOND, GRACE);
        assert_eq!(generation(&store, "a"), a, "the same allocation relisted");
        assert_ne!(generation(&store, "b"), b);
        let b = generation(&store, "b");
        assert!(store.upsert(alloc("b", 7), t0 + SECOND));
        assert_ne!(generation(&store, "b"), b);
        let a_before = generation(&store, "a");
        store.depart("a", t0, GRACE);
        assert_eq!(generation(&store, "a"), a_before, "leaving changes no row");
    }

    #[test]
    fn a_removed_directory_starts_the_grace_period_once() {
        let now = Instant::now();
        let mut store = Store::new();
        store.upsert(alloc("a", 5), now);
        assert!(store.depart("a", now, GRACE));
        assert!(!store.depart("a", now + Duration::from_secs(10), GRACE));
        assert!(!store.depart("unknown", now, GRACE));
        assert_eq!(store.next_expiry(), Some(now + GRACE));
    }
}
