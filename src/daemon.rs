//! `run`: the loop that owns the model. It applies updates from the watchers, fetches the job of
//! allocations first seen in events, expires departed allocations after their grace period, and
//! publishes debounced (consul-template's wait: MIN of quiet, at most MAX after the first
//! change), only when the bytes change, reloading Vector after each change through a coalescing
//! queue. Errors are logged and never shrink the published table.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::cli::Wait;
use crate::config::{PublishSettings, Timing};
use crate::nomad::types::Allocation;
use crate::nomad::{Blocking, Error, NomadClient};
use crate::publish::{Outcome, PublishError, Publisher};
use crate::reload::{ReloadQueue, Reloader};
use crate::render;
use crate::store::Store;
use crate::table::{self, Columns, NodeInfo};
use crate::watch::stream::StreamWatcher;
use crate::watch::{Update, alloc_dir};

/// More unknown allocations than this in flight at once (a deployment, a burst of batch jobs)
/// are fetched with one listing instead of one request each.
const MAX_SEPARATE_FETCHES: usize = 8;
/// After a failed publish, wait at least this long before trying again.
const PUBLISH_RETRY: Duration = Duration::from_secs(1);

/// Changes waiting to be published.
#[derive(Debug)]
struct Pending {
    first: Instant,
    last: Instant,
    reasons: BTreeSet<&'static str>,
}

impl Pending {
    fn publish_at(&self, wait: Wait) -> Instant {
        (self.last + wait.min).min(self.first + wait.max)
    }
}

/// The loop's state.
struct Daemon {
    client: Arc<NomadClient>,
    node: NodeInfo,
    columns: Columns,
    format: render::FileFormat,
    timing: Timing,
    store: Store,
    publisher: Publisher,
    reloads: ReloadQueue,
    updates: mpsc::Sender<Update>,
    resync: Arc<Notify>,
    pending: Option<Pending>,
    fetching: HashSet<String>,
    /// The keys of the last published table, to log what a publish added and removed.
    published_keys: Option<BTreeSet<(String, String)>>,
}

impl Daemon {
    fn changed(&mut self, reason: &'static str) {
        let now = Instant::now();
        let pending = self.pending.get_or_insert(Pending {
            first: now,
            last: now,
            reasons: BTreeSet::new(),
        });
        pending.last = now;
        pending.reasons.insert(reason);
    }

    fn apply(&mut self, update: Update) {
        match update {
            Update::Listed {
                allocations,
                index,
                reason,
            } => {
                debug!(allocations = allocations.len(), index, "listing applied");
                self.store
                    .replace(allocations, index, Instant::now(), self.timing.grace);
                self.changed(reason.as_str());
            }
            Update::Event(alloc) => self.apply_event(alloc),
            Update::Fetched { alloc, reason } => {
                self.fetching.remove(&alloc.id);
                if alloc.node_id == self.node.id && self.store.upsert(alloc) {
                    self.changed(reason);
                }
            }
            Update::FetchFailed { alloc_id } => {
                self.fetching.remove(&alloc_id);
            }
            Update::DirCreated { alloc_id } => {
                if !self.store.contains(&alloc_id) {
                    self.fetch(alloc_id, "new alloc dir");
                }
            }
            Update::DirRemoved { alloc_id } => {
                if self
                    .store
                    .depart(&alloc_id, Instant::now(), self.timing.grace)
                {
                    debug!(alloc_id = %alloc_id, "alloc dir removed: grace period started");
                }
            }
        }
    }

    /// An event's allocation has no job: reuse the one the model holds when the allocation
    /// still runs it, else fetch the allocation (or, in a burst, list them all).
    fn apply_event(&mut self, mut alloc: Allocation) {
        if self.store.has_seen(&alloc.id, alloc.modify_index) {
            return;
        }
        if let Some(job) = self.store.known_job(&alloc).cloned() {
            alloc.job = Some(job);
            if self.store.upsert(alloc) {
                self.changed("event");
            }
            return;
        }
        self.fetch(alloc.id, "event");
    }

    /// Fetches an allocation with its job (or, in a burst, lists them all). `reason` is what
    /// the publish will name.
    fn fetch(&mut self, alloc_id: String, reason: &'static str) {
        if self.fetching.contains(&alloc_id) {
            return;
        }
        if self.fetching.len() >= MAX_SEPARATE_FETCHES {
            debug!("many unknown allocations at once: one listing instead of separate fetches");
            self.resync.notify_one();
            return;
        }
        debug!(alloc_id = %alloc_id, reason, "fetching an allocation");
        self.fetching.insert(alloc_id.clone());
        let client = self.client.clone();
        let updates = self.updates.clone();
        tokio::spawn(async move {
            let update = match client.allocation(&alloc_id, Blocking::default()).await {
                Ok(fetched) => Update::Fetched {
                    alloc: fetched.value,
                    reason,
                },
                Err(e) => {
                    if !matches!(e, Error::Status { status: 404, .. }) {
                        warn!(alloc_id = %alloc_id, error = %e, "cannot fetch a new allocation; the next resync will bring it");
                    }
                    Update::FetchFailed { alloc_id }
                }
            };
            let _ = updates.send(update).await;
        });
    }

