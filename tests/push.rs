//! `run --scope cluster --memory-table-url`: changes pushed into a stand-in of Vector's memory
//! table, the file a base. What Vector would answer is the two-step lookup of
//! vector/aggregator-cluster-push.yaml: the memory table's row, none for a tombstone, else the
//! file's row. After placements, in-place updates, collections and restarts of the stand-in,
//! that answer must be what a fresh `dump` of the cluster says, for every key.

use std::collections::BTreeMap;

use fake_nomad::{Cluster, FakeNomad, Job, Node, Task, TaskGroup};
use serde_json::Value;

use crate::util::daemon::Daemon;
use crate::util::memory_table::MemoryTable;
use crate::util::{Row, dump_rows, metrics};

/// Two nodes; `web` (server and log-shipper) placed on each. Returns the node IDs.
fn cluster() -> (Cluster, Vec<String>) {
    let mut cluster = Cluster::new(19);
    let nodes: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| cluster.add_node(Node::new(&format!("client-{n}")).datacenter(&format!("dc-{n}"))))
        .collect();
    cluster.register_job(
        Job::service("web").group(
            TaskGroup::new("api")
                .task(Task::new("server", "docker"))
                .task(Task::new("shipper", "exec")),
        ),
    );
    for node in &nodes {
        cluster.place("default", "web", "api", node);
    }
    (cluster, nodes)
}

/// `run` pushing to `memory`, with a base interval of an hour (the file is published once, at
/// start) and a grace of one second.
fn start(fake: &FakeNomad, memory: &MemoryTable) -> Daemon {
    let url = memory.url();
    Daemon::start_observed(
        fake,
        &[
            "--scope",
            "cluster",
            "--memory-table-url",
            &url,
            "--base-interval",
            "1h",
            "--grace",
            "1s",
        ],
    )
}

/// Requests to the memory table so far with `outcome` (`acknowledged` or `failed`).
fn requests(daemon: &Daemon, outcome: &str) -> f64 {
    metrics::total(
        &daemon.scrape(),
        "nomad_alloc_table_memory_table_requests_total",
        &[("outcome", outcome)],
    )
}

/// What Vector's two-step lookup answers for a key.
fn lookup(memory: &MemoryTable, file: &[Row], alloc_id: &str, task: &str) -> Option<Row> {
    match memory.get(&format!("{alloc_id}/{task}")) {
        Some(value) if value.get("removed") == Some(&Value::Bool(true)) => None,
        Some(Value::Object(object)) => Some(
            object
                .into_iter()
                .filter(|(name, _)| name != "ttl")
                .map(|(name, v)| (name, v.as_str().expect("every column a string").to_owned()))
                .collect(),
        ),
        Some(other) => panic!("not an object: {other}"),
        None => file
            .iter()
            .find(|r| r["alloc_id"] == alloc_id && r["task"] == task)
            .cloned(),
    }
}

/// Whether lookups of every key of a fresh dump, and of `gone` keys, answer as the model:
/// the dump's row, and nothing for what is gone.
fn agrees(
    fake: &FakeNomad,
    memory: &MemoryTable,
    daemon: &Daemon,
    gone: &[(String, String)],
) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dump_rows(
        fake.address(),
        &dir.path().join("now.csv"),
        &["--scope", "cluster"],
    );
    let file = daemon.rows();
    model
        .iter()
        .all(|row| lookup(memory, &file, &row["alloc_id"], &row["task"]).as_ref() == Some(row))
        && gone
            .iter()
            .all(|(alloc, task)| lookup(memory, &file, alloc, task).is_none())
}

fn keys_of(alloc_id: &str) -> Vec<(String, String)> {
    ["server", "shipper"]
        .iter()
        .map(|t| (alloc_id.to_owned(), (*t).to_owned()))
        .collect()
}

