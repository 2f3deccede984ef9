//! The fake cluster's state: nodes, namespaces, jobs, allocations and ACL tokens, with the
//! mutations a scenario needs. Every mutation goes through [`Cluster::commit`], which advances the
//! raft index exactly as Nomad's state store does, so blocking queries and `X-Nomad-Index` behave
//! like the real thing; the event stream hooks into the same place.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nomad's `Job.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobType {
    Service,
    Batch,
    System,
    Sysbatch,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::Sysbatch => "sysbatch",
        }
    }
}

/// `Allocation.ClientStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
    Unknown,
}

impl ClientStatus {
    /// Every status Nomad reports, for tests that must cover them all.
    pub const ALL: [ClientStatus; 6] = [
        ClientStatus::Pending,
        ClientStatus::Running,
        ClientStatus::Complete,
        ClientStatus::Failed,
        ClientStatus::Lost,
        ClientStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
            ClientStatus::Lost => "lost",
            ClientStatus::Unknown => "unknown",
        }
    }

    /// Nomad's `Allocation.ClientTerminalStatus`: these sort after live allocations in a listing.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
        )
    }
}

/// `Task.Lifecycle.Hook`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prestart,
    Poststart,
    Poststop,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prestart => "prestart",
            Hook::Poststart => "poststart",
            Hook::Poststop => "poststop",
        }
    }
}

/// A client node.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub node_pool: String,
    /// `ready`, or `down` once it stopped heartbeating.
    pub status: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Node {
    /// A node named `name` in `dc1`; the ID is assigned by [`Cluster::add_node`] unless set.
    pub fn new(name: &str) -> Node {
        Node {
            id: String::new(),
            name: name.to_owned(),
            datacenter: "dc1".to_owned(),
            node_pool: "default".to_owned(),
            status: "ready".to_owned(),
            create_index: 0,
            modify_index: 0,
        }
    }

    pub fn id(mut self, id: &str) -> Node {
        self.id = id.to_owned();
        self
    }

    pub fn datacenter(mut self, datacenter: &str) -> Node {
        self.datacenter = datacenter.to_owned();
        self
    }
}

/// A task of a task group.
#[derive(Clone, Debug)]
pub struct Task {
    pub name: String,
    pub driver: String,
    pub meta: BTreeMap<String, String>,
    pub kind: String,
    pub lifecycle: Option<(Hook, bool)>,
}

impl Task {
    pub fn new(name: &str, driver: &str) -> Task {
        Task {
            name: name.to_owned(),
            driver: driver.to_owned(),
            meta: BTreeMap::new(),
            kind: String::new(),
            lifecycle: None,
        }
    }

    /// Sets `Lifecycle{Hook, Sidecar}`.
    pub fn lifecycle(mut self, hook: Hook, sidecar: bool) -> Task {
        self.lifecycle = Some((hook, sidecar));
        self
    }

    pub fn meta(mut self, key: &str, value: &str) -> Task {
        self.meta.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The task Nomad injects for a Connect sidecar of `service`.
    pub fn connect_proxy(service: &str) -> Task {
        Task {
            name: format!("connect-proxy-{service}"),
            driver: "docker".to_owned(),
            meta: BTreeMap::new(),
            kind: format!("connect-proxy:{service}"),
            lifecycle: Some((Hook::Prestart, true)),
        }
    }
}

/// A task group of a job.
#[derive(Clone, Debug)]
pub struct TaskGroup {
    pub name: String,
    pub count: u32,
    pub meta: BTreeMap<String, String>,
    pub tasks: Vec<Task>,
}

impl TaskGroup {
    pub fn new(name: &str) -> TaskGroup {
        TaskGroup {
            name: name.to_owned(),
            count: 1,
            meta: BTreeMap::new(),
            tasks: Vec::new(),
        }
    }

    pub fn task(mut self, task: Task) -> TaskGroup {
        self.tasks.push(task);
        self
    }

