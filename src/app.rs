//! The pipeline the commands share (resolve the node, list its allocations, project them to a
//! table) and the commands themselves: `dump` publishes the table and reloads Vector,
//! `print-table` writes it to stdout. Failures are classified so that each class has its own
//! exit code.

use std::io::Write;
use std::sync::Arc;

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::{Notify, oneshot};
use tracing::{info, warn};

use crate::cli::PrintFormat;
use crate::config::{
    CommandSettings, ConfigError, PrintSettings, PublishSettings, RunSettings, Settings,
};
use crate::nomad::{self, Blocking, FailureClass, NomadClient};
use crate::publish::{Outcome, PublishError, Publisher};
use crate::reload::Reloader;
use crate::render::{self, FileFormat, ValidationError};
use crate::table::{self, Columns, NodeInfo, Projection};

/// Process exit codes, one per failure class.
pub mod exit_code {
    /// An unexpected failure, such as stdout closing mid-write.
    pub const OTHER: u8 = 1;
    /// Bad flags, environment or local settings (clap also uses 2).
    pub const USAGE: u8 = 2;
    /// Nomad could not be reached.
    pub const CONNECTION: u8 = 3;
    /// Nomad refused the token (403).
    pub const AUTH: u8 = 4;
    /// Nomad answered with an error (404, 5xx, ...).
    pub const NOMAD: u8 = 5;
    /// Nomad's answer could not be understood.
    pub const BAD_RESPONSE: u8 = 6;
    /// The table file could not be written.
    pub const FILE: u8 = 7;
    /// The table failed validation; nothing was published.
    pub const INVALID_TABLE: u8 = 8;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Nomad(#[from] nomad::Error),
    #[error(
        "the agent at {address} runs no Nomad client (its /v1/agent/self has no stats.client.node_id); pass --node-id (NOMAD_NODE_ID) or point --address at a client agent"
    )]
    NoClientNode { address: String },
    #[error(
        "Nomad does not know node {node_id:?} (404 from {address}); check --node-id (NOMAD_NODE_ID)"
    )]
    UnknownNode { node_id: String, address: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the table is not valid, so it is not printed: {0}")]
    Invalid(#[from] ValidationError),
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

impl AppError {
    /// The exit code for this failure's class.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => exit_code::USAGE,
            AppError::Nomad(e) => match e.class() {
                FailureClass::Connection => exit_code::CONNECTION,
                FailureClass::Auth => exit_code::AUTH,
                FailureClass::Nomad => exit_code::NOMAD,
                FailureClass::BadResponse => exit_code::BAD_RESPONSE,
                FailureClass::Settings => exit_code::USAGE,
            },
            AppError::NoClientNode { .. } | AppError::UnknownNode { .. } => exit_code::NOMAD,
            AppError::Publish(PublishError::Invalid { .. }) | AppError::Invalid(_) => {
                exit_code::INVALID_TABLE
            }
            AppError::Publish(_) => exit_code::FILE,
            AppError::Stdout(_) | AppError::Runtime(_) | AppError::Signals(_) => exit_code::OTHER,
        }
    }
}

