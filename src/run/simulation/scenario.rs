//! The scenario: what Nomad and the node's client do, planned from the seed (placements,
//! lifecycles, faults, signals), and the writes to the simulated Nomad that the watchers see.

use std::time::Duration;

use super::happening::Happening;
use super::nomad::Write;
use super::process::Process;
use super::watchers::Watcher;
use super::world::{OTHER_NODE, OUR_NODE, RUN_FOR, World};
use crate::run::machine::{ResyncReason, Update};

impl World {
    /// Schedules the scenario: placements, faults, signals.
    pub(super) fn plan(&mut self) {
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

    /// What Nomad, the client, the disk or the operator does.
    pub(super) fn scenario(&mut self, what: Happening) {
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
            other => unreachable!("{other:?} is the loop's, not the scenario's"),
        }
    }

    pub(super) fn write(&mut self, write: Write) -> Option<String> {
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

    pub(super) fn place(&mut self) {
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
}
