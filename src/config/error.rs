//! Why a command line cannot work: every message names the option to change and how.

use crate::nomad::AddressError;
use crate::push::PushUrlError;
use crate::table::columns::ColumnsError;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Columns(#[from] ColumnsError),
    #[error("{option} only applies with --reload {wanted}; drop it or set --reload {wanted}")]
    WrongReloadMode {
        option: &'static str,
        wanted: &'static str,
    },
    #[error("{option} only applies with --watch {wanted}; drop it or set --watch {wanted}")]
    WrongWatchMode {
        option: &'static str,
        wanted: &'static str,
    },
    #[error("--reload {mode} needs {option}")]
    MissingReloadOption {
        mode: &'static str,
        option: &'static str,
    },
    #[error("--vector-pid must be a positive PID, not {0}")]
    BadPid(i32),
    #[error("--vector-process-name must not be empty")]
    EmptyProcessName,
    #[error("--node-id must not be empty; omit it to ask the local agent")]
    EmptyNodeId,
    #[error(
        "{option} only applies with --scope node; drop it (NOMAD_NODE_ID, NOMAD_ALLOC_TABLE_*) or set --scope node"
    )]
    NodeScopeOnly { option: &'static str },
    #[error("{option} only applies with --scope cluster; drop it or set --scope cluster")]
    ClusterScopeOnly { option: &'static str },
    #[error(
        "--scope cluster follows the event stream: --watch blocking is for one node's listing; drop it"
    )]
    BlockingClusterScope,
    #[error(
        "the column {column} is not in Nomad's allocation listing, so --scope cluster cannot fill it; drop it from --columns"
    )]
    NotInClusterListing { column: &'static str },
    #[error("NOMAD_HTTP_AUTH must be user or user:password, with a non-empty user")]
    BadHttpAuth,
    #[error("{option} must be longer than zero")]
    ZeroDuration { option: &'static str },
    #[error(
        "--diff needs the table file to compare with: --diff PATH, or NOMAD_ALLOC_TABLE_OUTPUT"
    )]
    DiffWithoutPath,
    #[error("--diff prints differences, not a table: drop --format")]
    DiffWithFormat,
    #[error(transparent)]
    PushUrl(#[from] PushUrlError),
    #[error("--base-interval only applies with --memory-table-url; drop it or set the URL")]
    BaseWithoutPush,
    #[error(
        "--memory-table-url keeps the file as the base of Vector's file table, which reads CSV only: drop --format json"
    )]
    PushWithJson,
}
