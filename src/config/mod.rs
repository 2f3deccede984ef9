//! Validated settings: the parsed command line turned into the objects the program runs with
//! (connection settings, chosen columns, publisher parameters, reloader). Every combination that
//! would leave an option without effect is refused here, with a message that says what to change.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Signal;

use crate::cli::{
    Cli, Command, DaemonArgs, NomadArgs, PrintFormat, PrintTableArgs, PublishArgs, ReloadArgs,
    ReloadMode, ReportFormat, ScopeArg, TableArgs, TimingArgs, WatchMode,
};
use crate::nomad::{
    Address, AddressError, ConnectionSettings, Secret, TlsSettings, TokenFile, TokenSource,
};
use crate::reload::{CommandReload, NomadTaskReload, ProcessTarget, ReloadSettings, SignalReload};
use crate::table::columns::{Column, Columns, ColumnsError, Field};
use crate::table::render::FileFormat;
use crate::timing::Timing;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Columns(#[from] ColumnsError),
    #[error("{option} only applies with --reload {wanted}; drop it or set --reload {wanted}")]
    WrongReloadMode {
        option: &'static str,
        wanted: &'static str,
    },
    #[error("{option} only applies with --watch {wanted}; drop it or set --watch {wanted}")]
    WrongWatchMode {
        option: &'static str,
        wanted: &'static str,
    },
    #[error("--reload {mode} needs {option}")]
    MissingReloadOption {
        mode: &'static str,
        option: &'static str,
    },
    #[error("--vector-pid must be a positive PID, not {0}")]
    BadPid(i32),
    #[error("--vector-process-name must not be empty")]
    EmptyProcessName,
    #[error("--node-id must not be empty; omit it to ask the local agent")]
    EmptyNodeId,
    #[error(
        "{option} only applies with --scope node; drop it (NOMAD_NODE_ID, NOMAD_ALLOC_TABLE_*) or set --scope node"
    )]
    NodeScopeOnly { option: &'static str },
    #[error("{option} only applies with --scope cluster; drop it or set --scope cluster")]
    ClusterScopeOnly { option: &'static str },
    #[error(
        "--scope cluster follows the event stream: --watch blocking is for one node's listing; drop it"
    )]
    BlockingClusterScope,
    #[error(
        "the column {column} is not in Nomad's allocation listing, so --scope cluster cannot fill it; drop it from --columns"
    )]
    NotInClusterListing { column: &'static str },
    #[error("NOMAD_HTTP_AUTH must be user or user:password, with a non-empty user")]
    BadHttpAuth,
    #[error("{option} must be longer than zero")]
    ZeroDuration { option: &'static str },
    #[error(
        "--diff needs the table file to compare with: --diff PATH, or NOMAD_ALLOC_TABLE_OUTPUT"
    )]
    DiffWithoutPath,
    #[error("--diff prints differences, not a table: drop --format")]
    DiffWithFormat,
}

/// Everything the program runs with.
#[derive(Debug)]
pub struct Settings {
    pub connection: ConnectionSettings,
    pub scope: Scope,
    pub command: CommandSettings,
}

/// What the table covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One node's allocations: `--node-id`, or `None` to ask the local agent.
    Node(Option<String>),
    /// Every allocation of the cluster, listed `page_size` at a time.
    Cluster { page_size: usize },
}

/// The settings of one command.
#[derive(Debug)]
pub enum CommandSettings {
    Dump(PublishSettings),
    PrintTable(PrintSettings),
    Run(RunSettings),
    Check(CheckSettings),
    Completions(clap_complete::Shell),
    /// `man`: to stdout, or every page into the directory.
    Man(Option<PathBuf>),
}

/// `check`: what `run` would run with, and the report's format.
#[derive(Debug)]
pub struct CheckSettings {
    pub run: RunSettings,
    pub format: ReportFormat,
}

/// `run`.
#[derive(Debug)]
pub struct RunSettings {
    pub publish: PublishSettings,
    pub timing: Timing,
    /// `None`: ask the agent.
    pub alloc_dir: Option<std::path::PathBuf>,
    /// Where to serve the HTTP endpoints, if anywhere.
    pub listen: Option<std::net::SocketAddr>,
    /// How changes are learnt.
    pub watch: WatchMode,
    /// How often the cost of the event stream is compared with blocking queries' (events mode).
    pub cost_report_interval: std::time::Duration,
}

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

