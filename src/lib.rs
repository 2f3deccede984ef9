//! nomad-alloc-table: keeps a table of the Nomad allocations on one node (one row per allocation
//! task) in a file that stock Vector loads as a `file` enrichment table, so that Nomad task logs
//! read from disk can be labelled with namespace, job, group, task and node.
//!
//! The pipeline is list → project → render → validate → publish → reload; `dump` and
//! `print-table` ([`oneshot`]) run it once, [`run`] keeps it going from Nomad's event stream.

pub(crate) mod check;
pub mod cli;
pub(crate) mod cluster;
pub mod columns;
pub mod config;
pub(crate) mod diff;
pub mod error;
pub mod generate;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod node;
pub mod nodes;
pub mod nomad;
pub mod oneshot;
pub mod publish;
pub(crate) mod reload;
pub mod render;
pub mod rendered;
pub(crate) mod retry;
pub mod run;
pub mod table;
pub(crate) mod text;
pub(crate) mod timing;
pub mod validate;
pub(crate) mod watch;
