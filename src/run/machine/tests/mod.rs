//! The machine as a whole: each input dispatched to the concern it belongs to, and the
//! concerns working together (a publish owing a reload, urgency skipping the debounce and the
//! reload interval, a stop delivering what is owed). Each concern's own rules are tested
//! beside its type.

use std::time::Duration;

use super::fetch_queue::MAX_SEPARATE_FETCHES;
use super::urgency::URGENT_PER_SECOND;
use super::*;
use crate::nomad::types::{Allocation, Job};
use crate::timing::Wait;

const NODE: &str = "node-1";

fn timing() -> Timing {
    Timing {
        resync_interval: Duration::from_secs(300),
        min_relist_interval: Duration::from_millis(100),
        grace: Duration::from_secs(2),
        wait: Wait {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        min_reload_interval: Duration::from_secs(20),
        stream_timeout: Duration::from_secs(75),
        shutdown_timeout: Duration::from_secs(30),
    }
}

fn alloc(id: &str, modify_index: u64) -> Allocation {
    Allocation {
        id: id.into(),
        node_id: NODE.into(),
        modify_index,
        alloc_modify_index: modify_index,
        job: Some(Arc::new(Job {
            id: "web".into(),
            ..Job::default()
        })),
        ..Allocation::default()
    }
}

fn listed(allocations: Vec<Allocation>, requested_at: Instant) -> Input {
    Input::Update(Update::Listed {
        listing: ListingId::next(),
        allocations,
        requested_at,
        reason: ResyncReason::Connect,
    })
}

fn fetched(id: &str, modify_index: u64) -> Input {
    Input::Update(Update::Fetched(Box::new(alloc(id, modify_index))))
}

fn event(id: &str, modify_index: u64) -> Input {
    let mut alloc = alloc(id, modify_index);
    alloc.job = None;
    Input::Update(Update::Event(Box::new(alloc)))
}

/// A machine with the clock's origin, driven like the loop drives it: inputs at given
/// offsets, ticks at every wakeup up to a time, publishes and reloads answered at once.
struct Run {
    machine: Machine,
    t0: Instant,
    now: Instant,
    log: Vec<(Duration, Effect)>,
    publish_outcome: Published,
}

impl Run {
    fn new(unannounced_at_start: bool) -> Run {
        let t0 = Instant::now();
        Run {
            machine: Machine::new(
                Nodes::single(crate::table::NodeInfo {
                    id: NODE.to_owned(),
                    ..Default::default()
                }),
                timing(),
                unannounced_at_start,
                None,
            ),
            t0,
            now: t0,
            log: Vec::new(),
            publish_outcome: Published::Written,
        }
    }

    /// A machine for the cluster scope.
    fn cluster() -> Run {
        let mut run = Run::new(false);
        run.machine = Machine::new(Nodes::cluster(), timing(), false, None);
        run
    }

    /// A machine for the cluster scope with `--memory-table-url` and this base interval.
    fn pushing(base_interval_ms: u64, unannounced_at_start: bool) -> Run {
        let mut run = Run::new(false);
        run.machine = Machine::new(
            Nodes::cluster(),
            timing(),
            unannounced_at_start,
            Some(Duration::from_millis(base_interval_ms)),
        );
        run
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Feeds `input` at `ms`, after running every wakeup before it.
    fn input(&mut self, ms: u64, input: Input) {
        self.run_until(ms);
        self.feed(input);
    }

    fn feed(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            for effect in self.machine.step(input, self.now) {
                self.log.push((self.now - self.t0, effect.clone()));
                match effect {
                    Effect::Publish { .. } => queue.push(Input::Published(self.publish_outcome)),
                    Effect::Push { .. } => queue.push(Input::Published(Published::Pushed)),
                    Effect::PublishBase(_) => {
                        queue.push(Input::BasePublished(self.publish_outcome));
                    }
                    Effect::Reload => queue.push(Input::Reloaded),
                    Effect::Fetch { .. } | Effect::Resync | Effect::Exit => {}
                }
            }
        }
    }

    /// Runs every wakeup up to `ms`.
    fn run_until(&mut self, ms: u64) {
        let end = self.at(ms);
        while let Some(wake) = self.machine.next_wakeup(self.now).filter(|w| *w <= end) {
            if self.log.iter().any(|(_, e)| *e == Effect::Exit) {
                break;
            }
            self.now = wake.max(self.now);
            self.feed(Input::Tick);
        }
        self.now = end.max(self.now);
    }

    fn times_of(&self, wanted: fn(&Effect) -> bool) -> Vec<u64> {
        self.log
            .iter()
            .filter(|(_, e)| wanted(e))
            .map(|(t, _)| t.as_millis() as u64)
            .collect()
    }

    fn publishes(&self) -> Vec<u64> {
        self.times_of(|e| matches!(e, Effect::Publish { .. }))
    }

    fn pushes(&self) -> Vec<u64> {
        self.times_of(|e| matches!(e, Effect::Push { .. }))
    }

    fn bases(&self) -> Vec<u64> {
        self.times_of(|e| matches!(e, Effect::PublishBase(_)))
    }

    fn reloads(&self) -> Vec<u64> {
        self.times_of(|e| *e == Effect::Reload)
    }

    fn exits(&self) -> Vec<u64> {
        self.times_of(|e| *e == Effect::Exit)
    }
}

fn node(id: &str, datacenter: &str) -> crate::nomad::types::Node {
    crate::nomad::types::Node {
        id: id.into(),
        datacenter: datacenter.to_owned(),
        ..Default::default()
    }
}

fn fetches(run: &Run) -> Vec<String> {
    run.log
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::Fetch { alloc_id, .. } => Some(alloc_id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn in_cluster_scope_a_burst_is_queued_fetches_not_a_listing_of_the_cluster() {
    let mut run = Run::cluster();
    run.input(0, listed(vec![], run.at(0)));
    for i in 0..10 {
        run.input(10, event(&format!("new-{i}"), 20 + i));
    }
    assert_eq!(fetches(&run).len(), MAX_SEPARATE_FETCHES);
    assert!(!run.log.iter().any(|(_, e)| *e == Effect::Resync));
    // Each fetch that ends starts a queued one; another node's allocation is applied.
    let mut other = alloc("new-0", 20);
    other.node_id = "elsewhere".into();
    run.input(20, Input::Update(Update::Fetched(Box::new(other))));
    run.input(
        20,
        Input::Update(Update::FetchFailed {
            alloc_id: "new-1".to_owned(),
        }),
    );
    assert_eq!(
        fetches(&run),
        (0..10).map(|i| format!("new-{i}")).collect::<Vec<_>>()
    );
    assert!(run.machine.store().contains("new-0"));
}

#[test]
fn a_stop_starts_no_fetch_not_even_a_queued_one() {
    let mut run = Run::cluster();
    run.input(0, listed(vec![], run.at(0)));
    for i in 0..10 {
        run.input(10, event(&format!("new-{i}"), 20 + i));
    }
    run.input(15, Input::Stop);
    run.input(
        20,
        Input::Update(Update::FetchFailed {
            alloc_id: "new-0".to_owned(),
        }),
    );
    run.input(20, event("later", 40));
    assert_eq!(
        fetches(&run).len(),
        MAX_SEPARATE_FETCHES,
        "only those started before the stop"
    );
}

#[test]
fn a_node_whose_columns_change_is_published_and_one_that_does_not_is_not() {
    let mut run = Run::cluster();
    run.input(
        0,
        Input::Update(Update::NodesListed(vec![node("n1", "dc1")])),
    );
    let mut on_n1 = alloc("a", 5);
    on_n1.node_id = "n1".into();
    run.input(0, listed(vec![on_n1], run.at(0)));
    run.run_until(2_000);
    assert_eq!(run.publishes().len(), 1);
    run.input(
        2_000,
        Input::Update(Update::NodeChanged(Box::new(node("n1", "dc1")))),
    );
    run.run_until(4_000);
    assert_eq!(
        run.publishes().len(),
        1,
        "the same columns: nothing to publish"
    );
    run.input(
        4_000,
        Input::Update(Update::NodeChanged(Box::new(node("n1", "dc2")))),
    );
    run.run_until(6_000);
    assert_eq!(run.publishes().len(), 2);
    assert_eq!(run.machine.nodes().of("n1").datacenter, "dc2");
    // Listed without n1 while its allocation still has rows: n1 keeps its columns.
    run.input(
        6_000,
        Input::Update(Update::NodesListed(vec![node("n2", "dc9")])),
    );
    assert_eq!(run.machine.nodes().of("n1").datacenter, "dc2");
}

#[test]
fn nothing_is_published_before_the_first_listing() {
    let mut run = Run::new(false);
    run.input(0, fetched("a", 5));
    run.run_until(5_000);
    assert!(run.publishes().is_empty(), "{:?}", run.log);
    run.input(
        5_000,
        listed(vec![alloc("a", 5), alloc("b", 6)], run.at(5_000)),
    );
    run.run_until(10_000);
    // At once: the debounce's MAX, counted from the fetch, has passed.
    assert_eq!(run.publishes(), [5_000]);
}

#[test]
fn debounce_waits_for_quiet_but_never_past_max() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(1_000);
    assert_eq!(run.publishes(), [100]);
    // An event every 50 ms for two seconds: quiet never comes, MAX (1 s) does.
    for i in 0..40 {
        run.input(2_000 + i * 50, fetched(&format!("n{i}"), 10 + i));
    }
    run.run_until(5_000);
    assert_eq!(run.publishes(), [100, 3_000, 4_000]);
}

#[test]
fn a_burst_of_unknown_allocations_is_a_few_fetches_and_one_listing() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    for i in 0..200 {
        run.input(1_000, event(&format!("a{i}"), 10 + i));
    }
    let fetches = run.times_of(|e| matches!(e, Effect::Fetch { .. })).len();
    let resyncs = run.times_of(|e| *e == Effect::Resync).len();
    assert_eq!(fetches, MAX_SEPARATE_FETCHES);
    assert!(resyncs >= 1, "the burst asks for a listing");
}

#[test]
fn an_allocation_is_fetched_once_while_its_fetch_runs() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.input(10, event("a", 5));
    run.input(20, event("a", 6));
    run.input(
        30,
        Input::Update(Update::DirCreated {
            alloc_id: "a".into(),
        }),
    );
    assert_eq!(run.times_of(|e| matches!(e, Effect::Fetch { .. })), [10]);
    run.input(
        40,
        Input::Update(Update::FetchFailed {
            alloc_id: "a".into(),
        }),
    );
    // The event at 6 came while the fetch for 5 ran: the failure fetches it again, as of 6;
    // the event at 7 joins that fetch.
    run.input(50, event("a", 7));
    assert_eq!(
        run.times_of(|e| matches!(e, Effect::Fetch { .. })),
        [10, 40]
    );
    assert!(
        run.log.contains(&(
            Duration::from_millis(40),
            Effect::Fetch {
                alloc_id: "a".into(),
                modify_index: 6
            }
        )),
        "{:?}",
        run.log
    );
}