impl Settings {
    /// Validates the command line. `stdout_is_terminal` decides `print-table`'s default format.
    pub fn from_cli(cli: Cli, stdout_is_terminal: bool) -> Result<Settings, ConfigError> {
        let node_id = match cli.nomad.node_id.as_deref().map(str::trim) {
            Some("") => return Err(ConfigError::EmptyNodeId),
            other => other.map(str::to_owned),
        };
        let scope = match (cli.nomad.scope, node_id, cli.nomad.page_size) {
            (ScopeArg::Node, _, Some(_)) => {
                return Err(ConfigError::ClusterScopeOnly {
                    option: "--page-size",
                });
            }
            (ScopeArg::Node, node_id, None) => Scope::Node(node_id),
            (ScopeArg::Cluster, None, page_size) => Scope::Cluster {
                page_size: page_size.map_or(crate::listing::cluster::PER_PAGE, usize::from),
            },
            (ScopeArg::Cluster, Some(_), _) => {
                return Err(ConfigError::NodeScopeOnly {
                    option: "--node-id",
                });
            }
        };
        let cost_report_given = match &cli.command {
            Command::Run(args) => args.daemon.cost_report_interval.is_some(),
            Command::Check(args) => args.daemon.cost_report_interval.is_some(),
            _ => false,
        };
        if cost_report_given && matches!(scope, Scope::Cluster { .. }) {
            // Its comparison is with per-node blocking queries, which a cluster table has not.
            return Err(ConfigError::NodeScopeOnly {
                option: "--cost-report-interval",
            });
        }
        let connection = connection(cli.nomad)?;
        let command = match cli.command {
            Command::Dump(args) => CommandSettings::Dump(publish(args.publish, args.format)?),
            Command::Run(args) => {
                CommandSettings::Run(run(args.publish, args.format, args.daemon)?)
            }
            Command::Completions { shell } => CommandSettings::Completions(shell),
            Command::Man { out_dir } => CommandSettings::Man(out_dir),
            Command::Check(args) => CommandSettings::Check(CheckSettings {
                run: run(args.publish, args.table_format, args.daemon)?,
                format: args.format,
            }),
            Command::PrintTable(args) => {
                CommandSettings::PrintTable(print_table(args, stdout_is_terminal)?)
            }
        };
        if let Scope::Cluster { .. } = scope {
            cluster_scope_fits(&command)?;
        }
        Ok(Settings {
            connection,
            scope,
            command,
        })
    }

    /// Validates the command line of this process.
    pub fn from_process(cli: Cli) -> Result<Settings, ConfigError> {
        Settings::from_cli(cli, std::io::stdout().is_terminal())
    }
}

/// Refuses what the cluster scope cannot do rather than ignoring it.
fn cluster_scope_fits(command: &CommandSettings) -> Result<(), ConfigError> {
    let (columns, run) = match command {
        CommandSettings::Dump(publish) => (&publish.columns, None),
        CommandSettings::PrintTable(print) => (&print.columns, None),
        CommandSettings::Run(run) => (&run.publish.columns, Some(run)),
        CommandSettings::Check(check) => (&check.run.publish.columns, Some(&check.run)),
        CommandSettings::Completions(_) | CommandSettings::Man(_) => return Ok(()),
    };
    if let Some(column) = columns.iter().find_map(|c| match c {
        Column::Field(Field::DeploymentId) => Some("deployment_id"),
        _ => None,
    }) {
        return Err(ConfigError::NotInClusterListing { column });
    }
    if let Some(run) = run {
        if run.watch == WatchMode::Blocking {
            return Err(ConfigError::BlockingClusterScope);
        }
        if run.alloc_dir.is_some() {
            return Err(ConfigError::NodeScopeOnly {
                option: "--alloc-dir",
            });
        }
    }
    Ok(())
}

