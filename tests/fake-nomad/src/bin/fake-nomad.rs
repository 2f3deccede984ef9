//! Serves a generated Nomad cluster so that nomad-alloc-table and its Vector configuration can be
//! tried without a Nomad at hand, and so that benchmarks have a load.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use fake_nomad::generate::{Shape, cluster};
use fake_nomad::lifecycle::{ClusterChurn, DiskMirror, Lifecycle, Step};
use fake_nomad::{FakeNomad, Listen};

/// A fake Nomad API serving a generated cluster (agent is a client of the first node).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Number of allocations to generate, spread over the nodes.
    #[arg(long, default_value_t = 100, conflicts_with = "allocs_per_node")]
    allocs: usize,
    /// Allocations per node instead of --allocs (a cluster of --nodes × this many).
    #[arg(long)]
    allocs_per_node: Option<usize>,
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
    /// Lifecycle steps per second (place, start, stop, replace, drain, disconnect, collect) on
    /// the agent's node; 0 keeps the cluster still.
    #[arg(long, default_value_t = 0.0, conflicts_with = "cluster_churn")]
    churn: f64,
    /// Lifecycle steps per second over the whole cluster, each on a random node, so that the
    /// event stream carries every node's events as a real cluster's does.
    #[arg(long, default_value_t = 0.0)]
    cluster_churn: f64,
    /// Mirror the agent node's allocations here as a Nomad client would (alloc dirs and log
    /// files), so that nomad-alloc-table and Vector can be watched end to end.
    #[arg(long)]
    alloc_dir: Option<PathBuf>,
    /// How long after a placement the mirrored directory appears (the client's delay), in ms.
    #[arg(long, default_value_t = 200)]
    client_delay_ms: u64,
    /// Seconds between event-stream heartbeats (Nomad's is 30).
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
}

/// The churn the fake drives.
enum Churn {
    /// On the agent's node only.
    Node(Lifecycle),
    /// On random nodes of the whole cluster.
    Cluster(ClusterChurn),
}

impl Churn {
    fn step(&mut self, cluster: &mut fake_nomad::Cluster) -> Step {
        match self {
            Churn::Node(script) => script.step(cluster),
            Churn::Cluster(churn) => churn.step(cluster),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let allocations = match args.allocs_per_node {
        Some(per_node) => per_node * args.nodes.max(1),
        None => args.allocs,
    };
    let shape = Shape {
        allocations,
        nodes: args.nodes,
        seed: args.seed,
    };
    let mut generated = cluster(&shape);
    let mut script = if args.cluster_churn > 0.0 {
        Some(Churn::Cluster(ClusterChurn::new(&generated, args.seed)))
    } else if args.churn > 0.0 {
        Some(Churn::Node(Lifecycle::new(&mut generated, args.seed)))
    } else {
        None
    };
    let agent_node = generated.agent.client_node_id.clone().unwrap_or_default();
    let listen = match args.unix {
        Some(path) => Listen::Unix(path),
        None => Listen::Tcp(args.listen),
    };
    let fake = FakeNomad::start_on(generated, listen)?;
    fake.set_stream(|s| s.heartbeat = std::time::Duration::from_secs(args.heartbeat_secs.max(1)));
    println!(
        "fake Nomad at {} with {} allocations on {} nodes; the agent is a client of node {agent_node}",
        fake.address(),
        allocations,
        args.nodes.max(1)
    );
    println!(
        "try: NOMAD_ADDR={} nomad-alloc-table print-table",
        fake.address()
    );
    let mirror = args.alloc_dir.map(|root| DiskMirror { root });
    if let Some(mirror) = &mirror {
        std::fs::create_dir_all(&mirror.root)?;
        fake.read(|c| {
            c.allocations
                .values()
                .filter(|a| a.node_id == agent_node)
                .try_for_each(|a| {
                    mirror.apply(
                        &Step::Placed {
                            alloc_id: a.id.clone(),
                            node_id: agent_node.clone(),
                        },
                        c,
                    )
                })
        })?;
    }
    let Some(script) = script.as_mut() else {
        loop {
            std::thread::park();
        }
    };
    let period = std::time::Duration::from_secs_f64(1.0 / args.churn.max(args.cluster_churn));
    let client_delay = std::time::Duration::from_millis(args.client_delay_ms);
    loop {
        std::thread::sleep(period);
        let step = fake.update(|c| script.step(c));
        // Only the agent's node has its directories here (a collected one is gone from the
        // model, and removing a directory that is not there is harmless).
        let on_agent_node = fake.read(|c| {
            step.alloc_id()
                .and_then(|id| c.allocations.get(id))
                .is_none_or(|a| a.node_id == agent_node)
        });
        if let Some(mirror) = mirror.as_ref().filter(|_| on_agent_node) {
            if matches!(step, Step::Placed { .. } | Step::Replaced { .. }) {
                std::thread::sleep(client_delay);
            }
            fake.read(|c| mirror.apply(&step, c))?;
        }
    }
}
