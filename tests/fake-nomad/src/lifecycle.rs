//! A lifecycle script over the fake cluster, covering what a watcher meets in a real cluster: placement
//! (pending, no task states) → running (prestart done, sidecar and main running) → healthy →
//! stop → complete → garbage collection (no event); destructive updates on the same node;
//! periodic children; drains to another node; disconnects (`unknown`) and back. Tests and the
//! `fake-nomad --churn` mode drive it one random step at a time.

use std::collections::BTreeMap;

use crate::model::{ClientStatus, Cluster, Hook, Job, MessageType, Node, Task, TaskGroup};

/// What one step did, for callers that mirror it on disk or count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A new allocation was placed on a node.
    Placed {
        alloc_id: String,
        node_id: String,
    },
    /// The client started it.
    Started {
        alloc_id: String,
    },
    /// An update that changes no table column (health, restarts).
    Touched {
        alloc_id: String,
    },
    /// Stopped (desired stop, then complete).
    Stopped {
        alloc_id: String,
    },
    /// Replaced on the same node by a new version (a destructive update).
    Replaced {
        old: String,
        new: String,
    },
    /// Drained: stopped here, placed on another node.
    Drained {
        old: String,
        new: String,
    },
    /// The node lost contact (`unknown`) or came back (`running`).
    Disconnected {
        alloc_id: String,
    },
    Reconnected {
        alloc_id: String,
    },
    /// Garbage-collected by the server: no event.
    Collected {
        alloc_id: String,
    },
    Nothing,
}

impl Step {
    /// The allocation the step created or changed (the new one of a replacement or drain).
    pub fn alloc_id(&self) -> Option<&str> {
        match self {
            Step::Placed { alloc_id, .. }
            | Step::Started { alloc_id }
            | Step::Touched { alloc_id }
            | Step::Stopped { alloc_id }
            | Step::Disconnected { alloc_id }
            | Step::Reconnected { alloc_id }
            | Step::Collected { alloc_id } => Some(alloc_id),
            Step::Replaced { new, .. } | Step::Drained { new, .. } => Some(new),
            Step::Nothing => None,
        }
    }
}

/// Drives random lifecycle steps on the allocations of `node_id` (and places drained ones on
/// `other_node_id`).
pub struct Lifecycle {
    rng: fastrand::Rng,
    pub node_id: String,
    pub other_node_id: String,
    next_job: usize,
    launches: i64,
}

/// The job shapes the script registers: a service with lifecycle tasks and a Connect proxy, a
/// batch job, and a periodic parent.
fn job(number: usize) -> Job {
    let id = format!("churn-{number:04}");
    match number % 3 {
        0 => Job::service(&id).meta("team", "web").group(
            TaskGroup::new("app")
                .task(Task::new("migrate", "exec").lifecycle(Hook::Prestart, false))
                .task(Task::new("server", "docker"))
                .task(Task::connect_proxy(&id)),
        ),
        1 => Job::batch(&id).group(TaskGroup::new("work").task(Task::new("run", "raw_exec"))),
        _ => Job::batch(&id)
            .periodic()
            .group(TaskGroup::new("report").task(Task::new("report", "exec"))),
    }
}

impl Lifecycle {
    /// Sets up two nodes in `cluster` (the first one is the agent's) and returns the script.
    pub fn new(cluster: &mut Cluster, seed: u64) -> Lifecycle {
        let node_id = match &cluster.agent.client_node_id {
            Some(id) => id.clone(),
            None => {
                let id = cluster.add_node(Node::new("churn-node"));
                cluster.set_agent_node(&id);
                id
            }
        };
        let other_node_id = cluster.add_node(Node::new("churn-other"));
        Lifecycle {
            rng: fastrand::Rng::with_seed(seed),
            node_id,
            other_node_id,
            next_job: 0,
            launches: 0,
        }
    }

    fn on_node(cluster: &Cluster, node_id: &str) -> BTreeMap<String, (ClientStatus, &'static str)> {
        cluster
            .allocations
            .values()
            .filter(|a| a.node_id == node_id)
            .map(|a| (a.id.clone(), (a.client_status, a.desired_status)))
            .collect()
    }

    fn pick(&mut self, candidates: &[String]) -> Option<String> {
        (!candidates.is_empty()).then(|| candidates[self.rng.usize(..candidates.len())].clone())
    }

