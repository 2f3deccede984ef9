//! What `dump`, `run` and `print-table` write: the output file, its format and columns, and the
//! reload that follows a publish; or, for `print-table`, what it prints.

use std::path::PathBuf;

use super::error::ConfigError;
use super::reload::reloader;
use crate::cli::{PrintFormat, PrintTableArgs, PublishArgs, TableArgs};
use crate::reload::ReloadSettings;
use crate::table::columns::Columns;
use crate::table::format::FileFormat;

/// Where and how to publish, and how to reload: `dump` and `run`.
#[derive(Debug)]
pub struct PublishSettings {
    pub output: PathBuf,
    pub format: FileFormat,
    pub file_mode: u32,
    pub columns: Columns,
    pub reloader: ReloadSettings,
}

/// `print-table`.
#[derive(Debug)]
pub struct PrintSettings {
    pub format: PrintFormat,
    pub columns: Columns,
    /// `--diff`: the table file to compare with, instead of printing the table.
    pub diff: Option<PathBuf>,
}

/// The columns asked for, with `--meta` keys trimmed and empty ones dropped.
fn columns(args: &TableArgs) -> Result<Columns, ConfigError> {
    let meta: Vec<String> = args
        .meta
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    Ok(Columns::choose(args.columns.as_deref(), &meta)?)
}

/// `dump` and `run`: where to publish and how to reload.
pub(super) fn publish(
    args: PublishArgs,
    format: FileFormat,
) -> Result<PublishSettings, ConfigError> {
    Ok(PublishSettings {
        columns: columns(&args.table)?,
        output: args.output,
        format,
        file_mode: args.file_mode,
        reloader: reloader(args.reload)?,
    })
}

/// `print-table`: the format (a table on a terminal, CSV otherwise) or the file to diff with.
pub(super) fn print_table(
    args: PrintTableArgs,
    stdout_is_terminal: bool,
) -> Result<PrintSettings, ConfigError> {
    let default = if stdout_is_terminal {
        PrintFormat::Table
    } else {
        PrintFormat::Csv
    };
    let diff = match args.diff {
        None => None,
        Some(_) if args.format.is_some() => return Err(ConfigError::DiffWithFormat),
        Some(Some(path)) => Some(path),
        Some(None) => Some(
            std::env::var_os("NOMAD_ALLOC_TABLE_OUTPUT")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from)
                .ok_or(ConfigError::DiffWithoutPath)?,
        ),
    };
    Ok(PrintSettings {
        format: args.format.unwrap_or(default),
        columns: columns(&args.table)?,
        diff,
    })
}
