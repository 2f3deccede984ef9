//! What the watchers report of themselves, the same way for both: a listing applied (metrics
//! count it, readiness sees a sync), the watch up, the watch down.

use tokio::time::Instant;

use crate::observe::health::Health;
use crate::observe::metrics::{Metrics, unix_now};
use crate::run::machine::ResyncReason;

/// A listing was applied: the metrics count it and readiness sees a successful sync.
pub(super) fn report_listing(metrics: &Metrics, health: &Health, reason: ResyncReason) {
    metrics.resyncs.with_label_values(&[reason.label()]).inc();
    metrics.last_sync.set(unix_now());
    health.update(|h| {
        h.last_listing = Some(Instant::now());
        h.last_error = None;
    });
}

/// The watch is up: the stream answered, or a blocking query did.
pub(super) fn report_up(metrics: &Metrics, health: &Health) {
    metrics.stream_up.set(1);
    health.update(|h| {
        if h.stream_up_since.is_none() {
            h.stream_up_since = Some(Instant::now());
            h.stream_down_since = None;
        }
    });
}

/// The watch is down (since now, if it was up).
pub(super) fn report_down(metrics: &Metrics, health: &Health) {
    metrics.stream_up.set(0);
    health.update(|h| {
        if h.stream_up_since.take().is_some() || h.stream_down_since.is_none() {
            h.stream_down_since = Some(Instant::now());
        }
    });
}
