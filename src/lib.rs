//! nomad-alloc-table: keeps a table of the Nomad allocations on one node (one row per allocation
//! task) in a file that stock Vector loads as a `file` enrichment table, so that Nomad task logs
//! read from disk can be labelled with namespace, job, group, task and node.
//!
//! The pipeline is list → project → render → validate → publish → reload; `dump` and
//! `print-table` run it once, `run` keeps it going from Nomad's event stream.

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod nomad;
pub mod publish;
pub mod reload;
pub mod render;
pub mod retry;
pub mod store;
pub mod table;
pub mod watch;
