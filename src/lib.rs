//! nomad-alloc-table: keeps a table of the Nomad allocations on one node (one row per allocation
//! task) in a file that stock Vector loads as a `file` enrichment table, so that Nomad task logs
//! read from disk can be labelled with namespace, job, group, task and node.
//!
//! The pipeline is list → project → render → validate → publish → reload; `dump` and
//! `print-table` ([`oneshot`]) run it once, [`run`] keeps it going from Nomad's event stream.

pub(crate) mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod generate;
pub mod heap;
pub(crate) mod listing;
pub mod nomad;
pub(crate) mod observe;
pub mod oneshot;
pub mod open_files;
pub mod publish;
pub mod push;
pub(crate) mod reload;
pub(crate) mod retry;
pub mod run;
pub(crate) mod small_file;
pub(crate) mod strings;
pub mod table;
pub(crate) mod text;
pub(crate) mod timing;
pub(crate) mod watch;
