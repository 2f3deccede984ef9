//! The one launcher of the `nomad-alloc-table` binary, for the integration tests and the
//! benches alike: none of the caller's Nomad settings leak in (the list in `cleared-env`,
//! which `.ci/run` also clears), nor any of the program's own `NOMAD_ALLOC_TABLE_*` variables.

use std::process::Command;

/// The variables cleared, one per line (`#` starts a comment).
const CLEARED_ENV: &str = include_str!("cleared-env");

/// The binary, with a clean environment and `RUST_LOG=info`.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nomad-alloc-table"));
    let cleared = CLEARED_ENV
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    for var in cleared {
        command.env_remove(var);
    }
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("NOMAD_ALLOC_TABLE_") {
            command.env_remove(var);
        }
    }
    command.env("RUST_LOG", "info");
    command
}

/// The flags that make `run` reload this process (named as it is) with `signal`: the tests and
/// benches stand in for Vector themselves.
pub fn reload_this_process(signal: &str) -> Vec<String> {
    let own_name = std::env::current_exe()
        .expect("exe")
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    [
        "--vector-pid",
        &std::process::id().to_string(),
        "--vector-process-name",
        &own_name,
        "--reload-signal",
        signal,
    ]
    .map(str::to_owned)
    .to_vec()
}
