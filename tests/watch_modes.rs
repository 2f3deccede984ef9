//! The same end-to-end scenarios in both watch modes (`--watch events` and `--watch blocking`):
//! a placement, a status-only update, another node's allocation, garbage collection without an
//! event, a cut connection, a snapshot restore with lower indexes, and a refused token that is
//! fixed. Each scenario is one function taking the mode; the macro makes a test per mode.

use std::time::Duration;

use fake_nomad::{ClientStatus, FakeNomad, Fault, Node, Policy, StreamFault};

use crate::util::daemon::Daemon;
use crate::util::metrics::total;
use crate::util::{TokenFileCluster, http_get, web_cluster};

/// One test per watch mode for each scenario.
macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {
        mod events {
            $(#[test] fn $scenario() { super::$scenario("events"); })*
        }
        mod blocking {
            $(#[test] fn $scenario() { super::$scenario("blocking"); })*
        }
    };
}

in_both_modes!(
    a_placement_reaches_the_table,
    a_status_only_update_writes_nothing,
    another_nodes_allocation_is_neither_fetched_nor_listed,
    a_collection_without_an_event_leaves_after_the_grace,
    the_nodes_last_allocation_collected_leaves_after_the_grace,
    a_cut_connection_loses_nothing,
    after_a_snapshot_restore_with_lower_indexes_changes_still_arrive,
    a_refused_token_recovers_once_fixed,
    a_server_out_of_touch_with_the_leader_is_not_believed,
    after_a_server_restart_with_lower_indexes_changes_arrive_at_once,
);

fn place(fake: &FakeNomad, node: &str) -> String {
    fake.update(|c| c.place("default", "web", "api", node))
}

/// The fake with one node and one allocation, and a daemon in `mode` that has published it.
fn started(mode: &str, extra: &[&str]) -> (FakeNomad, String, String, Daemon) {
    let (cluster, node) = web_cluster();
    let first = cluster.allocations.keys().next().expect("one").clone();
    let fake = FakeNomad::start(cluster);
    let mut args = vec!["--watch", mode];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(&fake, &args);
    daemon.wait_for_alloc(&first);
    (fake, node, first, daemon)
}

fn requests_to(fake: &FakeNomad, path: &str) -> usize {
    fake.requests().iter().filter(|r| r.path == path).count()
}

/// Waits until the fake has received more than `before` requests: with a fault set before
/// `before` was counted, until the daemon has had a request answered with the fault.
fn wait_for_a_request_after(fake: &FakeNomad, daemon: &Daemon, before: usize) {
    daemon.wait_until("a request answered with the fault", || {
        fake.requests().len() > before
    });
}

fn a_placement_reaches_the_table(mode: &str) {
    let (fake, node, _first, daemon) = started(mode, &[]);
    let new = place(&fake, &node);
    daemon.wait_for_alloc(&new);
    // Every read may be answered by any server.
    let reads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/node/") || r.path.starts_with("/v1/allocation/"))
        .collect();
    assert!(!reads.is_empty());
    assert!(
        reads.iter().all(|r| r.query.contains("stale=true")),
        "{reads:?}"
    );
    let subscribed = requests_to(&fake, "/v1/event/stream") > 0;
    assert_eq!(subscribed, mode == "events", "only events mode subscribes");
}

fn a_status_only_update_writes_nothing(mode: &str) {
    let (fake, node, first, daemon) = started(mode, &[]);
    let writes = daemon.publishes();
    fake.update(|c| c.set_client_status(&first, ClientStatus::Running));
    // Past the longest debounce (200 ms) and relist pause (100 ms): a write the update caused
    // would be a write of its own. A marker on the node then shows it was processed.
    std::thread::sleep(Duration::from_millis(400));
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(daemon.publishes(), writes + 1, "only the marker's write");
}

fn another_nodes_allocation_is_neither_fetched_nor_listed(mode: &str) {
    let (fake, node, _first, daemon) = started(mode, &[]);
    let other_node = fake.update(|c| c.add_node(Node::new("elsewhere")));
    let elsewhere = fake.update(|c| c.place("default", "web", "api", &other_node));
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    assert!(!daemon.alloc_ids().contains(&elsewhere));
    assert_eq!(
        requests_to(&fake, &format!("/v1/allocation/{elsewhere}")),
        0,
        "no request for another node's allocation"
    );
}

fn a_collection_without_an_event_leaves_after_the_grace(mode: &str) {
    let listen = crate::util::free_address().to_string();
    let (fake, node, first, daemon) = started(
        mode,
        &[
            "--grace",
            "1s",
            "--resync-interval",
            "2s",
            "--listen",
            &listen,
        ],
    );
    // Collected by the server: no event, and the node's index does not move.
    fake.update(|c| c.gc(&first));
    let marker = place(&fake, &node);
    daemon.wait_for_alloc(&marker);
    leaves_after_its_grace(&daemon, &first);
    assert!(daemon.alloc_ids().contains(&marker));
}

/// Waits for `id` to be in its grace period with its rows still there, and then for its rows
/// to go: removed at once, or never, fails.
fn leaves_after_its_grace(daemon: &Daemon, id: &str) {
    daemon.wait_until("the collected allocation in its grace", || {
        daemon.departing() >= 1.0
    });
    assert!(daemon.alloc_ids().contains(id), "gone before its grace");
    daemon.wait_until("the collected allocation's rows to go", || {
        !daemon.alloc_ids().contains(id)
    });
}

fn the_nodes_last_allocation_collected_leaves_after_the_grace(mode: &str) {
    // Blocking: a wait far longer than the test's patience, so that only the GC moving the
    // allocs table's index (the node's listing index once it has no allocation) can wake the
    // query. Events: no event for a collection; the periodic resync finds it.
    let resync = if mode == "blocking" { "300s" } else { "2s" };
    let listen = crate::util::free_address().to_string();
    let (fake, node, first, daemon) = started(
        mode,
        &[
            "--grace",
            "1s",
            "--resync-interval",
            resync,
            "--listen",
            &listen,
        ],
    );
    let listings = requests_to(&fake, &format!("/v1/node/{node}/allocations"));
    fake.update(|c| c.gc(&first));
    leaves_after_its_grace(&daemon, &first);
    assert!(requests_to(&fake, &format!("/v1/node/{node}/allocations")) > listings);
}

fn a_cut_connection_loses_nothing(mode: &str) {
    let (fake, node, _first, daemon) = started(mode, &[]);
    // Events: the frame with the placement is cut in half. Blocking: every request fails for a
    // while, the waiting query included (its answer is lost).
    fake.set_stream(|s| s.fault = Some(StreamFault::CloseMidFrame));
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    let before = fake.requests().len();
    // Blocking: the fault reaches only new requests; a resync ends the query in flight.
    if mode == "blocking" {
        daemon.signal(rustix::process::Signal::HUP);
    }
    let cut = place(&fake, &node);
    wait_for_a_request_after(&fake, &daemon, before);
    fake.set_fault(None);
    daemon.wait_for_alloc(&cut);
    fake.set_stream(|s| s.fault = None);
    let later = place(&fake, &node);
    daemon.wait_for_alloc(&later);
}

fn after_a_snapshot_restore_with_lower_indexes_changes_still_arrive(mode: &str) {
    let (mut cluster, node) = web_cluster();
    // Indexes well above what the restored snapshot will have.
    cluster.index = 5_000;
    let fake = FakeNomad::start(cluster);
    let daemon = Daemon::start(
        &fake,
        &[
            "--watch",
            mode,
            "--grace",
            "1s",
            // Far beyond the test's patience: only live events, or a blocking query that
            // wakes, bring the changes below.
            "--resync-interval",
            "300s",
            "--columns",
            "job_version",
        ],
    );
    let kept = place(&fake, &node);
    let collected = place(&fake, &node);
    daemon.wait_for_alloc(&collected);
    fake.update(|c| c.restore_snapshot(100));
    fake.update(|c| {
        c.update_in_place(&kept, |job| {
            job.meta.insert("rev".into(), "2".into());
        })
    });
    // The listing that finds the restored indexes (events: the reconnect takes one anyway;
    // blocking: the query in flight waits on an index the restored state has not reached).
    daemon.signal(rustix::process::Signal::HUP);
    let version = fake.read(|c| c.allocation(&kept).job.version.to_string());
    daemon.wait_until("the new job version in the table", || {
        daemon
            .rows()
            .iter()
            .any(|r| r["alloc_id"] == kept && r["job_version"] == version)
    });
    // From then on, changes arrive as they happen, not one resync later.
    let after = place(&fake, &node);
    daemon.wait_for_alloc(&after);
    // A collection below the old indexes (no event) leaves at the next listing.
    fake.update(|c| c.gc(&collected));
    daemon.signal(rustix::process::Signal::HUP);
    daemon.wait_until("the collected allocation's rows to go", || {
        !daemon.alloc_ids().contains(&collected)
    });
}

fn a_refused_token_recovers_once_fixed(mode: &str) {
    let setup = TokenFileCluster::start("first", "first");
    let (fake, node) = (&setup.fake, &setup.node);
    let mut args = setup.args();
    args.extend(["--watch".to_owned(), mode.to_owned()]);
    let daemon = Daemon::start_observed(fake, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let first = fake.read(|c| c.allocations.keys().next().expect("one").clone());
    daemon.wait_for_alloc(&first);
    assert_eq!(daemon.responses("403"), 0.0);
    fake.update(|c| {
        c.revoke_token("first");
        c.add_token("second", Policy::alloc_table_reader());
    });
    let during = place(fake, node);
    daemon.wait_until("a 403", || daemon.responses("403") >= 1.0);
    assert!(
        daemon.alloc_ids().contains(&first),
        "an error never shrinks the table"
    );
    // The rotated token file ends the wait by itself.
    setup.write_token("second");
    daemon.wait_for_alloc(&during);
}

fn a_server_out_of_touch_with_the_leader_is_not_believed(mode: &str) {
    let (fake, node, first, daemon) = started(mode, &["--grace", "1s", "--resync-interval", "2s"]);
    // Stale reads now reach a server that stopped following the leader 30 s ago.
    fake.set_follower(Some((true, Duration::from_secs(30))));
    fake.update(|c| c.gc(&first));
    let new = place(&fake, &node);
    daemon.wait_for_alloc(&new);
    daemon.wait_until("the collected allocation's rows to go", || {
        !daemon.alloc_ids().contains(&first)
    });
    let leader_reads = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/") && !r.query.contains("stale=true"))
        .filter(|r| r.path.contains("/allocation"))
        .count();
    assert!(leader_reads > 0, "the leader was asked");
}

/// Two daemons on the first node of a 300-node cluster with churn everywhere: the blocking one
/// costs a listing per change of its own node (and none for the others'), the events one
/// receives every node's events.
#[test]
fn blocking_bytes_follow_the_nodes_changes_and_stream_bytes_the_clusters() {
    use fake_nomad::generate::{Shape, cluster};
    use fake_nomad::lifecycle::ClusterChurn;

    let generated = cluster(&Shape {
        allocations: 300 * 5,
        nodes: 300,
        seed: 4,
    });
    let node = generated.agent.client_node_id.clone().expect("agent node");
    let mut churn = ClusterChurn::new(&generated, 4);
    let fake = FakeNomad::start(generated);
    let first = fake.read(|c| {
        c.allocations
            .values()
            .find(|a| a.node_id == node)
            .expect("one on the node")
            .id
            .clone()
    });
    let blocking = Daemon::start(&fake, &["--watch", "blocking"]);
    let events = Daemon::start(&fake, &["--watch", "events"]);
    blocking.wait_for_alloc(&first);
    events.wait_for_alloc(&first);
    events.wait_until("the subscription", || {
        !fake.bytes_by_subscriber().is_empty()
    });
    let route = "/v1/node/{node_id}/allocations";
    let listing_bytes = || fake.bytes_by_route().get(route).copied().unwrap_or(0);
    let listings = || requests_to(&fake, &format!("/v1/node/{node}/allocations"));
    let (bytes_before, listings_before) = (listing_bytes(), listings());
    let stream_before = fake.bytes_by_subscriber()[0];
    let mut steps = 0;
    let mut own = 0;
    let node_index = || fake.read(|c| c.node_allocations_index(&node));
    for _ in 0..100 {
        let before = node_index();
        let step = fake.update(|c| churn.step(c));
        // What wakes a blocking query: the node's listing index moved.
        own += usize::from(node_index() != before);
        steps += usize::from(step.alloc_id().is_some());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A marker on the node (of a generated job): both daemons have seen everything before it.
    let marker = fake.update(|c| c.place("default", "app-0000", "main", &node));
    blocking.wait_for_alloc(&marker);
    events.wait_for_alloc(&marker);
    let listed = listings() - listings_before;
    assert!(
        listed <= own + 2,
        "{listed} listings for {own} changes of the node (and the marker) among {steps}"
    );
    let one_listing = (listing_bytes() - bytes_before) / listed.max(1) as u64;
    let streamed = fake.bytes_by_subscriber()[0] - stream_before;
    assert!(
        streamed > steps as u64 * 1_000,
        "{streamed} stream bytes for {steps} steps: every node's events"
    );
    assert!(one_listing > 0);
}

/// Runs `run --watch events` on the first node of a generated cluster of `nodes` nodes with
/// `steps_per_second` of churn over the whole cluster, until its first cost comparison; returns
/// whether it warned that blocking queries would be cheaper.
fn warns_about_the_stream_cost(
    nodes: usize,
    allocs_per_node: usize,
    steps_per_second: u64,
) -> bool {
    use fake_nomad::generate::{Shape, cluster};
    use fake_nomad::lifecycle::ClusterChurn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let generated = cluster(&Shape {
        allocations: nodes * allocs_per_node,
        nodes,
        seed: 9,
    });
    let mut churn = ClusterChurn::new(&generated, 9);
    let fake = Arc::new(FakeNomad::start(generated));
    let daemon = Daemon::start_observed(
        &fake,
        &["--watch", "events", "--cost-report-interval", "5s"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let churning = std::thread::spawn({
        let (fake, stop) = (fake.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                fake.update(|c| churn.step(c));
                std::thread::sleep(Duration::from_millis(1_000 / steps_per_second));
            }
        }
    });
    // Each comparison is counted by which watch was cheaper (the warning is logged with it).
    let comparisons = |cheaper: &str| {
        let scraped = http_get(daemon.listen_address(), "/metrics").map(|(_, body)| body);
        total(
            &scraped.unwrap_or_default(),
            "nomad_alloc_table_watch_cost_comparisons_total",
            &[("cheaper", cheaper)],
        )
    };
    daemon.wait_until("the first cost comparison", || {
        comparisons("blocking") + comparisons("events") > 0.0
    });
    stop.store(true, Ordering::Relaxed);
    churning.join().expect("churn");
    comparisons("blocking") > 0.0
}

#[test]
fn the_stream_cost_warning_fires_in_a_1000_node_cluster_and_not_in_a_10_node_one() {
    assert!(
        warns_about_the_stream_cost(1_000, 5, 20),
        "1,000 nodes: this node's changes are rare, the stream carries every node's"
    );
    assert!(
        !warns_about_the_stream_cost(10, 30, 20),
        "10 nodes: a listing per change of this node costs more than the stream"
    );
}

fn after_a_server_restart_with_lower_indexes_changes_arrive_at_once(mode: &str) {
    let (mut cluster, node) = web_cluster();
    cluster.index = 5_000;
    let fake = FakeNomad::start(cluster);
    // The default wait: a query blocking on an index the restarted state has not reached
    // would hang for 5 minutes.
    let daemon = Daemon::start(&fake, &["--watch", mode]);
    let kept = place(&fake, &node);
    daemon.wait_for_alloc(&kept);
    // The servers restart from an older snapshot: the agent's requests fail meanwhile.
    fake.set_fault(Some(Fault::Status(
        500,
        "rpc error: No cluster leader".into(),
    )));
    let before = fake.requests().len();
    fake.update(|c| c.restore_snapshot(100));
    // Blocking: the fault reaches only new requests; a resync ends the query in flight.
    if mode == "blocking" {
        daemon.signal(rustix::process::Signal::HUP);
    }
    wait_for_a_request_after(&fake, &daemon, before);
    fake.set_fault(None);
    let after = place(&fake, &node);
    daemon.wait_for_alloc(&after);
}
