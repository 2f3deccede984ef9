//! What watching costs Nomad, and whether the other watch mode would cost less. Nomad's event
//! stream has no node filter, so in events mode every node receives every allocation event of
//! the cluster; a blocking query on the node's listing wakes only on the node's own changes but
//! returns the whole listing each time. The meter counts, in events mode, the stream's bytes
//! (this node's events and the others'), this node's changes and the size of its listing, and
//! estimates what blocking queries would have cost over the same time:
//! `(own changes + one listing per wait) × listing size`. When that is less than the stream,
//! `run` warns, naming `--watch blocking` and both figures. Pure: time is passed in.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// The first comparison comes after this long (or the report interval, if shorter): enough to
/// see the cluster's churn, early enough for an operator watching a new deployment.
const FIRST_REPORT: Duration = Duration::from_secs(60);
const HOUR: f64 = 3600.0;

/// Events-mode costs over one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CostWindow {
    /// Bytes of stream frames carrying this node's allocations (a frame's share by its events).
    pub own_event_bytes: u64,
    /// Bytes of stream frames carrying other nodes' allocations.
    pub other_event_bytes: u64,
    /// Frames with this node's allocations: each would have woken a blocking query once.
    pub own_changes: u64,
    /// The size of the node's last listing.
    pub listing_bytes: u64,
}

/// The two costs, in bytes per hour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    pub events_per_hour: f64,
    /// The share of the stream's bytes that carried other nodes' events, 0 to 1.
    pub others_share: f64,
    pub blocking_per_hour: f64,
    pub own_changes_per_hour: f64,
    pub listing_bytes: u64,
}

impl Comparison {
    /// Whether `--watch blocking` would have cost Nomad fewer bytes: the warning's condition.
    pub fn blocking_is_cheaper(&self) -> bool {
        self.blocking_per_hour < self.events_per_hour
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the event stream costs Nomad {} per hour for this node ({:.0} % of it other nodes' events); --watch blocking would cost about {} per hour ({:.0} changes of this node per hour plus idle waits, × a listing of {})",
            megabytes(self.events_per_hour),
            self.others_share * 100.0,
            megabytes(self.blocking_per_hour),
            self.own_changes_per_hour,
            megabytes(self.listing_bytes as f64),
        )
    }
}

fn megabytes(bytes: f64) -> String {
    format!("{:.2} MB", bytes / 1e6)
}

/// Compares a window of `elapsed` with what blocking queries waiting `wait` would have cost.
pub fn compare(window: &CostWindow, elapsed: Duration, wait: Duration) -> Comparison {
    let hours = elapsed.as_secs_f64().max(1e-3) / HOUR;
    let idle_listings_per_hour = HOUR / wait.as_secs_f64().max(1e-3);
    let own_changes_per_hour = window.own_changes as f64 / hours;
    let stream_bytes = window.own_event_bytes + window.other_event_bytes;
    Comparison {
        others_share: (window.other_event_bytes as f64 / stream_bytes as f64).max(0.0),
        events_per_hour: stream_bytes as f64 / hours,
        blocking_per_hour: (own_changes_per_hour + idle_listings_per_hour)
            * window.listing_bytes as f64,
        own_changes_per_hour,
        listing_bytes: window.listing_bytes,
    }
}

/// Counts a window and says when it is time to compare.
#[derive(Debug)]
pub struct CostMeter {
    window: CostWindow,
    started: Instant,
    next_report: Instant,
    interval: Duration,
    /// The wait blocking queries would use.
    wait: Duration,
}

impl CostMeter {
    /// A meter whose first window starts at `now` and is compared after a minute (or
    /// `interval`, if shorter), then every `interval`; `wait` is the blocking queries' wait.
    pub fn new(now: Instant, interval: Duration, wait: Duration) -> CostMeter {
        CostMeter {
            window: CostWindow::default(),
            started: now,
            next_report: now + interval.min(FIRST_REPORT),
            interval,
            wait,
        }
    }

