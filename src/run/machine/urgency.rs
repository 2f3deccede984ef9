//! Urgent rows skip the queue: when rows are added for an allocation whose directory exists
//! (or its directory appears while they wait), its first log lines are imminent and Vector
//! reads new files from the start on its next glob scan, so the publish and its reload go at
//! once, past the debounce and `--min-reload-interval`, at most [`URGENT_PER_SECOND`] times a
//! second. This type knows which directories exist, which added allocations Vector was not
//! told about yet, and the recent urgent publishes. Pure.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Urgent publishes (with their reloads) allowed per second; more wait for the debounce, so
/// that a burst of placements cannot storm Vector with reloads.
pub const URGENT_PER_SECOND: usize = 3;
const URGENT_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Urgency {
    /// Allocations whose directory exists (seen appearing, not yet removed).
    alloc_dirs: HashSet<String>,
    /// When the last urgent publishes (or reloads) went, at most [`URGENT_PER_SECOND`].
    recent: VecDeque<Instant>,
    /// Allocations added by publishes that Vector has not been told about yet: if one's
    /// directory appears, the owed reload becomes urgent.
    unannounced_added: BTreeSet<String>,
}

impl Urgency {
    pub fn dir_created(&mut self, alloc_id: &str) {
        self.alloc_dirs.insert(alloc_id.to_owned());
    }

    pub fn dir_removed(&mut self, alloc_id: &str) {
        self.alloc_dirs.remove(alloc_id);
    }

    /// Whether rows added for these allocations are urgent: one has its directory.
    pub fn any_has_dir<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> bool {
        ids.into_iter().any(|id| self.alloc_dirs.contains(id))
    }

    /// A publish wrote rows for these allocations: Vector is not told about them yet.
    pub fn published<'a>(&mut self, added: impl IntoIterator<Item = &'a String>) {
        self.unannounced_added.extend(added.into_iter().cloned());
    }

    /// A reload started: Vector is told about every row on disk.
    pub fn announced(&mut self) {
        self.unannounced_added.clear();
    }

    /// Whether rows of `alloc_id` are on disk but not announced to Vector.
    pub fn unannounced(&self, alloc_id: &str) -> bool {
        self.unannounced_added.contains(alloc_id)
    }

    /// Counts an urgent publish or reload going at `now`.
    pub fn record(&mut self, now: Instant) {
        if self.recent.len() >= URGENT_PER_SECOND {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
    }

    /// When an urgent publish of a change made at `changed` may go: at once, unless the last
    /// [`URGENT_PER_SECOND`] urgent publishes all went within the last second.
    pub fn allowed_after(&self, changed: Instant) -> Instant {
        match self.recent.front() {
            Some(&oldest) if self.recent.len() >= URGENT_PER_SECOND => {
                changed.max(oldest + URGENT_WINDOW)
            }
            _ => changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_urgent_only_for_allocations_whose_directory_exists() {
        let mut urgency = Urgency::default();
        let ids = ["a".to_owned(), "b".to_owned()];
        assert!(!urgency.any_has_dir(&ids));
        urgency.dir_created("b");
        assert!(urgency.any_has_dir(&ids));
        urgency.dir_removed("b");
        assert!(!urgency.any_has_dir(&ids));
    }

    #[test]
    fn a_few_urgent_publishes_a_second_then_the_oldest_must_be_a_second_old() {
        let mut urgency = Urgency::default();
        let start = Instant::now();
        for ms in [0, 10, 20] {
            let at = start + Duration::from_millis(ms);
            assert_eq!(urgency.allowed_after(at), at);
            urgency.record(at);
        }
        let fourth = start + Duration::from_millis(30);
        assert_eq!(urgency.allowed_after(fourth), start + URGENT_WINDOW);
        let later = start + Duration::from_millis(1500);
        assert_eq!(urgency.allowed_after(later), later);
        urgency.record(later);
        // The window slides: the oldest kept is now the one at 10 ms.
        assert_eq!(
            urgency.allowed_after(fourth),
            start + Duration::from_millis(10) + URGENT_WINDOW
        );
    }

    #[test]
    fn published_rows_stay_unannounced_until_a_reload_starts() {
        let mut urgency = Urgency::default();
        urgency.published(&["a".to_owned()]);
        assert!(urgency.unannounced("a") && !urgency.unannounced("b"));
        urgency.announced();
        assert!(!urgency.unannounced("a"));
    }
}
