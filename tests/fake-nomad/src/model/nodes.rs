//! Nodes joining, going down and leaving, each a Node-topic event, and the agent's own node.

use super::{ClientStatus, Cluster, EventFrame, EventRecord, MessageType, Node};

impl Cluster {
    /// Registers a node and returns its ID (generated when the node has none): a
    /// `NodeRegistration` event on the Node topic.
    pub fn add_node(&mut self, mut node: Node) -> String {
        if node.id.is_empty() {
            node.id = self.new_uuid();
        }
        let index = self.commit(MessageType::Other, &[]);
        node.create_index = index;
        node.modify_index = index;
        let id = node.id.clone();
        self.node_event(&node, "NodeRegistration", index);
        self.nodes.insert(id.clone(), node);
        self.nodes_table_index = index;
        id
    }

    /// The frame of one Node event: `Namespace` empty (it passes every namespace filter),
    /// `FilterKeys` null, the payload the node (`nomad/state/events.go`).
    fn node_event(&mut self, node: &Node, event_type: &str, index: u64) {
        let json = serde_json::json!({
            "FilterKeys": null,
            "Index": index,
            "Key": node.id,
            "Namespace": "",
            "Payload": {"Node": crate::json::node(node)},
            "Topic": "Node",
            "Type": event_type,
        });
        self.events.push(EventFrame {
            index,
            events: vec![EventRecord {
                topic: "Node".to_owned(),
                namespace: String::new(),
                key: node.id.clone(),
                filter_keys: Vec::new(),
                json,
            }],
        });
    }

    /// A node that stopped heartbeating: its status goes `down` (a `NodeStreamEvent`), and
    /// the scheduler marks its allocations lost in one plan (desired `stop`, client `lost`).
    /// They stay listed until they are collected.
    pub fn node_down(&mut self, node_id: &str) {
        let index = self.commit(MessageType::Other, &[]);
        let Some(mut node) = self.nodes.get(node_id).cloned() else {
            panic!("no node {node_id}");
        };
        node.status = "down".to_owned();
        node.modify_index = index;
        self.node_event(&node, "NodeStreamEvent", index);
        self.nodes.insert(node_id.to_owned(), node);
        self.nodes_table_index = index;
        let lost: Vec<String> = self
            .allocations
            .values()
            .filter(|a| a.node_id == node_id && !a.client_status.is_terminal())
            .map(|a| a.id.clone())
            .collect();
        for id in &lost {
            if let Some(alloc) = self.allocations.get_mut(id) {
                alloc.desired_status = "stop";
                alloc.client_status = ClientStatus::Lost;
            }
        }
        self.commit(MessageType::PlanResult, &lost);
    }

    /// `nomad node purge`: the node leaves the cluster (a `NodeDeregistration` event carrying
    /// the node as it was).
    pub fn deregister_node(&mut self, node_id: &str) {
        let index = self.commit(MessageType::Other, &[]);
        if let Some(node) = self.nodes.remove(node_id) {
            self.node_event(&node, "NodeDeregistration", index);
        }
        self.nodes_table_index = index;
    }

    /// Makes the agent a client of `node_id` (what `/v1/agent/self` reports).
    pub fn set_agent_node(&mut self, node_id: &str) {
        self.agent.client_node_id = Some(node_id.to_owned());
        if let Some(node) = self.nodes.get(node_id) {
            self.agent.datacenter = node.datacenter.clone();
        }
    }
}