/// Finds the node: `--node-id`, else the local agent's client node; then its datacenter, name
/// and pool from `/v1/node/:id`.
pub async fn resolve_node(
    client: &NomadClient,
    node_id: Option<&str>,
) -> Result<NodeInfo, AppError> {
    let node_id = match node_id {
        Some(id) => id.to_owned(),
        None => client
            .agent_self()
            .await?
            .stats
            .client
            .map(|c| c.node_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AppError::NoClientNode {
                address: client.address().to_string(),
            })?,
    };
    let node = match client.node(&node_id).await {
        Ok(node) => node.value,
        Err(nomad::Error::Status { status: 404, .. }) => {
            return Err(AppError::UnknownNode {
                node_id,
                address: client.address().to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(NodeInfo {
        name: node.name,
        datacenter: node.datacenter,
        node_pool: node.node_pool,
        id: node_id,
    })
}

/// Lists the node's allocations and projects them to a table.
pub async fn fetch_table(
    client: &NomadClient,
    node: &NodeInfo,
    columns: &Columns,
) -> Result<Projection, AppError> {
    let allocations = client
        .node_allocations(&node.id, Blocking::default())
        .await?
        .value;
    let projection = table::project(&allocations, node, columns);
    if !projection.allocations_without_tasks.is_empty() {
        warn!(
            allocations = ?projection.allocations_without_tasks,
            "Nomad's answer names no task for some allocations; they have no rows"
        );
    }
    Ok(projection)
}

async fn dump(
    client: &Arc<NomadClient>,
    node: &NodeInfo,
    settings: PublishSettings,
) -> Result<(), AppError> {
    let projection = fetch_table(client, node, &settings.columns).await?;
    let rows = projection.table.rows.len();
    let bytes = render::render(&projection.table, settings.format);
    let mut publisher = Publisher::new(settings.output, settings.format, settings.file_mode);
    match publisher.publish(&bytes)? {
        Outcome::Unchanged => {
            info!(path = %publisher.path().display(), rows, "table unchanged; nothing written, no reload");
        }
        Outcome::Written(_) => {
            info!(path = %publisher.path().display(), rows, node = %node.id, "table published");
            let reloader = Reloader::new(settings.reloader, client.clone());
            crate::reload::log_outcome(reloader.reload().await);
        }
    }
    Ok(())
}

fn print_table(projection: &Projection, settings: &PrintSettings) -> Result<(), AppError> {
    let bytes = match settings.format {
        PrintFormat::Table => render::render_text(&projection.table).into_bytes(),
        PrintFormat::Csv | PrintFormat::Json => {
            let format = if settings.format == PrintFormat::Csv {
                FileFormat::Csv
            } else {
                FileFormat::Json
            };
            let bytes = render::render(&projection.table, format);
            render::validate(&bytes, format)?;
            bytes
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(AppError::Stdout),
    }
}

/// Runs the configured command.
pub async fn run(settings: Settings) -> Result<(), AppError> {
    let client = Arc::new(NomadClient::new(settings.connection)?);
    match settings.command {
        CommandSettings::Dump(dump_settings) => {
            let node = resolve_node(&client, settings.node_id.as_deref()).await?;
            dump(&client, &node, dump_settings).await
        }
        CommandSettings::PrintTable(print) => {
            let node = resolve_node(&client, settings.node_id.as_deref()).await?;
            let projection = fetch_table(&client, &node, &print.columns).await?;
            print_table(&projection, &print)
        }
        CommandSettings::Run(run_settings) => daemon(client, settings.node_id, run_settings).await,
    }
}

/// `run`: signals first (a SIGHUP before its handler exists would kill the process), then a
/// header-only table if there is none (Vector cannot start without the file), then the node,
/// retried while Nomad cannot answer, then the loop until SIGTERM or SIGINT.
async fn daemon(
    client: Arc<NomadClient>,
    node_id: Option<String>,
    settings: RunSettings,
) -> Result<(), AppError> {
    let mut signals =
        signal_hook_tokio::Signals::new([SIGHUP, SIGTERM, SIGINT]).map_err(AppError::Signals)?;
    let signals_handle = signals.handle();
    let resync = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let signal_task = tokio::spawn({
        let resync = resync.clone();
        async move {
            let mut stop = Some(stop);
            while let Some(signal) = signals.next().await {
                if signal == SIGHUP {
                    info!("SIGHUP: resyncing");
                    resync.notify_one();
                } else if let Some(stop) = stop.take() {
                    info!(signal, "stopping");
                    let _ = stop.send(());
                }
            }
        }
    });
    let publish = settings.publish;
    let mut publisher = Publisher::new(publish.output.clone(), publish.format, publish.file_mode);
    if !publish.output.exists() {
        let empty = table::project(std::iter::empty(), &NodeInfo::default(), &publish.columns);
        publisher.publish(&render::render(&empty.table, publish.format))?;
        info!(path = %publish.output.display(), "no table yet: published a header-only one so that Vector can start");
    }
    let mut stopped = std::pin::pin!(async move {
        let _ = stopped.await;
    });
    let node = tokio::select! {
        node = resolve_node_patiently(&client, node_id.as_deref()) => node?,
        () = &mut stopped => return Ok(()),
    };
    let alloc_dir = match settings.alloc_dir {
        Some(dir) => dir,
        None => default_alloc_dir(&client).await,
    };
    let setup = crate::daemon::Setup {
        node,
        publish,
        publisher,
        timing: settings.timing,
        alloc_dir,
    };
    crate::daemon::run(client, setup, resync, stopped).await;
    signals_handle.close();
    signal_task.abort();
    Ok(())
}

/// Where the agent keeps allocation directories: its `client.alloc_dir` if set explicitly,
/// else `<data_dir>/alloc`, else Nomad's default (also when the token lacks `agent:read`).
async fn default_alloc_dir(client: &NomadClient) -> std::path::PathBuf {
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

/// [`resolve_node`], retried while the failure may pass (Nomad unreachable or failing, the
/// token refused); a node that does not exist or an agent without a client end it.
async fn resolve_node_patiently(
    client: &NomadClient,
    node_id: Option<&str>,
) -> Result<NodeInfo, AppError> {
    let mut delays = crate::retry::backoff();
    let mut errors = crate::retry::ErrorLog::default();
    loop {
        match resolve_node(client, node_id).await {
            Ok(node) => return Ok(node),
            Err(AppError::Nomad(e)) if e.class() != FailureClass::Settings => {
                let delay = delays.next().unwrap_or(crate::retry::MAX_BACKOFF);
                errors.report(
                    "cannot resolve the node yet; retrying",
                    &e.to_string(),
                    delay,
                );
                tokio::time::sleep(delay).await;
            }
            Err(other) => return Err(other),
        }
    }
}
