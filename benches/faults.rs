//! How long `run` takes to heal from each fault, with the operator defaults (no timing flag):
//! the time from the end of the fault (or from the placement made during it) to the
//! allocation's row in the published table. `cargo bench --bench faults`; results go in
//! BENCHMARKS.md and the README's failure handling. Faults that heal only through the resync
//! interval and the grace period (a collection without an event) are not timed: their cost is
//! those two settings.

use std::time::{Duration, Instant};

use fake_nomad::{FakeNomad, Fault, Policy, StreamFault};

mod common;

use common::util::daemon::Daemon;
use common::util::{TokenFileCluster, web_cluster};

fn first(fake: &FakeNomad) -> String {
    fake.read(|c| c.allocations.keys().next().expect("one").clone())
}

/// Waits for `id` in the table; returns when it appeared, measured from `since`.
fn time_to_row(run: &Daemon, id: &str, since: Instant) -> Duration {
    run.wait_for_alloc(id);
    since.elapsed()
}

/// A started `run` with its first table published.
fn started(fake: &FakeNomad, extra: &[&str]) -> Daemon {
    let run = Daemon::start_deployed(fake, extra);
    run.wait_for_alloc(&first(fake));
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
    let (c, _node) = web_cluster();
    let fake = FakeNomad::start(c);
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    let run = Daemon::start_deployed(&fake, &[]);
    std::thread::sleep(Duration::from_secs(20));
    fake.set_fault(None);
    let back = Instant::now();
    report(
        "Nomad down for 20 s at start",
        "its return",
        time_to_row(&run, &first(&fake), back),
    );
    drop(run);

    // A 5xx burst of 20 s mid-run, with a placement during it.
    let (c, node) = web_cluster();
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
        time_to_row(&run, &during, back),
    );
    drop(run);

    // The stream cut mid-frame.
    let (c, node) = web_cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_stream(|s| s.fault = Some(StreamFault::CloseMidFrame));
    let placed_at = Instant::now();
    let cut = place(&fake, &node);
    report(
        "stream cut mid-frame",
        "the placement",
        time_to_row(&run, &cut, placed_at),
    );
    drop(run);

    // A server restart with a placement while it was down (an index gap).
    let (c, node) = web_cluster();
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
        time_to_row(&run, &lost, restarted_at),
    );
    drop(run);

    // A silent stream (no byte, not even heartbeats): the read deadline (75 s) ends it.
    let (c, node) = web_cluster();
    let fake = FakeNomad::start(c);
    let run = started(&fake, &[]);
    fake.set_stream(|s| s.fault = Some(StreamFault::Stall));
    let placed_at = Instant::now();
    let missed = place(&fake, &node);
    report(
        "silent stream",
        "the placement",
        time_to_row(&run, &missed, placed_at),
    );
    drop(run);

    // A subscription that never gets response headers: the header deadline (10 s) ends it.
    let (c, node) = web_cluster();
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
        time_to_row(&run, &hung, placed_at),
    );
    drop(run);

    // Every request hangs without headers for 5 s (the listing too), then answers again.
    let (c, node) = web_cluster();
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
        time_to_row(&run, &during, back),
    );
    drop(run);

    // The token revoked, then rotated in the token file.
    let setup = TokenFileCluster::start("first", "first");
    let (fake, node) = (&setup.fake, &setup.node);
    let args = setup.args();
    let run = started(fake, &args.iter().map(String::as_str).collect::<Vec<_>>());
    fake.update(|c| {
        c.revoke_token("first");
        c.add_token("second", Policy::alloc_table_reader());
    });
    let during = place(fake, node);
    std::thread::sleep(Duration::from_secs(2));
    let rotated = Instant::now();
    setup.write_token("second");
    report(
        "403, then the token file rotated",
        "the rotation",
        time_to_row(&run, &during, rotated),
    );
    drop(run);

    // A snapshot restore (indexes go backwards), then an in-place update.
    let (mut c, node) = web_cluster();
    c.index = 5_000;
    let fake = FakeNomad::start(c);
    let run = started(&fake, &["--columns", "job_version"]);
    let kept = place(&fake, &node);
    time_to_row(&run, &kept, Instant::now());
    fake.update(|c| c.restore_snapshot(100));
    std::thread::sleep(Duration::from_millis(500));
    let updated_at = Instant::now();
    fake.update(|c| {
        c.update_in_place(&kept, |job| {
            job.meta.insert("rev".into(), "2".into());
        })
    });
    let version = fake.read(|c| c.allocation(&kept).job.version.to_string());
    run.wait_until("the new version in the table", || {
        run.rows()
            .iter()
            .any(|r| r["alloc_id"] == kept && r["job_version"] == version)
    });
    report(
        "index reset, then an in-place update",
        "the update",
        updated_at.elapsed(),
    );
    drop(run);
}
