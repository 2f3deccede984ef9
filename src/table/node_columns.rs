//! Where the node columns of a row come from: in node scope the one node the table is for, in
//! cluster scope the node each allocation runs on, as `/v1/nodes` and the `Node` topic of the
//! event stream describe it. Pure.
//!
//! A node that leaves the cluster is kept while allocations that ran on it still have rows
//! (their grace period), so that those rows keep their node columns to the end.

use std::collections::HashMap;
use std::sync::Arc;

use crate::nomad::types::Node;

/// What the table needs to know about the node beyond each allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub node_pool: String,
}

/// The nodes the table's rows can refer to. Each is shared, and replaced (not changed) when it
/// changes, so that a cached rendering can tell by pointer whether its node is still the same.
#[derive(Clone, Debug)]
pub struct Nodes {
    /// Node scope: every row is this node's.
    single: Option<Arc<NodeInfo>>,
    /// Cluster scope: by node ID.
    by_id: HashMap<String, Arc<NodeInfo>>,
    /// What a row of a node not known (yet) gets: its node ID and name come from the
    /// allocation itself.
    unknown: Arc<NodeInfo>,
    /// Moves whenever a node's columns change.
    version: u64,
}

impl Nodes {
    /// Node scope: every allocation is `node`'s.
    pub fn single(node: NodeInfo) -> Nodes {
        Nodes {
            single: Some(Arc::new(node)),
            by_id: HashMap::new(),
            unknown: Arc::default(),
            version: 0,
        }
    }

    /// Cluster scope, before the first listing of the nodes.
    pub fn cluster() -> Nodes {
        Nodes {
            single: None,
            by_id: HashMap::new(),
            unknown: Arc::default(),
            version: 0,
        }
    }

    /// Moves whenever a node's columns change: while it stands, [`Nodes::of`] gives every
    /// allocation the very node it gave before, so that a walk of the model that saw this
    /// version can skip the lookups of allocations that did not change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// In node scope, the node's ID.
    pub fn single_id(&self) -> Option<&str> {
        self.single.as_deref().map(|n| n.id.as_str())
    }

    /// Whether this is the cluster scope's directory.
    pub fn is_cluster(&self) -> bool {
        self.single.is_none()
    }

    /// The node whose columns a row of an allocation on `node_id` gets.
    pub fn of(&self, node_id: &str) -> &Arc<NodeInfo> {
        match &self.single {
            Some(node) => node,
            None => self.by_id.get(node_id).unwrap_or(&self.unknown),
        }
    }

    /// Applies what Nomad says of one node now (a `Node` event). Returns whether its columns
    /// changed. Ignored in node scope, whose node is fixed at start.
    pub fn update(&mut self, node: &Node) -> bool {
        if !self.is_cluster() {
            return false;
        }
        let info = info_of(node);
        match self.by_id.get(&node.id) {
            Some(known) if **known == info => false,
            _ => {
                self.by_id.insert(node.id.clone(), Arc::new(info));
                self.version += 1;
                true
            }
        }
    }

    /// Replaces the directory with a full listing of the nodes. A node the listing omits is
    /// kept only while `in_use` says rows still refer to it. Returns whether any node's columns
    /// changed.
    pub fn replace(&mut self, listed: &[Node], in_use: impl Fn(&str) -> bool) -> bool {
        if !self.is_cluster() {
            return false;
        }
        let mut changed = false;
        let mut fresh: HashMap<String, Arc<NodeInfo>> = HashMap::with_capacity(listed.len());
        for node in listed {
            let info = info_of(node);
            let kept = match self.by_id.remove(&node.id) {
                Some(known) if *known == info => known,
                _ => {
                    changed = true;
                    Arc::new(info)
                }
            };
            fresh.insert(node.id.clone(), kept);
        }
        let mut dropped = false;
        for (id, node) in self.by_id.drain() {
            if in_use(&id) {
                fresh.insert(id, node);
            } else {
                dropped = true;
            }
        }
        self.by_id = fresh;
        // A node dropped changes no row, but what `of` gives for its ID.
        if changed || dropped {
            self.version += 1;
        }
        changed
    }

    /// How many nodes the directory knows (1 in node scope).
    pub fn len(&self) -> usize {
        if self.is_cluster() {
            self.by_id.len()
        } else {
            1
        }
    }

    /// Whether it knows no node (a cluster not listed yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<NodeInfo> for Nodes {
    fn from(node: NodeInfo) -> Nodes {
        Nodes::single(node)
    }
}

/// The columns a node gives its rows.
fn info_of(node: &Node) -> NodeInfo {
    NodeInfo {
        id: node.id.clone(),
        name: node.name.clone(),
        datacenter: node.datacenter.clone(),
        node_pool: node.node_pool.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, datacenter: &str) -> Node {
        Node {
            id: id.to_owned(),
            name: format!("client-{id}"),
            datacenter: datacenter.to_owned(),
            node_pool: "default".to_owned(),
        }
    }

    #[test]
    fn node_scope_gives_its_node_to_every_allocation() {
        let nodes = Nodes::single(NodeInfo {
            id: "n1".to_owned(),
            datacenter: "dc1".to_owned(),
            ..NodeInfo::default()
        });
        assert_eq!(nodes.of("anything").datacenter, "dc1");
        let mut nodes = nodes;
        assert!(
            !nodes.update(&node("n2", "dc2")),
            "node scope ignores others"
        );
    }

    #[test]
    fn cluster_scope_looks_each_node_up_and_unknown_ones_are_blank() {
        let mut nodes = Nodes::cluster();
        assert!(nodes.replace(&[node("a", "dc1"), node("b", "dc2")], |_| false));
        assert_eq!(nodes.of("a").datacenter, "dc1");
        assert_eq!(nodes.of("b").name, "client-b");
        assert_eq!(nodes.of("zz").datacenter, "");
        assert_eq!(nodes.len(), 2);
    }

    #[test]
    fn an_unchanged_node_keeps_its_pointer_and_a_changed_one_gets_a_new_one() {
        let mut nodes = Nodes::cluster();
        nodes.replace(&[node("a", "dc1")], |_| false);
        let before = nodes.of("a").clone();
        assert!(!nodes.replace(&[node("a", "dc1")], |_| false));
        assert!(Arc::ptr_eq(&before, nodes.of("a")));
        assert!(!nodes.update(&node("a", "dc1")));
        assert!(nodes.update(&node("a", "dc9")));
        assert!(!Arc::ptr_eq(&before, nodes.of("a")));
        assert_eq!(nodes.of("a").datacenter, "dc9");
    }

    #[test]
    fn a_node_that_left_stays_while_rows_refer_to_it() {
        let mut nodes = Nodes::cluster();
        nodes.replace(&[node("a", "dc1"), node("gone", "dc2")], |_| false);
        nodes.replace(&[node("a", "dc1")], |id| id == "gone");
        assert_eq!(nodes.of("gone").datacenter, "dc2", "its rows are in grace");
        nodes.replace(&[node("a", "dc1")], |_| false);
        assert_eq!(nodes.of("gone").datacenter, "", "forgotten with its rows");
    }
}
