//! The simulation's Nomad, with the rules read in Nomad's source (`../shared/reference/
//! nomad-api.md`): one raft index for every write; a node listing's index is the highest
//! `ModifyIndex` of the node's allocations, or the allocs table's index when it has none (so it
//! goes down when the newest allocation is collected, and up when the last ones are: the GC
//! writes the allocs table's index, `DeleteEval`); a server-side write moves `AllocModifyIndex`;
//! every write that touches allocations is one event frame, a collection none; a snapshot
//! restore lowers every index and empties the event buffer. A follower answers stale reads from
//! the leader's state as it was a random moment ago.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::nomad::types::{Allocation, Job, Task, TaskGroup};

/// Frames the event broker keeps for new subscribers (Nomad's default is 100).
const EVENT_BUFFER: usize = 16;
/// How long the follower's history is kept.
const HISTORY: Duration = Duration::from_secs(2);

/// One allocation as the servers hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAlloc {
    pub id: String,
    pub node: String,
    pub job: String,
    pub job_version: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub client_status: &'static str,
    pub desired_status: &'static str,
}

impl SimAlloc {
    /// The allocation as the API answers it: with its job (listings, fetches) or without
    /// (events).
    pub fn to_api(&self, with_job: bool) -> Allocation {
        let job = with_job.then(|| {
            Arc::new(Job {
                id: self.job.as_str().into(),
                name: self.job.as_str().into(),
                job_type: "service".into(),
                version: self.job_version,
                task_groups: vec![TaskGroup {
                    name: "web".into(),
                    tasks: ["main", "sidecar"]
                        .into_iter()
                        .map(|name| Task {
                            name: (*name).into(),
                            driver: "exec".into(),
                            ..Task::default()
                        })
                        .collect(),
                    ..TaskGroup::default()
                }],
                ..Job::default()
            })
        });
        Allocation {
            id: self.id.as_str().into(),
            namespace: "default".into(),
            name: format!("{}.web[0]", self.job),
            node_id: self.node.as_str().into(),
            job_id: self.job.as_str().into(),
            task_group: "web".into(),
            client_status: self.client_status.into(),
            desired_status: self.desired_status.into(),
            modify_index: self.modify_index,
            alloc_modify_index: self.alloc_modify_index,
            job,
            ..Allocation::default()
        }
    }

    fn terminal(&self) -> bool {
        self.client_status == "complete"
    }
}

/// The state a server answers from.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The raft index of the last write.
    pub index: u64,
    pub allocs_table_index: u64,
    pub allocs: BTreeMap<String, SimAlloc>,
    /// Bumped by every snapshot restore: answers of different epochs are not comparable.
    pub epoch: u64,
}

impl State {
    /// `X-Nomad-Index` of `/v1/node/:id/allocations`.
    pub fn node_index(&self, node: &str) -> u64 {
        self.allocs
            .values()
            .filter(|a| a.node == node)
            .map(|a| a.modify_index)
            .max()
            .unwrap_or(self.allocs_table_index)
    }

    /// The node's allocations with their jobs, live ones by ID and then terminal ones.
    pub fn node_listing(&self, node: &str) -> Vec<Allocation> {
        let (live, terminal): (Vec<&SimAlloc>, Vec<&SimAlloc>) = self
            .allocs
            .values()
            .filter(|a| a.node == node)
            .partition(|a| !a.terminal());
        live.into_iter()
            .chain(terminal)
            .map(|a| a.to_api(true))
            .collect()
    }

    /// Every allocation of the cluster with its job, and the allocs table's index.
    pub fn cluster_listing(&self) -> (Vec<Allocation>, u64) {
        let allocs = self.allocs.values().map(|a| a.to_api(true)).collect();
        (allocs, self.allocs_table_index)
    }
}

/// One frame of the event stream: the allocations one write touched, without their jobs.
#[derive(Clone, Debug)]
pub struct SimFrame {
    pub index: u64,
    pub allocs: Vec<SimAlloc>,
}

/// The cluster's servers: the leader's state, its recent history (for the follower) and the
/// event broker's buffer.
#[derive(Debug, Default)]
pub struct SimNomad {
    pub leader: State,
    /// The leader's state after each write, with the write's time.
    history: VecDeque<(Duration, State)>,
    /// The newest frames, for new subscribers.
    pub buffer: VecDeque<SimFrame>,
    next_alloc: u64,
}

