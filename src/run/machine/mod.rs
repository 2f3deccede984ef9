//! The decisions of `run`, as a pure step function: [`Machine::step`] takes the loop's state, one
//! input and the time, and returns the effects to perform (fetch an allocation, resync, publish,
//! reload, exit). It neither reads the clock nor does I/O; the driver (`driver.rs`) performs the
//! effects and feeds their results back as inputs. This is kube-runtime's watcher `step` applied
//! to the whole loop, so that every transition is data a test can assert.
//!
//! What it decides: updates patch or replace the model ([`Store`]); unknown allocations are
//! fetched, a burst of them becomes one listing; departed allocations expire after their grace;
//! publishes are debounced (consul-template's wait: MIN of quiet, at most MAX after the first
//! change) and never happen before the first listing (a partial model would shrink the table);
//! a publish owes Vector a reload, coalesced and rate-limited by [`ReloadSchedule`]; a stop
//! publishes what is pending at once, delivers an owed reload, and exits by its deadline.
//!
//! Urgent rows skip the queue: when rows are added for an allocation whose directory exists
//! (or its directory appears while they wait), its first log lines are imminent and Vector reads
//! new files from the start on its next glob scan, so the publish and its reload go at once,
//! past the debounce and `--min-reload-interval`, at most [`URGENT_PER_SECOND`] times a second.

pub(crate) mod reload_schedule;
pub(crate) mod store;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::table::node_columns::Nodes;
use crate::timing::{Timing, Wait};
use crate::watch::{ResyncReason, Update};
use reload_schedule::ReloadSchedule;
use store::Store;

/// More unknown allocations than this in flight at once (a deployment, a burst of batch jobs)
/// are fetched with one listing instead of one request each.
pub const MAX_SEPARATE_FETCHES: usize = 8;
/// After a failed publish, wait at least this long before trying again.
pub const PUBLISH_RETRY: Duration = Duration::from_secs(1);
/// Urgent publishes (with their reloads) allowed per second; more wait for the debounce, so
/// that a burst of placements cannot storm Vector with reloads.
pub const URGENT_PER_SECOND: usize = 3;
const URGENT_WINDOW: Duration = Duration::from_secs(1);

/// Why the table may have changed: what a publish names in its log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeReason {
    /// A full listing replaced the model.
    Listing(ResyncReason),
    /// An event patched an allocation the model knew the job of.
    Event,
    /// An allocation first seen in an event was fetched.
    NewAllocation,
    /// An allocation directory appeared before Nomad told about it.
    NewAllocDir,
    /// Rows of departed allocations expired.
    GraceOver,
    /// A node's columns changed (cluster scope).
    NodeChange,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeReason::Listing(reason) => write!(f, "{reason}"),
            ChangeReason::Event => f.write_str("event"),
            ChangeReason::NewAllocation => f.write_str("new allocation"),
            ChangeReason::NewAllocDir => f.write_str("new alloc dir"),
            ChangeReason::GraceOver => f.write_str("grace period over"),
            ChangeReason::NodeChange => f.write_str("node change"),
        }
    }
}

/// Changes waiting to be published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The first change: the debounce's MAX counts from here.
    pub first: Instant,
    /// The latest change: the debounce's MIN counts from here.
    pub last: Instant,
    pub reasons: BTreeSet<ChangeReason>,
    /// Allocations these changes add to the table.
    pub added: BTreeSet<String>,
    /// Rows for an allocation whose directory exists: publish and reload at once.
    pub urgent: bool,
}

impl Pending {
    fn new(at: Instant, reasons: BTreeSet<ChangeReason>) -> Pending {
        Pending {
            first: at,
            last: at,
            reasons,
            added: BTreeSet::new(),
            urgent: false,
        }
    }

    /// When these changes are published under the debounce `wait`.
    pub fn publish_at(&self, wait: Wait) -> Instant {
        (self.last + wait.min).min(self.first + wait.max)
    }
}

/// What a publish did, as the machine needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The file was replaced: Vector is owed a reload.
    Written,
    /// The file already held these bytes.
    Unchanged,
    /// The table failed validation: retrying the same content cannot help; the next change will.
    Invalid,
    /// Writing failed (disk full, directory gone): retried after [`PUBLISH_RETRY`].
    Failed,
}

