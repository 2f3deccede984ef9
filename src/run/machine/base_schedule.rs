//! When the base file is published while changes go to Vector's memory table
//! (`--memory-table-url`): once the first listing is in, then every `--base-interval`, one at
//! a time, a failed one retried after [`PUBLISH_RETRY`]. Each base publish also sends the
//! memory table everything, so that a Vector restart nobody noticed heals within an interval.
//! Pure.

use std::time::Duration;

use tokio::time::Instant;

use super::debounce::PUBLISH_RETRY;
use super::input::{BaseReason, Published};

/// The base file's schedule.
#[derive(Debug)]
pub struct BaseSchedule {
    interval: Duration,
    /// `None` until the first base publish: due as soon as the model is listed.
    next_at: Option<Instant>,
    /// Why the next one is due.
    reason: BaseReason,
    in_progress: bool,
}

impl BaseSchedule {
    pub fn new(interval: Duration) -> BaseSchedule {
        BaseSchedule {
            interval,
            next_at: None,
            reason: BaseReason::Start,
            in_progress: false,
        }
    }

    /// When the next base publish is due (`now` if it is overdue or the first), unless one is
    /// in progress.
    pub fn due(&self, now: Instant) -> Option<Instant> {
        (!self.in_progress).then(|| self.next_at.unwrap_or(now))
    }

    /// Whether a base publish is under way.
    pub fn in_progress(&self) -> bool {
        self.in_progress
    }

    /// Makes the next base due at once, because Vector's memory table answers again after
    /// failing (when none is in progress, the next step starts it).
    pub fn due_at_once(&mut self) {
        self.next_at = None;
        self.reason = BaseReason::TargetBack;
    }

    /// Starts a base publish if one is due at `now`; returns why it is due.
    pub fn start(&mut self, now: Instant) -> Option<BaseReason> {
        let started = self.due(now).is_some_and(|at| at <= now);
        self.in_progress |= started;
        started.then_some(self.reason)
    }

    /// The base publish in progress ended at `now`: the next one comes an interval later, or
    /// after [`PUBLISH_RETRY`] if writing failed.
    pub fn finished(&mut self, outcome: Published, now: Instant) {
        if !self.in_progress {
            return;
        }
        self.in_progress = false;
        let wait = if outcome == Published::Failed {
            PUBLISH_RETRY
        } else {
            self.interval
        };
        self.next_at = Some(now + wait);
        self.reason = BaseReason::Interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(300);

    #[test]
    fn the_first_is_due_at_once_and_the_next_an_interval_after_it_ended() {
        let start = Instant::now();
        let mut base = BaseSchedule::new(INTERVAL);
        assert_eq!(base.due(start), Some(start));
        assert_eq!(base.start(start), Some(BaseReason::Start));
        assert_eq!(base.due(start), None, "one at a time");
        assert_eq!(base.start(start), None);
        let ended = start + Duration::from_millis(40);
        base.finished(Published::Written, ended);
        assert_eq!(base.due(ended), Some(ended + INTERVAL));
        assert_eq!(
            base.start(ended + INTERVAL - Duration::from_millis(1)),
            None
        );
        assert_eq!(base.start(ended + INTERVAL), Some(BaseReason::Interval));
    }

    #[test]
    fn a_failed_write_is_retried_soon_and_other_outcomes_wait_an_interval() {
        let start = Instant::now();
        for (outcome, wait) in [
            (Published::Failed, PUBLISH_RETRY),
            (Published::Invalid, INTERVAL),
            (Published::Unchanged, INTERVAL),
        ] {
            let mut base = BaseSchedule::new(INTERVAL);
            base.start(start);
            base.finished(outcome, start);
            assert_eq!(base.due(start), Some(start + wait), "{outcome:?}");
        }
    }

    #[test]
    fn a_base_can_be_made_due_at_once() {
        let start = Instant::now();
        let mut base = BaseSchedule::new(INTERVAL);
        base.start(start);
        base.finished(Published::Written, start);
        let later = start + Duration::from_secs(7);
        base.due_at_once();
        assert_eq!(base.due(later), Some(later));
        assert_eq!(base.start(later), Some(BaseReason::TargetBack));
        base.finished(Published::Written, later);
        assert_eq!(base.start(later + INTERVAL), Some(BaseReason::Interval));
    }

    #[test]
    fn an_end_without_a_start_changes_nothing() {
        let start = Instant::now();
        let mut base = BaseSchedule::new(INTERVAL);
        base.finished(Published::Written, start);
        assert_eq!(base.due(start), Some(start));
    }
}
