//! How Vector is told to reload, as configured: no way at all, or one of the methods, each
//! with the settings its own module defines.

use super::command::CommandReload;
use super::nomad_task::NomadTaskReload;
use super::signal::SignalReload;

/// How Vector is told to reload, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadSettings {
    /// Nothing is sent: Vector ≥ 0.49 with `--watch-config` reloads the table by itself.
    None,
    /// A signal to a local process.
    Signal(SignalReload),
    /// A signal to a task through Nomad (`POST /v1/client/allocation/:id/signal`).
    NomadTask(NomadTaskReload),
    /// A command, run without a shell.
    Command(CommandReload),
}
