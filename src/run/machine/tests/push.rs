//! The machine with `--memory-table-url`: changes pushed after the debounce, the file a base
//! published after the first listing and then every base interval, each base reloaded.

use super::*;

const BASE: u64 = 30_000;

/// An event of a client-side change (no new job version): applied without a fetch.
fn client_update(id: &str, modify_index: u64, alloc_modify_index: u64) -> Input {
    let mut alloc = alloc(id, modify_index);
    alloc.alloc_modify_index = alloc_modify_index;
    alloc.job = None;
    Input::Update(Update::Event(Box::new(alloc)))
}

#[test]
fn the_base_goes_first_then_changes_are_pushed_and_only_the_base_is_reloaded() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
    assert_eq!(run.bases(), [0], "the base at once after the first listing");
    run.input(500, fetched("b", 6));
    run.input(2_000, fetched("c", 7));
    run.input(3_000, client_update("c", 8, 7));
    run.run_until(BASE - 1);
    assert_eq!(
        run.pushes(),
        [0, 500, 2_000, 3_100],
        "new allocations at once, other changes after the debounce"
    );
    assert_eq!(
        run.publishes(),
        Vec::<u64>::new(),
        "the file is not written for changes"
    );
    assert_eq!(run.reloads(), [0], "only the base is announced");
    run.run_until(BASE + 1);
    assert_eq!(run.bases(), [0, BASE]);
    assert_eq!(run.reloads(), [0, BASE]);
}

#[test]
fn nothing_is_published_or_pushed_before_the_first_listing() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, fetched("a", 5));
    run.run_until(3 * BASE);
    assert!(run.log.is_empty(), "{:?}", run.log);
}

/// A listing of the cluster comes page by page: the model takes each, but the first base
/// (what Vector has at its start) waits for the last, and with it for the whole cluster.
#[test]
fn the_first_base_waits_for_the_last_part_of_the_first_listing() {
    let mut run = Run::pushing(BASE, false);
    let listing = ListingId::next();
    let part = |allocations| {
        Input::Update(Update::ListedPart {
            listing,
            allocations,
            requested_at: run.at(0),
            reason: ResyncReason::Connect,
        })
    };
    let first = part(vec![alloc("a", 5)]);
    let second = part(vec![alloc("b", 6)]);
    run.input(10, first);
    run.input(2_000, second);
    run.run_until(3_000);
    assert!(run.log.is_empty(), "{:?}", run.log);
    assert!(run.machine.store().contains("a") && run.machine.store().contains("b"));
    run.input(
        3_000,
        Input::Update(Update::Listed {
            listing,
            allocations: vec![alloc("c", 7)],
            requested_at: run.at(0),
            reason: ResyncReason::Connect,
        }),
    );
    assert_eq!(run.bases(), [3_000]);
    assert_eq!(run.machine.store().counts(), (3, 0));
}

#[test]
fn the_memory_table_coming_back_gets_a_base_at_once_but_not_before_the_first_listing() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, Input::PushTargetBack);
    assert_eq!(run.bases(), Vec::<u64>::new());
    run.input(10, listed(vec![], run.at(10)));
    run.input(50, Input::PushTargetBack);
    assert_eq!(run.bases(), [10, 50]);
    run.run_until(50 + BASE + 1);
    assert_eq!(
        run.bases(),
        [10, 50, 50 + BASE],
        "the interval counts from the last"
    );
}

#[test]
fn new_allocations_are_pushed_at_once_at_most_a_few_times_a_second() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, listed(vec![], run.at(0)));
    for i in 0..6 {
        run.input(1_000 + i * 10, fetched(&format!("new-{i}"), 10 + i));
    }
    run.run_until(3_000);
    let pushes = run.pushes();
    let at_once = pushes
        .iter()
        .filter(|t| (1_000..1_060).contains(*t))
        .count();
    assert_eq!(at_once, super::URGENT_PER_SECOND, "{pushes:?}");
}

#[test]
fn a_failed_base_is_retried_soon_and_an_unannounced_table_is_announced_by_the_first_base() {
    let mut run = Run::pushing(BASE, true);
    run.publish_outcome = Published::Failed;
    run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
    run.run_until(1_500);
    assert_eq!(run.bases(), [0, 1_000]);
    assert_eq!(run.reloads(), Vec::<u64>::new());
    run.publish_outcome = Published::Unchanged;
    run.run_until(2_500);
    assert_eq!(run.bases(), [0, 1_000, 2_000]);
    assert_eq!(
        run.reloads(),
        [2_000],
        "the table on disk was never announced"
    );
    run.run_until(2 * BASE + 2_000);
    assert_eq!(
        run.reloads(),
        [2_000],
        "an unchanged base owes nothing once announced"
    );
}

#[test]
fn a_stop_pushes_what_is_pending_at_once_and_publishes_no_base() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
    run.input(100, client_update("a", 6, 5));
    run.input(120, Input::Stop);
    assert_eq!(
        run.pushes(),
        [0, 120],
        "the listing's, then the event's at the stop"
    );
    assert_eq!(run.bases(), [0]);
    assert_eq!(run.exits(), [120], "nothing else is owed");
}

/// A driver may answer a base later than the effect (the machine does not assume it publishes
/// in place): a stop waits for the base in progress and the reload it owes.
#[test]
fn a_stop_waits_for_a_base_in_progress() {
    let t0 = Instant::now();
    let mut machine = Machine::new(
        Nodes::cluster(),
        timing(),
        false,
        Some(Duration::from_millis(BASE)),
    );
    let effects = machine.step(listed(vec![alloc("a", 5)], t0), t0);
    assert!(
        effects.contains(&Effect::PublishBase(BaseReason::Start)),
        "{effects:?}"
    );
    machine.step(Input::Published(Published::Pushed), t0);
    let effects = machine.step(Input::Stop, t0);
    assert!(!effects.contains(&Effect::Exit), "{effects:?}");
    let effects = machine.step(Input::BasePublished(Published::Written), t0);
    assert_eq!(effects, [Effect::Reload], "the base owes its reload");
    assert_eq!(machine.step(Input::Reloaded, t0), [Effect::Exit]);
}
