//! The JSON of nodes and of the local agent: `/v1/node/:id`, `/v1/nodes` and `/v1/agent/self`.

use serde_json::{Value, json};

use crate::model::{Cluster, Node};

/// A `Node`, as `/v1/node/:id` returns.
pub fn node(node: &Node) -> Value {
    json!({
        "Attributes": {"kernel.name": "linux", "nomad.version": "1.11.3", "unique.hostname": node.name},
        "CSIControllerPlugins": null,
        "CSINodePlugins": null,
        "ComputedClass": "v1:1234567890",
        "CreateIndex": node.create_index,
        "Datacenter": node.datacenter,
        "Drain": false,
        "DrainStrategy": null,
        "Drivers": {"docker": {"Detected": true, "Healthy": true}, "exec": {"Detected": true, "Healthy": true}},
        "Events": null,
        "HTTPAddr": "127.0.0.1:4646",
        "ID": node.id,
        "Meta": {"connect.sidecar_image": "envoyproxy/envoy:v1.29"},
        "ModifyIndex": node.modify_index,
        "Name": node.name,
        "NodeClass": "",
        "NodePool": node.node_pool,
        "SchedulingEligibility": "eligible",
        "Status": node.status,
        "StatusDescription": "",
        "StatusUpdatedAt": 1_700_000_000,
        "TLSEnabled": false,
        "XFutureNodeField": true,
    })
}

/// A `NodeListStub`, as `/v1/nodes` returns (`Node.Stub` in `nomad/structs/structs.go`).
pub fn node_stub(node: &Node) -> Value {
    json!({
        "Address": "127.0.0.1",
        "Attributes": null,
        "CreateIndex": node.create_index,
        "Datacenter": node.datacenter,
        "Drain": false,
        "Drivers": {"docker": {"Detected": true, "Healthy": true}, "exec": {"Detected": true, "Healthy": true}},
        "HostVolumes": null,
        "ID": node.id,
        "LastDrain": null,
        "ModifyIndex": node.modify_index,
        "Name": node.name,
        "NodeClass": "",
        "NodePool": node.node_pool,
        "NodeResources": null,
        "ReservedResources": null,
        "SchedulingEligibility": "eligible",
        "Status": node.status,
        "StatusDescription": "",
        "Version": "1.11.3",
    })
}

/// `/v1/agent/self`: lowercase top-level keys; `stats.client` only on a client agent.
pub fn agent_self(cluster: &Cluster) -> Value {
    let agent = &cluster.agent;
    let node_name = agent
        .client_node_id
        .as_ref()
        .and_then(|id| cluster.nodes.get(id))
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "server-1".to_owned());
    let mut stats = json!({
        "runtime": {"arch": "amd64", "cpu_count": "2", "goroutines": "120", "kernel.name": "linux", "max_procs": "2", "version": "go1.24.4"},
    });
    let member = match &agent.client_node_id {
        Some(node_id) => {
            stats["client"] = json!({
                "heartbeat_ttl": "17.5s",
                "known_servers": "10.0.0.1:4647",
                "last_heartbeat": "5.1s",
                "node_id": node_id,
                "num_allocations": cluster.allocations.values().filter(|a| &a.node_id == node_id).count().to_string(),
            });
            json!({"Addr": "", "DelegateCur": 0, "DelegateMax": 0, "DelegateMin": 0, "Name": "", "Port": 0, "ProtocolCur": 0, "ProtocolMax": 0, "ProtocolMin": 0, "Status": "none", "Tags": null})
        }
        None => {
            stats["nomad"] = json!({"leader": "true", "server": "true"});
            json!({"Addr": "10.0.0.1", "DelegateCur": 4, "DelegateMax": 5, "DelegateMin": 2, "Name": "server-1.global", "Port": 4648, "ProtocolCur": 2, "ProtocolMax": 5, "ProtocolMin": 1, "Status": "alive", "Tags": {"region": agent.region, "dc": agent.datacenter}})
        }
    };
    json!({
        "config": {
            "Client": {"AllocDir": agent.alloc_dir, "Enabled": agent.client_node_id.is_some(), "GCInterval": 60_000_000_000_i64, "StateDir": ""},
            "DataDir": agent.data_dir,
            "Datacenter": agent.datacenter,
            "NodeName": node_name,
            "Region": agent.region,
            "Server": {"Enabled": agent.client_node_id.is_none()},
            "Version": {"Version": "1.11.3", "VersionMetadata": "", "VersionPrerelease": ""},
        },
        "member": member,
        "stats": stats,
    })
}
