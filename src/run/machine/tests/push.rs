//! The machine with `--memory-table-url`: changes pushed after the debounce, the file a base
//! published after the first listing and then every base interval, each base reloaded.

use super::*;

const BASE: u64 = 30_000;

#[test]
fn the_base_goes_first_then_changes_are_pushed_and_only_the_base_is_reloaded() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, listed(vec![alloc("a", 5)], run.at(0)));
    assert_eq!(run.bases(), [0], "the base at once after the first listing");
    run.input(500, fetched("b", 6));
    run.input(2_000, fetched("c", 7));
    run.run_until(BASE - 1);
    assert_eq!(
        run.pushes(),
        [100, 600, 2_100],
        "after the debounce, each time"
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

#[test]
fn the_memory_table_coming_back_asks_for_everything() {
    let mut run = Run::pushing(BASE, false);
    run.input(0, listed(vec![], run.at(0)));
    run.input(50, Input::PushTargetBack);
    assert_eq!(run.times_of(|e| *e == Effect::PushEverything), [50]);
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
    run.input(0, listed(vec![], run.at(0)));
    run.run_until(50);
    run.input(100, fetched("a", 5));
    run.input(120, Input::Stop);
    assert_eq!(
        run.pushes(),
        [100, 120],
        "the listing's, then the fetch's at once"
    );
    assert_eq!(run.bases(), [0]);
    assert_eq!(run.exits(), [120], "nothing else is owed");
}
