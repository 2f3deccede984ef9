//! `run`: the long-running companion of Vector. Start-up lives here: signal handlers first (a
//! SIGHUP before its handler exists would kill the process), then a header-only table if there
//! is none (Vector cannot start without the file), then (in node scope) the node, retried while
//! Nomad cannot answer, and its alloc dir, then the loop (`driver.rs`) with its decisions and
//! its model in the pure `machine`, until SIGTERM or SIGINT; a second one exits at once.

pub(crate) mod driver;
pub(crate) mod machine;
#[cfg(test)]
mod simulation;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cli::WatchMode;
use crate::config::{RunSettings, Scope};
use crate::error::AppError;
use crate::listing::Source;
use crate::listing::cluster::ClusterLister;
use crate::listing::local_node::{self, NodeError};
use crate::nomad::{FailureClass, NomadClient};
use crate::observe::health::Health;
use crate::observe::http::Listener;
use crate::observe::metrics::Metrics;
use crate::publish::Publisher;
use crate::reload::Reloader;
use crate::retry::{Backoff, ErrorLog};
use crate::run::machine::ResyncReason;
use crate::table::NodeInfo;
use crate::table::node_columns::Nodes;
use crate::table::render;
use crate::table::validate::ValidTable;
use crate::watch::WatchSettings;

/// Runs `run` until a stop has been carried out.
pub async fn run(
    client: Arc<NomadClient>,
    scope: Scope,
    settings: RunSettings,
) -> Result<(), AppError> {
    let (resync, resync_requests) = crate::watch::resync_requests();
    let stop = CancellationToken::new();
    handle_signals(resync.clone(), stop.clone())?;
    let metrics = Arc::new(Metrics::new());
    client.count_requests_in(metrics.clone());
    let health = Health::default();
    // Serves from the start (not ready until the first listing), until the loop has ended.
    let stop_listener = CancellationToken::new();
    let listener = match settings.listen {
        Some(address) => Some(Listener::bind(address).await?),
        None => None,
    };
    if let Some(listener) = listener {
        // Readiness tolerates a watch that is down for as long as two of these pass without a
        // listing: with the stream down, events mode lists on every reconnect attempt.
        let listing_every = match settings.watch {
            WatchMode::Events => settings
                .timing
                .resync_interval
                .min(crate::watch::stream::RESUBSCRIBE_INTERVAL),
            WatchMode::Blocking => settings
                .timing
                .resync_interval
                .min(crate::watch::blocking::MAX_WAIT),
        };
        tokio::spawn(listener.serve(
            metrics.clone(),
            health.clone(),
            listing_every,
            stop_listener.clone(),
        ));
    }
    let _stop_listener = stop_listener.drop_guard();
    let publish = settings.publish;
    let mut publisher = Publisher::new(publish.output.clone(), publish.file_mode);
    crate::publish::clean_up_after_killed_publishes(&publisher);
    if !publish.format.loaded_by_vector() {
        info!(
            "--format json: Vector's file enrichment table reads CSV only; this table is for other tools"
        );
    }
    if !publish.output.exists() {
        let header_only = render::header_only(&publish.columns.header(), publish.format);
        publisher.publish(&ValidTable::check(header_only, publish.format)?)?;
        // Vector cannot start without its table file (CSV); a JSON table's readers get the
        // same: a file from the start.
        info!(path = %publish.output.display(), "no table yet: published a header-only one, so that its readers can start");
    }
    let (source, nodes, alloc_dir) = match scope {
        Scope::Node(node_id) => {
            let Some(node) = stop
                .run_until_cancelled(resolve_node_patiently(&client, node_id.as_deref(), &health))
                .await
                .transpose()?
            else {
                return Ok(());
            };
            let alloc_dir = match settings.alloc_dir {
                Some(dir) => dir,
                None => default_alloc_dir(&client).await,
            };
            (
                Source::Node(node.id.clone()),
                Nodes::single(node),
                Some(alloc_dir),
            )
        }
        Scope::Cluster { page_size } => (
            Source::Cluster(Arc::new(ClusterLister::new(
                client.clone(),
                page_size,
                &publish.columns,
            ))),
            Nodes::cluster(),
            None,
        ),
    };
    let reloader = Reloader::new(publish.reloader.clone(), client.clone(), publisher.path());
    let setup = driver::Setup {
        watch: WatchSettings {
            client,
            source,
            mode: settings.watch,
            timing: settings.timing,
            cost_report_interval: settings.cost_report_interval,
            alloc_dir,
            metrics,
            health,
        },
        resyncs: (resync, resync_requests),
        nodes,
        publish,
        publisher,
        reloader,
        push: settings.push,
    };
    driver::run(setup, stop.cancelled_owned()).await?;
    Ok(())
}

