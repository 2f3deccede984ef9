//! The decisions of `run`, as a pure step function: [`Machine::step`] takes the loop's state, one
//! input and the time, and returns the effects to perform (fetch an allocation, resync, publish,
//! reload, exit). It neither reads the clock nor does I/O; the driver (`run/driver.rs`) performs
//! the effects and feeds their results back as inputs. This is kube-runtime's watcher `step`
//! applied to the whole loop, so that every transition is data a test can assert.
//!
//! `step` dispatches; each concern is a small pure type of its own: the model ([`Store`]),
//! fetches of unknown allocations ([`FetchQueue`]), the debounce and the publish in progress
//! ([`PublishSchedule`]), urgent rows ([`Urgency`]), reloads ([`ReloadSchedule`]: owed after
//! a publish, coalesced and rate-limited), and with `--memory-table-url` the base file
//! ([`BaseSchedule`]): changes are then pushed, and only bases are published and reloaded. A
//! stop publishes (or pushes) what is pending at once, delivers an owed reload, and exits by
//! its deadline.

pub(crate) mod base_schedule;
pub(crate) mod debounce;
pub(crate) mod fetch_queue;
pub(crate) mod input;
pub(crate) mod reload_schedule;
pub(crate) mod store;
pub(crate) mod urgency;

use std::sync::Arc;

use tokio::time::Instant;

use crate::nomad::types::Allocation;
use crate::table::node_columns::Nodes;
use crate::timing::Timing;
use base_schedule::BaseSchedule;
use debounce::PublishSchedule;
use fetch_queue::{FetchQueue, Overflow};
pub use input::{
    BaseReason, ChangeReason, Effect, Input, ListingId, Published, ResyncReason, Update,
};
use reload_schedule::ReloadSchedule;
use store::Store;
use urgency::Urgency;

/// The loop's state.
#[derive(Debug)]
pub struct Machine {
    /// Where the rows' node columns come from: the node (fetched allocations of other nodes
    /// are not applied), or every node of the cluster.
    nodes: Nodes,
    /// Grace, debounce, reload interval and shutdown timeout.
    timing: Timing,
    /// The model: the allocations, and departed ones until their grace ends.
    store: Store,
    fetches: FetchQueue,
    publishes: PublishSchedule,
    urgency: Urgency,
    /// When Vector is owed a reload and when it may get one.
    reloads: ReloadSchedule,
    /// The table on disk at start was never announced to Vector: the first publish owes a
    /// reload even when it writes nothing.
    unannounced_at_start: bool,
    /// Set by a stop: the time by which the loop exits whatever is still owed.
    stop_by: Option<Instant>,
    /// With `--memory-table-url`: changes are pushed to Vector's memory table, and the file is
    /// a base published on this schedule.
    base: Option<BaseSchedule>,
}

