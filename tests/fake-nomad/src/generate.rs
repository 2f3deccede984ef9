//! A generated cluster for the `fake-nomad` binary and the benchmarks: a mix of service, batch,
//! periodic, dispatched and system jobs with lifecycle tasks, Connect proxies and meta, spread
//! over a number of nodes, with allocations in every client status. Seeded, so the same flags
//! give the same cluster.

use crate::model::{ClientStatus, Cluster, Hook, Job, Node, Task, TaskGroup};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Shape {
    pub allocations: usize,
    pub nodes: usize,
    pub seed: u64,
}

const NAMESPACES: [&str; 3] = ["default", "payments", "platform"];
const DRIVERS: [&str; 4] = ["docker", "exec", "raw_exec", "java"];

/// Builds a cluster with `shape.allocations` allocations spread round-robin over
/// `shape.nodes` nodes. The agent is a client of the first node.
pub fn cluster(shape: &Shape) -> Cluster {
    let mut cluster = Cluster::new(shape.seed);
    let mut rng = fastrand::Rng::with_seed(shape.seed);
    let nodes: Vec<String> = (0..shape.nodes.max(1))
        .map(|i| {
            let dc = if i % 2 == 0 { "dc1" } else { "dc2" };
            cluster.add_node(Node::new(&format!("client-{i:03}")).datacenter(dc))
        })
        .collect();
    cluster.set_agent_node(&nodes[0]);
    let mut placed = 0;
    let mut job_number = 0;
    while placed < shape.allocations {
        let namespace = NAMESPACES[job_number % NAMESPACES.len()];
        let kind = job_number % 5;
        let job_id = format!("app-{job_number:04}");
        let driver = DRIVERS[rng.usize(..DRIVERS.len())];
        let mut group = TaskGroup::new("main")
            .meta("team", &format!("team-{}", job_number % 7))
            .task(Task::new("server", driver).meta("version", &format!("1.{}", rng.u8(..20))));
        if kind == 0 {
            group = group
                .task(Task::new("migrate", "exec").lifecycle(Hook::Prestart, false))
                .task(Task::connect_proxy(&job_id));
        }
        if kind == 3 {
            group =
                group.task(Task::new("log-forwarder", "docker").lifecycle(Hook::Prestart, true));
        }
        let job = match kind {
            1 => Job::batch(&job_id),
            2 => Job::batch(&job_id).periodic(),
            _ => Job::service(&job_id),
        }
        .namespace(namespace)
        .meta("owner", "generated")
        .group(group);
        cluster.register_job(job);
        let job_id = if kind == 2 {
            cluster.launch_periodic(namespace, &job_id, 1_700_000_000 + job_number as i64)
        } else {
            job_id
        };
        let count = 1 + rng.usize(..4);
        for _ in 0..count.min(shape.allocations - placed) {
            let node = &nodes[placed % nodes.len()];
            let id = cluster.place(namespace, &job_id, "main", node);
            let status = match rng.u8(..20) {
                0 => ClientStatus::Pending,
                1 => ClientStatus::Complete,
                2 => ClientStatus::Failed,
                3 => ClientStatus::Lost,
                4 => ClientStatus::Unknown,
                _ => ClientStatus::Running,
            };
            cluster.set_client_status(&id, status);
            placed += 1;
        }
        job_number += 1;
    }
    cluster
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_the_requested_number_of_allocations_repeatably() {
        let shape = Shape {
            allocations: 57,
            nodes: 3,
            seed: 9,
        };
        let a = cluster(&shape);
        let b = cluster(&shape);
        assert_eq!(a.allocations.len(), 57);
        let ids_a: Vec<_> = a.allocations.keys().collect();
        let ids_b: Vec<_> = b.allocations.keys().collect();
        assert_eq!(ids_a, ids_b);
        assert_eq!(a.nodes.len(), 3);
        assert!(a.agent.client_node_id.is_some());
    }
}