/// One input of the loop.
#[derive(Debug)]
pub enum Input {
    /// A change from a watcher or a fetch.
    Update(Update),
    /// The time given by [`Machine::next_wakeup`] has come.
    Tick,
    /// The publish asked for by [`Effect::Publish`] is done.
    Published(Published),
    /// The reload asked for by [`Effect::Reload`] ended, delivered or not.
    Reloaded,
    /// SIGTERM or SIGINT: publish and reload what is owed, then exit.
    Stop,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Fetch this allocation with its job, as of `modify_index` at least (0: any), so that a
    /// server that is behind waits until it has caught up; answer with `Update::Fetched` or
    /// `FetchFailed`.
    Fetch { alloc_id: String, modify_index: u64 },
    /// Take a full listing now (a burst of unknown allocations).
    Resync,
    /// Render the model and publish it; answer with [`Input::Published`]. `since` is the first
    /// change it carries.
    Publish {
        reasons: BTreeSet<ChangeReason>,
        since: Instant,
    },
    /// Tell Vector to reload; answer with [`Input::Reloaded`].
    Reload,
    /// Stop the loop.
    Exit,
}

/// The loop's state.
#[derive(Debug)]
pub struct Machine {
    /// Where the rows' node columns come from: the node (fetched allocations of other nodes
    /// are not applied), or every node of the cluster.
    nodes: Nodes,
    /// Fetches waiting for one of the [`MAX_SEPARATE_FETCHES`] to end (cluster scope, where a
    /// burst is not worth a listing of the whole cluster).
    queued: VecDeque<(String, u64, ChangeReason)>,
    /// Grace, debounce, reload interval and shutdown timeout.
    timing: Timing,
    /// The model: the node's allocations, and departed ones until their grace ends.
    store: Store,
    /// A full listing has been applied: until then nothing is published, because a model built
    /// from events or fetches alone would shrink the table.
    listed: bool,
    /// Changes not published yet.
    pending: Option<Pending>,
    /// The changes of the publish in progress, kept to be retried if it fails.
    publishing: Option<Pending>,
    /// Allocations being fetched (so that each is fetched once), with what made them known.
    fetching: HashMap<String, ChangeReason>,
    /// When Vector is owed a reload and when it may get one.
    reloads: ReloadSchedule,
    /// The table on disk at start was never announced to Vector: the first publish owes a
    /// reload even when it writes nothing.
    unannounced_at_start: bool,
    /// Set by a stop: the time by which the loop exits whatever is still owed.
    stop_by: Option<Instant>,
    /// Allocations whose directory exists (seen appearing, not yet removed).
    alloc_dirs: HashSet<String>,
    /// When the last urgent publishes (or reloads) went, at most [`URGENT_PER_SECOND`].
    urgent_publishes: VecDeque<Instant>,
    /// Allocations added by publishes that Vector has not been told about yet: if one's
    /// directory appears, the owed reload becomes urgent.
    unannounced_added: BTreeSet<String>,
}

impl Machine {
    /// A machine for a table of `nodes` (one node, or the cluster); `unannounced_at_start` says
    /// whether the table on disk was never announced to Vector (a publish or crash before its
    /// reload).
    pub fn new(nodes: Nodes, timing: Timing, unannounced_at_start: bool) -> Machine {
        Machine {
            nodes,
            queued: VecDeque::new(),
            timing,
            store: Store::new(),
            listed: false,
            pending: None,
            publishing: None,
            fetching: HashMap::new(),
            reloads: ReloadSchedule::new(timing.min_reload_interval),
            unannounced_at_start,
            stop_by: None,
            alloc_dirs: HashSet::new(),
            urgent_publishes: VecDeque::new(),
            unannounced_added: BTreeSet::new(),
        }
    }

    /// The model, for rendering.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node columns' source, for rendering.
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// Whether a stop is under way.
    pub fn stopping(&self) -> bool {
        self.stop_by.is_some()
    }

    /// The time by which a stop ends, once one is under way.
    pub fn stop_by(&self) -> Option<Instant> {
        self.stop_by
    }