#[test]
fn an_event_with_a_known_job_patches_without_a_fetch() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
    let mut update = alloc("a", 8);
    update.job = None;
    update.alloc_modify_index = 5;
    run.input(500, Input::Update(Update::Event(Box::new(update))));
    run.run_until(2_000);
    assert!(
        run.times_of(|e| matches!(e, Effect::Fetch { .. }))
            .is_empty()
    );
    assert_eq!(run.publishes(), [100, 600]);
}

#[test]
fn an_invalid_table_is_not_retried_but_a_failed_write_is() {
    let mut run = Run::new(false);
    run.publish_outcome = Published::Invalid;
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(10_000);
    assert_eq!(
        run.publishes(),
        [100],
        "the same content cannot become valid"
    );
    let mut run = Run::new(false);
    run.publish_outcome = Published::Failed;
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(3_500);
    // Each retry waits PUBLISH_RETRY, then the debounce's MIN.
    assert_eq!(run.publishes(), [100, 1_200, 2_300, 3_400]);
    assert!(run.reloads().is_empty(), "nothing was written");
}

#[test]
fn departed_allocations_expire_after_their_grace() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![alloc("a", 5), alloc("b", 6)], run.at(0)));
    run.input(1_000, listed(vec![alloc("b", 6)], run.at(1_000)));
    run.run_until(2_900);
    assert!(
        run.machine.store().contains("a"),
        "a stays during its grace"
    );
    run.run_until(3_200);
    assert!(!run.machine.store().contains("a"));
    assert_eq!(run.publishes(), [100, 1_100, 3_100]);
}

