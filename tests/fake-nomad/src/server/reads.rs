//! The reads of the agent, nodes and single allocations: `/v1/agent/self`, `/v1/status/leader`,
//! `/v1/nodes`, `/v1/node/:id`, `/v1/node/:id/allocations` and `/v1/allocation/:id`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::authorize::authorize;
use super::blocking::Read;
use super::{ApiError, AppState};
use crate::json;
use crate::model::Capability;

pub(super) async fn agent_self(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    let cluster = shared.cluster();
    if let Err(error) = authorize(&cluster, &headers, &[Capability::AgentRead]) {
        return error.into_response();
    }
    let body = serde_json::to_vec(&json::agent_self(&cluster)).expect("JSON values serialize");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub(super) async fn node(Path(node_id): Path<String>, read: Read) -> Response {
    read.answer(&[Capability::NodeRead], |cluster, _| {
        let node = cluster
            .nodes
            .get(&node_id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "node not found"))?;
        Ok((node.modify_index, json::node(node)))
    })
    .await
}

/// `GET /v1/nodes`: every node as a `NodeListStub`, by ID (ACL `node:read`); the index is the
/// nodes table's.
pub(super) async fn nodes(read: Read) -> Response {
    read.answer(&[Capability::NodeRead], |cluster, _| {
        let stubs = cluster.nodes.values().map(json::node_stub).collect();
        Ok((cluster.nodes_table_index, Value::Array(stubs)))
    })
    .await
}

/// `GET /v1/status/leader`: the leader's RPC address as a JSON string; no ACL needed.
pub(super) async fn status_leader() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "\"127.0.0.1:4647\"",
    )
        .into_response()
}

pub(super) async fn node_allocations(Path(node_id): Path<String>, read: Read) -> Response {
    read.answer(&[Capability::NodeRead], |cluster, p| {
        // Allocations in namespaces the token cannot read are silently dropped.
        let allocs: Vec<Value> = cluster
            .node_allocations(&node_id)
            .into_iter()
            .filter(|a| p.allows(Capability::read_job(&a.namespace)))
            .map(|a| json::allocation(a, true))
            .collect();
        Ok((
            cluster.node_allocations_index(&node_id),
            Value::Array(allocs),
        ))
    })
    .await
}

pub(super) async fn allocation(Path(alloc_id): Path<String>, read: Read) -> Response {
    read.answer(&[], |cluster, p| {
        // Not found: the RPC answers with the allocs table's index.
        let alloc = cluster.allocations.get(&alloc_id).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "alloc not found")
                .at_index(cluster.allocs_table_index)
        })?;
        if !p.allows(Capability::read_job(&alloc.namespace)) {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Unknown allocation \"{alloc_id}\""),
            ));
        }
        Ok((alloc.modify_index, json::allocation(alloc, true)))
    })
    .await
}
