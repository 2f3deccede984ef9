//! One simulated run: Nomad ([`SimNomad`]), the node's client (allocation directories and log
//! files), the watchers (their real loop state, [`RelistState`] and [`WatchState`], driven the
//! way their loops drive it), the loop ([`Machine`] with the real incremental renderer), the
//! file on disk and Vector. Everything happens at virtual times taken from one seeded random
//! generator, in the order of a queue of timed happenings; nothing sleeps, nothing races.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::nomad::{SimAlloc, SimFrame, SimNomad, State, Write};
use super::oracle::Oracle;
use crate::listing::Source;
use crate::nomad::Error;
use crate::nomad::events::{Event, Frame, Payload, StreamEnd};
use crate::nomad::query::Consistency;
use crate::nomad::types::Node;
use crate::run::machine::{Effect, Input, Machine, Published, ResyncReason, Update};
use crate::table::NodeInfo;
use crate::table::columns::Columns;
use crate::table::format::FileFormat;
use crate::table::incremental::RenderCache;
use crate::table::node_columns::Nodes;
use crate::timing::{Timing, Wait};
use crate::watch::blocking::{RelistState, Verdict};
use crate::watch::cost::CostMeter;
use crate::watch::stream::{Ended, Next, WatchState};

/// The node the exporter runs on, and another one.
pub const OUR_NODE: &str = "node-ours";
const OTHER_NODE: &str = "node-other";
/// How long one simulated run lasts.
const RUN_FOR: Duration = Duration::from_secs(90);
/// More steps than any run takes (about 500 on average, a few thousand at most).
const MAX_STEPS: u64 = 50_000;

/// What is simulated: the scope and the watch mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    NodeEvents,
    NodeBlocking,
    ClusterEvents,
}

impl Mode {
    pub fn cluster(self) -> bool {
        self == Mode::ClusterEvents
    }

    pub fn blocking(self) -> bool {
        self == Mode::NodeBlocking
    }
}

/// Something that happens at a virtual time.
#[derive(Clone, Debug)]
pub enum Happening {
    /// The scheduler places an allocation.
    Place,
    /// The client starts it, an in-place update, a stop, the client's report of the end.
    Start(String),
    InPlace(String),
    Stop(String),
    Complete(String),
    /// The server's GC deletes it (no event).
    Collect(String),
    /// The client creates or removes the allocation directory; the task writes its first line.
    DirCreate(String),
    DirRemove(String),
    FirstLine(String),
    /// Vector reads the first line of a log file.
    VectorReads(String),
    /// A snapshot restore on the servers.
    Restore,
    /// Nomad answers this status (500, or 403 for a revoked token) to everything until the
    /// given time.
    Outage {
        until: Duration,
        status: u16,
    },
    /// The event stream is cut.
    Cut,
    /// The disk refuses writes until the given time.
    DiskFull(Duration),
    /// SIGHUP.
    Sighup,
    /// The watcher sends its next query (blocking) or connects (events).
    Issue {
        conn: u64,
    },
    /// The answer of a listing arrives.
    Listing {
        conn: u64,
        requested_at: Duration,
        consistency: Consistency,
        answer: Option<(Vec<crate::nomad::types::Allocation>, u64)>,
    },
    /// A frame of the event stream arrives.
    Frame {
        conn: u64,
        frame: SimFrame,
    },
    /// The events watcher's resync timer.
    ResyncDue {
        conn: u64,
    },
    /// A fetch's answer arrives.
    Fetched {
        process: u64,
        id: String,
        answer: Option<SimAlloc>,
    },
    /// The loop takes the next update from its queue.
    Deliver {
        process: u64,
    },
    /// The machine's wakeup.
    Tick {
        process: u64,
    },
    /// A reload ended.
    Reloaded {
        process: u64,
        stamp: Stamp,
    },
    /// Re-evaluates pending blocking queries (the follower caught up).
    Recheck,
    /// SIGTERM, and the start of the next process.
    Sigterm,
    Restart,
}