    pub fn meta(mut self, key: &str, value: &str) -> TaskGroup {
        self.meta.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// A job at one version. Allocations keep a copy of the version they run, as Nomad does.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub region: String,
    pub job_type: JobType,
    pub datacenters: Vec<String>,
    pub node_pool: String,
    pub version: u64,
    pub parent_id: String,
    pub periodic: bool,
    pub parameterized: bool,
    pub dispatched: bool,
    pub meta: BTreeMap<String, String>,
    pub groups: Vec<TaskGroup>,
    pub stop: bool,
    pub submit_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
}

impl Job {
    pub fn new(id: &str, job_type: JobType) -> Job {
        Job {
            id: id.to_owned(),
            name: id.to_owned(),
            namespace: "default".to_owned(),
            region: "global".to_owned(),
            job_type,
            datacenters: vec!["*".to_owned()],
            node_pool: "default".to_owned(),
            version: 0,
            parent_id: String::new(),
            periodic: false,
            parameterized: false,
            dispatched: false,
            meta: BTreeMap::new(),
            groups: Vec::new(),
            stop: false,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
        }
    }

    pub fn service(id: &str) -> Job {
        Job::new(id, JobType::Service)
    }

    pub fn batch(id: &str) -> Job {
        Job::new(id, JobType::Batch)
    }

    pub fn namespace(mut self, namespace: &str) -> Job {
        self.namespace = namespace.to_owned();
        self
    }

    pub fn region(mut self, region: &str) -> Job {
        self.region = region.to_owned();
        self
    }

    pub fn name(mut self, name: &str) -> Job {
        self.name = name.to_owned();
        self
    }

    pub fn group(mut self, group: TaskGroup) -> Job {
        self.groups.push(group);
        self
    }

