//! When the model's changes are published: after consul-template's wait (MIN of quiet, at most
//! MAX after the first change), never before the first listing (a model built from events or
//! fetches alone would shrink the table), at once when stopping or urgent, one publish at a
//! time, and a failed one retried after [`PUBLISH_RETRY`] with whatever changed meanwhile.
//! Pure: it holds the pending changes and the one being published.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::input::{ChangeReason, Published};
use crate::timing::Wait;

/// After a failed publish, wait at least this long before trying again.
pub const PUBLISH_RETRY: Duration = Duration::from_secs(1);

/// Changes waiting to be published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The first change: the debounce's MAX counts from here.
    pub first: Instant,
    /// The latest change: the debounce's MIN counts from here.
    pub last: Instant,
    pub reasons: BTreeSet<ChangeReason>,
    /// Allocations these changes add to the table.
    pub added: BTreeSet<String>,
    /// Rows for an allocation whose directory exists: publish and reload at once.
    pub urgent: bool,
}

impl Pending {
    fn new(at: Instant) -> Pending {
        Pending {
            first: at,
            last: at,
            reasons: BTreeSet::new(),
            added: BTreeSet::new(),
            urgent: false,
        }
    }

    /// When these changes are published under the debounce `wait`.
    pub fn publish_at(&self, wait: Wait) -> Instant {
        (self.last + wait.min).min(self.first + wait.max)
    }

    /// Takes `newer` changes in.
    fn absorb(&mut self, newer: Pending) {
        self.reasons.extend(newer.reasons);
        self.added.extend(newer.added);
        self.urgent |= newer.urgent;
    }
}

/// The debounce and the publish in progress.
#[derive(Debug)]
pub struct PublishSchedule {
    wait: Wait,
    /// A full listing has been applied: until then nothing is published.
    listed: bool,
    /// Changes not published yet.
    pending: Option<Pending>,
    /// The changes of the publish in progress, kept to be retried if it fails.
    publishing: Option<Pending>,
}

impl PublishSchedule {
    pub fn new(wait: Wait) -> PublishSchedule {
        PublishSchedule {
            wait,
            listed: false,
            pending: None,
            publishing: None,
        }
    }

    /// A full listing was applied: from now on changes may be published.
    pub fn listed(&mut self) {
        self.listed = true;
    }

    /// Whether a full listing has been applied.
    pub fn has_listed(&self) -> bool {
        self.listed
    }

    /// The model changed at `now` for `reason`.
    pub fn changed(&mut self, reason: ChangeReason, now: Instant) {
        let pending = self.pending.get_or_insert_with(|| Pending::new(now));
        pending.last = pending.last.max(now);
        pending.reasons.insert(reason);
    }

    /// The pending changes add these allocations; `urgent` if one's directory exists.
    pub fn added(&mut self, ids: Vec<String>, urgent: bool, now: Instant) {
        if ids.is_empty() {
            return;
        }
        let pending = self.pending.get_or_insert_with(|| Pending::new(now));
        pending.urgent |= urgent;
        pending.added.extend(ids);
    }

    /// An allocation's directory appeared: if the pending changes add it, they become urgent
    /// (its log files are imminent). Returns whether they did.
    pub fn make_urgent_if_adding(&mut self, alloc_id: &str) -> bool {
        match &mut self.pending {
            Some(pending) if pending.added.contains(alloc_id) => {
                pending.urgent = true;
                true
            }
            _ => false,
        }
    }

    /// When the pending changes are due: after the debounce (urgent ones at
    /// `urgent_allowed_after` their last change, if earlier), at once when `stopping` (but not
    /// before a failed publish's retry), never before the first listing.
    pub fn due(
        &self,
        stopping: bool,
        urgent_allowed_after: impl Fn(Instant) -> Instant,
    ) -> Option<Instant> {
        let pending = self.pending.as_ref().filter(|_| self.listed)?;
        Some(if stopping {
            // Skip the rest of the debounce, but not a failed publish's retry delay (its
            // `last` lies ahead).
            pending.last
        } else if pending.urgent {
            pending
                .publish_at(self.wait)
                .min(urgent_allowed_after(pending.last))
        } else {
            pending.publish_at(self.wait)
        })
    }

    /// Whether a publish is in progress.
    pub fn in_progress(&self) -> bool {
        self.publishing.is_some()
    }

    /// Starts publishing the pending changes: returns them, or `None` when none are pending or
    /// a publish is in progress.
    pub fn start(&mut self) -> Option<&Pending> {
        if self.publishing.is_some() {
            return None;
        }
        self.publishing = self.pending.take();
        self.publishing.as_ref()
    }