#[test]
fn publishes_are_one_reload_each_at_most_one_per_interval() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    for (i, ms) in [1_000u64, 1_500, 2_000].into_iter().enumerate() {
        run.input(ms, fetched(&format!("n{i}"), 10 + i as u64));
    }
    run.run_until(60_000);
    assert_eq!(run.publishes(), [100, 1_100, 1_600, 2_100]);
    assert_eq!(
        run.reloads(),
        [100, 20_100],
        "one trailing reload, not one per publish"
    );
}

fn dir_created(id: &str) -> Input {
    Input::Update(Update::DirCreated {
        alloc_id: id.into(),
    })
}

#[test]
fn rows_for_an_allocation_whose_directory_exists_publish_and_reload_at_once() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(1_000);
    assert_eq!((run.publishes(), run.reloads()), (vec![100], vec![100]));
    // The stream is down: the directory is the first news; the fetch answers 5 ms later.
    run.input(2_000, dir_created("a"));
    assert!(
        run.log.iter().any(
            |(_, e)| matches!(e, Effect::Fetch { alloc_id, modify_index: 0 } if alloc_id == "a")
        )
    );
    run.input(2_005, fetched("a", 5));
    // No debounce, and no waiting out the 20 s reload interval.
    assert_eq!(run.publishes(), [100, 2_005]);
    assert_eq!(run.reloads(), [100, 2_005]);
    // An ordinary change afterwards waits for both again.
    run.input(3_000, fetched("b", 6));
    run.run_until(60_000);
    assert_eq!(run.publishes(), [100, 2_005, 3_100]);
    assert_eq!(run.reloads(), [100, 2_005, 22_005]);
}

