//! The machine's vocabulary: what comes in ([`Input`], with the watchers' [`Update`]s) and
//! what it asks the driver to do ([`Effect`]). Defined in the pure core, so that the watchers
//! (I/O edges) depend on it and not the other way round.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use crate::nomad::types::{Allocation, Node};

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

/// Which listing a part belongs to: the parts of a listing that failed half-way must not count
/// as parts of the next one, even one requested at the same instant (a paused clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListingId(NonZeroU64);

impl ListingId {
    /// A listing's own ID, never given before in this process.
    pub fn next() -> ListingId {
        static LAST: AtomicU64 = AtomicU64::new(0);
        let id = LAST.fetch_add(1, Ordering::Relaxed) + 1;
        ListingId(NonZeroU64::new(id).expect("a counter from 1 does not wrap"))
    }
}

/// A change for the loop to apply.
#[derive(Debug)]
pub enum Update {
    /// A part of a full listing, which the model takes at once: a listing of the cluster comes
    /// page by page, and held whole it would double the model's size at every resync. What
    /// the listing omits is known only at its end ([`Update::Listed`]).
    ListedPart {
        listing: ListingId,
        allocations: Vec<Allocation>,
        requested_at: Instant,
        reason: ResyncReason,
    },
    /// The last part of a full listing of what the table covers (with their jobs), requested
    /// at `requested_at`: the allocations it did not list, in none of its parts, are gone.
    Listed {
        listing: ListingId,
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
    /// Cluster scope: every node, listed just before the allocations.
    NodesListed(Vec<Node>),
    /// Cluster scope: a node as the `Node` topic of the event stream describes it now.
    NodeChanged(Box<Node>),
}

/// Why the table may have changed: what a publish names in its log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeReason {
    /// A full listing replaced the model.
    Listing(ResyncReason),
    /// An event patched an allocation the model knew the job of.
    Event,
    /// An allocation first seen in an event was fetched.
    NewAllocation,
    /// An allocation directory appeared before Nomad told about it.
    NewAllocDir,
    /// Rows of departed allocations expired.
    GraceOver,
    /// A node's columns changed (cluster scope).
    NodeChange,
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeReason::Listing(reason) => write!(f, "{reason}"),
            ChangeReason::Event => f.write_str("event"),
            ChangeReason::NewAllocation => f.write_str("new allocation"),
            ChangeReason::NewAllocDir => f.write_str("new alloc dir"),
            ChangeReason::GraceOver => f.write_str("grace period over"),
            ChangeReason::NodeChange => f.write_str("node change"),
        }
    }
}

/// Why a base is published (`--memory-table-url`): the `reason` label of
/// `memory_table_full_pushes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseReason {
    /// The first after the first listing.
    Start,
    /// `--base-interval` elapsed (or a failed base is retried).
    Interval,
    /// Vector's memory table answered again after failing.
    TargetBack,
}

impl BaseReason {
    pub fn label(self) -> &'static str {
        match self {
            BaseReason::Start => "start",
            BaseReason::Interval => "interval",
            BaseReason::TargetBack => "back",
        }
    }
}

/// What a publish did, as the machine needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The file was replaced: Vector is owed a reload.
    Written,
    /// The file already held these bytes.
    Unchanged,
    /// The table failed validation: retrying the same content cannot help; the next change will.
    Invalid,
    /// Writing failed (disk full, directory gone): retried after [`PUBLISH_RETRY`].
    Failed,
    /// The changes went to the queue of Vector's memory table (`--memory-table-url`), which
    /// delivers them itself: no reload.
    Pushed,
}

/// One input of the loop.
#[derive(Debug)]
pub enum Input {
    /// A change from a watcher or a fetch.
    Update(Update),
    /// The time given by [`Machine::next_wakeup`] has come.
    Tick,
    /// The publish asked for by [`Effect::Publish`] is done.
    Published(Published),
    /// The reload asked for by [`Effect::Reload`] ended, delivered or not.
    Reloaded,
    /// The base publish asked for by [`Effect::PublishBase`] is done.
    BasePublished(Published),
    /// Vector's memory table answered again after failing: it may have restarted and lost
    /// what it held (a base is published at once).
    PushTargetBack,
    /// SIGTERM or SIGINT: publish and reload what is owed, then exit.
    Stop,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Fetch this allocation with its job, as of `modify_index` at least (0: any), so that a
    /// server that is behind waits until it has caught up; answer with `Update::Fetched` or
    /// `FetchFailed`.
    Fetch { alloc_id: String, modify_index: u64 },
    /// Take a full listing now (a burst of unknown allocations).
    Resync,
    /// Render the model and publish it; answer with [`Input::Published`]. `since` is the first
    /// change it carries.
    Publish {
        reasons: BTreeSet<ChangeReason>,
        since: Instant,
    },
    /// With `--memory-table-url`: send the pending changes to Vector's memory table instead
    /// of writing the file; answer with [`Input::Published`] ([`Published::Pushed`]).
    Push { since: Instant },
    /// With `--memory-table-url`: publish the base file and send the memory table everything;
    /// answer with [`Input::BasePublished`].
    PublishBase(BaseReason),
    /// Tell Vector to reload; answer with [`Input::Reloaded`].
    Reload,
    /// Stop the loop.
    Exit,
}
