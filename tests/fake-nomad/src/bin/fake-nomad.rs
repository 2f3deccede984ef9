//! Serves a generated Nomad cluster so that nomad-alloc-table and its Vector configuration can be
//! tried without a Nomad at hand, and so that benchmarks have a load.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use fake_nomad::generate::{Shape, cluster};
use fake_nomad::{FakeNomad, Listen};

/// A fake Nomad API serving a generated cluster (agent is a client of the first node).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Number of allocations to generate, spread over the nodes.
    #[arg(long, default_value_t = 100)]
    allocs: usize,
    /// Number of client nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Seed for the generator: the same seed gives the same cluster.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// TCP address to listen on.
    #[arg(long, default_value = "127.0.0.1:4646", conflicts_with = "unix")]
    listen: SocketAddr,
    /// Listen on this unix socket instead of TCP.
    #[arg(long)]
    unix: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shape = Shape {
        allocations: args.allocs,
        nodes: args.nodes,
        seed: args.seed,
    };
    let generated = cluster(&shape);
    let agent_node = generated.agent.client_node_id.clone().unwrap_or_default();
    let listen = match args.unix {
        Some(path) => Listen::Unix(path),
        None => Listen::Tcp(args.listen),
    };
    let fake = FakeNomad::start_on(generated, listen)?;
    println!(
        "fake Nomad at {} with {} allocations on {} nodes; the agent is a client of node {agent_node}",
        fake.address(),
        args.allocs,
        args.nodes.max(1)
    );
    println!(
        "try: NOMAD_ADDR={} nomad-alloc-table print-table",
        fake.address()
    );
    loop {
        std::thread::park();
    }
}