#[test]
fn changes_reach_the_memory_table_while_the_file_stays_the_base() {
    let (cluster, nodes) = cluster();
    let fake = FakeNomad::start(cluster);
    let memory = MemoryTable::start();
    let daemon = start(&fake, &memory);
    daemon.wait_until("the base file and the memory table", || {
        daemon.rows().len() == 4 && memory.keys() == 4
    });
    let base = std::fs::read(&daemon.table).expect("the base");
    let publishes = daemon.publishes();
    let placed = fake.update(|c| c.place("default", "web", "api", &nodes[1]));
    daemon.wait_until("the placement in the memory table", || {
        agrees(&fake, &memory, &daemon, &[])
    });
    let collected = fake.read(|c| {
        c.allocations
            .keys()
            .find(|id| **id != placed)
            .cloned()
            .expect("another allocation")
    });
    fake.update(|c| {
        c.update_in_place(&placed, |job| {
            job.meta.insert("team".to_owned(), "payments".to_owned());
        })
    });
    fake.update(|c| {
        c.stop(&collected);
        c.gc(&collected);
    });
    // A listing sees the collection; its rows go after the grace, as tombstones.
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_until("the update and the collection in the memory table", || {
        agrees(&fake, &memory, &daemon, &keys_of(&collected))
    });
    assert_eq!(
        std::fs::read(&daemon.table).expect("the base"),
        base,
        "the file is the base: not rewritten for changes"
    );
    assert_eq!(daemon.publishes(), publishes, "no publish since the base");
    memory.scan();
    let tombstone = memory
        .get(&format!("{collected}/server"))
        .expect("a tombstone outlives Vector's scan");
    assert_eq!(tombstone["removed"], Value::Bool(true));
    assert!(requests(&daemon, "acknowledged") >= 3.0);
    let scrape = daemon.scrape();
    assert_eq!(
        metrics::total(&scrape, "nomad_alloc_table_memory_table_queue_rows", &[]),
        0.0
    );
    assert_eq!(
        metrics::total(
            &scrape,
            "nomad_alloc_table_memory_table_full_pushes_total",
            &[("reason", "start")]
        ),
        1.0
    );
}

/// A full push of more rows than a request carries (2,000 keys) goes part by part, each made
/// when the sender has taken the last, and every row arrives, at start and after Vector
/// restarts.
#[test]
fn a_full_push_larger_than_a_request_goes_in_parts_and_every_row_arrives() {
    let (mut cluster, nodes) = cluster();
    for i in 0..2_600 {
        cluster.place("default", "web", "api", &nodes[i % 2]);
    }
    let fake = FakeNomad::start(cluster);
    let mut memory = MemoryTable::start();
    let daemon = start(&fake, &memory);
    let rows = 2 * 2_602;
    daemon.wait_until("every row in the memory table", || {
        memory.keys() == rows && agrees(&fake, &memory, &daemon, &[])
    });
    assert!(requests(&daemon, "acknowledged") >= 2.0, "in parts");
    memory.stop();
    fake.update(|c| c.place("default", "web", "api", &nodes[0]));
    daemon.wait_until("a push refused", || requests(&daemon, "failed") >= 1.0);
    memory.restart();
    let before = requests(&daemon, "acknowledged");
    daemon.wait_until("every row in the restarted memory table", || {
        memory.keys() == rows + 2 && agrees(&fake, &memory, &daemon, &[])
    });
    assert!(
        requests(&daemon, "acknowledged") - before >= 2.0,
        "in parts again"
    );
}

