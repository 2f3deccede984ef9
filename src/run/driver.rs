//! The loop of `run`: it owns the [`Machine`], turns what happens (updates from the watchers,
//! timers, the stop, the end of a reload) into inputs, and performs the effects the machine
//! returns: fetches and reloads as tasks, publishes in place. On a stop it broadcasts the stop
//! to the watchers and fetches (which return at once: they hold nothing that could be lost),
//! keeps going until the machine says everything owed is done or the shutdown timeout has
//! passed, and then waits for its tasks to finish.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::machine::{
    BaseReason, ChangeReason, Effect, Input, Machine, Published, ResyncReason, Update,
};
use crate::config::PublishSettings;
use crate::heap;
use crate::listing::Source;
use crate::listing::cluster::ClusterLister;
use crate::nomad::{Blocking, Error, NomadClient};
use crate::observe::health::Health;
use crate::observe::metrics::{Metrics, unix_now};
use crate::publish::{Outcome, Publisher};
use crate::push::sender::PushError;
use crate::push::{Needs, PushSettings, Pusher};
use crate::reload::{self, ReloadOutcome, Reloader};
use crate::table::incremental::RenderCache;
use crate::table::node_columns::Nodes;
use crate::table::streamed::{StreamError, StreamRenderer};
use crate::watch::{WatchHandle, WatchSettings};

/// How long a fetch waits for the answering server to reach the event's index.
const FETCH_WAIT: Duration = Duration::from_secs(5);
/// At least this long is given to the tasks to answer the stop once the loop has exited.
const TASKS_SETTLE: Duration = Duration::from_millis(100);

/// What the loop starts with.
pub struct Setup {
    /// The watchers to start, and what the table covers.
    pub watch: WatchSettings,
    /// Resync requests: SIGHUP's sender is outside, the watcher takes the receiver.
    pub resyncs: (mpsc::Sender<ResyncReason>, mpsc::Receiver<ResyncReason>),
    /// The rows' node columns: the node, or the cluster's nodes as they are listed.
    pub nodes: Nodes,
    pub publish: PublishSettings,
    /// Already used for the header-only table, so it knows the file.
    pub publisher: Publisher,
    pub reloader: Reloader,
    /// Cluster scope with `--memory-table-url`: changes go to Vector's memory table.
    pub push: Option<PushSettings>,
}

/// How the file is rendered.
enum FileRendering {
    /// From what changed since the last rendering published, which is kept.
    Incremental(RenderCache),
    /// From scratch, straight into the publisher's draft: the base of the push, published
    /// every few minutes.
    Streamed {
        renderer: StreamRenderer,
        /// Rows of the last table published (or found already on disk).
        rows: usize,
    },
}

impl FileRendering {
    /// Rows of the last table published (or found already on disk).
    fn rows(&self) -> usize {
        match self {
            FileRendering::Incremental(cache) => cache.rows(),
            FileRendering::Streamed { rows, .. } => *rows,
        }
    }
}

/// The loop's I/O side.
struct Driver {
    client: Arc<NomadClient>,
    /// Cluster scope: shares the jobs of fetched allocations with the listing's.
    lister: Option<Arc<ClusterLister>>,
    /// How the file is rendered: from what changed since the last publish, or, for the base
    /// of the push, from scratch and straight into its temporary file.
    rendered: FileRendering,
    publisher: Publisher,
    reloader: Reloader,
    /// With `--memory-table-url`.
    pusher: Option<Pusher>,
    machine: Machine,
    /// The watchers' updates; fetch tasks add their results to the same queue.
    watch: WatchHandle,
    /// Where the end of a reload is reported.
    reloaded: mpsc::Sender<()>,
    /// Every task the loop started, so that it can wait for them.
    tasks: TaskTracker,
    /// Broadcast to the watchers and fetches when the loop stops.
    stop_tasks: CancellationToken,
    metrics: Arc<Metrics>,
    health: Health,
}