    pub fn meta(mut self, key: &str, value: &str) -> Job {
        self.meta.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Marks the job as a periodic parent (it gets a `Periodic` block).
    pub fn periodic(mut self) -> Job {
        self.periodic = true;
        self
    }

    /// Marks the job as parameterized (dispatchable).
    pub fn parameterized(mut self) -> Job {
        self.parameterized = true;
        self
    }

    pub fn task_group(&self, name: &str) -> Option<&TaskGroup> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// One task's state as the client reports it.
#[derive(Clone, Debug)]
pub struct TaskState {
    pub state: &'static str,
    pub failed: bool,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// An allocation, with the job version it runs.
#[derive(Clone, Debug)]
pub struct Allocation {
    pub id: String,
    pub eval_id: String,
    pub name: String,
    pub namespace: String,
    pub node_id: String,
    pub node_name: String,
    pub job: Job,
    pub task_group: String,
    pub desired_status: &'static str,
    pub client_status: ClientStatus,
    pub deployment_id: String,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub task_states: BTreeMap<String, TaskState>,
    pub create_index: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
    /// JSON pointers (e.g. `/Job/Meta`) removed from this allocation's JSON, to simulate older or
    /// partial answers.
    pub omitted_fields: Vec<String>,
}

/// The capabilities one ACL token grants.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub management: bool,
    pub node_read: bool,
    pub agent_read: bool,
    /// Namespace name (or `*`) to its capabilities, e.g. `read-job`.
    pub namespaces: BTreeMap<String, BTreeSet<String>>,
}

impl Policy {
    /// A management token: everything is allowed.
    pub fn management() -> Policy {
        Policy {
            management: true,
            ..Policy::default()
        }
    }

    /// What nomad-alloc-table needs: `node:read`, `agent:read` and `read-job` everywhere.
    pub fn alloc_table_reader() -> Policy {
        Policy::default()
            .node_read()
            .agent_read()
            .namespace("*", &["read-job"])
    }

    pub fn node_read(mut self) -> Policy {
        self.node_read = true;
        self
    }

    pub fn agent_read(mut self) -> Policy {
        self.agent_read = true;
        self
    }

    pub fn namespace(mut self, namespace: &str, capabilities: &[&str]) -> Policy {
        self.namespaces
            .entry(namespace.to_owned())
            .or_default()
            .extend(capabilities.iter().map(|c| (*c).to_owned()));
        self
    }

    /// Whether the policy grants `node:read` (a management token grants everything).
    pub fn allows_node_read(&self) -> bool {
        self.management || self.node_read
    }

    /// Whether the policy grants `capability` in `namespace` (an exact rule wins over `*`).
    pub fn allows_namespace(&self, namespace: &str, capability: &str) -> bool {
        if self.management {
            return true;
        }
        let rule = self
            .namespaces
            .get(namespace)
            .or_else(|| self.namespaces.get("*"));
        rule.is_some_and(|caps| caps.contains(capability))
    }
}

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

/// The kind of raft message a commit is, which becomes the event `Type` on the event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    PlanResult,
    AllocationUpdated,
    AllocationUpdateDesiredStatus,
    Other,
}

impl MessageType {
    /// The event `Type` this write has on the Allocation topic, if it is published there.
    pub fn event_type(self) -> Option<&'static str> {
        match self {
            MessageType::PlanResult => Some("PlanResult"),
            MessageType::AllocationUpdated => Some("AllocationUpdated"),
            MessageType::AllocationUpdateDesiredStatus => Some("AllocationUpdateDesiredStatus"),
            MessageType::Other => None,
        }
    }
}

/// One event (Allocation or Node topic), with what subscriptions filter on.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub topic: String,
    pub namespace: String,
    pub key: String,
    /// `[JobID, DeploymentID]`, as Nomad sets them for allocations.
    pub filter_keys: Vec<String>,
    /// The whole event object, as sent.
    pub json: serde_json::Value,
}

/// All events of one raft index.
#[derive(Clone, Debug)]
pub struct EventFrame {
    pub index: u64,
    pub events: Vec<EventRecord>,
}

/// The event broker's buffer: a bounded ring of frames (Nomad's `event_buffer_size`, default
/// 100, counted in raft indexes), and a generation that changes when the broker is replaced
/// (a server restart or snapshot restore), which closes every subscription.
#[derive(Clone, Debug)]
pub struct EventBuffer {
    pub frames: std::collections::VecDeque<EventFrame>,
    pub capacity: usize,
    /// The index of the newest frame evicted to make room (a reader behind it missed a frame).
    pub evicted_through: u64,
    pub generation: u64,
    /// Whether commits are published (false while a restart makes writes miss the buffer).
    pub recording: bool,
}

impl EventBuffer {
    fn new(capacity: usize) -> EventBuffer {
        EventBuffer {
            frames: std::collections::VecDeque::new(),
            capacity,
            evicted_through: 0,
            generation: 0,
            recording: true,
        }
    }

    fn push(&mut self, frame: EventFrame) {
        if !self.recording {
            return;
        }
        self.frames.push_back(frame);
        while self.frames.len() > self.capacity.max(1) {
            if let Some(evicted) = self.frames.pop_front() {
                self.evicted_through = evicted.index;
            }
        }
    }

    /// Where a subscription asking for `index` starts, as `StartAtClosest` does: the first
    /// frame at or after it (inclusive), the oldest frame when `index` is 0 or older than the
    /// buffer (silently), and the newest frame again when `index` is beyond it.
    pub fn start_position(&self, index: u64) -> usize {
        self.frames
            .iter()
            .position(|f| f.index >= index)
            .unwrap_or(self.frames.len().saturating_sub(1))
    }

    /// The cursor of a subscription asking for `index` now: the index just before the first
    /// frame [`EventBuffer::start_position`] picks, or `current` when nothing is buffered
    /// (everything after it is new).
    pub fn cursor_before(&self, index: u64, current: u64) -> u64 {
        match self.frames.get(self.start_position(index)) {
            Some(first) => first.index - 1,
            None => current,
        }
    }