    /// The publish in progress ended at `now`: returns its changes, unless it failed, in which
    /// case they are pending again (with whatever changed meanwhile) to be retried after
    /// [`PUBLISH_RETRY`].
    pub fn finished(&mut self, outcome: Published, now: Instant) -> Option<Pending> {
        let publishing = self.publishing.take()?;
        if outcome != Published::Failed {
            return Some(publishing);
        }
        let retry_at = now + PUBLISH_RETRY;
        let mut retry = Pending::new(retry_at);
        retry.absorb(publishing);
        if let Some(newer) = self.pending.take() {
            retry.absorb(newer);
        }
        self.pending = Some(retry);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Wait = Wait {
        min: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn at_once(changed: Instant) -> Instant {
        changed
    }

    #[test]
    fn nothing_is_due_before_the_first_listing() {
        let start = Instant::now();
        let mut schedule = PublishSchedule::new(WAIT);
        schedule.changed(ChangeReason::Event, start);
        assert_eq!(schedule.due(false, at_once), None);
        assert_eq!(schedule.due(true, at_once), None, "not even when stopping");
        schedule.listed();
        assert_eq!(schedule.due(false, at_once), Some(ms(start, 100)));
    }

    #[test]
    fn the_debounce_waits_for_quiet_but_never_past_max() {
        let start = Instant::now();
        let mut schedule = PublishSchedule::new(WAIT);
        schedule.listed();
        for t in (0..=1500).step_by(50) {
            schedule.changed(ChangeReason::Event, ms(start, t));
        }
        assert_eq!(schedule.due(false, at_once), Some(ms(start, 1000)));
        let mut quiet = PublishSchedule::new(WAIT);
        quiet.listed();
        quiet.changed(ChangeReason::Event, start);
        quiet.changed(ChangeReason::Event, ms(start, 60));
        assert_eq!(quiet.due(false, at_once), Some(ms(start, 160)));
        assert_eq!(quiet.due(true, at_once), Some(ms(start, 60)), "stopping");
    }

    #[test]
    fn urgent_changes_go_when_urgency_allows_and_an_added_directory_makes_them_urgent() {
        let start = Instant::now();
        let mut schedule = PublishSchedule::new(WAIT);
        schedule.listed();
        schedule.added(vec!["a".into()], false, start);
        assert_eq!(schedule.due(false, at_once), Some(ms(start, 100)));
        assert!(!schedule.make_urgent_if_adding("b"));
        assert!(schedule.make_urgent_if_adding("a"));
        assert_eq!(schedule.due(false, at_once), Some(start));
        let limited = |changed: Instant| changed + Duration::from_millis(40);
        assert_eq!(schedule.due(false, limited), Some(ms(start, 40)));
        assert_eq!(schedule.due(false, |c| c + WAIT.max), Some(ms(start, 100)));
    }

    #[test]
    fn one_publish_at_a_time_and_a_failed_one_is_retried_with_what_came_meanwhile() {
        let start = Instant::now();
        let mut schedule = PublishSchedule::new(WAIT);
        schedule.listed();
        schedule.changed(ChangeReason::Event, start);
        schedule.added(vec!["a".into()], true, start);
        let started = schedule.start().expect("pending").clone();
        assert!(schedule.in_progress() && schedule.start().is_none());
        schedule.changed(ChangeReason::GraceOver, ms(start, 50));
        assert_eq!(schedule.finished(Published::Failed, ms(start, 200)), None);
        assert!(!schedule.in_progress());
        assert_eq!(
            schedule.due(true, at_once),
            Some(ms(start, 200) + PUBLISH_RETRY),
            "a stop does not skip the retry delay"
        );
        let retry = schedule.start().expect("retried").clone();
        assert_eq!(
            retry.reasons,
            BTreeSet::from([ChangeReason::Event, ChangeReason::GraceOver])
        );
        assert_eq!((&retry.added, retry.urgent), (&started.added, true));
        assert_eq!(
            schedule.finished(Published::Written, ms(start, 1300)),
            Some(retry.clone())
        );
        assert_eq!(schedule.due(false, at_once), None, "nothing left");
    }

    #[test]
    fn invalid_and_unchanged_publishes_are_not_retried() {
        let start = Instant::now();
        for outcome in [Published::Invalid, Published::Unchanged, Published::Written] {
            let mut schedule = PublishSchedule::new(WAIT);
            schedule.listed();
            schedule.changed(ChangeReason::Event, start);
            schedule.start();
            assert!(schedule.finished(outcome, start).is_some());
            assert_eq!(schedule.due(false, at_once), None, "{outcome:?}");
        }
    }
}
