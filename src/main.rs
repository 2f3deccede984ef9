//! The `nomad-alloc-table` binary: parse the command line, set up logging, run the command, and
//! map a failure to one line on stderr and its class's exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use nomad_alloc_table::cli::{Cli, LogFormat};
use nomad_alloc_table::config::{CommandSettings, Settings};
use nomad_alloc_table::error::AppError;
use nomad_alloc_table::nomad::NomadClient;
use nomad_alloc_table::oneshot::{self, Finished};
use nomad_alloc_table::{generate, run};
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the configured command.
async fn execute(settings: Settings) -> Result<Finished, AppError> {
    let Settings {
        connection,
        scope,
        command,
    } = settings;
    let client = || NomadClient::new(connection).map(Arc::new);
    match command {
        CommandSettings::Dump(dump) => oneshot::dump(client()?, &scope, dump)
            .await
            .map(|()| Finished::Done),
        CommandSettings::PrintTable(print) => oneshot::print_table(client()?, &scope, print).await,
        CommandSettings::Run(settings) => run::run(client()?, scope, settings)
            .await
            .map(|()| Finished::Done),
        CommandSettings::Check(settings) => oneshot::check(client()?, &scope, settings).await,
        CommandSettings::Completions(shell) => {
            generate::completions(shell, &mut std::io::stdout().lock());
            Ok(Finished::Done)
        }
        CommandSettings::Man(None) => {
            generate::man_page(&mut std::io::stdout().lock()).map_err(AppError::Stdout)?;
            Ok(Finished::Done)
        }
        CommandSettings::Man(Some(dir)) => {
            generate::man_pages_to(&dir)
                .map_err(|source| AppError::WriteManPages { dir, source })?;
            Ok(Finished::Done)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    nomad_alloc_table::open_files::raise_to_hard_limit();
    // SAFETY: the runtime is built below; tracing and the limit raise spawned no thread.
    unsafe { nomad_alloc_table::heap::keep_large_buffers_out_of_the_heap() };
    let result = Settings::from_process(cli)
        .map_err(AppError::from)
        .and_then(|settings| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(AppError::Runtime)?;
            runtime.block_on(execute(settings))
        });
    match result {
        Ok(Finished::Done) => ExitCode::SUCCESS,
        Ok(Finished::Differences | Finished::ChecksFailed) => ExitCode::from(1),
        Err(err) => {
            let line = err.to_string().replace(['\n', '\r'], " ");
            eprintln!("nomad-alloc-table: error: {line}");
            ExitCode::from(err.exit_code())
        }
    }
}