    /// Empties the buffer as a server restart does, closing every subscription.
    pub fn restart(&mut self) {
        self.frames.clear();
        self.evicted_through = 0;
        self.generation += 1;
    }
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

    /// A batch of client updates in one raft write, as the server batches them for 50 ms: one
    /// frame with an event per allocation, possibly of many nodes.
    pub fn set_client_statuses(&mut self, updates: &[(&str, ClientStatus)]) {
        let now = unix_nanos();
        for (id, status) in updates {
            self.apply_client_status(id, *status, now);
        }
        let ids: Vec<String> = updates.iter().map(|(id, _)| (*id).to_owned()).collect();
        self.commit(MessageType::AllocationUpdated, &ids);
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
        self.allocs_table_index = self.allocs_table_index.min(index);
        self.nodes_table_index = self.nodes_table_index.min(index);
        for alloc in self.allocations.values_mut() {
            alloc.create_index = alloc.create_index.min(index);
            alloc.modify_index = alloc.modify_index.min(index);
            alloc.alloc_modify_index = alloc.alloc_modify_index.min(index);
        }
        for node in self.nodes.values_mut() {
            node.create_index = node.create_index.min(index);
            node.modify_index = node.modify_index.min(index);
        }
        for job in self.jobs.values_mut() {
            job.create_index = job.create_index.min(index);
            job.modify_index = job.modify_index.min(index);
            job.job_modify_index = job.job_modify_index.min(index);
        }
        self.events.restart();
    }

    /// An in-place update: the job gets a new version (`change` edits it, e.g. its meta), and
    /// the scheduler moves the allocation to it without replacing it (a plan result, so
    /// `AllocModifyIndex` moves too).
    pub fn update_in_place(&mut self, id: &str, change: impl FnOnce(&mut Job)) {
        let alloc = self.allocation(id);
        let mut job = self
            .job(&alloc.namespace, &alloc.job.id)
            .cloned()
            .unwrap_or_else(|| alloc.job.clone());
        change(&mut job);
        let (namespace, job_id) = (job.namespace.clone(), job.id.clone());
        self.register_job(job);
        let job = self
            .job(&namespace, &job_id)
            .cloned()
            .expect("just registered");
        if let Some(alloc) = self.allocations.get_mut(id) {
            alloc.job = job;
        }
        self.commit(MessageType::PlanResult, &[id.to_owned()]);
    }

    pub fn add_namespace(&mut self, name: &str) {
        self.namespaces.insert(name.to_owned());
        self.commit(MessageType::Other, &[]);
    }

    /// Registers a node and returns its ID (generated when the node has none): a
    /// `NodeRegistration` event on the Node topic.
    pub fn add_node(&mut self, mut node: Node) -> String {
        if node.id.is_empty() {
            node.id = self.new_uuid();
        }
        let index = self.commit(MessageType::Other, &[]);
        node.create_index = index;
        node.modify_index = index;
        let id = node.id.clone();
        self.node_event(&node, "NodeRegistration", index);
        self.nodes.insert(id.clone(), node);
        self.nodes_table_index = index;
        id
    }

    /// The frame of one Node event: `Namespace` empty (it passes every namespace filter),
    /// `FilterKeys` null, the payload the node (`nomad/state/events.go`).
    fn node_event(&mut self, node: &Node, event_type: &str, index: u64) {
        let json = serde_json::json!({
            "FilterKeys": null,
            "Index": index,
            "Key": node.id,
            "Namespace": "",
            "Payload": {"Node": crate::json::node(node)},
            "Topic": "Node",
            "Type": event_type,
        });
        self.events.push(EventFrame {
            index,
            events: vec![EventRecord {
                topic: "Node".to_owned(),
                namespace: String::new(),
                key: node.id.clone(),
                filter_keys: Vec::new(),
                json,
            }],
        });
    }