impl Machine {
    /// A machine for a table of `nodes` (one node, or the cluster); `unannounced_at_start` says
    /// whether the table on disk was never announced to Vector (a publish or crash before its
    /// reload). With `base_interval`, changes are pushed to Vector's memory table and the file
    /// is published at start and then every `base_interval`.
    pub fn new(
        nodes: Nodes,
        timing: Timing,
        unannounced_at_start: bool,
        base_interval: Option<std::time::Duration>,
    ) -> Machine {
        // A burst in node scope is one cheap listing of the node; in cluster scope a listing
        // of the whole cluster is not worth it, so fetches wait their turn.
        let overflow = if nodes.is_cluster() {
            Overflow::Queue
        } else {
            Overflow::Relist
        };
        Machine {
            nodes,
            timing,
            store: Store::new(),
            fetches: FetchQueue::new(overflow),
            publishes: PublishSchedule::new(timing.wait),
            urgency: Urgency::default(),
            reloads: ReloadSchedule::new(timing.min_reload_interval),
            unannounced_at_start,
            stop_by: None,
            base: base_interval.map(BaseSchedule::new),
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
        let base = self.base_due(now);
        [publish, expiry, reload, base, self.stop_by]
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
            Input::BasePublished(outcome) => self.base_published(outcome, now),
            Input::PushTargetBack => {
                // Vector may have restarted: its memory table is empty, and the file it loaded
                // may hold rows whose tombstones went with the table. A base now replaces both.
                if let Some(base) = &mut self.base {
                    base.due_at_once();
                }
            }
            Input::Stop => {
                if self.stop_by.is_none() {
                    self.stop_by = Some(now + self.timing.shutdown_timeout);
                    self.fetches.stop();
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
            self.publishes.changed(ChangeReason::GraceOver, now);
        }
        if self.base_due(now).is_some_and(|at| at <= now)
            && let Some(base) = &mut self.base
            && let Some(reason) = base.start(now)
        {
            effects.push(Effect::PublishBase(reason));
        }
        if self.publish_due().is_some_and(|at| at <= now)
            && let Some(pending) = self.publishes.start()
        {
            effects.push(if self.base.is_some() {
                Effect::Push {
                    since: pending.first,
                }
            } else {
                Effect::Publish {
                    reasons: pending.reasons.clone(),
                    since: pending.first,
                }
            });
            if pending.urgent {
                self.urgency.record(now);
            }
            return;
        }
        if !self.publishes.in_progress() {
            // Stopping, a reload owed at or past the deadline goes at once: waiting out the
            // interval only to give up (the exit at the deadline comes first) would leave
            // Vector with the old table.
            let past_deadline = self
                .stop_by
                .is_some_and(|by| self.reloads.due_at(now).is_some_and(|due| due >= by));
            let started = if past_deadline {
                self.reloads.start_now()
            } else {
                self.reloads.start(now)
            };
            if started {
                self.urgency.announced();
                effects.push(Effect::Reload);
            }
        }
        if self.done_stopping(now) {
            effects.push(Effect::Exit);
        }
    }

    /// When the pending changes are published: after the debounce, urgent ones when urgency
    /// allows, at once when stopping, never before the first listing.
    fn publish_due(&self) -> Option<Instant> {
        self.publishes.due(self.stopping(), |changed| {
            self.urgency.allowed_after(changed)
        })
    }

    /// When the base file is due: not before the first listing, nor once a stop is under way
    /// (the pending changes are pushed; the next start publishes the base).
    fn base_due(&self, now: Instant) -> Option<Instant> {
        if self.stopping() || !self.publishes.has_listed() {
            return None;
        }
        self.base.as_ref()?.due(now)
    }

    /// A stop is done when nothing is left to publish and no reload is running or owed in time.
    fn done_stopping(&self, now: Instant) -> bool {
        let Some(stop_by) = self.stop_by else {
            return false;
        };
        let publish_left =
            self.publish_due().is_some() || self.publishes.in_progress() || self.base_in_progress();
        let reload_left = self.reloads.in_flight() || self.reloads.due_at(now).is_some();
        // Past the deadline `due` exits before this is asked.
        debug_assert!(now < stop_by);
        !publish_left && !reload_left
    }

    /// Notes the allocations a pending change adds; any with a directory makes it urgent, and
    /// so does any when changes are pushed: a push is a few rows, so a new allocation's rows
    /// go at once (within [`urgency::URGENT_PER_SECOND`]) rather than after the debounce,
    /// which is there to spare Vector reloads of the file.
    fn added(&mut self, ids: Vec<String>, now: Instant) {
        let urgent = (self.base.is_some() && !ids.is_empty()) || self.urgency.any_has_dir(&ids);
        self.publishes.added(ids, urgent, now);
    }

    fn apply(&mut self, update: Update, now: Instant, effects: &mut Vec<Effect>) {
        let grace = self.timing.grace;
        match update {
            Update::ListedPart {
                listing,
                allocations,
                requested_at,
                reason,
            } => self.take_listed(listing, allocations, requested_at, reason, now),
            Update::Listed {
                listing,
                allocations,
                requested_at,
                reason,
            } => {
                self.take_listed(listing, allocations, requested_at, reason, now);
                self.store.end_listing(listing, requested_at, now, grace);
                self.publishes.listed();
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
                            self.publishes.changed(ChangeReason::Event, now);
                        }
                    }
                    None => self.fetch(
                        alloc.id.to_string(),
                        alloc.modify_index,
                        ChangeReason::NewAllocation,
                        effects,
                    ),
                }
            }
            Update::Fetched(alloc) => {
                let reason = self
                    .fetches
                    .finished(&alloc.id, Some(alloc.modify_index), effects)
                    .unwrap_or(ChangeReason::NewAllocation);
                let id = alloc.id.clone();
                let new = !self.store.contains(&id);
                let ours = self
                    .nodes
                    .single_id()
                    .is_none_or(|node| node == &*alloc.node_id);
                if ours && self.store.upsert(*alloc, now) {
                    self.publishes.changed(reason, now);
                    if new {
                        self.added(vec![id.to_string()], now);
                    }
                }
            }
            Update::FetchFailed { alloc_id } => {
                self.fetches.finished(&alloc_id, None, effects);
            }
            Update::NodesListed(nodes) => {
                let in_use = self.store.node_ids();
                if self.nodes.replace(&nodes, |id| in_use.contains(id)) {
                    self.publishes.changed(ChangeReason::NodeChange, now);
                }
            }
            Update::NodeChanged(node) => {
                if self.nodes.update(&node) {
                    self.publishes.changed(ChangeReason::NodeChange, now);
                }
            }
            Update::DirCreated { alloc_id } => {
                self.urgency.dir_created(&alloc_id);
                if self.publishes.make_urgent_if_adding(&alloc_id) {
                    // Its rows wait for the debounce, and its log files are imminent.
                } else if self.urgency.unannounced(&alloc_id) {
                    // Its rows are on disk, and the reload waits out the interval.
                    if self.urgency.allowed_after(now) <= now {
                        self.urgency.record(now);
                        self.reloads.owe_urgently();
                    }
                } else if !self.store.contains(&alloc_id) {
                    self.fetch(alloc_id, 0, ChangeReason::NewAllocDir, effects);
                }
            }
            Update::DirRemoved { alloc_id } => {
                self.urgency.dir_removed(&alloc_id);
                self.store.depart(&alloc_id, now, grace);
            }
        }
    }

    /// Takes a part of a full listing: its new allocations are added, and the table changed.
    fn take_listed(
        &mut self,
        listing: ListingId,
        allocations: Vec<Allocation>,
        requested_at: Instant,
        reason: ResyncReason,
        now: Instant,
    ) {
        let added: Vec<String> = allocations
            .iter()
            .filter(|a| !self.store.contains(&a.id))
            .map(|a| a.id.to_string())
            .collect();
        self.store.take_listed(listing, allocations, requested_at);
        self.publishes.changed(ChangeReason::Listing(reason), now);
        self.added(added, now);
    }

    /// Fetches an allocation (the queue refuses once a stop is under way).
    fn fetch(
        &mut self,
        alloc_id: String,
        modify_index: u64,
        reason: ChangeReason,
        effects: &mut Vec<Effect>,
    ) {
        self.fetches
            .request(alloc_id, modify_index, reason, effects);
    }

    /// Whether a base publish is under way.
    fn base_in_progress(&self) -> bool {
        self.base.as_ref().is_some_and(BaseSchedule::in_progress)
    }

    /// A base publish ended: a written file (or the unannounced one at start) is owed a reload.
    fn base_published(&mut self, outcome: Published, now: Instant) {
        let Some(base) = &mut self.base else {
            return;
        };
        base.finished(outcome, now);
        if outcome == Published::Written
            || (outcome == Published::Unchanged && self.unannounced_at_start)
        {
            self.reloads.owe();
        }
        if outcome != Published::Failed {
            self.unannounced_at_start = false;
        }
    }

    /// A publish ended; a failed one is pending again, to be retried.
    fn published(&mut self, outcome: Published, now: Instant) {
        let Some(publishing) = self.publishes.finished(outcome, now) else {
            return;
        };
        if outcome == Published::Pushed {
            // Delivered by the push queue; the file is the base's business.
            return;
        }
        if outcome == Published::Written {
            self.urgency.published(&publishing.added);
            if publishing.urgent {
                self.reloads.owe_urgently();
            } else {
                self.reloads.owe();
            }
        } else if outcome == Published::Unchanged && self.unannounced_at_start {
            self.reloads.owe();
        }
        self.unannounced_at_start = false;
    }
}

#[cfg(test)]
mod tests;
