//! `--scope cluster`: one table of every allocation of the cluster for a Vector aggregator,
//! each row with its own node's columns, from `/v1/allocations` (pages of stubs), a job cache
//! filled with one fetch per job version, `/v1/nodes` and the Node topic of the event stream.

use fake_nomad::{Cluster, FakeNomad, Hook, Job, Node, Task, TaskGroup};

use crate::util::daemon::Daemon;
use crate::util::{bin_at, dump_rows, fake_and_dir, stdout_of};

/// Three nodes in three datacenters, none of them the agent's; the job `web` (a server and a
/// prestart task) placed once on each. Returns the node IDs in order.
fn three_node_cluster() -> (Cluster, Vec<String>) {
    let mut cluster = Cluster::new(7);
    let nodes: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| cluster.add_node(Node::new(&format!("client-{n}")).datacenter(&format!("dc-{n}"))))
        .collect();
    cluster.register_job(
        Job::service("web").group(
            TaskGroup::new("api")
                .task(Task::new("server", "docker"))
                .task(Task::new("init", "exec").lifecycle(Hook::Prestart, false)),
        ),
    );
    for node in &nodes {
        cluster.place("default", "web", "api", node);
    }
    (cluster, nodes)
}

/// `run --scope cluster`, with its metrics (they count the listings it applies).
fn start(fake: &FakeNomad, extra: &[&str]) -> Daemon {
    let mut args = vec!["--scope", "cluster"];
    args.extend_from_slice(extra);
    Daemon::start_observed(fake, &args)
}

/// [`three_node_cluster`] served, and `run --scope cluster` with `extra` flags once it has
/// published its six rows.
fn following(extra: &[&str]) -> (FakeNomad, Vec<String>, Daemon) {
    let (cluster, nodes) = three_node_cluster();
    let fake = FakeNomad::start(cluster);
    let daemon = start(&fake, extra);
    daemon.wait_until("six rows", || daemon.rows().len() == 6);
    (fake, nodes, daemon)
}

fn requests_to(fake: &FakeNomad, prefix: &str) -> Vec<fake_nomad::RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .collect()
}

#[test]
fn every_nodes_rows_have_their_own_node_columns_and_placements_anywhere_arrive() {
    let (fake, nodes, daemon) = following(&[]);
    for (i, node) in nodes.iter().enumerate() {
        let name = ["a", "b", "c"][i];
        let rows: Vec<_> = daemon
            .rows()
            .into_iter()
            .filter(|r| r["node_id"] == *node)
            .collect();
        assert_eq!(rows.len(), 2, "server and init on {node}");
        for row in rows {
            assert_eq!(row["node_name"], format!("client-{name}"));
            assert_eq!(row["datacenter"], format!("dc-{name}"));
            assert_eq!(row["job_id"], "web");
        }
    }
    // A placement on any node: pending, no task states yet, and still both rows at once.
    let placed = fake.update(|c| c.place("default", "web", "api", &nodes[1]));
    daemon.wait_for_alloc(&placed);
    let rows: Vec<_> = daemon
        .rows()
        .into_iter()
        .filter(|r| r["alloc_id"] == placed)
        .collect();
    let tasks: Vec<&str> = rows.iter().map(|r| r["task"].as_str()).collect();
    assert_eq!(tasks, ["init", "server"]);
    assert_eq!(rows[0]["datacenter"], "dc-b");
    assert_eq!(rows[0]["task_lifecycle"], "prestart");
    // One subscriber for the cluster: allocations and nodes, no per-node listing.
    let streams = requests_to(&fake, "/v1/event/stream");
    assert!(!streams.is_empty());
    assert!(
        streams
            .iter()
            .all(|r| r.query.contains("topic=Allocation") && r.query.contains("topic=Node")),
        "{streams:?}"
    );
    assert!(requests_to(&fake, "/v1/node/").is_empty());
}

#[test]
fn a_node_that_leaves_keeps_its_rows_for_the_grace_period_then_they_go() {
    let (fake, nodes, daemon) = following(&["--grace", "4s", "--resync-interval", "1s"]);
    let leaving = nodes[2].clone();
    let lost: Vec<String> = fake.update(|c| {
        c.node_down(&leaving);
        let lost: Vec<String> = c
            .allocations
            .values()
            .filter(|a| a.node_id == leaving)
            .map(|a| a.id.clone())
            .collect();
        for id in &lost {
            c.gc(id);
        }
        c.deregister_node(&leaving);
        lost
    });
    assert_eq!(lost.len(), 1);
    // A listing after the collection has seen the allocation gone: its rows are in grace, with
    // the node columns of a node Nomad no longer lists.
    let listings = daemon.listings();
    daemon.wait_until("two listings after the collection", || {
        daemon.listings() >= listings + 2.0
    });
    let rows = daemon.rows();
    let kept: Vec<_> = rows.iter().filter(|r| r["alloc_id"] == lost[0]).collect();
    assert_eq!(kept.len(), 2, "rows stay during the grace period");
    assert_eq!(kept[0]["datacenter"], "dc-c");
    daemon.wait_until("the lost allocation's rows to go", || {
        !daemon.alloc_ids().contains(&lost[0])
    });
    assert_eq!(daemon.rows().len(), 4, "the other nodes' rows stay");
}