fn connection(args: NomadArgs) -> Result<ConnectionSettings, ConfigError> {
    // The token file wins: it is this program's own, more specific option, and NOMAD_TOKEN is
    // often set in an operator's environment for other tools.
    let token = match (args.token_file, args.token) {
        (Some(path), _) => TokenSource::File(TokenFile::new(path)),
        (None, Some(token)) if !token.expose().is_empty() => TokenSource::Static(token),
        _ => TokenSource::None,
    };
    let basic_auth = args
        .http_auth
        .map(|auth| split_basic_auth(&auth))
        .transpose()?;
    Ok(ConnectionSettings {
        address: Address::parse(&args.address)?,
        token,
        region: args.region.filter(|r| !r.is_empty()),
        tls: TlsSettings {
            ca_cert: args.ca_cert,
            ca_path: args.ca_path,
            client_cert: args.client_cert,
            client_key: args.client_key,
            server_name: args.tls_server_name.filter(|n| !n.is_empty()),
            skip_verify: args.tls_skip_verify,
        },
        basic_auth,
    })
}

/// `user[:password]`, as Nomad reads `NOMAD_HTTP_AUTH`.
fn split_basic_auth(auth: &Secret) -> Result<(String, Option<Secret>), ConfigError> {
    let (user, password) = match auth.expose().split_once(':') {
        Some((user, password)) => (user, Some(Secret::new(password.to_owned()))),
        None => (auth.expose(), None),
    };
    if user.is_empty() {
        return Err(ConfigError::BadHttpAuth);
    }
    Ok((user.to_owned(), password))
}

fn columns(args: &TableArgs) -> Result<Columns, ConfigError> {
    let meta: Vec<String> = args
        .meta
        .iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    Ok(Columns::choose(args.columns.as_deref(), &meta)?)
}

