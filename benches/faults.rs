//! How long `run` takes to heal from each fault, with the operator defaults (no timing flag):
//! the time from the end of the fault (or from the placement made during it) to the
//! allocation's row in the published table. `cargo bench --bench faults`; results go in
//! BENCHMARKS.md and docs/how-it-works.md's failure handling. Faults that heal only through the resync
//! interval and the grace period (a collection without an event) are not timed: their cost is
//! those two settings.

use std::time::{Duration, Instant};

use fake_nomad::{Cluster, FakeNomad, Fault, Policy, StreamFault};

mod common;

use common::util::daemon::Daemon;
use common::util::{TokenFileCluster, web_cluster};

/// A fault: what it is, what the time is measured from, and the scenario that measures it.
type Scenario = (&'static str, &'static str, fn() -> Duration);

const FAULTS: [Scenario; 9] = [
    ("Nomad down for 20 s at start", "its return", down_at_start),
    ("5xx for 20 s mid-run", "its end", errors_mid_run),
    ("stream cut mid-frame", "the placement", cut_mid_frame),
    (
        "server restart, placement while down",
        "the restart",
        restart_with_a_gap,
    ),
    ("silent stream", "the placement", silent_stream),
    (
        "subscription without response headers",
        "the placement",
        subscription_without_headers,
    ),
    ("hung listing for 5 s", "its end", hung_requests),
    (
        "403, then the token file rotated",
        "the rotation",
        token_rotated,
    ),
    (
        "index reset, then an in-place update",
        "the update",
        index_reset_then_update,
    ),
];

/// `run` as deployed against the fake, once its first table is published.
struct Running {
    fake: FakeNomad,
    node: String,
    run: Daemon,
}

impl Running {
    /// The web cluster (as `change` leaves it) served, and `run` with `extra` flags past its
    /// first heartbeat: the stream is healthy.
    fn start(change: impl FnOnce(&mut Cluster), extra: &[&str]) -> Running {
        let (mut cluster, node) = web_cluster();
        change(&mut cluster);
        let fake = FakeNomad::start(cluster);
        let run = Daemon::start_deployed(&fake, extra);
        run.wait_for_alloc(&first(&fake));
        std::thread::sleep(Duration::from_millis(500));
        Running { fake, node, run }
    }

    fn place(&self) -> String {
        self.fake
            .update(|c| c.place("default", "web", "api", &self.node))
    }

    /// Waits for `id` in the table; returns when it appeared, measured from `since`.
    fn time_to_row(&self, id: &str, since: Instant) -> Duration {
        self.run.wait_for_alloc(id);
        since.elapsed()
    }
}

fn first(fake: &FakeNomad) -> String {
    fake.read(|c| c.allocations.keys().next().expect("one").clone())
}

fn no_leader() -> Option<Fault> {
    Some(Fault::Status(500, "rpc error: No cluster leader".into()))
}

fn down_at_start() -> Duration {
    let (cluster, _node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    fake.set_fault(no_leader());
    let run = Daemon::start_deployed(&fake, &[]);
    std::thread::sleep(Duration::from_secs(20));
    fake.set_fault(None);
    let back = Instant::now();
    run.wait_for_alloc(&first(&fake));
    back.elapsed()
}

/// Every request fails with `fault` (and the stream is cut) for `duration`, with a placement
/// made meanwhile; the time from the end of the fault to its row.
fn failing_for(fault: Option<Fault>, duration: Duration) -> Duration {
    let running = Running::start(|_| {}, &[]);
    running.fake.set_fault(fault);
    running.fake.update(|c| c.restart_server(|_| {}));
    let during = running.place();
    std::thread::sleep(duration);
    running.fake.set_fault(None);
    running.time_to_row(&during, Instant::now())
}

fn errors_mid_run() -> Duration {
    failing_for(no_leader(), Duration::from_secs(20))
}

fn hung_requests() -> Duration {
    failing_for(Some(Fault::NoHeaders), Duration::from_secs(5))
}

/// The stream suffers `fault`; the time from a placement then to its row.
fn stream_fault(fault: StreamFault) -> Duration {
    let running = Running::start(|_| {}, &[]);
    running.fake.set_stream(|s| s.fault = Some(fault));
    let placed_at = Instant::now();
    let placed = running.place();
    running.time_to_row(&placed, placed_at)
}

fn cut_mid_frame() -> Duration {
    stream_fault(StreamFault::CloseMidFrame)
}

/// No byte, not even heartbeats: the read deadline (75 s) ends it.
fn silent_stream() -> Duration {
    stream_fault(StreamFault::Stall)
}

fn restart_with_a_gap() -> Duration {
    let running = Running::start(|_| {}, &[]);
    let restarted_at = Instant::now();
    let lost = running.fake.update(|c| {
        let mut lost = String::new();
        c.restart_server(|c| lost = c.place("default", "web", "api", &running.node));
        lost
    });
    running.time_to_row(&lost, restarted_at)
}

/// The header deadline (10 s) ends the subscription that never got its headers.
fn subscription_without_headers() -> Duration {
    let running = Running::start(|_| {}, &[]);
    running
        .fake
        .set_stream(|s| s.fault = Some(StreamFault::NoHeaders));
    running.fake.update(|c| c.restart_server(|_| {}));
    std::thread::sleep(Duration::from_millis(500));
    running.fake.set_stream(|s| s.fault = None);
    let placed_at = Instant::now();
    let hung = running.place();
    running.time_to_row(&hung, placed_at)
}

fn token_rotated() -> Duration {
    let setup = TokenFileCluster::start("first", "first");
    let args = setup.args();
    let run = Daemon::start_deployed(
        &setup.fake,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    run.wait_for_alloc(&first(&setup.fake));
    std::thread::sleep(Duration::from_millis(500));
    setup.fake.update(|c| {
        c.revoke_token("first");
        c.add_token("second", Policy::alloc_table_reader());
    });
    let during = setup
        .fake
        .update(|c| c.place("default", "web", "api", &setup.node));
    std::thread::sleep(Duration::from_secs(2));
    let rotated = Instant::now();
    setup.write_token("second");
    run.wait_for_alloc(&during);
    rotated.elapsed()
}

/// A snapshot restore (indexes go backwards), then an in-place update.
fn index_reset_then_update() -> Duration {
    let running = Running::start(|c| c.index = 5_000, &["--columns", "job_version"]);
    let kept = running.place();
    running.time_to_row(&kept, Instant::now());
    running.fake.update(|c| c.restore_snapshot(100));
    std::thread::sleep(Duration::from_millis(500));
    let updated_at = Instant::now();
    running.fake.update(|c| {
        c.update_in_place(&kept, |job| {
            job.meta.insert("rev".into(), "2".into());
        })
    });
    let version = running
        .fake
        .read(|c| c.allocation(&kept).job.version.to_string());
    running.run.wait_until("the new version in the table", || {
        running
            .run
            .rows()
            .iter()
            .any(|r| r["alloc_id"] == kept && r["job_version"] == version)
    });
    updated_at.elapsed()
}

fn main() {
    println!(
        "{:<52} {:<28} {:>10}",
        "fault", "measured from", "to the row"
    );
    for (fault, measured_from, heal) in FAULTS {
        println!(
            "{fault:<52} {measured_from:<28} {:>8.2} s",
            heal().as_secs_f64()
        );
    }
}