/// Runs until `shutdown` resolves and what is owed is done (or the shutdown timeout passed);
/// fails only if the push to Vector's memory table cannot be set up.
pub async fn run(setup: Setup, shutdown: impl Future<Output = ()>) -> Result<(), PushError> {
    let Setup {
        watch,
        resyncs,
        nodes,
        publish,
        publisher,
        reloader,
        push,
    } = setup;
    let unannounced = match publisher.on_disk() {
        Ok(Some(stamp)) => reloader.owes_announcement(&stamp),
        Ok(None) => false,
        Err(e) => {
            warn!(error = %e, "cannot read the table on disk; it is replaced at the first publish");
            false
        }
    };
    if unannounced {
        info!(
            "Vector was never told about the table on disk: it is announced after the first listing"
        );
    }
    let (reloaded, mut reloads_ended) = mpsc::channel(1);
    let tasks = TaskTracker::new();
    let stop_tasks = CancellationToken::new();
    let lister = match &watch.source {
        Source::Cluster(lister) => Some(lister.clone()),
        Source::Node(_) => None,
    };
    let covers = match &watch.source {
        Source::Node(node_id) => format!("node {node_id}"),
        Source::Cluster(_) => "the cluster".to_owned(),
    };
    let shown_alloc_dir = watch.alloc_dir.as_ref().map(|d| d.display().to_string());
    info!(of = %covers, path = %publisher.path().display(), alloc_dir = ?shown_alloc_dir, watch = ?watch.mode, "following Nomad");
    let (client, timing, metrics, health) = (
        watch.client.clone(),
        watch.timing,
        watch.metrics.clone(),
        watch.health.clone(),
    );
    // Before the watchers: a push that cannot be set up stops the start.
    let pusher = match &push {
        Some(settings) => {
            info!(url = %settings.url, base_interval = ?settings.base_interval, "changes go to Vector's memory table; the file is the base");
            Some(Pusher::start(
                settings,
                publish.columns.clone(),
                publisher.path(),
                metrics.clone(),
                &tasks,
            )?)
        }
        None => None,
    };
    let watch = crate::watch::spawn(watch, resyncs, &tasks, &stop_tasks);
    let base_interval = push.map(|settings| settings.base_interval);
    let mut driver = Driver {
        client,
        lister,
        pusher,
        machine: Machine::new(nodes, timing, unannounced, base_interval),
        // The base of the push is published every few minutes: rendering it from scratch
        // costs a fraction of a second then, and holding it, or the last one, would cost its
        // size.
        rendered: if base_interval.is_some() {
            FileRendering::Streamed {
                renderer: StreamRenderer::new(publish.columns, publish.format),
                rows: 0,
            }
        } else {
            FileRendering::Incremental(RenderCache::new(publish.columns, publish.format))
        },
        publisher,
        reloader,
        watch,
        reloaded,
        tasks,
        stop_tasks,
        metrics,
        health,
    };
    tokio::pin!(shutdown);
    loop {
        let wakeup = driver.machine.next_wakeup(Instant::now());
        let input = tokio::select! {
            biased;
            () = &mut shutdown, if !driver.machine.stopping() => {
                info!("stopping: publishing what is pending and telling Vector what it is owed");
                driver.stop_tasks.cancel();
                Input::Stop
            }
            Some(()) = reloads_ended.recv() => Input::Reloaded,
            Some(update) = driver.watch.next() => Input::Update(update),
            needs = push_needs(&mut driver.pusher) => match needs {
                Needs::Everything => Input::PushTargetBack,
                Needs::More => {
                    driver.push_more();
                    continue;
                }
            },
            () = sleep_until(wakeup) => Input::Tick,
        };
        if driver.perform(input) {
            break;
        }
    }
    driver.finish().await;
    Ok(())
}

/// Resolves with what the push to Vector's memory table needs from the loop; never without a
/// push.
async fn push_needs(pusher: &mut Option<Pusher>) -> Needs {
    match pusher {
        Some(pusher) => pusher.needs().await,
        None => std::future::pending().await,
    }
}