#[test]
fn a_job_version_is_fetched_once_for_all_its_allocations() {
    let (mut cluster, nodes) = three_node_cluster();
    for node in nodes.iter().cycle().take(5) {
        cluster.place("default", "web", "api", node);
    }
    // A new version with new meta, and allocations of it.
    let old_job = cluster.job("default", "web").expect("web").clone();
    cluster.register_job(old_job.meta("team", "blue"));
    for node in nodes.iter().cycle().take(4) {
        cluster.place("default", "web", "api", node);
    }
    let fake = FakeNomad::start(cluster);
    let daemon = start(&fake, &["--meta", "team"]);
    daemon.wait_until("all rows", || daemon.rows().len() == 2 * 12);
    let versions: std::collections::BTreeMap<String, usize> =
        daemon
            .rows()
            .into_iter()
            .fold(Default::default(), |mut counts, row| {
                *counts
                    .entry(format!("{}:{}", row["job_version"], row["meta_team"]))
                    .or_default() += 1;
                counts
            });
    assert_eq!(
        versions,
        [("0:".to_owned(), 16), ("1:blue".to_owned(), 8)].into()
    );
    assert_eq!(
        requests_to(&fake, "/v1/allocation/").len(),
        2,
        "one fetch per job version, not per allocation"
    );
    // A resync with no new version fetches nothing.
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_until("the SIGHUP listing", || {
        daemon.listings_for("signal") >= 1.0
    });
    assert_eq!(requests_to(&fake, "/v1/allocation/").len(), 2);
}

#[test]
fn the_listing_pages_through_every_allocation() {
    let (mut cluster, nodes) = three_node_cluster();
    cluster.place("default", "web", "api", &nodes[0]);
    cluster.place("default", "web", "api", &nodes[1]);
    let (fake, dir) = fake_and_dir(cluster);
    let table = dir.path().join("cluster.csv");
    let rows = dump_rows(
        fake.address(),
        &table,
        &["--scope", "cluster", "--page-size", "2"],
    );
    assert_eq!(rows.len(), 10, "five allocations of two tasks");
    let pages = requests_to(&fake, "/v1/allocations");
    assert_eq!(pages.len(), 3, "pages of 2, 2 and 1: {pages:?}");
    assert!(pages.iter().all(|p| p.query.contains("per_page=2")));
    assert_eq!(
        pages
            .iter()
            .filter(|p| p.query.contains("next_token="))
            .count(),
        2
    );
    assert_eq!(
        requests_to(&fake, "/v1/allocation/").len(),
        1,
        "one job version, fetched once though its allocations span three pages"
    );
    // print-table shows exactly what dump wrote.
    let print_table = ["print-table", "--scope", "cluster", "--format", "csv"];
    let printed = stdout_of(bin_at(fake.address()).args(print_table));
    assert_eq!(printed, std::fs::read(&table).expect("table"));
}

#[test]
fn a_node_event_changes_its_rows_without_a_resync() {
    let (fake, nodes, daemon) = following(&[]);
    let listings = daemon.listings();
    assert!(listings >= 1.0, "the first listing is counted");
    // The node re-registers in another datacenter (a client restarted with a new config).
    fake.update(|c| c.add_node(Node::new("client-a").id(&nodes[0]).datacenter("dc-moved")));
    daemon.wait_until("the moved node's rows", || {
        daemon
            .rows()
            .iter()
            .filter(|r| r["node_id"] == nodes[0])
            .all(|r| r["datacenter"] == "dc-moved")
    });
    assert_eq!(daemon.listings(), listings, "the Node event did it");
}

#[test]
fn node_scope_options_are_refused() {
    let fake = FakeNomad::start(three_node_cluster().0);
    bin_at(fake.address())
        .args([
            "dump",
            "--scope",
            "cluster",
            "--node-id",
            "n1",
            "-o",
            "/tmp/x.csv",
        ])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "--node-id only applies with --scope node",
        ));
}