#[test]
fn a_directory_appearing_while_its_rows_wait_makes_them_urgent() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(1_000);
    // Rows known from the stream, waiting for the debounce: the directory hurries them.
    run.input(2_000, fetched("a", 5));
    run.input(2_040, dir_created("a"));
    assert_eq!(run.publishes(), [100, 2_040]);
    assert_eq!(run.reloads(), [100, 2_040]);
    // Rows published, their reload waiting out the interval: the directory hurries it.
    run.input(5_000, fetched("b", 6));
    run.run_until(5_100);
    assert_eq!(run.reloads(), [100, 2_040], "the interval holds it");
    run.input(5_300, dir_created("b"));
    assert_eq!(run.reloads(), [100, 2_040, 5_300]);
}

#[test]
fn a_burst_of_urgent_rows_gets_a_few_bypasses_a_second_and_then_the_debounce() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(1_000);
    for i in 0..6u64 {
        let id = format!("u{i}");
        run.input(2_000 + i * 10, dir_created(&id));
        run.input(2_001 + i * 10, fetched(&id, 10 + i));
    }
    run.run_until(10_000);
    let publishes = run.publishes();
    assert_eq!(
        publishes[1..=URGENT_PER_SECOND],
        [2_001, 2_011, 2_021],
        "{publishes:?}"
    );
    assert!(
        publishes[URGENT_PER_SECOND + 1] >= 2_131,
        "the rest waits for the debounce: {publishes:?}"
    );
}

#[test]
fn a_stop_publishes_at_once_and_delivers_the_owed_reload_before_exiting() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.input(1_000, fetched("n", 10));
    run.run_until(6_000);
    assert_eq!(
        run.reloads(),
        [100],
        "the second publish waits out the interval"
    );
    // A change in its debounce, then SIGTERM: published at once, reload at 20.1 s, exit.
    run.input(6_000, fetched("m", 11));
    run.input(6_010, Input::Stop);
    run.run_until(60_000);
    assert_eq!(run.publishes(), [100, 1_100, 6_010]);
    assert_eq!(run.reloads(), [100, 20_100]);
    assert_eq!(run.exits(), [20_100]);
}