    /// A frame of `bytes` with `own` of its `all` events for this node; returns its bytes
    /// split into this node's share and the other nodes'.
    pub fn frame(&mut self, bytes: usize, own: usize, all: usize) -> (u64, u64) {
        let own_bytes = (bytes * own).checked_div(all).unwrap_or(0) as u64;
        self.window.own_event_bytes += own_bytes;
        self.window.other_event_bytes += bytes as u64 - own_bytes;
        if own > 0 {
            self.window.own_changes += 1;
        }
        (own_bytes, bytes as u64 - own_bytes)
    }

    /// A listing of the node, `bytes` long.
    pub fn listing(&mut self, bytes: usize) {
        self.window.listing_bytes = bytes as u64;
    }

    /// At the end of a window, the comparison; a new window starts (the listing size carries
    /// over).
    pub fn due(&mut self, now: Instant) -> Option<Comparison> {
        if now < self.next_report {
            return None;
        }
        let comparison = compare(&self.window, now - self.started, self.wait);
        self.window = CostWindow {
            listing_bytes: self.window.listing_bytes,
            ..CostWindow::default()
        };
        self.started = now;
        self.next_report = now + self.interval;
        Some(comparison)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(300);
    const HOUR_D: Duration = Duration::from_secs(3600);

    #[test]
    fn a_quiet_node_in_a_busy_cluster_is_cheaper_with_blocking_queries() {
        // 1,000 nodes, 1 update/s cluster-wide, 3 kB per event: this node has 3.6 changes/h.
        let window = CostWindow {
            own_event_bytes: 4 * 3_000,
            other_event_bytes: 3_596 * 3_000,
            own_changes: 4,
            listing_bytes: 140_000,
        };
        let c = compare(&window, HOUR_D, WAIT);
        assert_eq!(c.events_per_hour, 3_600.0 * 3_000.0);
        assert_eq!(c.blocking_per_hour, (4.0 + 12.0) * 140_000.0);
        assert!(c.blocking_is_cheaper());
        let text = c.to_string();
        assert!(
            text.contains("--watch blocking") && text.contains("10.80 MB"),
            "{text}"
        );
    }

    #[test]
    fn a_busy_node_of_a_small_cluster_is_cheaper_with_the_stream() {
        // 10 nodes, 1 update/s: this node has 360 changes/h.
        let window = CostWindow {
            own_event_bytes: 360 * 3_000,
            other_event_bytes: 3_240 * 3_000,
            own_changes: 360,
            listing_bytes: 140_000,
        };
        assert!(!compare(&window, HOUR_D, WAIT).blocking_is_cheaper());
    }

    #[test]
    fn frames_split_their_bytes_by_events_and_windows_restart_after_a_report() {
        let t0 = Instant::now();
        let mut meter = CostMeter::new(t0, HOUR_D, WAIT);
        meter.listing(1_000);
        assert_eq!(meter.frame(300, 1, 3), (100, 200));
        assert_eq!(meter.frame(200, 0, 2), (0, 200));
        assert_eq!(
            meter.window,
            CostWindow {
                own_event_bytes: 100,
                other_event_bytes: 400,
                own_changes: 1,
                listing_bytes: 1_000,
            }
        );
        assert_eq!(meter.due(t0 + Duration::from_secs(59)), None);
        let first = meter
            .due(t0 + FIRST_REPORT)
            .expect("the first report after a minute");
        assert_eq!(first.events_per_hour, 500.0 * 60.0);
        assert_eq!(meter.window.own_changes, 0);
        assert_eq!(meter.window.listing_bytes, 1_000);
        assert_eq!(meter.due(t0 + FIRST_REPORT + Duration::from_secs(10)), None);
        assert!(
            meter.due(t0 + FIRST_REPORT + HOUR_D).is_some(),
            "then hourly"
        );
    }
}