/// Logs why a streamed rendering was not published: what it says of the table.
fn not_rendered(error: &StreamError) -> Published {
    match error {
        StreamError::Invalid(e) => {
            error!(error = %e, "table not published: it fails validation; the file keeps its last content");
            Published::Invalid
        }
        StreamError::Write(_) => {
            error!(error = %error, "table not published; the file keeps its last content");
            Published::Failed
        }
    }
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Steps the machine with `input` and performs the effects, feeding the results of
    /// publishes back at once. Returns whether the loop must exit.
    fn perform(&mut self, input: Input) -> bool {
        // The end of a full listing: its pages replaced entries one by one, leaving free
        // memory scattered through the heap.
        let large = matches!(input, Input::Update(Update::Listed { .. }));
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for effect in self.machine.step(input, Instant::now()) {
                match effect {
                    Effect::Fetch {
                        alloc_id,
                        modify_index,
                    } => self.fetch(alloc_id, modify_index),
                    Effect::Resync => {
                        debug!(
                            "many unknown allocations at once: one listing instead of separate fetches"
                        );
                        self.watch.resync(ResyncReason::Burst);
                    }
                    Effect::Publish { reasons, since } => {
                        inputs.push_back(Input::Published(self.publish(&reasons, since)));
                    }
                    Effect::Push { since } => {
                        if let Some(pusher) = &mut self.pusher {
                            pusher.changes(
                                self.machine.store().entries(),
                                self.machine.nodes(),
                                since,
                            );
                        }
                        self.count_allocations();
                        inputs.push_back(Input::Published(Published::Pushed));
                    }
                    Effect::PublishBase(reason) => {
                        inputs.push_back(Input::BasePublished(self.publish_base(reason)));
                    }
                    Effect::Reload => self.reload(),
                    Effect::Exit => return true,
                }
            }
        }
        if large {
            heap::release_free_memory();
        }
        false
    }

    /// Fetches an allocation with its job, in a task that a stop ends. With the index an event
    /// gave, the read blocks until the answering server has it: a stale read may go to a
    /// follower a few milliseconds behind the server that sent the event.
    fn fetch(&self, alloc_id: String, modify_index: u64) {
        debug!(alloc_id = %alloc_id, "fetching an allocation");
        let client = self.client.clone();
        let updates = self.watch.sender();
        let lister = self.lister.clone();
        self.tasks
            .spawn(self.stop_tasks.clone().run_until_cancelled_owned(async move {
                let read = Blocking {
                    index: modify_index.saturating_sub(1),
                    wait: (modify_index > 0).then_some(FETCH_WAIT),
                    ..Blocking::default()
                };
                let update = match client.allocation(&alloc_id, read).await {
                    Ok(fetched) => {
                        let mut alloc = fetched.value;
                        if let Some(lister) = &lister {
                            lister.intern(&mut alloc);
                        }
                        Update::Fetched(Box::new(alloc))
                    }
                    Err(e) => {
                        if !matches!(e, Error::Status { status: 404, .. }) {
                            warn!(alloc_id = %alloc_id, error = %e, "cannot fetch a new allocation; the next resync will bring it");
                        }
                        Update::FetchFailed { alloc_id }
                    }
                };
                let _ = updates.send(update).await;
            }));
    }

    /// Tells Vector about the table on disk, in a task that a stop does not end: it is what a
    /// stop waits for.
    fn reload(&self) {
        let stamp = self.publisher.on_disk().unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the table to remember what Vector is told about");
            None
        });
        let reloader = self.reloader.clone();
        let reloaded = self.reloaded.clone();
        let metrics = self.metrics.clone();
        self.tasks.spawn(async move {
            let outcome = reloader.announce(stamp).await;
            let label = match &outcome {
                Ok(ReloadOutcome::NotConfigured) => "skipped",
                Ok(_) => "sent",
                Err(_) => "failed",
            };
            metrics.reloads.with_label_values(&[label]).inc();
            reload::log_outcome(outcome);
            let _ = reloaded.send(()).await;
        });
    }

    /// Publishes the model if it renders differently from the file; `since` is the first
    /// change the publish carries.
    fn publish(&mut self, reasons: &BTreeSet<ChangeReason>, since: Instant) -> Published {
        let reason = reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.publish_file(&reason, since)
    }

    /// Publishes the base file and, unless writing it failed (it is retried in a second, and
    /// everything with it), sends Vector's memory table everything.
    fn publish_base(&mut self, reason: BaseReason) -> Published {
        let published = self.publish_file("base for Vector's memory table", Instant::now());
        if published != Published::Failed
            && let Some(pusher) = &mut self.pusher
        {
            pusher.everything(
                self.machine.store().entries(),
                self.machine.nodes(),
                reason.label(),
            );
        }
        published
    }

    /// Sends the next part of the full push under way.
    fn push_more(&mut self) {
        if let Some(pusher) = &mut self.pusher {
            pusher.more(self.machine.store().entries(), self.machine.nodes());
        }
    }

    fn count_allocations(&self) {
        let (live, departing) = self.machine.store().counts();
        self.metrics
            .allocations
            .with_label_values(&["live"])
            .set(live as i64);
        self.metrics
            .allocations
            .with_label_values(&["departing"])
            .set(departing as i64);
    }

    /// Writes the model to the file if it renders differently; `reason` is for the log.
    fn publish_file(&mut self, reason: &str, since: Instant) -> Published {
        let published = self.publish_and_log(reason);
        let label = match published {
            Published::Written => "written",
            Published::Unchanged | Published::Pushed => "unchanged",
            Published::Invalid => "invalid",
            Published::Failed => "failed",
        };
        self.metrics.publishes.with_label_values(&[label]).inc();
        self.count_allocations();
        if matches!(published, Published::Written | Published::Unchanged) {
            self.metrics.rows.set(self.rendered.rows() as i64);
            self.health.update(|h| h.published = true);
        }
        if published == Published::Written {
            self.metrics.last_publish.set(unix_now());
            self.metrics
                .change_to_publish
                .observe(since.elapsed().as_secs_f64());
        }
        published
    }

    fn publish_and_log(&mut self, reason: &str) -> Published {
        match &self.rendered {
            FileRendering::Incremental(_) => self.publish_incremental(reason),
            FileRendering::Streamed { .. } => self.publish_streamed(reason),
        }
    }

    fn publish_incremental(&mut self, reason: &str) -> Published {
        let FileRendering::Incremental(cache) = &mut self.rendered else {
            unreachable!("called for an incremental rendering");
        };
        let rendering = match cache.render(self.machine.store().entries(), self.machine.nodes()) {
            Ok(rendering) => rendering,
            Err(e) => {
                error!(error = %e, "table not published: it fails validation; the file keeps its last content");
                return Published::Invalid;
            }
        };
        let (rows, added, removed) = (rendering.rows, rendering.added, rendering.removed);
        debug!(
            projected = rendering.projected,
            allocations_without_tasks = rendering.without_tasks,
            "rendered"
        );
        match self.publisher.publish(&rendering.table) {
            Ok(Outcome::Unchanged) => {
                debug!(reason = %reason, "table unchanged; nothing written");
                cache.commit(rendering);
                Published::Unchanged
            }
            Ok(Outcome::Written) => {
                info!(rows, added, removed, reason = %reason, "table published");
                cache.commit(rendering);
                Published::Written
            }
            Err(e) => {
                error!(error = %e, "table not published; the file keeps its last content");
                Published::Failed
            }
        }
    }

    /// Renders the table into a hasher, checked as it goes, and, if the file differs, again
    /// into a draft beside the file, which is then published: an unchanged base writes
    /// nothing (and so cannot fail on a full disk), and a changed one is never held whole.
    fn publish_streamed(&mut self, reason: &str) -> Published {
        let FileRendering::Streamed { renderer, rows } = &mut self.rendered else {
            unreachable!("called for a streamed rendering");
        };
        let (store, nodes) = (self.machine.store(), self.machine.nodes());
        let mut hasher = blake3::Hasher::new();
        let streamed = match renderer.render_to(store.entries(), nodes, &mut hasher) {
            Ok(streamed) => streamed,
            Err(e) => return not_rendered(&e),
        };
        debug!(
            allocations_without_tasks = streamed.without_tasks,
            "rendered"
        );
        let written = match self.publisher.holds(&hasher.finalize()) {
            Ok(true) => Ok(Outcome::Unchanged),
            Ok(false) => match self.publisher.draft() {
                Ok(mut draft) => match renderer.render_to(store.entries(), nodes, &mut draft) {
                    Ok(again) => self.publisher.publish_draft(draft, again.checked),
                    Err(e) => return not_rendered(&e),
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match written {
            Ok(Outcome::Unchanged) => {
                debug!(reason = %reason, "table unchanged; nothing written");
                *rows = streamed.checked.rows();
                Published::Unchanged
            }
            Ok(Outcome::Written) => {
                *rows = streamed.checked.rows();
                info!(rows = *rows, reason = %reason, "table published");
                Published::Written
            }
            Err(e) => {
                error!(error = %e, "table not published; the file keeps its last content");
                Published::Failed
            }
        }
    }

    /// Broadcasts the stop (if the loop ended otherwise) and waits for the tasks: the watchers
    /// and fetches end at once; a reload still running is waited for until the shutdown
    /// deadline, and then left (the table stays unannounced, so the next start announces it).
    async fn finish(mut self) {
        // Without its handle the push sender ends once its queue is delivered.
        self.pusher = None;
        self.stop_tasks.cancel();
        self.tasks.close();
        let now = Instant::now();
        let deadline = self
            .machine
            .stop_by()
            .unwrap_or(now)
            .max(now + TASKS_SETTLE);
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                "a reload or a push to Vector's memory table was still running at the shutdown timeout; the next start announces the table and pushes everything"
            );
        }
        info!("stopped");
    }
}
