//! One simulated run: Nomad ([`SimNomad`]), the node's client (allocation directories and log
//! files), the watchers (their real loop state, [`RelistState`] and [`WatchState`], driven the
//! way their loops drive it), the loop ([`Machine`] with the real incremental renderer), the
//! file on disk and Vector. Everything happens at virtual times taken from one seeded random
//! generator, in the order of a queue of timed happenings; nothing sleeps, nothing races.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use super::happening::{Happening, Scheduled, show};
use super::nomad::SimNomad;
use super::oracle::Oracle;
use super::process::Process;
use super::watchers::Watcher;
use crate::run::machine::{Input, ResyncReason, Update};
use crate::timing::{Timing, Wait};
use crate::watch::stream::Ended;

/// The node the exporter runs on, and another one.
pub const OUR_NODE: &str = "node-ours";
pub(super) const OTHER_NODE: &str = "node-other";
/// How long one simulated run lasts.
pub(super) const RUN_FOR: Duration = Duration::from_secs(90);
/// More steps than any run takes (about 500 on average, a few thousand at most).
pub(super) const MAX_STEPS: u64 = 50_000;

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

/// The simulated world.
pub struct World {
    pub mode: Mode,
    pub timing: Timing,
    pub(super) rng: fastrand::Rng,
    pub(super) t0: Instant,
    pub now: Duration,
    pub(super) queue: BinaryHeap<Reverse<Scheduled>>,
    pub(super) seq: u64,
    pub nomad: SimNomad,
    pub(super) max_lag: Duration,
    pub(super) outage_until: Duration,
    pub(super) outage_status: u16,
    pub(super) disk_full_until: Duration,
    /// When the event stream delivered its last frame: it delivers in order.
    pub(super) stream_clock: Duration,
    pub(super) process: Option<Process>,
    pub(super) next_process: u64,
    pub(super) next_conn: u64,
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

    pub(super) fn random_time(&mut self, from: Duration, to: Duration) -> Duration {
        Duration::from_millis(
            self.rng
                .u64(from.as_millis() as u64..=to.as_millis() as u64),
        )
    }

    pub(super) fn jitter(&mut self, from_ms: u64, to_ms: u64) -> Duration {
        Duration::from_millis(self.rng.u64(from_ms..=to_ms))
    }

    pub(super) fn at(&mut self, at: Duration, what: Happening) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    pub(super) fn after(&mut self, delay: Duration, what: Happening) {
        self.at(self.now + delay, what);
    }

    pub(super) fn instant(&self, at: Duration) -> Instant {
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

    pub(super) fn happen(&mut self, what: Happening) {
        match what {
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
            nomad_or_client => self.scenario(nomad_or_client),
        }
    }
}