/// The table a reload announced (its length in the trace).
#[derive(Clone)]
pub struct Stamp(Vec<u8>);

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// An input as the trace shows it: allocations by ID, index and job version.
fn describe(input: &Input) -> String {
    let short = |a: &crate::nomad::types::Allocation| {
        format!(
            "{}@{}/v{}",
            &a.id[..8],
            a.modify_index,
            a.job
                .as_ref()
                .map_or("-".to_owned(), |j| j.version.to_string())
        )
    };
    match input {
        Input::Update(Update::Listed {
            allocations,
            reason,
            ..
        }) => format!(
            "Listed({reason:?}: {})",
            allocations.iter().map(short).collect::<Vec<_>>().join(" ")
        ),
        Input::Update(Update::Event(a)) => format!("Event({})", short(a)),
        Input::Update(Update::Fetched(a)) => format!("Fetched({})", short(a)),
        Input::Update(Update::NodesListed(nodes)) => format!("NodesListed({})", nodes.len()),
        other => format!("{other:?}"),
    }
}

/// A happening as the trace shows it.
fn show(what: &Happening) -> String {
    match what {
        Happening::Listing {
            conn,
            requested_at,
            consistency,
            answer,
        } => match answer {
            Some((allocs, index)) => format!(
                "Listing(conn {conn}, requested {:.3}s, {consistency:?}, index {index}: {})",
                requested_at.as_secs_f64(),
                allocs
                    .iter()
                    .map(|a| format!("{}@{}", &a.id[..8], a.modify_index))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!("Listing(conn {conn}, failed)"),
        },
        Happening::Frame { conn, frame } => format!(
            "Frame(conn {conn}, index {}: {})",
            frame.index,
            frame
                .allocs
                .iter()
                .map(|a| format!("{}@{} {}", &a.id[..8], a.node, a.client_status))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Happening::Fetched { id, answer, .. } => format!(
            "Fetched({}: {:?})",
            &id[..8],
            answer.as_ref().map(|a| (a.modify_index, a.job_version))
        ),
        other => format!("{other:?}"),
    }
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    what: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A blocking query waiting at the server.
#[derive(Debug)]
struct Pending {
    conn: u64,
    min_index: u64,
    deadline: Duration,
    consistency: Consistency,
    requested_at: Duration,
}

/// The watcher's side, as its loop keeps it.
enum Watcher {
    Blocking {
        state: RelistState,
        /// When the last query was sent, for `--min-relist-interval`.
        issued: Option<Duration>,
        pending: Option<Pending>,
    },
    Stream {
        state: WatchState,
        /// Subscribed (the listing was applied) and receiving frames.
        following: bool,
        resync_at: Duration,
        /// When the listing in flight was requested.
        listing_since: Option<Duration>,
    },
}

/// The exporter process: the machine, its renderer, its watcher.
struct Process {
    id: u64,
    machine: Machine,
    cache: RenderCache,
    watcher: Watcher,
    /// The connection (or query) whose answers count; bumped to drop what is in flight.
    conn: u64,
    updates: VecDeque<Update>,
    exited: bool,
    resyncs_queued: Vec<ResyncReason>,
}

/// The simulated world.
pub struct World {
    pub mode: Mode,
    pub timing: Timing,
    rng: fastrand::Rng,
    t0: Instant,
    pub now: Duration,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    pub nomad: SimNomad,
    max_lag: Duration,
    outage_until: Duration,
    outage_status: u16,
    disk_full_until: Duration,
    /// When the event stream delivered its last frame: it delivers in order.
    stream_clock: Duration,
    process: Option<Process>,
    next_process: u64,
    next_conn: u64,
    /// The file on disk, and what Vector was last told about.
    pub disk: Option<Vec<u8>>,
    pub announced: Option<Vec<u8>>,
    /// What Vector loaded at its last reload.
    pub vector_table: Vec<u8>,
    pub oracle: Oracle,
    /// Every input and effect, for the trace of a failing seed.
    pub trace: Vec<String>,
    pub steps: u64,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mode = match seed % 3 {
            0 => Mode::NodeEvents,
            1 => Mode::NodeBlocking,
            _ => Mode::ClusterEvents,
        };
        let min_wait = Duration::from_millis(rng.u64(50..=500));
        let resync_interval = Duration::from_secs(rng.u64(8..=20));
        let timing = Timing {
            resync_interval,
            min_relist_interval: Duration::from_millis(100),
            grace: Duration::from_millis(rng.u64(1_000..=5_000)),
            wait: Wait {
                min: min_wait,
                max: min_wait * 4,
            },
            min_reload_interval: Duration::from_millis(rng.u64(200..=5_000)),
            stream_timeout: Duration::from_secs(75),
            shutdown_timeout: Duration::from_millis(rng.u64(1_000..=5_000)),
        };
        let max_lag = Duration::from_millis(rng.u64(0..=80));
        let mut world = World {
            mode,
            timing,
            rng,
            t0: Instant::now(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            nomad: SimNomad::new(),
            max_lag,
            outage_until: Duration::ZERO,
            outage_status: 500,
            disk_full_until: Duration::ZERO,
            stream_clock: Duration::ZERO,
            process: None,
            next_process: 0,
            next_conn: 0,
            disk: None,
            announced: None,
            vector_table: Vec::new(),
            oracle: Oracle::new(mode, timing),
            trace: Vec::new(),
            steps: 0,
        };
        world.plan();
        world.start_process();
        world
    }

    /// Schedules the scenario: placements, faults, signals.
    fn plan(&mut self) {
        let placements = self.rng.usize(5..=25);
        for _ in 0..placements {
            let at = self.random_time(Duration::ZERO, RUN_FOR * 3 / 4);
            self.at(at, Happening::Place);
        }
        let faults = self.rng.usize(0..=4);
        for _ in 0..faults {
            let at = self.random_time(Duration::from_secs(2), RUN_FOR * 3 / 4);
            let fault = match self.rng.u8(0..5) {
                0 => Happening::Outage {
                    until: at + Duration::from_millis(self.rng.u64(100..=5_000)),
                    status: if self.rng.u8(0..4) == 0 { 403 } else { 500 },
                },
                1 => Happening::Cut,
                2 => Happening::Restore,
                3 => Happening::DiskFull(at + Duration::from_millis(self.rng.u64(100..=3_000))),
                _ => Happening::Sighup,
            };
            self.at(at, fault);
        }
        if self.rng.bool() {
            let at = self.random_time(Duration::from_secs(5), RUN_FOR * 3 / 4);
            self.at(at, Happening::Sigterm);
        }
    }

    fn random_time(&mut self, from: Duration, to: Duration) -> Duration {
        Duration::from_millis(
            self.rng
                .u64(from.as_millis() as u64..=to.as_millis() as u64),
        )
    }

    fn jitter(&mut self, from_ms: u64, to_ms: u64) -> Duration {
        Duration::from_millis(self.rng.u64(from_ms..=to_ms))
    }

    fn at(&mut self, at: Duration, what: Happening) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    fn after(&mut self, delay: Duration, what: Happening) {
        self.at(self.now + delay, what);
    }

    fn instant(&self, at: Duration) -> Instant {
        self.t0 + at
    }

    /// Runs until the scenario ends, or until the loop spins (more steps than any run needs:
    /// a wakeup that never advances, a publish or reload asked for for ever).
    pub fn run(&mut self) {
        while let Some(Reverse(next)) = self.queue.pop() {
            if next.at > RUN_FOR {
                break;
            }
            if self.steps >= MAX_STEPS {
                self.oracle.spinning(self.now, self.steps);
                break;
            }
            self.now = next.at;
            self.steps += 1;
            self.trace.push(format!(
                "{:>9.3}s {}",
                self.now.as_secs_f64(),
                show(&next.what)
            ));
            self.happen(next.what);
            self.recheck_pending();
            let alive = self.live_process().is_some();
            self.oracle.check(self.now, &self.nomad, alive);
        }
    }

    fn happen(&mut self, what: Happening) {
        match what {
            Happening::Place => self.place(),
            Happening::Start(id) => {
                self.write(Write::Client {
                    id: id.clone(),
                    status: "running",
                });
                let r = self.rng.u8(0..10);
                let later = self.jitter(2_000, 30_000);
                if r < 3 {
                    self.after(later, Happening::InPlace(id));
                } else if r < 8 {
                    self.after(later, Happening::Stop(id));
                }
            }
            Happening::InPlace(id) => {
                self.write(Write::InPlace { id: id.clone() });
                self.oracle.changed(&id, self.now);
                let later = self.jitter(2_000, 20_000);
                self.after(later, Happening::Stop(id));
            }
            Happening::Stop(id) => {
                self.write(Write::Stop { id: id.clone() });
                let later = self.jitter(50, 2_000);
                self.after(later, Happening::Complete(id));
            }
            Happening::Complete(id) => {
                self.write(Write::Client {
                    id: id.clone(),
                    status: "complete",
                });
                let gc = self.jitter(500, 15_000);
                self.after(gc, Happening::Collect(id.clone()));
                if self
                    .nomad
                    .leader
                    .allocs
                    .get(&id)
                    .is_some_and(|a| a.node == OUR_NODE)
                {
                    let removed = self.jitter(500, 20_000);
                    self.after(removed, Happening::DirRemove(id));
                }
            }
            Happening::Collect(id) => {
                if self.nomad.collect(&id, self.now) {
                    self.oracle.gone(&id, self.now, true);
                    let lag = self.max_lag;
                    self.after(lag, Happening::Recheck);
                }
            }
            Happening::DirCreate(id) => {
                self.oracle.dir_created(&id, self.now);
                if !self.mode.cluster() {
                    self.send(Update::DirCreated {
                        alloc_id: id.clone(),
                    });
                }
                let first = self.jitter(0, 3_000);
                self.after(first, Happening::FirstLine(id));
            }
            Happening::DirRemove(id) => {
                self.oracle.gone(&id, self.now, false);
                if !self.mode.cluster() {
                    self.send(Update::DirRemoved { alloc_id: id });
                }
            }
            Happening::FirstLine(id) => {
                // Vector's file source finds new files on its glob scan (1 s by default).
                let scan = self.jitter(0, 1_000);
                self.after(scan, Happening::VectorReads(id));
            }
            Happening::VectorReads(id) => {
                let found = super::oracle::has_rows(&self.vector_table, &id);
                self.oracle.first_line(&id, found, self.now);
            }
            Happening::Restore => {
                let to = self.nomad.leader.index / 2;
                self.nomad.restore(to, self.now);
                // A blocking query waits on an index the restored state reaches late: the
                // change shows at the end of its wait.
                let until =
                    self.now + self.timing.resync_interval.mul_f64(1.1) + Duration::from_secs(2);
                self.oracle.disturbed(self.now, until);
                self.cut_stream();
            }
            Happening::Outage { until, status } => {
                self.outage_until = until;
                self.outage_status = status;
                // After an outage the watchers back off: up to twice its length, and at least
                // a reconnect's backoff; after a 403, the longest backoff.
                let backoff = if status == 403 {
                    crate::retry::MAX_BACKOFF * 2
                } else {
                    (until - self.now) * 2
                } + Duration::from_secs(2);
                self.oracle.disturbed(self.now, until + backoff);
            }
            Happening::Cut => {
                self.oracle
                    .disturbed(self.now, self.now + Duration::from_secs(2));
                self.cut_stream();
            }
            Happening::DiskFull(until) => {
                self.disk_full_until = until;
                self.oracle
                    .disturbed(self.now, until + Duration::from_secs(2));
            }
            Happening::Sighup => self.resync_request(ResyncReason::Signal),
            Happening::Issue { conn } => self.issue(conn),
            Happening::Listing {
                conn,
                requested_at,
                consistency,
                answer,
            } => self.listing_answered(conn, requested_at, consistency, answer),
            Happening::Frame { conn, frame } => self.frame(conn, frame),
            Happening::ResyncDue { conn } => {
                if self.current_conn() == Some(conn) {
                    self.stream_ended(Ended::Resync(ResyncReason::Interval));
                }
            }
            Happening::Fetched {
                process,
                id,
                answer,
            } => {
                if self.live_process() == Some(process) {
                    let update = match answer {
                        Some(alloc) => Update::Fetched(Box::new(alloc.to_api(true))),
                        None => Update::FetchFailed { alloc_id: id },
                    };
                    self.send(update);
                }
            }
            Happening::Deliver { process } => {
                let Some(p) = self
                    .process
                    .as_mut()
                    .filter(|p| p.id == process && !p.exited)
                else {
                    return;
                };
                if let Some(update) = p.updates.pop_front() {
                    self.step(Input::Update(update));
                }
            }
            Happening::Tick { process } => {
                let now = self.instant(self.now);
                let due = self.process.as_ref().is_some_and(|p| {
                    p.id == process
                        && !p.exited
                        && p.machine.next_wakeup(now).is_some_and(|w| w <= now)
                });
                if due {
                    self.step(Input::Tick);
                }
            }
            Happening::Reloaded { process, stamp } => {
                // Vector reloads the file as it is now.
                self.vector_table = self.disk.clone().unwrap_or_default();
                // A stopped process waits for its reload until its deadline, no longer.
                let now = self.instant(self.now);
                let in_time = self.process.as_ref().is_some_and(|p| {
                    p.id == process && p.machine.stop_by().is_none_or(|by| now <= by)
                });
                if in_time {
                    self.announced = Some(stamp.0);
                }
                if self
                    .process
                    .as_ref()
                    .is_some_and(|p| p.id == process && !p.exited)
                {
                    self.step(Input::Reloaded);
                }
            }
            Happening::Recheck => {}
            Happening::Sigterm => {
                if let Some(p) = self.process.as_mut().filter(|p| !p.exited) {
                    p.conn = u64::MAX;
                    if let Watcher::Blocking { pending, .. } = &mut p.watcher {
                        *pending = None;
                    }
                    self.oracle.stopping(self.now);
                    self.step(Input::Stop);
                }
            }
            Happening::Restart => {
                self.oracle.restarting(self.now);
                self.start_process();
            }
        }
    }

    fn write(&mut self, write: Write) -> Option<String> {
        let frame = self.nomad.write(write, self.now)?;
        let id = frame.allocs[0].id.clone();
        let lag = self.max_lag;
        self.after(lag, Happening::Recheck);
        if let Some(conn) = self.current_conn()
            && let Some(Process {
                watcher: Watcher::Stream {
                    following: true, ..
                },
                ..
            }) = &self.process
        {
            // A stream delivers in order.
            let at = (self.now + self.jitter(1, 30)).max(self.stream_clock);
            self.stream_clock = at;
            self.at(at, Happening::Frame { conn, frame });
        }
        Some(id)
    }

    fn place(&mut self) {
        let node = if self.rng.u8(0..3) == 0 {
            OTHER_NODE
        } else {
            OUR_NODE
        };
        let job = format!("job-{}", self.rng.u8(0..4));
        let Some(id) = self.write(Write::Place {
            node: node.to_owned(),
            job,
        }) else {
            return;
        };
        self.oracle.placed(&id, node, self.now);
        let start = self.jitter(100, 3_000);
        self.after(start, Happening::Start(id.clone()));
        if node == OUR_NODE {
            // The client makes the directory before the tasks start, sometimes before it
            // hears of the allocation from the servers' answer that Nomad's watchers see.
            let dir = self.jitter(5, 1_500);
            self.after(dir, Happening::DirCreate(id));
        }
    }

    // ---- the process and its loop ----

    fn start_process(&mut self) {
        self.next_process += 1;
        let nodes = if self.mode.cluster() {
            Nodes::cluster()
        } else {
            Nodes::single(NodeInfo {
                id: OUR_NODE.to_owned(),
                name: OUR_NODE.to_owned(),
                ..NodeInfo::default()
            })
        };
        let unannounced = self.disk.is_some() && self.disk != self.announced;
        let watcher = if self.mode.blocking() {
            Watcher::Blocking {
                state: RelistState::default(),
                issued: None,
                pending: None,
            }
        } else {
            Watcher::Stream {
                state: WatchState::new(CostMeter::new(
                    self.instant(self.now),
                    Duration::from_secs(3600),
                    self.timing.resync_interval,
                )),
                following: false,
                resync_at: Duration::MAX,
                listing_since: None,
            }
        };
        self.next_conn += 1;
        let conn = self.next_conn;
        let cache = RenderCache::new(Columns::defaults(), FileFormat::Csv);
        self.process = Some(Process {
            id: self.next_process,
            machine: Machine::new(nodes, self.timing, unannounced),
            cache,
            watcher,
            conn,
            updates: VecDeque::new(),
            exited: false,
            resyncs_queued: Vec::new(),
        });
        self.oracle.started(self.now, unannounced);
        self.after(Duration::ZERO, Happening::Issue { conn });
    }

    fn live_process(&self) -> Option<u64> {
        self.process.as_ref().filter(|p| !p.exited).map(|p| p.id)
    }

    /// The connection whose answers count, while the process watches.
    fn current_conn(&self) -> Option<u64> {
        self.process
            .as_ref()
            .filter(|p| !p.exited && p.conn != u64::MAX)
            .map(|p| p.conn)
    }

    /// A watcher or fetch sends an update: the loop takes it a moment later, in order.
    fn send(&mut self, update: Update) {
        let Some(p) = self.process.as_mut().filter(|p| !p.exited) else {
            return;
        };
        p.updates.push_back(update);
        let process = p.id;
        let delay = self.jitter(0, 20);
        self.after(delay, Happening::Deliver { process });
    }

    /// Steps the machine and performs its effects, as the driver does.
    fn step(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now = self.instant(self.now);
            self.trace
                .push(format!("           in  {}", describe(&input)));
            let effects = {
                let p = self.process.as_mut().expect("a process steps");
                p.machine.step(input, now)
            };
            for effect in effects {
                self.trace.push(match &effect {
                    Effect::Publish { reasons, .. } => {
                        format!("           out Publish {reasons:?}")
                    }
                    other => format!("           out {other:?}"),
                });
                match effect {
                    Effect::Fetch {
                        alloc_id,
                        modify_index,
                    } => self.fetch(alloc_id, modify_index),
                    Effect::Resync => self.resync_request(ResyncReason::Burst),
                    Effect::Publish { .. } => inputs.push_back(Input::Published(self.publish())),
                    Effect::Reload => {
                        self.oracle.reload_started(self.now);
                        let stamp = Stamp(self.disk.clone().unwrap_or_default());
                        let process = self.process.as_ref().map_or(0, |p| p.id);
                        let latency = self.jitter(5, 300);
                        self.after(latency, Happening::Reloaded { process, stamp });
                    }
                    Effect::Exit => {
                        let p = self.process.as_mut().expect("a process exits");
                        p.exited = true;
                        let early = p.machine.stop_by().is_some_and(|by| now < by);
                        self.oracle.exited(
                            self.now,
                            early,
                            self.disk.as_deref(),
                            self.announced.as_deref(),
                        );
                        let down = self.jitter(100, 3_000);
                        self.after(down, Happening::Restart);
                        return;
                    }
                }
            }
        }
        let p = self.process.as_ref().expect("a process steps");
        if let Some(wake) = p.machine.next_wakeup(self.instant(self.now)) {
            let process = p.id;
            let at = (wake - self.t0).max(self.now);
            self.at(at, Happening::Tick { process });
        }
    }

    fn publish(&mut self) -> Published {
        let p = self.process.as_mut().expect("a process publishes");
        let rendering = match p
            .cache
            .render(p.machine.store().entries(), p.machine.nodes())
        {
            Ok(rendering) => rendering,
            Err(_) => return Published::Invalid,
        };
        if self.now < self.disk_full_until {
            return Published::Failed;
        }
        let bytes = rendering.table.bytes().to_vec();
        let outcome = if self.disk.as_deref() == Some(bytes.as_slice()) {
            Published::Unchanged
        } else {
            self.oracle.written(self.now, self.disk.as_deref(), &bytes);
            self.disk = Some(bytes);
            Published::Written
        };
        p.cache.commit(rendering);
        outcome
    }

    fn fetch(&mut self, id: String, modify_index: u64) {
        let Some(process) = self.live_process() else {
            return;
        };
        let latency = self.jitter(1, 60);
        let failed = self.now < self.outage_until;
        // A stale read blocks until the follower has the event's index (5 s at most).
        let lag = self.lag();
        let state = self.nomad.follower(self.now, lag);
        let answer = if failed {
            None
        } else if state.index >= modify_index {
            state.allocs.get(&id).cloned()
        } else {
            self.nomad.leader.allocs.get(&id).cloned()
        };
        let wait = if state.index >= modify_index {
            Duration::ZERO
        } else {
            lag
        };
        self.after(
            latency + wait,
            Happening::Fetched {
                process,
                id,
                answer,
            },
        );
    }

    fn lag(&mut self) -> Duration {
        let max = self.max_lag.as_millis() as u64;
        Duration::from_millis(self.rng.u64(0..=max))
    }

    // ---- the watchers ----

    fn resync_request(&mut self, why: ResyncReason) {
        let Some(p) = self
            .process
            .as_mut()
            .filter(|p| !p.exited && p.conn != u64::MAX)
        else {
            return;
        };
        match &mut p.watcher {
            Watcher::Blocking {
                state,
                issued,
                pending,
            } => {
                // A fresh listing at once: the blocking one is dropped.
                state.next_reason = why;
                state.blocking = false;
                *pending = None;
                self.next_conn += 1;
                p.conn = self.next_conn;
                let conn = p.conn;
                let from = issued.map_or(self.now, |i| {
                    (i + self.timing.min_relist_interval).max(self.now)
                });
                self.at(from, Happening::Issue { conn });
            }
            Watcher::Stream { listing_since, .. } => {
                if listing_since.is_some() && why == ResyncReason::Burst {
                    // The listing under way answers it (the queue is drained at connect).
                    return;
                }
                p.resyncs_queued.push(why);
                self.stream_ended(Ended::Resync(why));
            }
        }
    }

    fn issue(&mut self, conn: u64) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let now = self.now;
        let failed = now < self.outage_until;
        let status = self.outage_status;
        let wait = self.timing.resync_interval;
        let min_relist = self.timing.min_relist_interval;
        let p = self.process.as_mut().expect("a process watches");
        match &mut p.watcher {
            Watcher::Blocking {
                state,
                issued,
                pending,
            } => {
                if let Some(at) = *issued
                    && at + min_relist > now
                {
                    let from = at + min_relist;
                    self.at(from, Happening::Issue { conn });
                    return;
                }
                *issued = Some(now);
                let query = state.query(wait);
                if failed {
                    let delay = state.failed(&server_error(status));
                    *issued = None;
                    self.after(delay, Happening::Issue { conn });
                    return;
                }
                let jitter = query.wait.map_or(Duration::ZERO, |w| {
                    Duration::from_millis(self.rng.u64(0..=(w.as_millis() as u64) / 16))
                });
                let deadline = now + query.wait.unwrap_or_default() + jitter;
                *pending = Some(Pending {
                    conn,
                    min_index: if query.wait.is_some() { query.index } else { 0 },
                    deadline,
                    consistency: query.consistency,
                    requested_at: now,
                });
                self.at(deadline, Happening::Recheck);
                self.recheck_pending();
            }
            Watcher::Stream {
                state,
                resync_at,
                listing_since,
                following,
            } => {
                *following = false;
                if failed {
                    let delay = state.failed(&server_error(status));
                    self.next_conn += 1;
                    p.conn = self.next_conn;
                    let conn = p.conn;
                    self.after(delay, Happening::Issue { conn });
                    return;
                }
                if state.list_on_connect {
                    let jittered = wait.mul_f64(0.9 + self.rng.f64() * 0.2);
                    *resync_at = now + jittered;
                    p.resyncs_queued.clear();
                    *listing_since = Some(now);
                    let at = *resync_at;
                    self.at(at, Happening::ResyncDue { conn });
                    let lag = self.lag();
                    let state = self.nomad.follower(now, lag);
                    let answer = Some(self.listing_of(state));
                    let latency = self.jitter(1, 80);
                    self.after(
                        latency,
                        Happening::Listing {
                            conn,
                            requested_at: now,
                            consistency: Consistency::Stale,
                            answer,
                        },
                    );
                } else {
                    self.subscribe(conn);
                }
            }
        }
    }

    fn listing_of(&self, state: &State) -> (Vec<crate::nomad::types::Allocation>, u64) {
        if self.mode.cluster() {
            state.cluster_listing()
        } else {
            (state.node_listing(OUR_NODE), state.node_index(OUR_NODE))
        }
    }

    /// Answers the blocking query in flight when its index passed or its wait ran out.
    fn recheck_pending(&mut self) {
        let now = self.now;
        let lag = self.lag();
        let Some(p) = self.process.as_mut() else {
            return;
        };
        let Watcher::Blocking { pending, .. } = &mut p.watcher else {
            return;
        };
        let Some(query) = pending.as_ref() else {
            return;
        };
        let state = match query.consistency {
            Consistency::Stale => self.nomad.follower(now, lag),
            Consistency::Leader => &self.nomad.leader,
        };
        let index = state.node_index(OUR_NODE);
        if query.min_index != 0 && index <= query.min_index && now < query.deadline {
            return;
        }
        let query = pending.take().expect("checked above");
        let answer = Some((state.node_listing(OUR_NODE), index));
        let latency = self.jitter(1, 40);
        self.after(
            latency,
            Happening::Listing {
                conn: query.conn,
                requested_at: query.requested_at,
                consistency: query.consistency,
                answer,
            },
        );
    }

    fn listing_answered(
        &mut self,
        conn: u64,
        requested_at: Duration,
        consistency: Consistency,
        answer: Option<(Vec<crate::nomad::types::Allocation>, u64)>,
    ) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let Some((allocations, index)) = answer else {
            return;
        };
        let cluster = self.mode.cluster();
        let p = self.process.as_mut().expect("a process watches");
        let reason = match &mut p.watcher {
            Watcher::Blocking { state, pending, .. } => match state.answered(index, consistency) {
                Verdict::AskLeader => {
                    *pending = Some(Pending {
                        conn,
                        min_index: 0,
                        deadline: self.now,
                        consistency: Consistency::Leader,
                        requested_at,
                    });
                    self.recheck_pending();
                    return;
                }
                Verdict::Apply(reason) => {
                    self.oracle.applied_listing(index, consistency, self.now);
                    self.after(Duration::ZERO, Happening::Issue { conn });
                    reason
                }
            },
            Watcher::Stream {
                state,
                listing_since,
                ..
            } => {
                *listing_since = None;
                state.last_listing_took = self.now - requested_at;
                state.listed(index);
                // The listing is the truth: the cursor follows it, even down.
                self.oracle.cursor_reset(index);
                let reason = state.next_listing;
                self.subscribe(conn);
                reason
            }
        };
        if cluster {
            let nodes = [OUR_NODE, OTHER_NODE]
                .map(|id| Node {
                    id: id.to_owned(),
                    name: id.to_owned(),
                    ..Node::default()
                })
                .to_vec();
            self.send(Update::NodesListed(nodes));
        }
        let requested_at = self.instant(requested_at);
        self.send(Update::Listed {
            allocations,
            requested_at,
            reason,
        });
    }

    /// Subscribes from the cursor: the buffered frames from there come first.
    fn subscribe(&mut self, conn: u64) {
        let Some(Process {
            watcher: Watcher::Stream {
                state, following, ..
            },
            ..
        }) = self.process.as_mut()
        else {
            return;
        };
        *following = true;
        let from = state.cursor + 1;
        let mut at = self.now.max(self.stream_clock);
        for frame in self.nomad.replay(from) {
            at += Duration::from_millis(1);
            self.at(at, Happening::Frame { conn, frame });
        }
        self.stream_clock = at;
    }

    fn frame(&mut self, conn: u64, frame: SimFrame) {
        if self.current_conn() != Some(conn) {
            return;
        }
        let source = Source::Node(OUR_NODE.to_owned());
        let cluster = self.mode.cluster();
        let Some(Process {
            watcher: Watcher::Stream { state, .. },
            ..
        }) = self.process.as_mut()
        else {
            return;
        };
        let index = frame.index;
        let events = frame
            .allocs
            .iter()
            .map(|a| Event {
                topic: "Allocation".to_owned(),
                event_type: "AllocationUpdated".to_owned(),
                index,
                payload: Payload {
                    allocation: Some(a.to_api(false)),
                    node: None,
                },
            })
            .collect();
        let all: Vec<_> = frame.allocs.iter().map(|a| a.to_api(false)).collect();
        let Some(received) = state.frame(
            Frame {
                index,
                events,
                bytes: 1_000,
            },
            &source,
        ) else {
            return;
        };
        self.oracle.applied_frame(index, self.now);
        let own = if cluster { all } else { received.own };
        for alloc in own {
            self.send(Update::Event(Box::new(alloc)));
        }
    }

    fn cut_stream(&mut self) {
        let following = matches!(
            self.process.as_ref().map(|p| &p.watcher),
            Some(Watcher::Stream {
                following: true,
                ..
            })
        );
        if following && self.current_conn().is_some() {
            self.stream_ended(Ended::Stream(StreamEnd::Closed {
                url: String::new(),
                before_first_heartbeat: false,
                tail: String::new(),
            }));
        }
    }

    /// The connection ended: reconnect at once or after the backoff.
    fn stream_ended(&mut self, ended: Ended) {
        let Some(p) = self
            .process
            .as_mut()
            .filter(|p| !p.exited && p.conn != u64::MAX)
        else {
            return;
        };
        let Watcher::Stream {
            state,
            following,
            listing_since,
            ..
        } = &mut p.watcher
        else {
            return;
        };
        // A subscribed connection has had its heartbeats.
        state.exchanged = std::mem::take(following);
        *listing_since = None;
        let next = state.ended(&ended);
        self.next_conn += 1;
        p.conn = self.next_conn;
        let conn = p.conn;
        match next {
            Next::Now => self.after(Duration::ZERO, Happening::Issue { conn }),
            Next::After(delay) => self.after(delay, Happening::Issue { conn }),
            Next::Stop => {}
        }
    }
}

/// What an outage answers: a 403 refusal or a 5xx.
fn server_error(status: u16) -> Error {
    if status == 403 {
        return Error::PermissionDenied {
            url: String::new(),
            body: "Permission denied".to_owned(),
            needs: crate::nomad::Needs::Nothing,
        };
    }
    Error::Status {
        url: String::new(),
        status,
        body: "rpc error: No cluster leader".to_owned(),
    }
}