    /// A node that stopped heartbeating: its status goes `down` (a `NodeStreamEvent`), and
    /// the scheduler marks its allocations lost in one plan (desired `stop`, client `lost`).
    /// They stay listed until they are collected.
    pub fn node_down(&mut self, node_id: &str) {
        let index = self.commit(MessageType::Other, &[]);
        let Some(mut node) = self.nodes.get(node_id).cloned() else {
            panic!("no node {node_id}");
        };
        node.status = "down".to_owned();
        node.modify_index = index;
        self.node_event(&node, "NodeStreamEvent", index);
        self.nodes.insert(node_id.to_owned(), node);
        self.nodes_table_index = index;
        let lost: Vec<String> = self
            .allocations
            .values()
            .filter(|a| a.node_id == node_id && !a.client_status.is_terminal())
            .map(|a| a.id.clone())
            .collect();
        for id in &lost {
            if let Some(alloc) = self.allocations.get_mut(id) {
                alloc.desired_status = "stop";
                alloc.client_status = ClientStatus::Lost;
            }
        }
        self.commit(MessageType::PlanResult, &lost);
    }

    /// `nomad node purge`: the node leaves the cluster (a `NodeDeregistration` event carrying
    /// the node as it was).
    pub fn deregister_node(&mut self, node_id: &str) {
        let index = self.commit(MessageType::Other, &[]);
        if let Some(node) = self.nodes.remove(node_id) {
            self.node_event(&node, "NodeDeregistration", index);
        }
        self.nodes_table_index = index;
    }

    /// Makes the agent a client of `node_id` (what `/v1/agent/self` reports).
    pub fn set_agent_node(&mut self, node_id: &str) {
        self.agent.client_node_id = Some(node_id.to_owned());
        if let Some(node) = self.nodes.get(node_id) {
            self.agent.datacenter = node.datacenter.clone();
        }
    }

    /// Registers a job, or a new version of it; returns the version.
    pub fn register_job(&mut self, mut job: Job) -> u64 {
        self.namespaces.insert(job.namespace.clone());
        let key = (job.namespace.clone(), job.id.clone());
        let index = self.commit(MessageType::Other, &[]);
        match self.jobs.get(&key) {
            Some(previous) => {
                job.version = previous.version + 1;
                job.create_index = previous.create_index;
            }
            None => {
                job.version = 0;
                job.create_index = index;
            }
        }
        job.modify_index = index;
        job.job_modify_index = index;
        job.submit_time = unix_nanos();
        let version = job.version;
        self.jobs.insert(key, job);
        version
    }

    /// The current version of a job.
    pub fn job(&self, namespace: &str, id: &str) -> Option<&Job> {
        self.jobs.get(&(namespace.to_owned(), id.to_owned()))
    }

    /// Launches a child of a periodic job, as the periodic dispatcher does at `launch_unix`.
    pub fn launch_periodic(
        &mut self,
        namespace: &str,
        parent_id: &str,
        launch_unix: i64,
    ) -> String {
        let parent = self
            .job(namespace, parent_id)
            .unwrap_or_else(|| panic!("no periodic job {namespace}/{parent_id}"))
            .clone();
        let mut child = parent;
        child.id = format!("{parent_id}/periodic-{launch_unix}");
        child.name = child.id.clone();
        child.parent_id = parent_id.to_owned();
        child.periodic = false;
        let id = child.id.clone();
        self.register_job(child);
        id
    }

    /// Dispatches a parameterized job; the dispatch meta is merged into the child's meta.
    pub fn dispatch(
        &mut self,
        namespace: &str,
        parent_id: &str,
        meta: &[(&str, &str)],
        launch_unix: i64,
    ) -> String {
        let parent = self
            .job(namespace, parent_id)
            .unwrap_or_else(|| panic!("no parameterized job {namespace}/{parent_id}"))
            .clone();
        let suffix = self.rng.u32(..);
        let mut child = parent;
        child.id = format!("{parent_id}/dispatch-{launch_unix}-{suffix:08x}");
        child.name = child.id.clone();
        child.parent_id = parent_id.to_owned();
        child.parameterized = false;
        child.dispatched = true;
        for (key, value) in meta {
            child.meta.insert((*key).to_owned(), (*value).to_owned());
        }
        let id = child.id.clone();
        self.register_job(child);
        id
    }

