//! When Vector is owed a reload and when one may be sent: a reload is owed by a publish since
//! the last one started (so a burst of publishes is one trailing reload, and no reload follows
//! none), one runs at a time, and the next starts no sooner than the minimum interval after the
//! last one ended, unless it is urgent (rows for an allocation whose log files are about to be
//! read: the caller bounds how often). Pure: time is passed in.

use std::time::Duration;

use tokio::time::Instant;

/// The reload bookkeeping of the loop.
#[derive(Clone, Debug)]
pub struct ReloadSchedule {
    /// The least time from the end of one reload to the start of the next.
    min_interval: Duration,
    /// A table was published (or found unannounced) since the last reload started.
    owed: bool,
    /// A reload is being delivered.
    in_flight: bool,
    /// When the last reload ended.
    last_ended: Option<Instant>,
    /// The owed reload may skip the interval.
    urgent: bool,
}

impl ReloadSchedule {
    pub fn new(min_interval: Duration) -> ReloadSchedule {
        ReloadSchedule {
            min_interval,
            owed: false,
            in_flight: false,
            last_ended: None,
            urgent: false,
        }
    }

    /// A table Vector has not been told about is on disk.
    pub fn owe(&mut self) {
        self.owed = true;
    }

    /// A table with rows Vector needs now is on disk: the reload skips the interval (it still
    /// waits for a running one to end).
    pub fn owe_urgently(&mut self) {
        self.owed = true;
        self.urgent = true;
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// When the owed reload may start (`now` if at once); `None` when none is owed or one is
    /// running (its end decides).
    pub fn due_at(&self, now: Instant) -> Option<Instant> {
        if !self.owed || self.in_flight {
            return None;
        }
        Some(
            self.last_ended
                .filter(|_| !self.urgent)
                .map_or(now, |ended| ended + self.min_interval),
        )
    }

    /// Starts the owed reload if it is due at `now`; returns whether it started. What is
    /// published from now on is owed a reload of its own.
    pub fn start(&mut self, now: Instant) -> bool {
        let due = self.due_at(now).is_some_and(|at| at <= now);
        if due {
            self.owed = false;
            self.urgent = false;
            self.in_flight = true;
        }
        due
    }

    /// Starts the owed reload now, whatever the interval: for a stop, where waiting out the
    /// interval past the deadline would leave Vector with the old table. Returns whether one
    /// was owed and none was running.
    pub fn start_now(&mut self) -> bool {
        let start = self.owed && !self.in_flight;
        if start {
            self.owed = false;
            self.urgent = false;
            self.in_flight = true;
        }
        start
    }

    /// The running reload ended (delivered or not).
    pub fn finished(&mut self, now: Instant) {
        self.in_flight = false;
        self.last_ended = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_urgent_reload_skips_the_interval_but_not_a_running_reload() {
        let t0 = Instant::now();
        let mut schedule = ReloadSchedule::new(SECOND);
        schedule.owe();
        assert!(schedule.start(t0));
        schedule.owe_urgently();
        assert_eq!(schedule.due_at(t0), None, "one reload at a time");
        schedule.finished(t0);
        assert_eq!(
            schedule.due_at(t0),
            Some(t0),
            "no interval for an urgent one"
        );
        assert!(schedule.start(t0));
        schedule.finished(t0);
        schedule.owe();
        assert_eq!(
            schedule.due_at(t0),
            Some(t0 + SECOND),
            "the next ordinary one waits again"
        );
    }

    #[test]
    fn nothing_is_due_until_a_publish_owes_a_reload() {
        let t0 = Instant::now();
        let mut schedule = ReloadSchedule::new(SECOND);
        assert_eq!(schedule.due_at(t0), None);
        assert!(!schedule.start(t0));
        schedule.owe();
        assert_eq!(
            schedule.due_at(t0),
            Some(t0),
            "the first reload is due at once"
        );
        assert!(schedule.start(t0));
        schedule.finished(t0);
        assert_eq!(schedule.due_at(t0), None, "nothing owed after it");
    }

    #[test]
    fn publishes_during_a_reload_make_one_trailing_reload_after_the_interval() {
        let t0 = Instant::now();
        let mut schedule = ReloadSchedule::new(SECOND);
        schedule.owe();
        assert!(schedule.start(t0));
        schedule.owe();
        schedule.owe();
        assert_eq!(schedule.due_at(t0), None, "one at a time");
        let ended = t0 + Duration::from_millis(100);
        schedule.finished(ended);
        assert_eq!(schedule.due_at(ended), Some(ended + SECOND));
        assert!(!schedule.start(ended + SECOND - Duration::from_millis(1)));
        assert!(schedule.start(ended + SECOND));
        schedule.finished(ended + SECOND);
        assert_eq!(
            schedule.due_at(ended + 5 * SECOND),
            None,
            "no reload without a publish since the last one started"
        );
    }

    #[test]
    fn publishes_waiting_out_the_interval_are_one_reload_not_two() {
        // Issue D: changes at 0, 0.5 and 1.0 s with a 2 s interval gave a third reload at 4 s.
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut schedule = ReloadSchedule::new(2 * SECOND);
        let mut started = Vec::new();
        for (ms, publish) in [(0, true), (500, true), (1_000, true)] {
            if publish {
                schedule.owe();
            }
            if schedule.start(at(ms)) {
                started.push(ms);
                schedule.finished(at(ms));
            }
        }
        for ms in (1_100..10_000).step_by(100) {
            if schedule.start(at(ms)) {
                started.push(ms);
                schedule.finished(at(ms));
            }
        }
        assert_eq!(started, [0, 2_000]);
    }
}
