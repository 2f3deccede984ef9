//! How Vector is told to reload, from the reload flags: the mode follows from the options given
//! when `--reload` is not, and an option of another mode is refused rather than ignored.

use rustix::process::Signal;

use super::error::ConfigError;
use crate::cli::{ReloadArgs, ReloadMode};
use crate::reload::{CommandReload, NomadTaskReload, ProcessTarget, ReloadSettings, SignalReload};

impl ReloadMode {
    /// The value as given on the command line.
    fn as_flag_value(self) -> &'static str {
        match self {
            ReloadMode::None => "none",
            ReloadMode::Signal => "signal",
            ReloadMode::NomadTask => "nomad-task",
            ReloadMode::Command => "command",
        }
    }
}

/// The reload settings, or the option that cannot work with the mode.
pub(super) fn reloader(args: ReloadArgs) -> Result<ReloadSettings, ConfigError> {
    let target = match (args.vector_pid, args.vector_pidfile) {
        (Some(pid), _) if pid <= 0 => return Err(ConfigError::BadPid(pid)),
        (Some(pid), _) => Some(ProcessTarget::Pid(pid)),
        (None, Some(path)) => Some(ProcessTarget::PidFile(path)),
        (None, None) => None,
    };
    let mode = args.reload.unwrap_or(if target.is_some() {
        ReloadMode::Signal
    } else if args.reload_task.is_some() {
        ReloadMode::NomadTask
    } else if !args.reload_command.is_empty() {
        ReloadMode::Command
    } else {
        ReloadMode::None
    });
    // Options that only one mode uses must not come with another. (NOMAD_ALLOC_ID is set in
    // every Nomad task, so --reload-alloc-id is not checked.)
    let given = [
        (
            target.is_some(),
            "--vector-pid/--vector-pidfile",
            ReloadMode::Signal,
        ),
        (
            args.vector_process_name.is_some(),
            "--vector-process-name",
            ReloadMode::Signal,
        ),
        (
            args.reload_task.is_some(),
            "--reload-task",
            ReloadMode::NomadTask,
        ),
        (
            !args.reload_command.is_empty(),
            "a reload command after --",
            ReloadMode::Command,
        ),
    ];
    if let Some((_, option, wanted)) = given
        .into_iter()
        .find(|(set, _, wanted)| *set && *wanted != mode)
    {
        return Err(ConfigError::WrongReloadMode {
            option,
            wanted: wanted.as_flag_value(),
        });
    }
    if args.reload_signal.is_some() && matches!(mode, ReloadMode::None | ReloadMode::Command) {
        return Err(ConfigError::WrongReloadMode {
            option: "--reload-signal",
            wanted: "signal or nomad-task",
        });
    }
    let signal = args.reload_signal.unwrap_or(Signal::HUP);
    match mode {
        ReloadMode::None => Ok(ReloadSettings::None),
        ReloadMode::Signal => {
            let process_name = args
                .vector_process_name
                .unwrap_or_else(|| "vector".to_owned());
            if process_name.trim().is_empty() {
                return Err(ConfigError::EmptyProcessName);
            }
            Ok(ReloadSettings::Signal(SignalReload {
                target: target.unwrap_or(ProcessTarget::Named),
                signal,
                process_name,
            }))
        }
        ReloadMode::NomadTask => {
            let task = args.reload_task.filter(|t| !t.trim().is_empty()).ok_or(
                ConfigError::MissingReloadOption {
                    mode: "nomad-task",
                    option: "--reload-task (the Vector task's name)",
                },
            )?;
            let alloc_id = args
                .reload_alloc_id
                .filter(|a| !a.trim().is_empty())
                .ok_or(ConfigError::MissingReloadOption {
                    mode: "nomad-task",
                    option: "--reload-alloc-id (or NOMAD_ALLOC_ID, set inside a Nomad task)",
                })?;
            Ok(ReloadSettings::NomadTask(NomadTaskReload {
                alloc_id,
                task,
                signal,
            }))
        }
        ReloadMode::Command => {
            if args.reload_command.is_empty() {
                return Err(ConfigError::MissingReloadOption {
                    mode: "command",
                    option: "the command after --, e.g. -- systemctl reload vector",
                });
            }
            if args.reload_timeout.is_zero() {
                return Err(ConfigError::ZeroDuration {
                    option: "--reload-timeout",
                });
            }
            Ok(ReloadSettings::Command(CommandReload {
                argv: args.reload_command,
                timeout: args.reload_timeout,
            }))
        }
    }
}
