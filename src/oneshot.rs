//! The one-shot commands: `dump` lists the node's allocations once, publishes the table if it
//! changed and reloads Vector if it changed (or if Vector was never told about the table on
//! disk); `print-table` writes the same table to stdout.

use std::io::Write;
use std::sync::Arc;

use tracing::{info, warn};

use crate::check;
use crate::cli::PrintFormat;
use crate::columns::Columns;
use crate::config::{CheckSettings, PrintSettings, PublishSettings};
use crate::diff;
use crate::error::AppError;
use crate::node;
use crate::nomad::{Blocking, NomadClient};
use crate::publish::{self, Outcome, Publisher};
use crate::reload::{self, Reloader};
use crate::render::{self, FileFormat};
use crate::table::{self, NodeInfo, Projection};
use crate::validate;

/// Lists the node's allocations and projects them to a table.
async fn list_table(
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

/// `dump`.
pub async fn dump(
    client: Arc<NomadClient>,
    node_id: Option<&str>,
    settings: PublishSettings,
) -> Result<(), AppError> {
    let node = node::resolve(&client, node_id).await?;
    let projection = list_table(&client, &node, &settings.columns).await?;
    let rows = projection.table.rows.len();
    let bytes = render::render(&projection.table, settings.format);
    let mut publisher = Publisher::new(settings.output, settings.format, settings.file_mode);
    publish::clean_up_after_killed_publishes(&publisher);
    let reloader = Reloader::new(settings.reloader, client, publisher.path());
    let outcome = publisher.publish(&bytes)?;
    let on_disk = publisher.on_disk()?;
    let path = publisher.path().display();
    let reload = match outcome {
        Outcome::Written(_) => {
            info!(path = %path, rows, node = %node.id, "table published");
            true
        }
        Outcome::Unchanged => {
            let unannounced = on_disk.is_some_and(|stamp| reloader.owes_announcement(&stamp));
            if unannounced {
                info!(path = %path, rows, "table unchanged, but Vector was never told about it: reloading");
            } else {
                info!(path = %path, rows, "table unchanged; nothing written, no reload");
            }
            unannounced
        }
    };
    if reload {
        reload::log_outcome(reloader.announce(on_disk).await);
    }
    Ok(())
}

/// How a command that succeeded ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    Done,
    /// `print-table --diff` found differences (exit 1, as `diff` does).
    Differences,
    /// `check` found a problem (exit 1).
    ChecksFailed,
}

/// `check`.
pub async fn check(
    client: Arc<NomadClient>,
    node_id: Option<&str>,
    settings: CheckSettings,
) -> Result<Finished, AppError> {
    let findings = check::run(client, node_id, &settings).await;
    write_stdout(check::render(&findings, settings.format).as_bytes())?;
    Ok(if findings.iter().all(|f| f.ok) {
        Finished::Done
    } else {
        Finished::ChecksFailed
    })
}

/// `print-table`.
pub async fn print_table(
    client: &NomadClient,
    node_id: Option<&str>,
    settings: PrintSettings,
) -> Result<Finished, AppError> {
    let node = node::resolve(client, node_id).await?;
    let projection = list_table(client, &node, &settings.columns).await?;
    if let Some(path) = &settings.diff {
        let new = render::render(&projection.table, FileFormat::Csv);
        let old = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(AppError::ReadTable {
                    path: path.clone(),
                    source,
                });
            }
        };
        let lines = diff::diff(old.as_deref(), &new)?;
        let mut text = String::new();
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        write_stdout(text.as_bytes())?;
        return Ok(if lines.is_empty() {
            Finished::Done
        } else {
            Finished::Differences
        });
    }
    let bytes = match settings.format {
        PrintFormat::Table => render::render_text(&projection.table).into_bytes(),
        PrintFormat::Csv | PrintFormat::Json => {
            let format = if settings.format == PrintFormat::Csv {
                FileFormat::Csv
            } else {
                FileFormat::Json
            };
            let bytes = render::render(&projection.table, format);
            validate::validate(&bytes, format)?;
            bytes
        }
    };
    write_stdout(&bytes)?;
    Ok(Finished::Done)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), AppError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(AppError::Stdout),
    }
}