fn reloader(args: ReloadArgs) -> Result<ReloadSettings, ConfigError> {
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

/// `--min-relist-interval`'s default.
const MIN_RELIST_INTERVAL: Duration = Duration::from_millis(100);
/// `--cost-report-interval`'s default.
const COST_REPORT_INTERVAL: Duration = Duration::from_secs(3600);

fn timing(args: &TimingArgs) -> Result<Timing, ConfigError> {
    let min_relist_interval = args.min_relist_interval.unwrap_or(MIN_RELIST_INTERVAL);
    let positive = [
        (args.resync_interval, "--resync-interval"),
        (min_relist_interval, "--min-relist-interval"),
        (args.stream_timeout, "--stream-timeout"),
    ];
    if let Some((_, option)) = positive.iter().find(|(d, _)| d.is_zero()) {
        return Err(ConfigError::ZeroDuration { option });
    }
    Ok(Timing {
        resync_interval: args.resync_interval,
        min_relist_interval,
        grace: args.grace,
        wait: args.wait,
        min_reload_interval: args.min_reload_interval,
        stream_timeout: args.stream_timeout,
        shutdown_timeout: args.shutdown_timeout,
    })
}

fn run(
    publish_args: PublishArgs,
    format: FileFormat,
    args: DaemonArgs,
) -> Result<RunSettings, ConfigError> {
    // Options of the other watch mode are refused rather than ignored.
    match args.watch {
        WatchMode::Events if args.timing.min_relist_interval.is_some() => {
            return Err(ConfigError::WrongWatchMode {
                option: "--min-relist-interval",
                wanted: "blocking",
            });
        }
        WatchMode::Blocking if args.cost_report_interval.is_some() => {
            return Err(ConfigError::WrongWatchMode {
                option: "--cost-report-interval",
                wanted: "events",
            });
        }
        _ => {}
    }
    let cost_report_interval = args.cost_report_interval.unwrap_or(COST_REPORT_INTERVAL);
    if cost_report_interval.is_zero() {
        return Err(ConfigError::ZeroDuration {
            option: "--cost-report-interval",
        });
    }
    Ok(RunSettings {
        publish: publish(publish_args, format)?,
        timing: timing(&args.timing)?,
        alloc_dir: args.alloc_dir,
        listen: args.listen,
        watch: args.watch,
        cost_report_interval,
    })
}

fn publish(args: PublishArgs, format: FileFormat) -> Result<PublishSettings, ConfigError> {
    Ok(PublishSettings {
        columns: columns(&args.table)?,
        output: args.output,
        format,
        file_mode: args.file_mode,
        reloader: reloader(args.reload)?,
    })
}

fn print_table(
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("nomad-alloc-table").chain(args.iter().copied()))
                .expect("parses");
        Settings::from_cli(cli, false)
    }

    fn dump_settings(args: &[&str]) -> Result<PublishSettings, ConfigError> {
        let mut all = vec!["dump", "--output", "/tmp/t.csv"];
        all.extend_from_slice(args);
        match settings(&all)?.command {
            CommandSettings::Dump(d) => Ok(d),
            other => unreachable!("dump parsed, not {other:?}"),
        }
    }

    #[test]
    fn the_reload_mode_follows_from_the_options_given() {
        let signal = |target| {
            ReloadSettings::Signal(SignalReload {
                target,
                signal: Signal::HUP,
                process_name: "vector".to_owned(),
            })
        };
        assert_eq!(
            dump_settings(&["--vector-pid", "42"])
                .expect("valid")
                .reloader,
            signal(ProcessTarget::Pid(42))
        );
        assert_eq!(
            dump_settings(&[]).expect("valid").reloader,
            ReloadSettings::None
        );
        assert_eq!(
            dump_settings(&["--reload", "signal"])
                .expect("valid")
                .reloader,
            signal(ProcessTarget::Named)
        );
        assert_eq!(
            dump_settings(&["--reload-task", "vector", "--reload-alloc-id", "a1"])
                .expect("valid")
                .reloader,
            ReloadSettings::NomadTask(NomadTaskReload {
                alloc_id: "a1".to_owned(),
                task: "vector".to_owned(),
                signal: Signal::HUP
            })
        );
        assert_eq!(
            dump_settings(&["--", "systemctl", "reload", "vector"])
                .expect("valid")
                .reloader,
            ReloadSettings::Command(CommandReload {
                argv: vec!["systemctl".into(), "reload".into(), "vector".into()],
                timeout: std::time::Duration::from_secs(30)
            })
        );
    }

    #[test]
    fn reload_options_without_effect_are_refused() {
        assert!(matches!(
            dump_settings(&["--reload", "none", "--vector-pid", "7"]),
            Err(ConfigError::WrongReloadMode { .. })
        ));
        assert!(matches!(
            dump_settings(&["--reload-signal", "SIGUSR1"]),
            Err(ConfigError::WrongReloadMode {
                option: "--reload-signal",
                ..
            })
        ));
        assert!(matches!(
            dump_settings(&["--reload-task", "vector", "--", "true"]),
            Err(ConfigError::WrongReloadMode { .. })
        ));
        assert!(matches!(
            dump_settings(&["--reload", "nomad-task", "--reload-task", "vector"]),
            Err(ConfigError::MissingReloadOption { .. })
        ));
        assert!(matches!(
            dump_settings(&["--reload", "command"]),
            Err(ConfigError::MissingReloadOption { .. })
        ));
        assert!(matches!(
            dump_settings(&["--vector-pid=-3"]),
            Err(ConfigError::BadPid(-3))
        ));
    }

    #[test]
    fn print_table_defaults_to_csv_off_a_terminal() {
        match settings(&["print-table"]).expect("valid").command {
            CommandSettings::PrintTable(p) => assert_eq!(p.format, PrintFormat::Csv),
            other => unreachable!("print-table parsed, not {other:?}"),
        }
        let cli = Cli::try_parse_from(["x", "print-table"]).expect("parses");
        match Settings::from_cli(cli, true).expect("valid").command {
            CommandSettings::PrintTable(p) => assert_eq!(p.format, PrintFormat::Table),
            other => unreachable!("print-table parsed, not {other:?}"),
        }
    }

    #[test]
    fn basic_auth_splits_user_and_password() {
        let (user, password) = split_basic_auth(&Secret::new("ops:p:w".to_owned())).expect("valid");
        assert_eq!(user, "ops");
        assert_eq!(password.expect("password").expose(), "p:w");
        assert!(split_basic_auth(&Secret::new(":nouser".to_owned())).is_err());
    }

    #[test]
    fn global_connection_flags_work_after_the_command() {
        let s = settings(&[
            "print-table",
            "--address",
            "unix:///run/api.sock",
            "--node-id",
            "n1",
        ])
        .expect("valid");
        assert_eq!(
            s.connection.address,
            Address::Unix(PathBuf::from("/run/api.sock"))
        );
        assert_eq!(s.scope, Scope::Node(Some("n1".to_owned())));
    }

    #[test]
    fn run_has_the_documented_defaults() {
        use crate::timing::Wait;
        use std::time::Duration;
        let s = settings(&["run", "-o", "/tmp/t.csv"]).expect("valid");
        let CommandSettings::Run(run) = s.command else {
            unreachable!("run parsed")
        };
        assert_eq!(
            run.timing,
            Timing {
                resync_interval: Duration::from_secs(1800),
                min_relist_interval: Duration::from_millis(100),
                grace: Duration::from_secs(300),
                wait: Wait {
                    min: Duration::from_millis(100),
                    max: Duration::from_secs(1)
                },
                min_reload_interval: Duration::from_secs(1),
                stream_timeout: Duration::from_secs(75),
                shutdown_timeout: Duration::from_secs(10),
            }
        );
        assert!(matches!(
            settings(&["run", "-o", "/t", "--resync-interval", "0s"]),
            Err(ConfigError::ZeroDuration { .. })
        ));
        assert_eq!(run.watch, WatchMode::Events);
        assert_eq!(run.cost_report_interval, Duration::from_secs(3600));
    }

    #[test]
    fn options_of_the_other_watch_mode_are_refused() {
        assert!(matches!(
            settings(&["run", "-o", "/t", "--min-relist-interval", "1s"]),
            Err(ConfigError::WrongWatchMode {
                wanted: "blocking",
                ..
            })
        ));
        assert!(matches!(
            settings(&[
                "run",
                "-o",
                "/t",
                "--watch",
                "blocking",
                "--cost-report-interval",
                "1m"
            ]),
            Err(ConfigError::WrongWatchMode {
                wanted: "events",
                ..
            })
        ));
        let blocking = settings(&[
            "run",
            "-o",
            "/t",
            "--watch",
            "blocking",
            "--min-relist-interval",
            "1s",
        ])
        .expect("valid");
        let CommandSettings::Run(run) = blocking.command else {
            unreachable!("run parsed")
        };
        assert_eq!(run.timing.min_relist_interval, Duration::from_secs(1));
    }

    #[test]
    fn an_empty_node_id_is_refused() {
        assert!(matches!(
            settings(&["print-table", "--node-id", " "]),
            Err(ConfigError::EmptyNodeId)
        ));
    }

    #[test]
    fn the_cluster_scope_refuses_what_it_cannot_do() {
        let s = settings(&["run", "-o", "/t", "--scope", "cluster"]).expect("valid");
        assert_eq!(s.scope, Scope::Cluster { page_size: 1000 });
        let s = settings(&["dump", "-o", "/t", "--scope", "cluster", "--page-size", "2"])
            .expect("valid");
        assert_eq!(s.scope, Scope::Cluster { page_size: 2 });
        assert!(matches!(
            settings(&["dump", "-o", "/t", "--page-size", "2"]),
            Err(ConfigError::ClusterScopeOnly { .. })
        ));
        for (args, wanted) in [
            (&["--node-id", "n1"][..], "--node-id"),
            (&["--alloc-dir", "/a"][..], "--alloc-dir"),
            (
                &["--cost-report-interval", "1m"][..],
                "--cost-report-interval",
            ),
        ] {
            let mut all = vec!["run", "-o", "/t", "--scope", "cluster"];
            all.extend_from_slice(args);
            assert!(
                matches!(settings(&all), Err(ConfigError::NodeScopeOnly { option }) if option == wanted),
                "{args:?}"
            );
        }
        assert!(matches!(
            settings(&[
                "run", "-o", "/t", "--scope", "cluster", "--watch", "blocking"
            ]),
            Err(ConfigError::BlockingClusterScope)
        ));
        assert!(matches!(
            settings(&[
                "dump",
                "-o",
                "/t",
                "--scope",
                "cluster",
                "--columns",
                "deployment_id"
            ]),
            Err(ConfigError::NotInClusterListing { .. })
        ));
    }
}