    fn expire(&mut self) {
        let expired = self.store.expire(Instant::now());
        if !expired.is_empty() {
            debug!(allocations = ?expired, "grace period over");
            self.changed("grace period over");
        }
    }

    /// Publishes the model if it renders differently from the file; reloads Vector if so.
    fn publish(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let projection = table::project(self.store.allocations(), &self.node, &self.columns);
        let keys: BTreeSet<(String, String)> = projection
            .table
            .rows
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        let bytes = render::render(&projection.table, self.format);
        match self.publisher.publish(&bytes) {
            Ok(Outcome::Unchanged) => {
                debug!(reasons = ?pending.reasons, "table unchanged; nothing written");
            }
            Ok(Outcome::Written(_)) => {
                let (added, removed) = match &self.published_keys {
                    Some(before) => (
                        keys.difference(before).count(),
                        before.difference(&keys).count(),
                    ),
                    None => (keys.len(), 0),
                };
                let reason: Vec<&str> = pending.reasons.iter().copied().collect();
                info!(rows = keys.len(), added, removed, reason = %reason.join(", "), "table published");
                self.reloads.request();
            }
            Err(e) => {
                error!(error = %e, "table not published; the file keeps its last content");
                if matches!(e, PublishError::Invalid { .. }) {
                    // Retrying the same content cannot help; the next change will.
                    return;
                }
                let now = Instant::now();
                self.pending = Some(Pending {
                    first: now + PUBLISH_RETRY,
                    last: now + PUBLISH_RETRY,
                    reasons: pending.reasons,
                });
                return;
            }
        }
        self.published_keys = Some(keys);
    }
}

/// What the loop starts with.
pub struct Setup {
    pub node: NodeInfo,
    pub publish: PublishSettings,
    /// Already used for the header-only table, so it knows the file.
    pub publisher: Publisher,
    pub timing: Timing,
    pub alloc_dir: PathBuf,
}

/// Runs until `shutdown` resolves. `resync` forces a resync when notified (SIGHUP).
pub async fn run(
    client: Arc<NomadClient>,
    setup: Setup,
    resync: Arc<Notify>,
    shutdown: impl Future<Output = ()>,
) {
    let Setup {
        node,
        publish: settings,
        publisher,
        timing,
        alloc_dir,
    } = setup;
    let (updates, mut incoming) = mpsc::channel(1024);
    let watcher = tokio::spawn(
        StreamWatcher {
            client: client.clone(),
            node_id: node.id.clone(),
            updates: updates.clone(),
            resync: resync.clone(),
            resync_interval: timing.resync_interval,
            stream_timeout: timing.stream_timeout,
        }
        .run(),
    );
    let reloader = Reloader::new(settings.reloader, client.clone());
    let mut daemon = Daemon {
        client,
        columns: settings.columns,
        format: settings.format,
        timing,
        store: Store::new(),
        publisher,
        reloads: ReloadQueue::spawn(reloader, timing.min_reload_interval),
        updates,
        resync,
        pending: None,
        fetching: HashSet::new(),
        published_keys: None,
        node,
    };
    let _alloc_dir_watch = match alloc_dir::watch(alloc_dir.clone(), daemon.updates.clone()) {
        Ok(watch) => Some(watch),
        Err(e) => {
            warn!(alloc_dir = %alloc_dir.display(), error = %e, "cannot watch the alloc dir; new allocations wait for the event stream (set --alloc-dir)");
            None
        }
    };
    info!(node = %daemon.node.id, path = %daemon.publisher.path().display(), alloc_dir = %alloc_dir.display(), "following Nomad");
    tokio::pin!(shutdown);
    let far_future = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        let publish_at = daemon
            .pending
            .as_ref()
            .map_or_else(far_future, |p| p.publish_at(daemon.timing.wait));
        let expire_at = daemon.store.next_expiry().unwrap_or_else(far_future);
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            update = incoming.recv() => match update {
                Some(update) => daemon.apply(update),
                None => break,
            },
            () = tokio::time::sleep_until(expire_at) => daemon.expire(),
            () = tokio::time::sleep_until(publish_at) => daemon.publish(),
        }
    }
    watcher.abort();
    info!("stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(min_ms: u64, max_ms: u64) -> Wait {
        Wait {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn publishing_waits_for_quiet_but_never_past_max() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut pending = Pending {
            first: t0,
            last: t0,
            reasons: BTreeSet::new(),
        };
        assert_eq!(pending.publish_at(wait(100, 1_000)), at(100));
        // Each change pushes the quiet deadline...
        pending.last = at(90);
        assert_eq!(pending.publish_at(wait(100, 1_000)), at(190));
        // ...but never beyond MAX after the first change.
        pending.last = at(950);
        assert_eq!(pending.publish_at(wait(100, 1_000)), at(1_000));
    }
}
