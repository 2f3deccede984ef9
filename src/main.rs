//! The `nomad-alloc-table` binary: parse the command line, set up logging, run the command, and
//! map a failure to one line on stderr and its class's exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use nomad_alloc_table::app;
use nomad_alloc_table::cli::{Cli, LogFormat};
use nomad_alloc_table::config::Settings;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = Settings::from_process(cli)
        .map_err(app::AppError::from)
        .and_then(|settings| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(app::AppError::Runtime)?;
            runtime.block_on(app::run(settings))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = err.to_string().replace(['\n', '\r'], " ");
            eprintln!("nomad-alloc-table: error: {line}");
            ExitCode::from(err.exit_code())
        }
    }
}
