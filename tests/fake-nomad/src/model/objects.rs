//! The objects a cluster holds, with the builders scenarios use: nodes, jobs with their groups
//! and tasks, and allocations with the job version they run.

use std::collections::BTreeMap;

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

    /// The scenarios' usual job: the service `web`, one group `api` running one task `server`
    /// (docker).
    pub fn web() -> Job {
        Job::service("web").group(TaskGroup::new("api").task(Task::new("server", "docker")))
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
