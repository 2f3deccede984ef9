//! `run`'s sources of change, behind one facade: [`spawn`] starts the watcher of the chosen
//! mode (the event stream, or blocking queries on the node's listing) and, in node scope, the
//! alloc-dir watch, as tasks that end when the stop is broadcast; the [`WatchHandle`] it
//! returns yields their [`Update`]s to the loop in `run/driver.rs` (which alone owns the model)
//! and takes requests for a full listing.

pub mod alloc_dir;
pub mod blocking;
pub mod cost;
mod report;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::cli::WatchMode;
use crate::listing::Source;
use crate::nomad::NomadClient;
use crate::observe::health::Health;
use crate::observe::metrics::Metrics;
use crate::run::machine::{ResyncReason, Update};
use crate::timing::Timing;
use blocking::BlockingWatcher;
use stream::StreamWatcher;

/// Room for updates the loop has not taken yet; a full channel makes the watchers wait.
const UPDATES_QUEUED: usize = 1024;

/// Requests for a full listing: the sender for SIGHUP's handler (installed before anything
/// else), the receiver for the watcher.
pub fn resync_requests() -> (mpsc::Sender<ResyncReason>, mpsc::Receiver<ResyncReason>) {
    mpsc::channel(4)
}

/// What the watchers follow and how.
pub struct WatchSettings {
    pub client: Arc<NomadClient>,
    /// What the table covers.
    pub source: Source,
    pub mode: WatchMode,
    pub timing: Timing,
    /// How often events mode compares its cost with blocking queries'.
    pub cost_report_interval: Duration,
    /// Node scope: the alloc dir to watch for new allocations.
    pub alloc_dir: Option<PathBuf>,
    pub metrics: Arc<Metrics>,
    pub health: Health,
}

/// The loop's side of the watchers.
pub struct WatchHandle {
    updates: mpsc::Receiver<Update>,
    /// For updates from outside the watchers (fetches), queued with theirs in arrival order.
    sender: mpsc::Sender<Update>,
    resync: mpsc::Sender<ResyncReason>,
    /// Kept for as long as the alloc dir is watched.
    _alloc_dir: Option<alloc_dir::AllocDirWatch>,
}

impl WatchHandle {
    /// The next update, or `None` once every watcher has ended.
    pub async fn next(&mut self) -> Option<Update> {
        self.updates.recv().await
    }

    /// Where results that the loop asked for (fetches) join the watchers' updates.
    pub fn sender(&self) -> mpsc::Sender<Update> {
        self.sender.clone()
    }

    /// Asks for a full listing now (a full queue means one is requested already).
    pub fn resync(&self, reason: ResyncReason) {
        let _ = self.resync.try_send(reason);
    }
}

/// Starts the watchers on `tasks`; they end when `stop` is cancelled. `resyncs` are the two
/// ends of [`resync_requests`].
pub fn spawn(
    settings: WatchSettings,
    (resync, resync_requests): (mpsc::Sender<ResyncReason>, mpsc::Receiver<ResyncReason>),
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> WatchHandle {
    let WatchSettings {
        client,
        source,
        mode,
        timing,
        cost_report_interval,
        alloc_dir,
        metrics,
        health,
    } = settings;
    let (updates, incoming) = mpsc::channel(UPDATES_QUEUED);
    let blocking_wait = timing.resync_interval.min(blocking::MAX_WAIT);
    match (mode, &source) {
        (WatchMode::Blocking, Source::Node(node_id)) => tasks.spawn(
            stop.clone().run_until_cancelled_owned(
                BlockingWatcher {
                    client,
                    node_id: node_id.clone(),
                    updates: updates.clone(),
                    wait: blocking_wait,
                    min_relist_interval: timing.min_relist_interval,
                    metrics,
                    health,
                }
                .run(resync_requests),
            ),
        ),
        // The cluster scope follows the event stream (the settings refuse blocking there).
        (WatchMode::Events | WatchMode::Blocking, _) => tasks.spawn(
            stop.clone().run_until_cancelled_owned(
                StreamWatcher {
                    client,
                    source,
                    updates: updates.clone(),
                    resync_interval: timing.resync_interval,
                    stream_timeout: timing.stream_timeout,
                    cost_report_interval,
                    blocking_wait,
                    resubscribe_interval: stream::RESUBSCRIBE_INTERVAL,
                    metrics,
                    health,
                }
                .run(resync_requests),
            ),
        ),
    };
    let alloc_dir = alloc_dir.and_then(|dir| {
        match alloc_dir::watch(dir.clone(), updates.clone(), tasks, stop.clone()) {
            Ok(watch) => Some(watch),
            Err(e) => {
                warn!(alloc_dir = %dir.display(), error = %e, "cannot watch the alloc dir; new allocations wait for the event stream (set --alloc-dir)");
                None
            }
        }
    });
    WatchHandle {
        updates: incoming,
        sender: updates,
        resync,
        _alloc_dir: alloc_dir,
    }
}
