//! Which node the table is for: `--node-id`, else the local agent's client node; then its
//! datacenter, name and pool from `/v1/node/:id`.

use crate::nomad::{self, NomadClient};
use crate::table::NodeInfo;

/// Why the node could not be found.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Nomad(#[from] nomad::Error),
    #[error(
        "the agent at {address} runs no Nomad client (its /v1/agent/self has no stats.client.node_id); pass --node-id (NOMAD_NODE_ID) or point --address at a client agent"
    )]
    NoClientNode { address: String },
    #[error(
        "Nomad does not know node {node_id:?} (404 from {address}); check --node-id (NOMAD_NODE_ID)"
    )]
    UnknownNode { node_id: String, address: String },
}

/// Finds the node: `node_id`, else the local agent's client node.
pub async fn resolve(client: &NomadClient, node_id: Option<&str>) -> Result<NodeInfo, NodeError> {
    let node_id = match node_id {
        Some(id) => id.to_owned(),
        None => client
            .agent_self()
            .await?
            .stats
            .client
            .map(|c| c.node_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| NodeError::NoClientNode {
                address: client.address().to_string(),
            })?,
    };
    let node = match client.node(&node_id).await {
        Ok(node) => node.value,
        Err(nomad::Error::Status { status: 404, .. }) => {
            return Err(NodeError::UnknownNode {
                node_id,
                address: client.address().to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(NodeInfo {
        name: node.name,
        datacenter: node.datacenter,
        node_pool: node.node_pool,
        id: node_id,
    })
}
