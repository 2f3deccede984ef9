//! The fake cluster's state: nodes, namespaces, jobs, allocations and ACL tokens, with the
//! mutations a scenario needs. Every mutation goes through [`Cluster::commit`], which advances the
//! raft index exactly as Nomad's state store does, so blocking queries and `X-Nomad-Index` behave
//! like the real thing; the event stream hooks into the same place. One file per concern: the
//! objects ([`objects`]), the ACL ([`acl`]), the event broker ([`events`]), and the mutations of
//! nodes, jobs and allocations.

mod acl;
mod allocations;
mod events;
mod jobs;
mod nodes;
mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

pub use acl::{Capability, Policy, Refusal};
pub use events::{EventBuffer, EventFrame, EventRecord, MessageType};
pub use objects::{Allocation, ClientStatus, Hook, Job, JobType, Node, Task, TaskGroup, TaskState};

/// What the local agent reports about itself in `/v1/agent/self`.
#[derive(Clone, Debug)]
pub struct Agent {
    /// The node this agent is a client of; `None` for a server-only agent.
    pub client_node_id: Option<String>,
    pub data_dir: String,
    /// `client.alloc_dir` as configured: Nomad reports `""` unless it was set explicitly.
    pub alloc_dir: String,
    pub region: String,
    pub datacenter: String,
}

/// The whole fake cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The last raft index.
    pub index: u64,
    /// The index of the last write to the allocs table (what Nomad reports for a node with none).
    pub allocs_table_index: u64,
    /// The index of the last write to the nodes table (`/v1/nodes`' `X-Nomad-Index`).
    pub nodes_table_index: u64,
    pub namespaces: BTreeSet<String>,
    pub nodes: BTreeMap<String, Node>,
    /// Current job versions, by `(namespace, id)`.
    pub jobs: BTreeMap<(String, String), Job>,
    pub allocations: BTreeMap<String, Allocation>,
    pub acl_enabled: bool,
    /// Token secret to policy.
    pub tokens: BTreeMap<String, Policy>,
    pub agent: Agent,
    /// The event broker's buffer.
    pub events: EventBuffer,
    /// Allocation IDs by `(namespace, job id)`, so placing stays cheap in large clusters.
    allocations_by_job: BTreeMap<(String, String), BTreeSet<String>>,
    rng: fastrand::Rng,
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster::new(1)
    }
}

/// Nanoseconds since the Unix epoch, as Nomad encodes `CreateTime` and friends.
pub fn unix_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_nanos()).expect("time fits in i64 nanoseconds")
}

impl Cluster {
    /// An empty cluster with the `default` namespace; `seed` makes generated IDs repeatable.
    pub fn new(seed: u64) -> Cluster {
        Cluster {
            index: 10,
            allocs_table_index: 1,
            nodes_table_index: 1,
            namespaces: BTreeSet::from(["default".to_owned()]),
            nodes: BTreeMap::new(),
            jobs: BTreeMap::new(),
            allocations: BTreeMap::new(),
            acl_enabled: false,
            tokens: BTreeMap::new(),
            agent: Agent {
                client_node_id: None,
                data_dir: "/opt/nomad/data".to_owned(),
                alloc_dir: String::new(),
                region: "global".to_owned(),
                datacenter: "dc1".to_owned(),
            },
            events: EventBuffer::new(100),
            allocations_by_job: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A random UUID in Nomad's format, from the cluster's seeded generator.
    pub fn new_uuid(&mut self) -> String {
        let hi = self.rng.u64(..);
        let lo = self.rng.u64(..);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }

    /// Advances the raft index for one write and returns it. Writes that touch allocations pass
    /// their IDs: their `ModifyIndex` moves with it (and `AllocModifyIndex` on server-side
    /// changes), and the write becomes one event frame, as Nomad's FSM publishes it.
    pub fn commit(&mut self, message: MessageType, allocs: &[String]) -> u64 {
        self.index += 1;
        let index = self.index;
        let now = unix_nanos();
        let server_side = matches!(
            message,
            MessageType::PlanResult | MessageType::AllocationUpdateDesiredStatus
        );
        for id in allocs {
            if let Some(alloc) = self.allocations.get_mut(id) {
                alloc.modify_index = index;
                alloc.modify_time = now;
                if alloc.create_index == 0 {
                    alloc.create_index = index;
                }
                if server_side || alloc.alloc_modify_index == 0 {
                    alloc.alloc_modify_index = index;
                }
            }
        }
        if !allocs.is_empty() {
            self.allocs_table_index = index;
            if let Some(event_type) = message.event_type() {
                let events = allocs
                    .iter()
                    .filter_map(|id| self.allocations.get(id))
                    .map(|alloc| EventRecord {
                        topic: "Allocation".to_owned(),
                        namespace: alloc.namespace.clone(),
                        key: alloc.id.clone(),
                        filter_keys: vec![alloc.job.id.clone(), alloc.deployment_id.clone()],
                        json: crate::json::allocation_event(alloc, event_type, index),
                    })
                    .collect();
                self.events.push(EventFrame { index, events });
            }
        }
        index
    }

    /// A server restart: the event broker starts empty and every subscription is closed; what
    /// `while_down` changes commits normally but never reaches the new buffer (an index gap that
    /// only a resync heals).
    pub fn restart_server(&mut self, while_down: impl FnOnce(&mut Cluster)) {
        self.events.recording = false;
        while_down(self);
        self.events.recording = true;
        self.events.restart();
    }

    /// A snapshot restore (or a cluster rebuilt from scratch): the raft index goes back to
    /// `index`, every object's indexes are at most that, and the event broker starts empty,
    /// closing every subscription.
    pub fn restore_snapshot(&mut self, index: u64) {
        self.index = index;
        let allocs = self.allocations.values_mut().flat_map(|a| {
            [
                &mut a.create_index,
                &mut a.modify_index,
                &mut a.alloc_modify_index,
            ]
        });
        let nodes =
            (self.nodes.values_mut()).flat_map(|n| [&mut n.create_index, &mut n.modify_index]);
        let jobs = self.jobs.values_mut().flat_map(|j| {
            [
                &mut j.create_index,
                &mut j.modify_index,
                &mut j.job_modify_index,
            ]
        });
        let tables = [&mut self.allocs_table_index, &mut self.nodes_table_index];
        for object_index in allocs.chain(nodes).chain(jobs).chain(tables) {
            *object_index = (*object_index).min(index);
        }
        self.events.restart();
    }
}
