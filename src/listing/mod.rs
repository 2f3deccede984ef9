//! Listing what the table covers, for every command: the node this runs on
//! ([`local_node`]) and its allocations, or every allocation of the cluster with their nodes
//! ([`cluster`]). `dump`, `print-table` and `check` list once ([`list_once`]); `run`'s watchers
//! list on every (re)connect and resync through the same [`Source::list`].

pub mod cluster;
pub mod local_node;

use std::sync::Arc;

use crate::config::Scope;
use crate::nomad::types::{Allocation, Node};
use crate::nomad::{Blocking, Error, NomadClient};
use crate::table::columns::Columns;
use crate::table::node_columns::Nodes;
use cluster::ClusterLister;
use local_node::NodeError;

/// Why a one-shot listing failed: the node could not be found, or Nomad did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Nomad(#[from] Error),
}

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

/// Where a full listing goes as it arrives: `run` gives each page to the model as it comes, so
/// that a listing of the cluster is never held whole beside the model (15 MB at 62,500
/// allocations, at every resync); a one-shot command collects it ([`Collected`]).
pub trait Parts {
    /// Every node (cluster scope), before any allocation. `false`: the receiver is gone.
    fn nodes(&mut self, nodes: Vec<Node>) -> impl Future<Output = bool> + Send;
    /// The listing's next allocations. `false`: the receiver is gone.
    fn allocations(&mut self, page: Vec<Allocation>) -> impl Future<Output = bool> + Send;
}

/// A listing collected whole, for the one-shot commands.
#[derive(Debug, Default)]
pub struct Collected {
    pub allocations: Vec<Allocation>,
    /// Cluster scope: every node.
    pub nodes: Option<Vec<Node>>,
}

impl Parts for Collected {
    fn nodes(&mut self, nodes: Vec<Node>) -> impl Future<Output = bool> + Send {
        self.nodes = Some(nodes);
        std::future::ready(true)
    }

    fn allocations(&mut self, page: Vec<Allocation>) -> impl Future<Output = bool> + Send {
        self.allocations.extend(page);
        std::future::ready(true)
    }
}

/// What a full listing, its parts delivered, tells besides them.
#[derive(Debug)]
pub struct Listing {
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
            Source::Node(node_id) => *alloc.node_id == **node_id,
            Source::Cluster(_) => true,
        }
    }

    /// Lists everything the table covers into `parts`; `None` when their receiver is gone.
    pub async fn list(
        &self,
        client: &NomadClient,
        parts: &mut (impl Parts + Send),
    ) -> Result<Option<Listing>, Error> {
        match self {
            Source::Node(node_id) => {
                let listed = client
                    .node_allocations(node_id, Blocking::default())
                    .await?;
                let listing = Listing {
                    index: listed.index.unwrap_or(0),
                    bytes: listed.bytes,
                };
                Ok(parts.allocations(listed.value).await.then_some(listing))
            }
            Source::Cluster(lister) => {
                let Some(listed) = lister.list(parts).await? else {
                    return Ok(None);
                };
                tracing::debug!(
                    allocations = listed.allocations,
                    nodes = listed.nodes,
                    fetched_jobs = listed.fetched_jobs,
                    cached_jobs = listed.cached_jobs,
                    "listed the cluster"
                );
                Ok(Some(Listing {
                    index: listed.index,
                    bytes: listed.bytes,
                }))
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

/// What a one-shot command lists: the allocations, their node columns, and how the table is
/// named in messages.
#[derive(Debug)]
pub struct Listed {
    pub allocations: Vec<Allocation>,
    pub nodes: Nodes,
    pub covers: String,
}

/// Lists what the table of `scope` covers once: the node (resolved from the agent unless
/// given) and its allocations, or the cluster's allocations and nodes.
pub async fn list_once(
    client: &Arc<NomadClient>,
    scope: &Scope,
    columns: &Columns,
) -> Result<Listed, ListError> {
    let (source, mut nodes) = match scope {
        Scope::Node(node_id) => {
            let node = local_node::resolve(client, node_id.as_deref()).await?;
            (Source::Node(node.id.clone()), Nodes::single(node))
        }
        Scope::Cluster { page_size } => (
            Source::Cluster(Arc::new(ClusterLister::new(
                client.clone(),
                *page_size,
                columns,
            ))),
            Nodes::cluster(),
        ),
    };
    let mut listing = Collected::default();
    source
        .list(client, &mut listing)
        .await?
        .expect("a collection is never gone");
    let covers = match (&source, &listing.nodes) {
        (Source::Node(node_id), _) => format!("node {node_id}"),
        (Source::Cluster(_), listed) => {
            let listed = listed.as_deref().unwrap_or_default();
            nodes.replace(listed, |_| false);
            format!("the cluster ({} nodes)", listed.len())
        }
    };
    Ok(Listed {
        allocations: listing.allocations,
        nodes,
        covers,
    })
}
