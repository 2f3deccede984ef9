//! `run`'s sources of change. Each runs as its own task, sends [`Update`]s to the loop in
//! `run/driver.rs` (which alone owns the model), and returns when the stop is broadcast.

pub mod alloc_dir;
pub mod blocking;
pub mod cost;
pub mod stream;

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use crate::listing::cluster::ClusterLister;
use crate::nomad::types::{Allocation, Node};
use crate::nomad::{Blocking, Error, NomadClient};
use crate::observe::health::Health;
use crate::observe::metrics::{Metrics, unix_now};

/// The event-stream topics of the node scope: allocations (of every node: there is no
/// server-side node filter).
pub const NODE_TOPICS: &[&str] = &["Allocation:*"];
/// The cluster scope's: allocations, and nodes for their columns.
pub const CLUSTER_TOPICS: &[&str] = &["Allocation:*", "Node:*"];

/// What the table covers, as the watchers see it.
#[derive(Clone, Debug)]
pub enum Source {
    /// One node's allocations: events of other nodes are dropped.
    Node(String),
    /// Every allocation of the cluster, and the nodes for their columns.
    Cluster(Arc<ClusterLister>),
}

/// A full listing of what the table covers.
#[derive(Debug)]
pub struct Listing {
    pub allocations: Vec<Allocation>,
    /// Cluster scope: every node.
    pub nodes: Option<Vec<Node>>,
    /// Where the event stream continues.
    pub index: u64,
    /// Bytes received for it.
    pub bytes: usize,
}

impl Source {
    /// The event-stream topics to follow.
    pub fn topics(&self) -> &'static [&'static str] {
        match self {
            Source::Node(_) => NODE_TOPICS,
            Source::Cluster(_) => CLUSTER_TOPICS,
        }
    }

    /// Whether an allocation event concerns the table.
    pub fn wants(&self, alloc: &Allocation) -> bool {
        match self {
            Source::Node(node_id) => alloc.node_id == *node_id,
            Source::Cluster(_) => true,
        }
    }

    /// Lists everything the table covers.
    pub async fn list(&self, client: &NomadClient) -> Result<Listing, Error> {
        match self {
            Source::Node(node_id) => {
                let listed = client
                    .node_allocations(node_id, Blocking::default())
                    .await?;
                Ok(Listing {
                    allocations: listed.value,
                    nodes: None,
                    index: listed.index.unwrap_or(0),
                    bytes: listed.bytes,
                })
            }
            Source::Cluster(lister) => {
                let listed = lister.list().await?;
                tracing::debug!(
                    allocations = listed.allocations.len(),
                    nodes = listed.nodes.len(),
                    fetched_jobs = listed.fetched_jobs,
                    cached_jobs = listed.cached_jobs,
                    "listed the cluster"
                );
                Ok(Listing {
                    allocations: listed.allocations,
                    nodes: Some(listed.nodes),
                    index: listed.index,
                    bytes: listed.bytes,
                })
            }
        }
    }

    /// A plain read that needs what the event stream needs, to explain a refused
    /// subscription: its error, if it fails.
    pub async fn probe(&self, client: &NomadClient) -> Option<Error> {
        let probed = match self {
            Source::Node(node_id) => client
                .node_allocations(node_id, Blocking::default())
                .await
                .map(drop),
            Source::Cluster(_) => match client.nodes().await {
                Ok(_) => client.allocation_stubs(1, None).await.map(drop),
                Err(e) => Err(e),
            },
        };
        probed.err()
    }
}

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
    /// Cluster scope: every node, listed just before the allocations.
    NodesListed(Vec<Node>),
    /// Cluster scope: a node as the `Node` topic of the event stream describes it now.
    NodeChanged(Box<Node>),
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