    /// When the loop must call [`Machine::step`] with [`Input::Tick`] at the latest, if no
    /// other input comes first.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        let publish = self.publish_due();
        let expiry = self.store.next_expiry();
        let reload = self.reloads.due_at(now);
        [publish, expiry, reload, self.stop_by]
            .into_iter()
            .flatten()
            .min()
    }

    /// Applies one input at `now`; returns the effects to perform, in order.
    pub fn step(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Update(update) => self.apply(update, now, &mut effects),
            Input::Tick => {}
            Input::Published(outcome) => self.published(outcome, now),
            Input::Reloaded => self.reloads.finished(now),
            Input::Stop => {
                if self.stop_by.is_none() {
                    self.stop_by = Some(now + self.timing.shutdown_timeout);
                }
            }
        }
        self.due(now, &mut effects);
        effects
    }

    /// What time alone makes due: expiries, a publish, a reload, the end of a stop.
    fn due(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if self.stop_by.is_some_and(|by| by <= now) {
            effects.push(Effect::Exit);
            return;
        }
        if !self.store.expire(now).is_empty() {
            self.changed(ChangeReason::GraceOver, now);
        }
        if self.publishing.is_none()
            && self.publish_due().is_some_and(|at| at <= now)
            && let Some(pending) = self.pending.take()
        {
            effects.push(Effect::Publish {
                reasons: pending.reasons.clone(),
                since: pending.first,
            });
            if pending.urgent {
                self.record_urgent(now);
            }
            self.publishing = Some(pending);
            return;
        }
        if self.publishing.is_none() {
            // Stopping, a reload owed past the deadline goes at once: waiting out the interval
            // only to give up would leave Vector with the old table.
            let past_deadline = self
                .stop_by
                .is_some_and(|by| self.reloads.due_at(now).is_some_and(|due| due > by));
            let started = if past_deadline {
                self.reloads.start_now()
            } else {
                self.reloads.start(now)
            };
            if started {
                self.unannounced_added.clear();
                effects.push(Effect::Reload);
            }
        }
        if self.done_stopping(now) {
            effects.push(Effect::Exit);
        }
    }

    /// When the pending changes are published: after the debounce, at once when stopping,
    /// never before the first listing.
    fn publish_due(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().filter(|_| self.listed)?;
        Some(match self.stop_by {
            // Skip the rest of the debounce, but not a failed publish's retry delay (its
            // `last` lies ahead).
            Some(_) => pending.last,
            None if pending.urgent => pending
                .publish_at(self.timing.wait)
                .min(self.urgent_allowed_after(pending.last)),
            None => pending.publish_at(self.timing.wait),
        })
    }

    /// Counts an urgent publish or reload going at `now`.
    fn record_urgent(&mut self, now: Instant) {
        if self.urgent_publishes.len() >= URGENT_PER_SECOND {
            self.urgent_publishes.pop_front();
        }
        self.urgent_publishes.push_back(now);
    }

    /// When an urgent publish of a change made at `changed` may go: at once, unless the last
    /// [`URGENT_PER_SECOND`] urgent publishes all went within the last second.
    fn urgent_allowed_after(&self, changed: Instant) -> Instant {
        match self.urgent_publishes.front() {
            Some(&oldest) if self.urgent_publishes.len() >= URGENT_PER_SECOND => {
                changed.max(oldest + URGENT_WINDOW)
            }
            _ => changed,
        }
    }

    /// A stop is done when nothing is left to publish and no reload is running or owed in time.
    fn done_stopping(&self, now: Instant) -> bool {
        let Some(stop_by) = self.stop_by else {
            return false;
        };
        let publish_left = self.publish_due().is_some() || self.publishing.is_some();
        let reload_left = self.reloads.in_flight() || self.reloads.due_at(now).is_some();
        // Past the deadline `due` exits before this is asked.
        debug_assert!(now < stop_by);
        !publish_left && !reload_left
    }

    fn changed(&mut self, reason: ChangeReason, now: Instant) {
        let pending = self
            .pending
            .get_or_insert_with(|| Pending::new(now, BTreeSet::new()));
        pending.last = pending.last.max(now);
        pending.reasons.insert(reason);
    }

    /// Notes the allocations a pending change adds; any with a directory makes it urgent.
    fn added(&mut self, ids: Vec<String>, now: Instant) {
        if ids.is_empty() {
            return;
        }
        let urgent = ids.iter().any(|id| self.alloc_dirs.contains(id));
        let pending = self
            .pending
            .get_or_insert_with(|| Pending::new(now, BTreeSet::new()));
        pending.urgent |= urgent;
        pending.added.extend(ids);
    }

    fn apply(&mut self, update: Update, now: Instant, effects: &mut Vec<Effect>) {
        let grace = self.timing.grace;
        match update {
            Update::Listed {
                allocations,
                requested_at,
                reason,
            } => {
                let added: Vec<String> = allocations
                    .iter()
                    .filter(|a| !self.store.contains(&a.id))
                    .map(|a| a.id.clone())
                    .collect();
                self.store.replace(allocations, requested_at, now, grace);
                self.listed = true;
                self.changed(ChangeReason::Listing(reason), now);
                self.added(added, now);
            }
            Update::Event(mut alloc) => {
                if self.store.has_seen(&alloc.id, alloc.modify_index) {
                    return;
                }
                // Events carry no job: reuse the one the model holds while the allocation
                // still runs it, else fetch it.
                match self.store.known_job(&alloc).map(Arc::clone) {
                    Some(job) => {
                        alloc.job = Some(job);
                        if self.store.upsert(*alloc, now) {
                            self.changed(ChangeReason::Event, now);
                        }
                    }
                    None => self.fetch(
                        alloc.id,
                        alloc.modify_index,
                        ChangeReason::NewAllocation,
                        effects,
                    ),
                }
            }
            Update::Fetched(alloc) => {
                let reason = self
                    .fetching
                    .remove(&alloc.id)
                    .unwrap_or(ChangeReason::NewAllocation);
                self.fetch_queued(effects);
                let id = alloc.id.clone();
                let new = !self.store.contains(&id);
                let ours = self
                    .nodes
                    .single_id()
                    .is_none_or(|node| node == alloc.node_id);
                if ours && self.store.upsert(*alloc, now) {
                    self.changed(reason, now);
                    if new {
                        self.added(vec![id], now);
                    }
                }
            }
            Update::FetchFailed { alloc_id } => {
                self.fetching.remove(&alloc_id);
                self.fetch_queued(effects);
            }
            Update::NodesListed(nodes) => {
                let in_use = self.store.node_ids();
                if self.nodes.replace(&nodes, |id| in_use.contains(id)) {
                    self.changed(ChangeReason::NodeChange, now);
                }
            }
            Update::NodeChanged(node) => {
                if self.nodes.update(&node) {
                    self.changed(ChangeReason::NodeChange, now);
                }
            }
            Update::DirCreated { alloc_id } => {
                self.alloc_dirs.insert(alloc_id.clone());
                if let Some(pending) = &mut self.pending
                    && pending.added.contains(&alloc_id)
                {
                    // Its rows wait for the debounce, and its log files are imminent.
                    pending.urgent = true;
                } else if self.unannounced_added.contains(&alloc_id) {
                    // Its rows are on disk, and the reload waits out the interval.
                    if self.urgent_allowed_after(now) <= now {
                        self.record_urgent(now);
                        self.reloads.owe_urgently();
                    }
                } else if !self.store.contains(&alloc_id) {
                    self.fetch(alloc_id, 0, ChangeReason::NewAllocDir, effects);
                }
            }
            Update::DirRemoved { alloc_id } => {
                self.alloc_dirs.remove(&alloc_id);
                self.store.depart(&alloc_id, now, grace);
            }
        }
    }

    /// Fetches an allocation once; in a burst, asks for one listing instead.
    fn fetch(
        &mut self,
        alloc_id: String,
        modify_index: u64,
        reason: ChangeReason,
        effects: &mut Vec<Effect>,
    ) {
        if self.stopping() || self.fetching.contains_key(&alloc_id) {
            return;
        }
        if self.fetching.len() >= MAX_SEPARATE_FETCHES {
            if self.nodes.is_cluster() {
                if !self.queued.iter().any(|(id, ..)| *id == alloc_id) {
                    self.queued.push_back((alloc_id, modify_index, reason));
                }
            } else if !effects.contains(&Effect::Resync) {
                effects.push(Effect::Resync);
            }
            return;
        }
        self.fetching.insert(alloc_id.clone(), reason);
        effects.push(Effect::Fetch {
            alloc_id,
            modify_index,
        });
    }

    /// Starts queued fetches while fewer than [`MAX_SEPARATE_FETCHES`] run.
    fn fetch_queued(&mut self, effects: &mut Vec<Effect>) {
        while self.fetching.len() < MAX_SEPARATE_FETCHES
            && let Some((alloc_id, modify_index, reason)) = self.queued.pop_front()
        {
            self.fetch(alloc_id, modify_index, reason, effects);
        }
    }

    fn published(&mut self, outcome: Published, now: Instant) {
        let Some(publishing) = self.publishing.take() else {
            return;
        };
        if outcome == Published::Written {
            self.unannounced_added
                .extend(publishing.added.iter().cloned());
        }
        match outcome {
            Published::Written if publishing.urgent => self.reloads.owe_urgently(),
            Published::Written => self.reloads.owe(),
            Published::Unchanged if self.unannounced_at_start => self.reloads.owe(),
            Published::Unchanged | Published::Invalid => {}
            Published::Failed => {
                // Retry after a pause, together with whatever changed meanwhile.
                let retry_at = now + PUBLISH_RETRY;
                let mut retry = Pending::new(retry_at, publishing.reasons);
                retry.added = publishing.added;
                retry.urgent = publishing.urgent;
                if let Some(newer) = self.pending.take() {
                    retry.reasons.extend(newer.reasons);
                    retry.added.extend(newer.added);
                    retry.urgent |= newer.urgent;
                }
                self.pending = Some(retry);
                return;
            }
        }
        self.unannounced_at_start = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::types::{Allocation, Job};

    const NODE: &str = "node-1";

    fn timing() -> Timing {
        Timing {
            resync_interval: Duration::from_secs(300),
            min_relist_interval: Duration::from_millis(100),
            grace: Duration::from_secs(2),
            wait: Wait {
                min: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            min_reload_interval: Duration::from_secs(20),
            stream_timeout: Duration::from_secs(75),
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    fn alloc(id: &str, modify_index: u64) -> Allocation {
        Allocation {
            id: id.to_owned(),
            node_id: NODE.to_owned(),
            modify_index,
            alloc_modify_index: modify_index,
            job: Some(Arc::new(Job {
                id: "web".to_owned(),
                ..Job::default()
            })),
            ..Allocation::default()
        }
    }

    fn listed(allocations: Vec<Allocation>, requested_at: Instant) -> Input {
        Input::Update(Update::Listed {
            allocations,
            requested_at,
            reason: ResyncReason::Connect,
        })
    }

    fn fetched(id: &str, modify_index: u64) -> Input {
        Input::Update(Update::Fetched(Box::new(alloc(id, modify_index))))
    }

    fn event(id: &str, modify_index: u64) -> Input {
        let mut alloc = alloc(id, modify_index);
        alloc.job = None;
        Input::Update(Update::Event(Box::new(alloc)))
    }

    /// A machine with the clock's origin, driven like the loop drives it: inputs at given
    /// offsets, ticks at every wakeup up to a time, publishes and reloads answered at once.
    struct Run {
        machine: Machine,
        t0: Instant,
        now: Instant,
        log: Vec<(Duration, Effect)>,
        publish_outcome: Published,
    }

    impl Run {
        fn new(unannounced_at_start: bool) -> Run {
            let t0 = Instant::now();
            Run {
                machine: Machine::new(
                    Nodes::single(crate::table::NodeInfo {
                        id: NODE.to_owned(),
                        ..Default::default()
                    }),
                    timing(),
                    unannounced_at_start,
                ),
                t0,
                now: t0,
                log: Vec::new(),
                publish_outcome: Published::Written,
            }
        }

        /// A machine for the cluster scope.
        fn cluster() -> Run {
            let mut run = Run::new(false);
            run.machine = Machine::new(Nodes::cluster(), timing(), false);
            run
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Feeds `input` at `ms`, after running every wakeup before it.
        fn input(&mut self, ms: u64, input: Input) {
            self.run_until(ms);
            self.feed(input);
        }

        fn feed(&mut self, input: Input) {
            let mut queue = vec![input];
            while let Some(input) = queue.pop() {
                for effect in self.machine.step(input, self.now) {
                    self.log.push((self.now - self.t0, effect.clone()));
                    match effect {
                        Effect::Publish { .. } => {
                            queue.push(Input::Published(self.publish_outcome))
                        }
                        Effect::Reload => queue.push(Input::Reloaded),
                        Effect::Fetch { .. } | Effect::Resync | Effect::Exit => {}
                    }
                }
            }
        }

        /// Runs every wakeup up to `ms`.
        fn run_until(&mut self, ms: u64) {
            let end = self.at(ms);
            while let Some(wake) = self.machine.next_wakeup(self.now).filter(|w| *w <= end) {
                if self.log.iter().any(|(_, e)| *e == Effect::Exit) {
                    break;
                }
                self.now = wake.max(self.now);
                self.feed(Input::Tick);
            }
            self.now = end.max(self.now);
        }

        fn times_of(&self, wanted: fn(&Effect) -> bool) -> Vec<u64> {
            self.log
                .iter()
                .filter(|(_, e)| wanted(e))
                .map(|(t, _)| t.as_millis() as u64)
                .collect()
        }

        fn publishes(&self) -> Vec<u64> {
            self.times_of(|e| matches!(e, Effect::Publish { .. }))
        }

        fn reloads(&self) -> Vec<u64> {
            self.times_of(|e| *e == Effect::Reload)
        }

        fn exits(&self) -> Vec<u64> {
            self.times_of(|e| *e == Effect::Exit)
        }
    }

    fn node(id: &str, datacenter: &str) -> crate::nomad::types::Node {
        crate::nomad::types::Node {
            id: id.to_owned(),
            datacenter: datacenter.to_owned(),
            ..Default::default()
        }
    }

    fn fetches(run: &Run) -> Vec<String> {
        run.log
            .iter()
            .filter_map(|(_, e)| match e {
                Effect::Fetch { alloc_id, .. } => Some(alloc_id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn in_cluster_scope_a_burst_is_queued_fetches_not_a_listing_of_the_cluster() {
        let mut run = Run::cluster();
        run.input(0, listed(vec![], run.at(0)));
        for i in 0..10 {
            run.input(10, event(&format!("new-{i}"), 20 + i));
        }
        assert_eq!(fetches(&run).len(), MAX_SEPARATE_FETCHES);
        assert!(!run.log.iter().any(|(_, e)| *e == Effect::Resync));
        // Each fetch that ends starts a queued one; another node's allocation is applied.
        let mut other = alloc("new-0", 20);
        other.node_id = "elsewhere".to_owned();
        run.input(20, Input::Update(Update::Fetched(Box::new(other))));
        run.input(
            20,
            Input::Update(Update::FetchFailed {
                alloc_id: "new-1".to_owned(),
            }),
        );
        assert_eq!(
            fetches(&run),
            (0..10).map(|i| format!("new-{i}")).collect::<Vec<_>>()
        );
        assert!(run.machine.store().contains("new-0"));
    }

    #[test]
    fn a_node_whose_columns_change_is_published_and_one_that_does_not_is_not() {
        let mut run = Run::cluster();
        run.input(
            0,
            Input::Update(Update::NodesListed(vec![node("n1", "dc1")])),
        );
        let mut on_n1 = alloc("a", 5);
        on_n1.node_id = "n1".to_owned();
        run.input(0, listed(vec![on_n1], run.at(0)));
        run.run_until(2_000);
        assert_eq!(run.publishes().len(), 1);
        run.input(
            2_000,
            Input::Update(Update::NodeChanged(Box::new(node("n1", "dc1")))),
        );
        run.run_until(4_000);
        assert_eq!(
            run.publishes().len(),
            1,
            "the same columns: nothing to publish"
        );
        run.input(
            4_000,
            Input::Update(Update::NodeChanged(Box::new(node("n1", "dc2")))),
        );
        run.run_until(6_000);
        assert_eq!(run.publishes().len(), 2);
        assert_eq!(run.machine.nodes().of("n1").datacenter, "dc2");
        // Listed without n1 while its allocation still has rows: n1 keeps its columns.
        run.input(
            6_000,
            Input::Update(Update::NodesListed(vec![node("n2", "dc9")])),
        );
        assert_eq!(run.machine.nodes().of("n1").datacenter, "dc2");
    }

    #[test]
    fn nothing_is_published_before_the_first_listing() {
        let mut run = Run::new(false);
        run.input(0, fetched("a", 5));
        run.run_until(5_000);
        assert!(run.publishes().is_empty(), "{:?}", run.log);
        run.input(
            5_000,
            listed(vec![alloc("a", 5), alloc("b", 6)], run.at(5_000)),
        );
        run.run_until(10_000);
        // At once: the debounce's MAX, counted from the fetch, has passed.
        assert_eq!(run.publishes(), [5_000]);
    }

    #[test]
    fn debounce_waits_for_quiet_but_never_past_max() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(1_000);
        assert_eq!(run.publishes(), [100]);
        // An event every 50 ms for two seconds: quiet never comes, MAX (1 s) does.
        for i in 0..40 {
            run.input(2_000 + i * 50, fetched(&format!("n{i}"), 10 + i));
        }
        run.run_until(5_000);
        assert_eq!(run.publishes(), [100, 3_000, 4_000]);
    }

    #[test]
    fn a_burst_of_unknown_allocations_is_a_few_fetches_and_one_listing() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        for i in 0..200 {
            run.input(1_000, event(&format!("a{i}"), 10 + i));
        }
        let fetches = run.times_of(|e| matches!(e, Effect::Fetch { .. })).len();
        let resyncs = run.times_of(|e| *e == Effect::Resync).len();
        assert_eq!(fetches, MAX_SEPARATE_FETCHES);
        assert!(resyncs >= 1, "the burst asks for a listing");
    }

    #[test]
    fn an_allocation_is_fetched_once_while_its_fetch_runs() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.input(10, event("a", 5));
        run.input(20, event("a", 6));
        run.input(
            30,
            Input::Update(Update::DirCreated {
                alloc_id: "a".into(),
            }),
        );
        assert_eq!(run.times_of(|e| matches!(e, Effect::Fetch { .. })), [10]);
        run.input(
            40,
            Input::Update(Update::FetchFailed {
                alloc_id: "a".into(),
            }),
        );
        run.input(50, event("a", 7));
        assert_eq!(
            run.times_of(|e| matches!(e, Effect::Fetch { .. })),
            [10, 50]
        );
    }

    #[test]
    fn an_event_with_a_known_job_patches_without_a_fetch() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
        let mut update = alloc("a", 8);
        update.job = None;
        update.alloc_modify_index = 5;
        run.input(500, Input::Update(Update::Event(Box::new(update))));
        run.run_until(2_000);
        assert!(
            run.times_of(|e| matches!(e, Effect::Fetch { .. }))
                .is_empty()
        );
        assert_eq!(run.publishes(), [100, 600]);
    }

    #[test]
    fn an_invalid_table_is_not_retried_but_a_failed_write_is() {
        let mut run = Run::new(false);
        run.publish_outcome = Published::Invalid;
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(10_000);
        assert_eq!(
            run.publishes(),
            [100],
            "the same content cannot become valid"
        );
        let mut run = Run::new(false);
        run.publish_outcome = Published::Failed;
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(3_500);
        // Each retry waits PUBLISH_RETRY, then the debounce's MIN.
        assert_eq!(run.publishes(), [100, 1_200, 2_300, 3_400]);
        assert!(run.reloads().is_empty(), "nothing was written");
    }

    #[test]
    fn departed_allocations_expire_after_their_grace() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![alloc("a", 5), alloc("b", 6)], run.at(0)));
        run.input(1_000, listed(vec![alloc("b", 6)], run.at(1_000)));
        run.run_until(2_900);
        assert!(
            run.machine.store().contains("a"),
            "a stays during its grace"
        );
        run.run_until(3_200);
        assert!(!run.machine.store().contains("a"));
        assert_eq!(run.publishes(), [100, 1_100, 3_100]);
    }

    #[test]
    fn publishes_are_one_reload_each_at_most_one_per_interval() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        for (i, ms) in [1_000u64, 1_500, 2_000].into_iter().enumerate() {
            run.input(ms, fetched(&format!("n{i}"), 10 + i as u64));
        }
        run.run_until(60_000);
        assert_eq!(run.publishes(), [100, 1_100, 1_600, 2_100]);
        assert_eq!(
            run.reloads(),
            [100, 20_100],
            "one trailing reload, not one per publish"
        );
    }

    fn dir_created(id: &str) -> Input {
        Input::Update(Update::DirCreated {
            alloc_id: id.to_owned(),
        })
    }

    #[test]
    fn rows_for_an_allocation_whose_directory_exists_publish_and_reload_at_once() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(1_000);
        assert_eq!((run.publishes(), run.reloads()), (vec![100], vec![100]));
        // The stream is down: the directory is the first news; the fetch answers 5 ms later.
        run.input(2_000, dir_created("a"));
        assert!(run.log.iter().any(
            |(_, e)| matches!(e, Effect::Fetch { alloc_id, modify_index: 0 } if alloc_id == "a")
        ));
        run.input(2_005, fetched("a", 5));
        // No debounce, and no waiting out the 20 s reload interval.
        assert_eq!(run.publishes(), [100, 2_005]);
        assert_eq!(run.reloads(), [100, 2_005]);
        // An ordinary change afterwards waits for both again.
        run.input(3_000, fetched("b", 6));
        run.run_until(60_000);
        assert_eq!(run.publishes(), [100, 2_005, 3_100]);
        assert_eq!(run.reloads(), [100, 2_005, 22_005]);
    }

    #[test]
    fn a_directory_appearing_while_its_rows_wait_makes_them_urgent() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(1_000);
        // Rows known from the stream, waiting for the debounce: the directory hurries them.
        run.input(2_000, fetched("a", 5));
        run.input(2_040, dir_created("a"));
        assert_eq!(run.publishes(), [100, 2_040]);
        assert_eq!(run.reloads(), [100, 2_040]);
        // Rows published, their reload waiting out the interval: the directory hurries it.
        run.input(5_000, fetched("b", 6));
        run.run_until(5_100);
        assert_eq!(run.reloads(), [100, 2_040], "the interval holds it");
        run.input(5_300, dir_created("b"));
        assert_eq!(run.reloads(), [100, 2_040, 5_300]);
    }

    #[test]
    fn a_burst_of_urgent_rows_gets_a_few_bypasses_a_second_and_then_the_debounce() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(1_000);
        for i in 0..6u64 {
            let id = format!("u{i}");
            run.input(2_000 + i * 10, dir_created(&id));
            run.input(2_001 + i * 10, fetched(&id, 10 + i));
        }
        run.run_until(10_000);
        let publishes = run.publishes();
        assert_eq!(
            publishes[1..=URGENT_PER_SECOND],
            [2_001, 2_011, 2_021],
            "{publishes:?}"
        );
        assert!(
            publishes[URGENT_PER_SECOND + 1] >= 2_131,
            "the rest waits for the debounce: {publishes:?}"
        );
    }

    #[test]
    fn a_stop_publishes_at_once_and_delivers_the_owed_reload_before_exiting() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.input(1_000, fetched("n", 10));
        run.run_until(6_000);
        assert_eq!(
            run.reloads(),
            [100],
            "the second publish waits out the interval"
        );
        // A change in its debounce, then SIGTERM: published at once, reload at 20.1 s, exit.
        run.input(6_000, fetched("m", 11));
        run.input(6_010, Input::Stop);
        run.run_until(60_000);
        assert_eq!(run.publishes(), [100, 1_100, 6_010]);
        assert_eq!(run.reloads(), [100, 20_100]);
        assert_eq!(run.exits(), [20_100]);
    }

    #[test]
    fn a_stop_with_nothing_owed_exits_at_once() {
        let mut run = Run::new(false);
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(30_000);
        run.input(30_000, Input::Stop);
        assert_eq!(run.exits(), [30_000]);
    }

    #[test]
    fn a_reload_owed_past_the_shutdown_timeout_goes_at_once_rather_than_never() {
        let mut run = Run::new(false);
        run.machine.timing.shutdown_timeout = Duration::from_secs(10);
        run.input(0, listed(vec![], run.at(0)));
        run.input(1_000, fetched("n", 10));
        run.input(2_000, Input::Stop);
        run.run_until(60_000);
        assert_eq!(
            run.reloads(),
            [100, 2_000],
            "20.1 s is past the deadline (12 s): sent at the stop"
        );
        assert_eq!(run.exits(), [2_000]);
    }

    #[test]
    fn a_reload_still_running_at_the_deadline_is_left_to_the_restart() {
        let mut run = Run::new(false);
        run.machine.timing.shutdown_timeout = Duration::from_secs(10);
        run.input(0, listed(vec![], run.at(0)));
        run.input(1_000, fetched("n", 10));
        run.run_until(2_000);
        // A reload that never ends (Vector's command hangs): the stop ends at its deadline.
        let effects = run.machine.step(Input::Stop, run.at(2_000));
        assert_eq!(effects, [Effect::Reload]);
        let effects = run.machine.step(Input::Tick, run.at(12_000));
        assert_eq!(effects, [Effect::Exit]);
    }

    #[test]
    fn a_stop_before_the_first_listing_publishes_nothing() {
        let mut run = Run::new(true);
        run.input(0, fetched("a", 5));
        run.input(10, Input::Stop);
        assert!(run.publishes().is_empty());
        assert!(run.reloads().is_empty());
        assert_eq!(run.exits(), [10]);
    }

    #[test]
    fn an_unannounced_table_is_announced_after_the_first_listing_even_if_unchanged() {
        let mut run = Run::new(true);
        run.publish_outcome = Published::Unchanged;
        run.input(0, listed(vec![], run.at(0)));
        run.input(1_000, listed(vec![], run.at(1_000)));
        run.run_until(60_000);
        assert_eq!(run.publishes(), [100, 1_100]);
        assert_eq!(
            run.reloads(),
            [100],
            "once, not for every unchanged publish"
        );
        let mut run = Run::new(false);
        run.publish_outcome = Published::Unchanged;
        run.input(0, listed(vec![], run.at(0)));
        run.run_until(60_000);
        assert!(
            run.reloads().is_empty(),
            "an announced table is not announced again"
        );
    }
}