/// Installs the handlers at once and answers signals from a task: SIGHUP asks for a resync; the
/// first SIGTERM or SIGINT asks the loop to stop; a second one exits at once (128 + signal, as a
/// shell reports a process killed by it).
fn handle_signals(
    resync: mpsc::Sender<ResyncReason>,
    stop: CancellationToken,
) -> Result<(), AppError> {
    let mut hangup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    tokio::spawn(async move {
        loop {
            let number = tokio::select! {
                Some(()) = hangup.recv() => {
                    // A full queue means a resync is requested already: a flood of SIGHUPs is
                    // a few listings and a few log lines.
                    if resync.try_send(ResyncReason::Signal).is_ok() {
                        info!("SIGHUP: resyncing");
                    } else {
                        debug!("SIGHUP: a resync is requested already");
                    }
                    continue;
                }
                Some(()) = terminate.recv() => SignalKind::terminate().as_raw_value(),
                Some(()) = interrupt.recv() => SignalKind::interrupt().as_raw_value(),
                else => return,
            };
            if stop.is_cancelled() {
                warn!(signal = number, "second signal: exiting at once");
                std::process::exit(128 + number);
            }
            info!(signal = number, "stopping");
            stop.cancel();
        }
    });
    Ok(())
}

/// Where the agent keeps allocation directories: its `client.alloc_dir` if set explicitly,
/// else `<data_dir>/alloc`, else Nomad's default (also when the token lacks `agent:read`).
pub(crate) async fn default_alloc_dir(client: &NomadClient) -> PathBuf {
    const NOMAD_DEFAULT: &str = "/opt/nomad/data/alloc";
    match client.agent_self().await {
        Ok(agent) if !agent.config.client.alloc_dir.is_empty() => {
            agent.config.client.alloc_dir.into()
        }
        Ok(agent) if !agent.config.data_dir.is_empty() => {
            std::path::Path::new(&agent.config.data_dir).join("alloc")
        }
        Ok(_) => NOMAD_DEFAULT.into(),
        Err(e) => {
            warn!(error = %e, default = NOMAD_DEFAULT, "cannot ask the agent for its alloc dir; set --alloc-dir if it differs");
            NOMAD_DEFAULT.into()
        }
    }
}

/// [`local_node::resolve`], retried while the failure may pass (Nomad unreachable or failing, the
/// token refused); a node that does not exist or an agent without a client end it.
async fn resolve_node_patiently(
    client: &NomadClient,
    node_id: Option<&str>,
    health: &Health,
) -> Result<NodeInfo, AppError> {
    let mut backoff = Backoff::default();
    let mut errors = ErrorLog::default();
    loop {
        match local_node::resolve(client, node_id).await {
            Ok(node) => return Ok(node),
            Err(NodeError::Nomad(e)) if e.class() != FailureClass::Settings => {
                health.update(|h| h.last_error = Some(e.to_string()));
                let delay = backoff.next_delay();
                errors.report(
                    "cannot resolve the node yet; retrying",
                    &e.to_string(),
                    delay,
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = client.token_rotated() => {}
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
}
