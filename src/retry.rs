//! How failing calls to Nomad are retried and reported, the same for the event-stream watcher
//! and for finding the node at start: exponential backoff with jitter, and each error
//! logged at warn level once per change (at debug level while it repeats), so that a long outage
//! is one line, not thousands.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tracing::{debug, warn};

/// The longest wait between attempts; also the retry delay after a 403.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Delays between attempts: from 250 ms, doubling up to [`MAX_BACKOFF`], each plus a random
/// jitter of up to as much again (so a delay `d` lies in `[d, 2d)`), seeded per process so that
/// many nodes do not retry in step after an outage.
#[derive(Debug)]
pub struct Backoff {
    delays: ExponentialBackoff,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::with_seed(fastrand::u64(..))
    }
}

impl Backoff {
    /// A backoff whose jitter comes from `seed` (tests; every process gets a random one).
    pub fn with_seed(seed: u64) -> Backoff {
        Backoff {
            delays: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(MAX_BACKOFF)
                .with_jitter()
                .with_jitter_seed(seed)
                .without_max_times()
                .build(),
        }
    }

    /// The delay before the next attempt, after a failure.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(MAX_BACKOFF)
    }
}

/// The last error reported, so that a repeated one is not logged again.
#[derive(Debug, Default)]
pub struct ErrorLog {
    last: Option<String>,
}

impl ErrorLog {
    /// Logs `message` under `what` at warn level if it differs from the last one (returns true),
    /// else at debug level (returns false).
    pub fn report(&mut self, what: &str, message: &str, retry_in: Duration) -> bool {
        if self.last.as_deref() == Some(message) {
            debug!(error = %message, "still failing");
            return false;
        }
        warn!(error = %message, retry_in = ?retry_in, "{what}");
        self.last = Some(message.to_owned());
        true
    }

    /// Forgets the last error; returns whether there was one (Nomad answers again).
    pub fn recovered(&mut self) -> bool {
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_reported_once_per_change() {
        let mut log = ErrorLog::default();
        let wait = Duration::from_secs(1);
        assert!(log.report("failed", "403 Permission denied", wait));
        assert!(!log.report("failed", "403 Permission denied", wait));
        assert!(log.report("failed", "connection refused", wait));
        assert!(log.recovered());
        assert!(!log.recovered());
        assert!(
            log.report("failed", "connection refused", wait),
            "again after a recovery"
        );
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(250) && delays[0] < Duration::from_millis(500));
        assert!(delays.iter().all(|d| *d < MAX_BACKOFF * 2), "{delays:?}");
        assert!(delays[11] >= MAX_BACKOFF, "{delays:?}");
    }
}