    /// Places a new allocation of a new job (or a periodic child) on the node.
    fn place(&mut self, cluster: &mut Cluster) -> Step {
        let number = self.next_job;
        self.next_job += 1;
        let job = job(number);
        let (namespace, job_id, group) = (
            job.namespace.clone(),
            job.id.clone(),
            job.groups[0].name.clone(),
        );
        let periodic = job.periodic;
        cluster.register_job(job);
        let job_id = if periodic {
            self.launches += 1;
            cluster.launch_periodic(&namespace, &job_id, 1_700_000_000 + self.launches)
        } else {
            job_id
        };
        let alloc_id = cluster.place(&namespace, &job_id, &group, &self.node_id);
        Step::Placed {
            alloc_id,
            node_id: self.node_id.clone(),
        }
    }

    /// One random step.
    pub fn step(&mut self, cluster: &mut Cluster) -> Step {
        let allocs = Lifecycle::on_node(cluster, &self.node_id);
        let with = |wanted: &dyn Fn(ClientStatus, &str) -> bool| -> Vec<String> {
            allocs
                .iter()
                .filter(|(_, (status, desired))| wanted(*status, desired))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let pending = with(&|s, d| s == ClientStatus::Pending && d == "run");
        let running = with(&|s, d| s == ClientStatus::Running && d == "run");
        let unknown = with(&|s, _| s == ClientStatus::Unknown);
        let finished = with(&|s, _| s.is_terminal());
        match self.rng.u8(..100) {
            0..=24 => self.place(cluster),
            25..=44 => match self.pick(&pending) {
                Some(alloc_id) => {
                    cluster.set_client_status(&alloc_id, ClientStatus::Running);
                    Step::Started { alloc_id }
                }
                None => self.place(cluster),
            },
            45..=59 => self.pick(&running).map_or(Step::Nothing, |alloc_id| {
                cluster.set_client_status(&alloc_id, ClientStatus::Running);
                Step::Touched { alloc_id }
            }),
            60..=69 => self.pick(&running).map_or(Step::Nothing, |alloc_id| {
                cluster.stop(&alloc_id);
                Step::Stopped { alloc_id }
            }),
            70..=74 => self.pick(&running).map_or(Step::Nothing, |old| {
                let alloc = cluster.allocation(&old);
                let job = cluster
                    .job(&alloc.namespace, &alloc.job.id)
                    .cloned()
                    .expect("the job of a running allocation");
                cluster.register_job(job);
                let new = cluster.replace(&old, &self.node_id);
                Step::Replaced { old, new }
            }),
            75..=78 => self.pick(&running).map_or(Step::Nothing, |old| {
                // The drainer marks the allocation for migration first.
                cluster.commit(
                    MessageType::AllocationUpdateDesiredStatus,
                    std::slice::from_ref(&old),
                );
                let new = cluster.replace(&old, &self.other_node_id.clone());
                cluster.set_client_status(&old, ClientStatus::Complete);
                Step::Drained { old, new }
            }),
            79..=81 => self.pick(&running).map_or(Step::Nothing, |alloc_id| {
                cluster.set_client_status(&alloc_id, ClientStatus::Unknown);
                Step::Disconnected { alloc_id }
            }),
            82..=84 => self.pick(&unknown).map_or(Step::Nothing, |alloc_id| {
                cluster.set_client_status(&alloc_id, ClientStatus::Running);
                Step::Reconnected { alloc_id }
            }),
            _ => self.pick(&finished).map_or(Step::Nothing, |alloc_id| {
                cluster.gc(&alloc_id);
                Step::Collected { alloc_id }
            }),
        }
    }
}

/// Churn over a whole cluster: each step happens on a node picked at random (drains go to
/// another random node), so that a watcher of one node sees the other nodes' events on the
/// stream, as in a real cluster of many clients.
pub struct ClusterChurn {
    script: Lifecycle,
    nodes: Vec<String>,
}

impl ClusterChurn {
    /// Churn over the nodes `cluster` has now (at least one).
    pub fn new(cluster: &Cluster, seed: u64) -> ClusterChurn {
        let nodes: Vec<String> = cluster.nodes.keys().cloned().collect();
        assert!(!nodes.is_empty(), "cluster churn needs a node");
        ClusterChurn {
            script: Lifecycle {
                rng: fastrand::Rng::with_seed(seed),
                node_id: nodes[0].clone(),
                other_node_id: nodes[nodes.len() - 1].clone(),
                next_job: 0,
                launches: 0,
            },
            nodes,
        }
    }

