//! Listing what the table covers, for every command: the node this runs on
//! ([`local_node`]) and its allocations, or every allocation of the cluster with their nodes
//! ([`cluster`]).

pub mod cluster;
pub mod local_node;