    /// Places a new allocation of `group` of the job's current version on `node_id`, as a
    /// scheduler plan does: `pending`, desired `run`, no task states yet. Returns its ID.
    pub fn place(&mut self, namespace: &str, job_id: &str, group: &str, node_id: &str) -> String {
        let job = self
            .job(namespace, job_id)
            .unwrap_or_else(|| panic!("no job {namespace}/{job_id}"))
            .clone();
        assert!(
            job.task_group(group).is_some(),
            "job {job_id} has no group {group}"
        );
        let node_name = self
            .nodes
            .get(node_id)
            .unwrap_or_else(|| panic!("no node {node_id}"))
            .name
            .clone();
        let name = match job.job_type {
            JobType::System | JobType::Sysbatch => format!("{}.{group}[0]", job.name),
            JobType::Service | JobType::Batch => {
                let key = (job.namespace.clone(), job.id.clone());
                let taken: BTreeSet<&str> = self
                    .allocations_by_job
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.allocations.get(id))
                    .filter(|a| a.desired_status == "run")
                    .map(|a| a.name.as_str())
                    .collect();
                (0..)
                    .map(|n| format!("{job_id}.{group}[{n}]"))
                    .find(|candidate| !taken.contains(candidate.as_str()))
                    .expect("a free allocation index")
            }
        };
        let id = self.insert_allocation(job, group, node_id, node_name, name, String::new());
        self.commit(MessageType::PlanResult, std::slice::from_ref(&id));
        id
    }

    fn insert_allocation(
        &mut self,
        job: Job,
        group: &str,
        node_id: &str,
        node_name: String,
        name: String,
        previous_allocation: String,
    ) -> String {
        let id = self.new_uuid();
        let eval_id = self.new_uuid();
        let deployment_id = match job.job_type {
            JobType::Service => self.new_uuid(),
            _ => String::new(),
        };
        let now = unix_nanos();
        let alloc = Allocation {
            id: id.clone(),
            eval_id,
            name,
            namespace: job.namespace.clone(),
            node_id: node_id.to_owned(),
            node_name,
            task_group: group.to_owned(),
            job,
            desired_status: "run",
            client_status: ClientStatus::Pending,
            deployment_id,
            previous_allocation,
            next_allocation: String::new(),
            task_states: BTreeMap::new(),
            create_index: 0,
            modify_index: 0,
            alloc_modify_index: 0,
            create_time: now,
            modify_time: now,
            omitted_fields: Vec::new(),
        };
        self.allocations_by_job
            .entry((alloc.namespace.clone(), alloc.job.id.clone()))
            .or_default()
            .insert(id.clone());
        self.allocations.insert(id.clone(), alloc);
        id
    }

    /// A destructive update or reschedule onto `node_id` (often the same node): the old allocation
    /// is told to stop and points at its replacement, which keeps its `Name` and runs the job's
    /// current version. Returns the new allocation's ID.
    pub fn replace(&mut self, old_id: &str, node_id: &str) -> String {
        let old = self.allocation(old_id).clone();
        let job = self
            .job(&old.namespace, &old.job.id)
            .expect("job of a live allocation")
            .clone();
        let node_name = self.nodes.get(node_id).expect("known node").name.clone();
        let new_id = self.insert_allocation(
            job,
            &old.task_group,
            node_id,
            node_name,
            old.name.clone(),
            old_id.to_owned(),
        );
        let old = self.allocations.get_mut(old_id).expect("checked above");
        old.desired_status = "stop";
        old.next_allocation = new_id.clone();
        // One plan stops the old allocation and places the new one: one raft write, one frame.
        self.commit(
            MessageType::PlanResult,
            &[old_id.to_owned(), new_id.clone()],
        );
        new_id
    }

