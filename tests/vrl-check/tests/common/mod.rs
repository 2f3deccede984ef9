//! What the memory-table recipe's tests share: the files they read and the names and TTL the
//! recipe and the exporter agree on.

use std::path::Path;

pub const PUSH: &str = "vector/aggregator-cluster-push.yaml";
pub const SIBLING: &str = "vector/aggregator-cluster.yaml";
pub const FILE_TABLE: &str = "nomad_allocs";
pub const MEMORY_TABLE: &str = "nomad_allocs_recent";
/// The TTL of live rows and removal markers at the default base interval: 2 × 5 min + 60 s.
pub const LIVE_TTL: i64 = 660;

/// A file of the repository, by its path from the root.
pub fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(full).unwrap_or_else(|e| panic!("{path}: {e}"))
}