#[test]
fn a_stop_with_nothing_owed_exits_at_once() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(30_000);
    run.input(30_000, Input::Stop);
    assert_eq!(run.exits(), [30_000]);
}

#[test]
fn a_reload_owed_past_the_shutdown_timeout_goes_at_once_rather_than_never() {
    let mut run = Run::new(false);
    run.machine.timing.shutdown_timeout = Duration::from_secs(10);
    run.input(0, listed(vec![], run.at(0)));
    run.input(1_000, fetched("n", 10));
    run.input(2_000, Input::Stop);
    run.run_until(60_000);
    assert_eq!(
        run.reloads(),
        [100, 2_000],
        "20.1 s is past the deadline (12 s): sent at the stop"
    );
    assert_eq!(run.exits(), [2_000]);
}

#[test]
fn a_reload_owed_exactly_at_the_shutdown_deadline_goes_at_once() {
    let mut run = Run::new(false);
    run.machine.timing.shutdown_timeout = Duration::from_secs(10);
    run.input(0, listed(vec![], run.at(0)));
    run.input(1_000, fetched("n", 10));
    // The reload is owed at 20.1 s, the deadline is 20.1 s: the exit would come first.
    run.input(10_100, Input::Stop);
    run.run_until(60_000);
    assert_eq!(run.reloads(), [100, 10_100]);
    assert_eq!(run.exits(), [10_100]);
}

#[test]
fn a_stop_while_a_publish_runs_waits_for_it_and_its_reload() {
    let mut run = Run::new(false);
    run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
    let effects = run.machine.step(Input::Tick, run.at(100));
    assert!(
        matches!(effects.as_slice(), [Effect::Publish { .. }]),
        "{effects:?}"
    );
    let effects = run.machine.step(Input::Stop, run.at(150));
    assert!(effects.is_empty(), "the publish still runs: {effects:?}");
    assert_eq!(
        run.machine.stop_by(),
        Some(run.at(150) + timing().shutdown_timeout)
    );
    let effects = run
        .machine
        .step(Input::Published(Published::Written), run.at(200));
    assert_eq!(effects, [Effect::Reload]);
    let effects = run.machine.step(Input::Reloaded, run.at(300));
    assert_eq!(effects, [Effect::Exit]);
}

#[test]
fn a_reload_still_running_at_the_deadline_is_left_to_the_restart() {
    let mut run = Run::new(false);
    run.machine.timing.shutdown_timeout = Duration::from_secs(10);
    run.input(0, listed(vec![], run.at(0)));
    run.input(1_000, fetched("n", 10));
    run.run_until(2_000);
    // A reload that never ends (Vector's command hangs): the stop ends at its deadline.
    let effects = run.machine.step(Input::Stop, run.at(2_000));
    assert_eq!(effects, [Effect::Reload]);
    let effects = run.machine.step(Input::Tick, run.at(12_000));
    assert_eq!(effects, [Effect::Exit]);
}

#[test]
fn a_stop_before_the_first_listing_publishes_nothing() {
    let mut run = Run::new(true);
    run.input(0, fetched("a", 5));
    run.input(10, Input::Stop);
    assert!(run.publishes().is_empty());
    assert!(run.reloads().is_empty());
    assert_eq!(run.exits(), [10]);
}

#[test]
fn an_unannounced_table_is_announced_after_the_first_listing_even_if_unchanged() {
    let mut run = Run::new(true);
    run.publish_outcome = Published::Unchanged;
    run.input(0, listed(vec![], run.at(0)));
    run.input(1_000, listed(vec![], run.at(1_000)));
    run.run_until(60_000);
    assert_eq!(run.publishes(), [100, 1_100]);
    assert_eq!(
        run.reloads(),
        [100],
        "once, not for every unchanged publish"
    );
    let mut run = Run::new(false);
    run.publish_outcome = Published::Unchanged;
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(60_000);
    assert!(
        run.reloads().is_empty(),
        "an announced table is not announced again"
    );
}

mod push;