/// A restarted Vector has an empty memory table and loads the base file as it was: the rows
/// collected since that base (their tombstones went with the old table) must not label again.
#[test]
fn a_restarted_vector_gets_a_new_base_and_everything_and_nothing_is_lost_meanwhile() {
    let (cluster, nodes) = cluster();
    let fake = FakeNomad::start(cluster);
    let mut memory = MemoryTable::start();
    let daemon = start(&fake, &memory);
    daemon.wait_until("the memory table filled", || memory.keys() == 4);
    let collected = fake.read(|c| c.allocations.keys().next().cloned().expect("one"));
    fake.update(|c| {
        c.stop(&collected);
        c.gc(&collected);
    });
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_until("the collection's tombstones", || {
        memory
            .get(&format!("{collected}/server"))
            .is_some_and(|v| v["removed"] == Value::Bool(true))
    });
    assert!(
        daemon.rows().iter().any(|r| r["alloc_id"] == collected),
        "the base file still holds it"
    );
    memory.stop();
    let placed = fake.update(|c| c.place("default", "web", "api", &nodes[0]));
    daemon.wait_until("a push refused", || requests(&daemon, "failed") >= 1.0);
    memory.restart();
    daemon.wait_until("everything in the restarted memory table", || {
        memory.keys() == 4 && agrees(&fake, &memory, &daemon, &keys_of(&collected))
    });
    assert!(memory.get(&format!("{placed}/server")).is_some());
    assert_eq!(
        metrics::total(
            &daemon.scrape(),
            "nomad_alloc_table_memory_table_full_pushes_total",
            &[("reason", "back")]
        ),
        1.0
    );
    assert!(
        daemon.log().contains("Vector's memory table answers again"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_start_before_vector_publishes_the_base_and_delivers_once_vector_answers() {
    let (cluster, _) = cluster();
    let fake = FakeNomad::start(cluster);
    let mut memory = MemoryTable::start();
    memory.stop();
    let daemon = start(&fake, &memory);
    daemon.wait_until("the base file", || daemon.rows().len() == 4);
    memory.restart();
    daemon.wait_until("the memory table filled", || memory.keys() == 4);
    let rows: BTreeMap<String, Row> = daemon
        .rows()
        .into_iter()
        .map(|r| (format!("{}/{}", r["alloc_id"], r["task"]), r))
        .collect();
    for (key, row) in rows {
        let value = memory.get(&key).expect("pushed");
        assert_eq!(value["namespace"], row["namespace"]);
        assert_eq!(value["ttl"], 7260, "live rows outlive two base intervals");
    }
}

/// Seeded sequences of placements, in-place updates, collections and restarts of the stand-in:
/// after each, once the debounce has passed, the memory table plus the base file answer every
/// lookup as a fresh dump does, and nothing collected labels again.
#[test]
fn any_sequence_of_changes_and_vector_restarts_keeps_the_lookups_exact() {
    for seed in [1, 2] {
        let (cluster, nodes) = cluster();
        let fake = FakeNomad::start(cluster);
        let mut memory = MemoryTable::start();
        let daemon = start(&fake, &memory);
        daemon.wait_until("the memory table filled", || memory.keys() == 4);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut gone: Vec<(String, String)> = Vec::new();
        let mut trace = Vec::new();
        for _ in 0..8 {
            let live: Vec<String> = fake.read(|c| c.allocations.keys().cloned().collect());
            let op = if live.len() < 2 { 0 } else { rng.usize(0..4) };
            match op {
                0 => {
                    let node = &nodes[rng.usize(0..nodes.len())];
                    let id = fake.update(|c| c.place("default", "web", "api", node));
                    trace.push(format!("place {id}"));
                }
                1 => {
                    let id = live[rng.usize(0..live.len())].clone();
                    let version = rng.u32(..).to_string();
                    fake.update(|c| {
                        c.update_in_place(&id, |job| {
                            job.meta.insert("version".to_owned(), version);
                        });
                    });
                    trace.push(format!("update {id}"));
                }
                2 => {
                    let id = live[rng.usize(0..live.len())].clone();
                    fake.update(|c| {
                        c.stop(&id);
                        c.gc(&id);
                    });
                    daemon.signal(rustix::process::Signal::HUP);
                    gone.extend(keys_of(&id));
                    trace.push(format!("collect {id}"));
                }
                _ => {
                    let failed_before = requests(&daemon, "failed");
                    memory.stop();
                    let node = &nodes[rng.usize(0..nodes.len())];
                    let id = fake.update(|c| c.place("default", "web", "api", node));
                    daemon.wait_until("a push refused", || {
                        requests(&daemon, "failed") > failed_before
                    });
                    memory.restart();
                    trace.push(format!("vector restarted, place {id} meanwhile"));
                }
            }
            daemon.wait_until(
                &format!("seed {seed}: lookups as the model after {trace:?}"),
                || agrees(&fake, &memory, &daemon, &gone),
            );
        }
    }
}

/// The memory table outlives the exporter: what a new run does not hold of the previous run's
/// table must be tombstoned, not left to its TTL.
#[test]
fn a_restarted_exporter_tombstones_what_was_collected_while_it_was_down() {
    let (cluster, _) = cluster();
    let fake = FakeNomad::start(cluster);
    let memory = MemoryTable::start();
    let daemon = start(&fake, &memory);
    daemon.wait_until("the memory table filled", || memory.keys() == 4);
    let dir = daemon.kill();
    let collected = fake.read(|c| c.allocations.keys().next().cloned().expect("one"));
    fake.update(|c| {
        c.stop(&collected);
        c.gc(&collected);
    });
    let url = memory.url();
    let daemon = Daemon::start_in(
        dir,
        &fake,
        &[
            "--scope",
            "cluster",
            "--memory-table-url",
            &url,
            "--base-interval",
            "1h",
        ],
    );
    daemon.wait_until("the collected allocation's tombstones", || {
        agrees(&fake, &memory, &daemon, &keys_of(&collected))
    });
}

/// `check --scope cluster --memory-table-url`: the source answers, or the line says what to do.
#[test]
fn check_probes_the_memory_table_without_writing_to_it() {
    let (cluster, _) = cluster();
    let fake = FakeNomad::start(cluster);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut memory = MemoryTable::start();
    let url = memory.url();
    let check = |code: i32| {
        let output = crate::util::bin_at(fake.address())
            .args([
                "check",
                "--scope",
                "cluster",
                "--memory-table-url",
                &url,
                "-o",
            ])
            .arg(dir.path().join("cluster.csv"))
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        String::from_utf8(output).expect("utf8")
    };
    let report = check(0);
    assert!(
        report.contains("✓ Vector's memory table answers"),
        "{report}"
    );
    assert_eq!(memory.keys(), 0, "the probe writes nothing");
    memory.stop();
    let report = check(1);
    let line = report
        .lines()
        .find(|l| l.contains("Vector's memory table answers"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.starts_with('✗'), "{line}");
    assert!(
        line.contains("vector/aggregator-cluster-push.yaml"),
        "{line}"
    );
}