/// What a write does to allocations.
pub enum Write {
    /// The scheduler places an allocation (pending).
    Place { node: String, job: String },
    /// The client reports a status.
    Client { id: String, status: &'static str },
    /// A server-side change of the allocation (an in-place update to a new job version).
    InPlace { id: String },
    /// The scheduler stops it (desired `stop`), a server-side change.
    Stop { id: String },
}

impl SimNomad {
    pub fn new() -> SimNomad {
        let mut nomad = SimNomad::default();
        nomad.leader.index = 10;
        nomad.leader.allocs_table_index = 10;
        nomad.remember(Duration::ZERO);
        nomad
    }

    /// Applies a write at `now`; returns the frame it published (with the allocation's ID
    /// for a placement), if any.
    pub fn write(&mut self, write: Write, now: Duration) -> Option<SimFrame> {
        self.leader.index += 1;
        let index = self.leader.index;
        let id = match write {
            Write::Place { node, job } => {
                self.next_alloc += 1;
                let id = format!(
                    "{:08x}-{:04}",
                    self.next_alloc * 2_654_435_761 % (1 << 32),
                    self.next_alloc
                );
                self.leader.allocs.insert(
                    id.clone(),
                    SimAlloc {
                        id: id.clone(),
                        node,
                        job,
                        job_version: 0,
                        modify_index: index,
                        alloc_modify_index: index,
                        client_status: "pending",
                        desired_status: "run",
                    },
                );
                id
            }
            Write::Client { id, status } => {
                let alloc = self.leader.allocs.get_mut(&id)?;
                alloc.client_status = status;
                alloc.modify_index = index;
                id
            }
            Write::InPlace { id } => {
                let alloc = self.leader.allocs.get_mut(&id)?;
                alloc.job_version += 1;
                alloc.modify_index = index;
                alloc.alloc_modify_index = index;
                id
            }
            Write::Stop { id } => {
                let alloc = self.leader.allocs.get_mut(&id)?;
                alloc.desired_status = "stop";
                alloc.modify_index = index;
                alloc.alloc_modify_index = index;
                id
            }
        };
        self.leader.allocs_table_index = index;
        let frame = SimFrame {
            index,
            allocs: vec![self.leader.allocs[&id].clone()],
        };
        self.buffer.push_back(frame.clone());
        if self.buffer.len() > EVENT_BUFFER {
            self.buffer.pop_front();
        }
        self.remember(now);
        Some(frame)
    }

    /// The GC deletes an allocation: no event, but the allocs table's index moves.
    pub fn collect(&mut self, id: &str, now: Duration) -> bool {
        if self.leader.allocs.remove(id).is_none() {
            return false;
        }
        self.leader.index += 1;
        self.leader.allocs_table_index = self.leader.index;
        self.remember(now);
        true
    }

    /// A snapshot restore (or a rebuilt cluster): every index drops to at most `to`, and the
    /// event broker starts empty.
    pub fn restore(&mut self, to: u64, now: Duration) {
        let state = &mut self.leader;
        state.index = to;
        state.allocs_table_index = state.allocs_table_index.min(to);
        for alloc in state.allocs.values_mut() {
            alloc.modify_index = alloc.modify_index.min(to);
            alloc.alloc_modify_index = alloc.alloc_modify_index.min(to);
        }
        state.epoch += 1;
        self.buffer.clear();
        self.remember(now);
    }

    /// The state a follower `lag` behind the leader answers from at `now`.
    pub fn follower(&self, now: Duration, lag: Duration) -> &State {
        let as_of = now.saturating_sub(lag);
        self.history
            .iter()
            .rev()
            .find(|(at, _)| *at <= as_of)
            .map_or(&self.leader, |(_, state)| state)
    }

    /// The frames a subscription from `from` receives first: those at or after it, clamped to
    /// the oldest kept; a future index re-sends the newest.
    pub fn replay(&self, from: u64) -> Vec<SimFrame> {
        let newer: Vec<SimFrame> = self
            .buffer
            .iter()
            .filter(|f| f.index >= from)
            .cloned()
            .collect();
        if newer.is_empty() {
            self.buffer.back().cloned().into_iter().collect()
        } else {
            newer
        }
    }

    fn remember(&mut self, now: Duration) {
        self.history.push_back((now, self.leader.clone()));
        // The newest state older than the horizon stays: a follower may still answer from it.
        while self
            .history
            .get(1)
            .is_some_and(|(at, _)| *at + HISTORY < now)
        {
            self.history.pop_front();
        }
    }
}