    /// One random step on a random node.
    pub fn step(&mut self, cluster: &mut Cluster) -> Step {
        let pick = self.script.rng.usize(..self.nodes.len());
        let other = self.script.rng.usize(..self.nodes.len());
        self.script.node_id = self.nodes[pick].clone();
        self.script.other_node_id = self.nodes[other].clone();
        self.script.step(cluster)
    }
}

/// Mirrors steps on disk the way a Nomad client lays out allocation directories:
/// `<root>/<alloc_id>/alloc/logs/<task>.{stdout,stderr}.0` for every task of allocations on the
/// node, a line appended to the main log when a task runs, and the directory removed when the
/// allocation is collected.
pub struct DiskMirror {
    pub root: std::path::PathBuf,
}

impl DiskMirror {
    /// Applies a step; call it after the step, outside the cluster lock.
    pub fn apply(&self, step: &Step, cluster: &Cluster) -> std::io::Result<()> {
        match step {
            Step::Placed { alloc_id, .. } | Step::Replaced { new: alloc_id, .. } => {
                self.create(alloc_id, cluster)
            }
            Step::Started { alloc_id } | Step::Reconnected { alloc_id } => {
                self.log_line(alloc_id, cluster)
            }
            Step::Collected { alloc_id } => match std::fs::remove_dir_all(self.root.join(alloc_id))
            {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn tasks(alloc_id: &str, cluster: &Cluster) -> Vec<String> {
        cluster
            .allocations
            .get(alloc_id)
            .and_then(|a| a.job.task_group(&a.task_group))
            .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default()
    }

    fn create(&self, alloc_id: &str, cluster: &Cluster) -> std::io::Result<()> {
        let logs = self.root.join(alloc_id).join("alloc").join("logs");
        std::fs::create_dir_all(&logs)?;
        for task in DiskMirror::tasks(alloc_id, cluster) {
            std::fs::create_dir_all(self.root.join(alloc_id).join(&task).join("local"))?;
            for stream in ["stdout", "stderr"] {
                std::fs::write(logs.join(format!("{task}.{stream}.0")), b"")?;
            }
        }
        Ok(())
    }

    fn log_line(&self, alloc_id: &str, cluster: &Cluster) -> std::io::Result<()> {
        use std::io::Write;
        let logs = self.root.join(alloc_id).join("alloc").join("logs");
        for task in DiskMirror::tasks(alloc_id, cluster) {
            let path = logs.join(format!("{task}.stdout.0"));
            if path.exists() {
                let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
                writeln!(file, "{task} of {alloc_id} is running")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_covers_every_kind_of_step() {
        let mut cluster = Cluster::new(1);
        let mut script = Lifecycle::new(&mut cluster, 4);
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..2_000 {
            let step = script.step(&mut cluster);
            kinds.insert(std::mem::discriminant(&step));
        }
        assert_eq!(kinds.len(), 10, "every kind of step, Nothing included");
        assert!(
            cluster
                .allocations
                .values()
                .any(|a| !a.job.parent_id.is_empty())
        );
    }

    #[test]
    fn cluster_churn_spreads_over_every_node() {
        let mut cluster = Cluster::new(1);
        let nodes: Vec<String> = (0..5)
            .map(|i| cluster.add_node(Node::new(&format!("n{i}"))))
            .collect();
        let mut churn = ClusterChurn::new(&cluster, 3);
        for _ in 0..500 {
            churn.step(&mut cluster);
        }
        for node in &nodes {
            assert!(
                cluster.allocations.values().any(|a| &a.node_id == node),
                "{node} got no allocation"
            );
        }
    }

    #[test]
    fn the_disk_mirror_lays_out_allocation_directories() {
        let mut cluster = Cluster::new(1);
        let mut script = Lifecycle::new(&mut cluster, 4);
        let dir = std::env::temp_dir().join(format!("fake-nomad-mirror-{}", std::process::id()));
        let mirror = DiskMirror { root: dir.clone() };
        let placed = script.place(&mut cluster);
        mirror.apply(&placed, &cluster).expect("mirrored");
        let Step::Placed { alloc_id, .. } = placed else {
            unreachable!("placed")
        };
        assert!(
            dir.join(&alloc_id)
                .join("alloc/logs/server.stdout.0")
                .exists()
        );
        assert!(
            dir.join(&alloc_id)
                .join("alloc/logs/connect-proxy-churn-0000.stderr.0")
                .exists()
        );
        cluster.stop(&alloc_id);
        let collected = Step::Collected {
            alloc_id: alloc_id.clone(),
        };
        cluster.gc(&alloc_id);
        mirror.apply(&collected, &cluster).expect("removed");
        assert!(!dir.join(&alloc_id).exists());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