    pub fn allocation(&self, id: &str) -> &Allocation {
        self.allocations
            .get(id)
            .unwrap_or_else(|| panic!("no allocation {id}"))
    }

    /// The client reports `status`; task states follow it the way a real client's would.
    pub fn set_client_status(&mut self, id: &str, status: ClientStatus) {
        self.set_client_statuses(&[(id, status)]);
    }

    fn apply_client_status(&mut self, id: &str, status: ClientStatus, now: i64) {
        let alloc = self
            .allocations
            .get_mut(id)
            .unwrap_or_else(|| panic!("no allocation {id}"));
        alloc.client_status = status;
        let tasks = alloc
            .job
            .task_group(&alloc.task_group)
            .map(|g| g.tasks.clone())
            .unwrap_or_default();
        alloc.task_states = tasks
            .iter()
            .filter_map(|task| {
                let state = task_state_for(status, task, now)?;
                Some((task.name.clone(), state))
            })
            .collect();
    }

    /// `nomad alloc stop` or a job stop: desired `stop`, and the client then reports `complete`.
    pub fn stop(&mut self, id: &str) {
        let alloc = self
            .allocations
            .get_mut(id)
            .unwrap_or_else(|| panic!("no allocation {id}"));
        alloc.desired_status = "stop";
        self.commit(MessageType::AllocationUpdateDesiredStatus, &[id.to_owned()]);
        self.set_client_status(id, ClientStatus::Complete);
    }

    /// Garbage-collects an allocation. Nomad emits no event for this, and the node's listing
    /// index may go backwards.
    pub fn gc(&mut self, id: &str) {
        if let Some(alloc) = self.allocations.remove(id)
            && let Some(ids) = self
                .allocations_by_job
                .get_mut(&(alloc.namespace, alloc.job.id))
        {
            ids.remove(id);
        }
        self.commit(MessageType::Other, &[]);
    }

    /// Removes a JSON field (a JSON pointer such as `/Job/ParentID`) from one allocation's answers.
    pub fn omit_field(&mut self, id: &str, pointer: &str) {
        self.allocations
            .get_mut(id)
            .unwrap_or_else(|| panic!("no allocation {id}"))
            .omitted_fields
            .push(pointer.to_owned());
    }

    pub fn enable_acl(&mut self) {
        self.acl_enabled = true;
    }

    pub fn add_token(&mut self, secret: &str, policy: Policy) {
        self.tokens.insert(secret.to_owned(), policy);
        self.commit(MessageType::Other, &[]);
    }

    pub fn revoke_token(&mut self, secret: &str) {
        self.tokens.remove(secret);
        self.commit(MessageType::Other, &[]);
    }

    /// The node's allocations in Nomad's listing order: live ones by ID, then terminal ones by ID.
    pub fn node_allocations(&self, node_id: &str) -> Vec<&Allocation> {
        let (live, terminal): (Vec<&Allocation>, Vec<&Allocation>) = self
            .allocations
            .values()
            .filter(|a| a.node_id == node_id)
            .partition(|a| !a.client_status.is_terminal());
        live.into_iter().chain(terminal).collect()
    }

    /// `X-Nomad-Index` of the node listing: the largest `ModifyIndex` of its allocations, or the
    /// allocs table index when it has none.
    pub fn node_allocations_index(&self, node_id: &str) -> u64 {
        self.allocations
            .values()
            .filter(|a| a.node_id == node_id)
            .map(|a| a.modify_index)
            .max()
            .unwrap_or(self.allocs_table_index)
    }
}

