//! `run`'s sources of change. Each runs as its own task, sends [`Update`]s to the loop in
//! `run/driver.rs` (which alone owns the model), and returns when the stop is broadcast.

pub mod alloc_dir;
pub mod blocking;
pub mod cost;
pub mod stream;

use std::fmt;

use tokio::time::Instant;

use crate::health::Health;
use crate::metrics::{Metrics, unix_now};
use crate::nomad::types::Allocation;

/// Why a full listing was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResyncReason {
    /// The event stream (re)connected: every subscription starts with a listing.
    Connect,
    /// `--resync-interval` elapsed.
    Interval,
    /// SIGHUP.
    Signal,
    /// A burst of unknown allocations: one listing instead of many fetches.
    Burst,
    /// A blocking query woke: the node's allocations changed.
    Change,
}

impl fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResyncReason::Connect => "resync on connect",
            ResyncReason::Interval => "periodic resync",
            ResyncReason::Signal => "resync on SIGHUP",
            ResyncReason::Burst => "resync for a burst",
            ResyncReason::Change => "change on the node",
        })
    }
}

impl ResyncReason {
    /// The `reason` label of `resyncs_total`.
    pub fn label(self) -> &'static str {
        match self {
            ResyncReason::Connect => "reconnect",
            ResyncReason::Interval => "interval",
            ResyncReason::Signal => "signal",
            ResyncReason::Burst => "burst",
            ResyncReason::Change => "change",
        }
    }
}

/// A change for the loop to apply.
#[derive(Debug)]
pub enum Update {
    /// A full listing of the node's allocations (with their jobs), requested at `requested_at`.
    Listed {
        allocations: Vec<Allocation>,
        requested_at: Instant,
        reason: ResyncReason,
    },
    /// An allocation of this node from the event stream, without its job.
    Event(Box<Allocation>),
    /// An allocation fetched by ID, with its job.
    Fetched(Box<Allocation>),
    /// Fetching an allocation failed (it may already be gone).
    FetchFailed { alloc_id: String },
    /// An allocation directory appeared.
    DirCreated { alloc_id: String },
    /// An allocation directory disappeared (the client collected it).
    DirRemoved { alloc_id: String },
}

/// A listing was applied: the metrics count it and readiness sees a successful sync.
fn report_listing(metrics: &Metrics, health: &Health, reason: ResyncReason) {
    metrics.resyncs.with_label_values(&[reason.label()]).inc();
    metrics.last_sync.set(unix_now());
    health.update(|h| {
        h.last_listing = Some(Instant::now());
        h.last_error = None;
    });
}

/// The watch is up: the stream answered, or a blocking query did.
fn report_up(metrics: &Metrics, health: &Health) {
    metrics.stream_up.set(1);
    health.update(|h| {
        if h.stream_up_since.is_none() {
            h.stream_up_since = Some(Instant::now());
            h.stream_down_since = None;
        }
    });
}

/// The watch is down (since now, if it was up).
fn report_down(metrics: &Metrics, health: &Health) {
    metrics.stream_up.set(0);
    health.update(|h| {
        if h.stream_up_since.take().is_some() || h.stream_down_since.is_none() {
            h.stream_down_since = Some(Instant::now());
        }
    });
}
