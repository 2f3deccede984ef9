//! The daemon's sources of change. Each runs as its own task and sends [`Update`]s to the loop
//! in `daemon.rs`, which alone owns the model.

pub mod alloc_dir;
pub mod stream;

use crate::nomad::types::Allocation;

/// Why a full listing was taken, for the publish log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResyncReason {
    /// The event stream (re)connected: every subscription starts with a listing.
    Connect,
    /// `--resync-interval` elapsed.
    Interval,
    /// Asked for: SIGHUP, or a burst of unknown allocations.
    Requested,
}

impl ResyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::Connect => "resync on connect",
            ResyncReason::Interval => "periodic resync",
            ResyncReason::Requested => "requested resync",
        }
    }
}

/// A change for the loop to apply.
#[derive(Debug)]
pub enum Update {
    /// A full listing of the node's allocations (with their jobs), taken at `index`.
    Listed {
        allocations: Vec<Allocation>,
        index: u64,
        reason: ResyncReason,
    },
    /// An allocation of this node from the event stream, without its job.
    Event(Allocation),
    /// An allocation fetched by ID, with its job; `reason` is why it was fetched.
    Fetched {
        alloc: Allocation,
        reason: &'static str,
    },
    /// Fetching an allocation failed (it may already be gone).
    FetchFailed { alloc_id: String },
    /// An allocation directory appeared.
    DirCreated { alloc_id: String },
    /// An allocation directory disappeared (the client collected it).
    DirRemoved { alloc_id: String },
}
