//! How long `run` takes to heal from each fault, with the operator defaults (no timing flag):
//! the time from the end of the fault (or from the placement made during it) to the
//! allocation's row in the published table. `cargo bench --bench faults`; results go in
//! BENCHMARKS.md and the README's failure handling. Faults that heal only through the resync
//! interval and the grace period (a collection without an event) are not timed: their cost is
//! those two settings.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fake_nomad::{Cluster, FakeNomad, Fault, Job, Node, Policy, StreamFault, Task, TaskGroup};

mod common;

use common::launch;

/// A cluster with one node running one allocation of `web`.
fn cluster() -> (Cluster, String) {
    let mut cluster = Cluster::new(42);
    let node = cluster.add_node(Node::new("client-1"));
    cluster.set_agent_node(&node);
    cluster.register_job(
        Job::service("web").group(TaskGroup::new("api").task(Task::new("server", "docker"))),
    );
    cluster.place("default", "web", "api", &node);
    (cluster, node)
}

struct Run {
    child: Child,
    table: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    fn start(fake: &FakeNomad, extra: &[&str]) -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = dir.path().join("allocs.csv");
        std::fs::create_dir_all(dir.path().join("alloc")).expect("alloc dir");
        let child = launch::command()
            .env("NOMAD_ADDR", fake.address())
            .env("RUST_LOG", "error")
            .args(["run", "-o"])
            .arg(&table)
            .arg("--alloc-dir")
            .arg(dir.path().join("alloc"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run");
        Run {
            child,
            table,
            _dir: dir,
        }
    }

    fn alloc_ids(&self) -> BTreeSet<String> {
        ids(&self.table)
    }

    /// Waits for `id` in the table; returns when it appeared, measured from `since`.
    fn time_to_row(&self, id: &str, since: Instant) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(240);
        while !self.alloc_ids().contains(id) {
            assert!(Instant::now() < deadline, "{id} never reached the table");
            std::thread::sleep(Duration::from_millis(5));
        }
        since.elapsed()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ids(table: &Path) -> BTreeSet<String> {
    let Ok(bytes) = std::fs::read(table) else {
        return BTreeSet::new();
    };
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    reader
        .records()
        .filter_map(Result::ok)
        .map(|r| r[0].to_owned())
        .collect()
}

fn first(fake: &FakeNomad) -> String {
    fake.read(|c| c.allocations.keys().next().expect("one").clone())
}

/// A started `run` with its first table published.
fn started(fake: &FakeNomad, extra: &[&str]) -> Run {
    let run = Run::start(fake, extra);
    run.time_to_row(&first(fake), Instant::now());
    // Past the first heartbeat: the stream is healthy.
    std::thread::sleep(Duration::from_millis(500));
    run
}

fn place(fake: &FakeNomad, node: &str) -> String {
    fake.update(|c| c.place("default", "web", "api", node))
}

fn report(fault: &str, measured_from: &str, took: Duration) {
    println!(
        "{fault:<52} {measured_from:<28} {:>8.2} s",
        took.as_secs_f64()
    );
}

fn main() {
    println!(
        "{:<52} {:<28} {:>10}",
        "fault", "measured from", "to the row"
    );

    // Nomad down at start for 20 s (every request 500), then back.
    let (c, _node) = cluster();
    let fake = FakeNomad::start(c);
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    let run = Run::start(&fake, &[]);
    std::thread::sleep(Duration::from_secs(20));
    fake.set_fault(None);
    let back = Instant::now();
    report(
        "Nomad down for 20 s at start",
        "its return",
        run.time_to_row(&first(&fake), back),
    );
    drop(run);

    // A 5xx burst of 20 s mid-run, with a placement during it.
    let (c, node) = cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    fake.update(|c| c.restart_server(|_| {}));
    let during = place(&fake, &node);
    std::thread::sleep(Duration::from_secs(20));
    fake.set_fault(None);
    let back = Instant::now();
    report(
        "5xx for 20 s mid-run",
        "its end",
        run.time_to_row(&during, back),
    );
    drop(run);

    // The stream cut mid-frame.
    let (c, node) = cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_stream(|s| s.fault = Some(StreamFault::CloseMidFrame));
    let placed_at = Instant::now();
    let cut = place(&fake, &node);
    report(
        "stream cut mid-frame",
        "the placement",
        run.time_to_row(&cut, placed_at),
    );
    drop(run);

    // A server restart with a placement while it was down (an index gap).
    let (c, node) = cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    let restarted_at = Instant::now();
    let lost = fake.update(|c| {
        let mut lost = String::new();
        c.restart_server(|c| lost = c.place("default", "web", "api", &node));
        lost
    });
    report(
        "server restart, placement while down",
        "the restart",
        run.time_to_row(&lost, restarted_at),
    );
    drop(run);

    // A silent stream (no byte, not even heartbeats): the read deadline (75 s) ends it.
    let (c, node) = cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_stream(|s| s.fault = Some(StreamFault::Stall));
    let placed_at = Instant::now();
    let missed = place(&fake, &node);
    report(
        "silent stream",
        "the placement",
        run.time_to_row(&missed, placed_at),
    );
    drop(run);

    // A subscription that never gets response headers: the header deadline (10 s) ends it.
    let (c, node) = cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_stream(|s| s.fault = Some(StreamFault::NoHeaders));
    fake.update(|c| c.restart_server(|_| {}));
    std::thread::sleep(Duration::from_millis(500));
    fake.set_stream(|s| s.fault = None);
    let placed_at = Instant::now();
    let hung = place(&fake, &node);
    report(
        "subscription without response headers",
        "the placement",
        run.time_to_row(&hung, placed_at),
    );
    drop(run);

    // Every request hangs without headers for 5 s (the listing too), then answers again.
    let (c, node) = cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_fault(Some(Fault::NoHeaders));
    fake.update(|c| c.restart_server(|_| {}));
    let during = place(&fake, &node);
    std::thread::sleep(Duration::from_secs(5));
    fake.set_fault(None);
    let back = Instant::now();
    report(
        "hung listing for 5 s",
        "its end",
        run.time_to_row(&during, back),
    );
    drop(run);

    // The token revoked, then rotated in the token file.
    let (mut c, node) = cluster();
    c.enable_acl();
    c.add_token("first", Policy::alloc_table_reader());
    let fake = FakeNomad::start(c);
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first").expect("write");
    let token_arg = token_file.to_str().expect("utf8").to_owned();
    let run = started(&fake, &["--token-file", &token_arg, "--node-id", &node]);
    fake.update(|c| {
        c.revoke_token("first");
        c.add_token("second", Policy::alloc_table_reader());
    });
    let during = place(&fake, &node);
    std::thread::sleep(Duration::from_secs(2));
    let rotated = Instant::now();
    std::fs::write(&token_file, "second").expect("write");
    report(
        "403, then the token file rotated",
        "the rotation",
        run.time_to_row(&during, rotated),
    );
    drop(run);

    // A snapshot restore (indexes go backwards), then an in-place update.
    let (mut c, node) = cluster();
    c.index = 5_000;
    let fake = FakeNomad::start(c);
    let run = started(&fake, &["--columns", "job_version"]);
    let kept = place(&fake, &node);
    run.time_to_row(&kept, Instant::now());
    fake.update(|c| c.restore_snapshot(100));
    std::thread::sleep(Duration::from_millis(500));
    let updated_at = Instant::now();
    fake.update(|c| {
        c.update_in_place(&kept, |job| {
            job.meta.insert("rev".into(), "2".into());
        })
    });
    let version = fake.read(|c| c.allocation(&kept).job.version.to_string());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let bytes = std::fs::read(&run.table).unwrap_or_default();
        let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
        if reader
            .records()
            .filter_map(Result::ok)
            .any(|r| r[0] == *kept && r[2] == *version)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new version never reached the table"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    report(
        "index reset, then an in-place update",
        "the update",
        updated_at.elapsed(),
    );
    drop(run);
}
