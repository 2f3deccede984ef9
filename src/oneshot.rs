//! The one-shot commands: `dump` lists the node's allocations once, publishes the table if it
//! changed and reloads Vector if it changed (or if Vector was never told about the table on
//! disk); `print-table` writes the same table to stdout.

use std::io::Write;
use std::sync::Arc;

use tracing::{info, warn};

use crate::check;
use crate::cli::PrintFormat;
use crate::config::{CheckSettings, PrintSettings, PublishSettings, Scope};
use crate::error::AppError;
use crate::listing;
use crate::nomad::NomadClient;
use crate::publish::{self, Outcome, Publisher};
use crate::reload::{self, Reloader};
use crate::table::columns::Columns;
use crate::table::diff;
use crate::table::format::FileFormat;
use crate::table::render;
use crate::table::validate::ValidTable;
use crate::table::{self, Projection};

/// Lists what the table covers and projects it. Returns the projection and how the table is
/// named in messages.
async fn list_table(
    client: &Arc<NomadClient>,
    scope: &Scope,
    columns: &Columns,
) -> Result<(Projection, String), AppError> {
    let listed = listing::list_once(client, scope, columns).await?;
    let projection = table::project(&listed.allocations, &listed.nodes, columns);
    if !projection.allocations_without_tasks.is_empty() {
        warn!(
            allocations = ?projection.allocations_without_tasks,
            "Nomad's answer names no task for some allocations; they have no rows"
        );
    }
    Ok((projection, listed.covers))
}

/// `dump`.
pub async fn dump(
    client: Arc<NomadClient>,
    scope: &Scope,
    settings: PublishSettings,
) -> Result<(), AppError> {
    let (projection, covers) = list_table(&client, scope, &settings.columns).await?;
    let rows = projection.table.rows.len();
    let table = ValidTable::check(
        render::render(&projection.table, settings.format),
        settings.format,
    )?;
    let mut publisher = Publisher::new(settings.output, settings.file_mode);
    publish::clean_up_after_killed_publishes(&publisher);
    let reloader = Reloader::new(settings.reloader, client, publisher.path());
    let outcome = publisher.publish(&table)?;
    let on_disk = publisher.on_disk()?;
    let path = publisher.path().display();
    let reload = match outcome {
        Outcome::Written => {
            info!(path = %path, rows, of = %covers, "table published");
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
    scope: &Scope,
    settings: CheckSettings,
) -> Result<Finished, AppError> {
    let findings = check::run(client, scope, &settings).await;
    write_stdout(check::render(&findings, settings.format).as_bytes())?;
    Ok(if findings.iter().all(|f| f.ok) {
        Finished::Done
    } else {
        Finished::ChecksFailed
    })
}

/// `print-table`.
pub async fn print_table(
    client: Arc<NomadClient>,
    scope: &Scope,
    settings: PrintSettings,
) -> Result<Finished, AppError> {
    let (projection, _) = list_table(&client, scope, &settings.columns).await?;
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
            ValidTable::check(render::render(&projection.table, format), format)?.into_bytes()
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
