//! Integration tests: the real `nomad-alloc-table` binary against the fake Nomad, one test binary
//! (ripgrep style) with a module per concern.

mod util;

mod bounds;
mod check;
mod cli;
mod client;
mod cluster;
mod daemon;
mod deploy;
mod docs;
mod dump;
mod failures;
mod faults;
mod listener;
mod observe;
mod print_table;
mod push;
mod race;
mod reload;
mod shutdown;
mod transport;
mod watch_modes;