fn task_state_for(status: ClientStatus, task: &Task, now: i64) -> Option<TaskState> {
    let ephemeral_prestart = matches!(task.lifecycle, Some((Hook::Prestart, false)));
    let poststop = matches!(task.lifecycle, Some((Hook::Poststop, _)));
    let (state, failed, started, finished) = match status {
        ClientStatus::Pending => ("pending", false, false, false),
        ClientStatus::Running | ClientStatus::Unknown if ephemeral_prestart => {
            ("dead", false, true, true)
        }
        ClientStatus::Running | ClientStatus::Unknown if poststop => {
            ("pending", false, false, false)
        }
        ClientStatus::Running | ClientStatus::Unknown => ("running", false, true, false),
        ClientStatus::Complete | ClientStatus::Lost => ("dead", false, true, true),
        ClientStatus::Failed => ("dead", true, true, true),
    };
    Some(TaskState {
        state,
        failed,
        started_at: started.then_some(now),
        finished_at: finished.then_some(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_with_web() -> (Cluster, String) {
        let mut c = Cluster::new(7);
        let node = c.add_node(Node::new("n1"));
        c.register_job(
            Job::service("web").group(TaskGroup::new("api").task(Task::new("server", "docker"))),
        );
        (c, node)
    }

    #[test]
    fn placements_take_the_lowest_free_name_index() {
        let (mut c, node) = cluster_with_web();
        let a = c.place("default", "web", "api", &node);
        let b = c.place("default", "web", "api", &node);
        assert_eq!(c.allocation(&a).name, "web.api[0]");
        assert_eq!(c.allocation(&b).name, "web.api[1]");
    }

    #[test]
    fn replacement_keeps_the_name_and_links_both_allocations() {
        let (mut c, node) = cluster_with_web();
        let old = c.place("default", "web", "api", &node);
        let new = c.replace(&old, &node);
        assert_ne!(old, new);
        assert_eq!(c.allocation(&new).name, c.allocation(&old).name);
        assert_eq!(c.allocation(&old).next_allocation, new);
        assert_eq!(c.allocation(&new).previous_allocation, old);
        assert_eq!(c.allocation(&old).desired_status, "stop");
    }

    #[test]
    fn listing_index_goes_backwards_when_the_newest_allocation_is_collected() {
        let (mut c, node) = cluster_with_web();
        let a = c.place("default", "web", "api", &node);
        let b = c.place("default", "web", "api", &node);
        let before = c.node_allocations_index(&node);
        assert_eq!(before, c.allocation(&b).modify_index);
        c.gc(&b);
        assert_eq!(
            c.node_allocations_index(&node),
            c.allocation(&a).modify_index
        );
        assert!(c.node_allocations_index(&node) < before);
    }

    #[test]
    fn terminal_allocations_are_listed_after_live_ones() {
        let (mut c, node) = cluster_with_web();
        let ids: Vec<String> = (0..4)
            .map(|_| c.place("default", "web", "api", &node))
            .collect();
        c.set_client_status(&ids[0], ClientStatus::Complete);
        c.set_client_status(&ids[2], ClientStatus::Failed);
        let listed: Vec<&str> = c
            .node_allocations(&node)
            .iter()
            .map(|a| a.id.as_str())
            .collect();
        let mut live = vec![ids[1].as_str(), ids[3].as_str()];
        live.sort_unstable();
        let mut terminal = vec![ids[0].as_str(), ids[2].as_str()];
        terminal.sort_unstable();
        assert_eq!(listed, [live, terminal].concat());
    }

    #[test]
    fn periodic_children_carry_the_parent_id() {
        let mut c = Cluster::new(1);
        c.register_job(
            Job::batch("report")
                .periodic()
                .group(TaskGroup::new("g").task(Task::new("t", "exec"))),
        );
        let child = c.launch_periodic("default", "report", 1_700_000_000);
        assert_eq!(child, "report/periodic-1700000000");
        let job = c.job("default", &child).expect("child registered");
        assert_eq!(job.parent_id, "report");
        assert!(!job.periodic);
    }

    #[test]
    fn a_token_rule_for_a_namespace_overrides_the_wildcard() {
        let policy = Policy::default()
            .namespace("*", &["read-job"])
            .namespace("secret", &["list-jobs"]);
        assert!(policy.allows_namespace("default", "read-job"));
        assert!(!policy.allows_namespace("secret", "read-job"));
    }
}
