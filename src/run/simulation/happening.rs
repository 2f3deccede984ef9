//! What happens in a simulated run, at what virtual time, and how the trace shows it.

use std::time::Duration;

use super::nomad::{SimAlloc, SimFrame};
use crate::nomad::query::Consistency;
use crate::run::machine::{Input, Update};

/// Something that happens at a virtual time.
#[derive(Clone, Debug)]
pub enum Happening {
    /// The scheduler places an allocation.
    Place,
    /// The client starts it, an in-place update, a stop, the client's report of the end.
    Start(String),
    InPlace(String),
    Stop(String),
    Complete(String),
    /// The server's GC deletes it (no event).
    Collect(String),
    /// The client creates or removes the allocation directory; the task writes its first line.
    DirCreate(String),
    DirRemove(String),
    FirstLine(String),
    /// Vector reads the first line of a log file.
    VectorReads(String),
    /// A snapshot restore on the servers.
    Restore,
    /// Nomad answers this status (500, or 403 for a revoked token) to everything until the
    /// given time.
    Outage {
        until: Duration,
        status: u16,
    },
    /// The event stream is cut.
    Cut,
    /// The disk refuses writes until the given time.
    DiskFull(Duration),
    /// SIGHUP.
    Sighup,
    /// The watcher sends its next query (blocking) or connects (events).
    Issue {
        conn: u64,
    },
    /// The answer of a listing arrives.
    Listing {
        conn: u64,
        requested_at: Duration,
        consistency: Consistency,
        answer: Option<(Vec<crate::nomad::types::Allocation>, u64)>,
    },
    /// A frame of the event stream arrives.
    Frame {
        conn: u64,
        frame: SimFrame,
    },
    /// The events watcher's resync timer.
    ResyncDue {
        conn: u64,
    },
    /// A fetch's answer arrives.
    Fetched {
        process: u64,
        id: String,
        answer: Option<SimAlloc>,
    },
    /// The loop takes the next update from its queue.
    Deliver {
        process: u64,
    },
    /// The machine's wakeup.
    Tick {
        process: u64,
    },
    /// A reload ended.
    Reloaded {
        process: u64,
        stamp: Stamp,
    },
    /// Re-evaluates pending blocking queries (the follower caught up).
    Recheck,
    /// SIGTERM, and the start of the next process.
    Sigterm,
    Restart,
}

/// The table a reload announced (its length in the trace).
#[derive(Clone)]
pub struct Stamp(pub(super) Vec<u8>);

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// An input as the trace shows it: allocations by ID, index and job version.
pub(super) fn describe(input: &Input) -> String {
    let short = |a: &crate::nomad::types::Allocation| {
        format!(
            "{}@{}/v{}",
            &a.id[..8],
            a.modify_index,
            a.job
                .as_ref()
                .map_or("-".to_owned(), |j| j.version.to_string())
        )
    };
    match input {
        Input::Update(Update::ListedPart {
            allocations,
            reason,
            ..
        }) => format!(
            "ListedPart({reason:?}: {})",
            allocations.iter().map(short).collect::<Vec<_>>().join(" ")
        ),
        Input::Update(Update::Listed {
            allocations,
            reason,
            ..
        }) => format!(
            "Listed({reason:?}: {})",
            allocations.iter().map(short).collect::<Vec<_>>().join(" ")
        ),
        Input::Update(Update::Event(a)) => format!("Event({})", short(a)),
        Input::Update(Update::Fetched(a)) => format!("Fetched({})", short(a)),
        Input::Update(Update::NodesListed(nodes)) => format!("NodesListed({})", nodes.len()),
        other => format!("{other:?}"),
    }
}

/// A happening as the trace shows it.
pub(super) fn show(what: &Happening) -> String {
    match what {
        Happening::Listing {
            conn,
            requested_at,
            consistency,
            answer,
        } => match answer {
            Some((allocs, index)) => format!(
                "Listing(conn {conn}, requested {:.3}s, {consistency:?}, index {index}: {})",
                requested_at.as_secs_f64(),
                allocs
                    .iter()
                    .map(|a| format!("{}@{}", &a.id[..8], a.modify_index))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!("Listing(conn {conn}, failed)"),
        },
        Happening::Frame { conn, frame } => format!(
            "Frame(conn {conn}, index {}: {})",
            frame.index,
            frame
                .allocs
                .iter()
                .map(|a| format!("{}@{} {}", &a.id[..8], a.node, a.client_status))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Happening::Fetched { id, answer, .. } => format!(
            "Fetched({}: {:?})",
            &id[..8],
            answer.as_ref().map(|a| (a.modify_index, a.job_version))
        ),
        other => format!("{other:?}"),
    }
}

#[derive(Debug)]
pub(super) struct Scheduled {
    pub(super) at: Duration,
    pub(super) seq: u64,
    pub(super) what: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}
