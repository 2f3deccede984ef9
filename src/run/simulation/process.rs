//! The exporter process in the simulation: the real [`Machine`] and incremental renderer,
//! stepped as the driver steps them, with publishes to the simulated disk, reloads of the
//! simulated Vector and fetches from the simulated servers.

use std::collections::VecDeque;
use std::time::Duration;

use super::happening::{Happening, Stamp, describe};
use super::watchers::Watcher;
use super::world::{OUR_NODE, World};
use crate::run::machine::{Effect, Input, Machine, Published, ResyncReason, Update};
use crate::table::NodeInfo;
use crate::table::columns::Columns;
use crate::table::format::FileFormat;
use crate::table::incremental::RenderCache;
use crate::table::node_columns::Nodes;
use crate::watch::blocking::RelistState;
use crate::watch::cost::CostMeter;
use crate::watch::stream::WatchState;

/// The exporter process: the machine, its renderer, its watcher.
pub(super) struct Process {
    pub(super) id: u64,
    pub(super) machine: Machine,
    pub(super) cache: RenderCache,
    pub(super) watcher: Watcher,
    /// The connection (or query) whose answers count; bumped to drop what is in flight.
    pub(super) conn: u64,
    pub(super) updates: VecDeque<Update>,
    pub(super) exited: bool,
    pub(super) resyncs_queued: Vec<ResyncReason>,
}

impl World {
    pub(super) fn start_process(&mut self) {
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
            machine: Machine::new(nodes, self.timing, unannounced, None),
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

    pub(super) fn live_process(&self) -> Option<u64> {
        self.process.as_ref().filter(|p| !p.exited).map(|p| p.id)
    }

    /// The connection whose answers count, while the process watches.
    pub(super) fn current_conn(&self) -> Option<u64> {
        self.process
            .as_ref()
            .filter(|p| !p.exited && p.conn != u64::MAX)
            .map(|p| p.conn)
    }

    /// A watcher or fetch sends an update: the loop takes it a moment later, in order.
    pub(super) fn send(&mut self, update: Update) {
        let Some(p) = self.process.as_mut().filter(|p| !p.exited) else {
            return;
        };
        p.updates.push_back(update);
        let process = p.id;
        let delay = self.jitter(0, 20);
        self.after(delay, Happening::Deliver { process });
    }

    /// Steps the machine and performs its effects, as the driver does.
    pub(super) fn step(&mut self, input: Input) {
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
                    Effect::Push { .. } | Effect::PublishBase(_) => {
                        unreachable!("the simulation runs without --memory-table-url")
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

    pub(super) fn publish(&mut self) -> Published {
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

    pub(super) fn fetch(&mut self, id: String, modify_index: u64) {
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

    pub(super) fn lag(&mut self) -> Duration {
        let max = self.max_lag.as_millis() as u64;
        Duration::from_millis(self.rng.u64(0..=max))
    }
}
