//! Validated settings: the parsed command line turned into the objects the program runs with
//! (connection settings, chosen columns, publisher parameters, reloader). Every combination that
//! would leave an option without effect is refused here, with a message that says what to change.
//!
//! This module decides the scope and the command; `connection`, `publish`, `reload` and `run`
//! turn their own flags into settings, and `error` says why a command line cannot work.

mod connection;
mod error;
mod publish;
mod reload;
mod run;

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::cli::{Cli, Command, ScopeArg, WatchMode};
use crate::nomad::ConnectionSettings;
use crate::table::columns::{Column, Field};
pub use error::ConfigError;
pub use publish::{PrintSettings, PublishSettings};
pub use run::{CheckSettings, RunSettings};

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
        let push_given = match &cli.command {
            Command::Run(args) => args.daemon.memory_table_url.is_some(),
            Command::Check(args) => args.daemon.memory_table_url.is_some(),
            _ => false,
        };
        if push_given && matches!(scope, Scope::Node(_)) {
            // A node's table is tens of rows: the file loads in microseconds.
            return Err(ConfigError::ClusterScopeOnly {
                option: "--memory-table-url",
            });
        }
        if cost_report_given && matches!(scope, Scope::Cluster { .. }) {
            // Its comparison is with per-node blocking queries, which a cluster table has not.
            return Err(ConfigError::NodeScopeOnly {
                option: "--cost-report-interval",
            });
        }
        let connection = connection::connection(cli.nomad)?;
        let command = match cli.command {
            Command::Dump(args) => {
                CommandSettings::Dump(publish::publish(args.publish, args.format)?)
            }
            Command::Run(args) => {
                CommandSettings::Run(run::run(args.publish, args.format, args.daemon)?)
            }
            Command::Completions { shell } => CommandSettings::Completions(shell),
            Command::Man { out_dir } => CommandSettings::Man(out_dir),
            Command::Check(args) => CommandSettings::Check(CheckSettings {
                run: run::run(args.publish, args.table_format, args.daemon)?,
                format: args.format,
            }),
            Command::PrintTable(args) => {
                CommandSettings::PrintTable(publish::print_table(args, stdout_is_terminal)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::PrintFormat;
    use crate::nomad::Address;
    use crate::reload::{
        CommandReload, NomadTaskReload, ProcessTarget, ReloadSettings, SignalReload,
    };
    use crate::timing::Timing;
    use clap::Parser;
    use rustix::process::Signal;
    use std::time::Duration;

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

    fn run_settings(args: &[&str]) -> Result<RunSettings, ConfigError> {
        let mut all = vec!["run", "-o", "/t"];
        all.extend_from_slice(args);
        match settings(&all)?.command {
            CommandSettings::Run(run) => Ok(run),
            other => unreachable!("run parsed, not {other:?}"),
        }
    }

    #[test]
    fn the_memory_table_push_is_for_the_cluster_scope_with_a_csv_base() {
        let run = run_settings(&[
            "--scope",
            "cluster",
            "--memory-table-url",
            "http://127.0.0.1:6100/nomad-alloc-table",
        ])
        .expect("valid");
        let push = run.push.expect("pushing");
        assert_eq!(push.base_interval, Duration::from_secs(300));
        assert_eq!(
            push.url.to_string(),
            "http://127.0.0.1:6100/nomad-alloc-table"
        );
        let run = run_settings(&[
            "--scope",
            "cluster",
            "--memory-table-url",
            "http://127.0.0.1:6100/",
            "--base-interval",
            "1m",
        ])
        .expect("valid");
        assert_eq!(
            run.push.map(|p| p.base_interval),
            Some(Duration::from_secs(60))
        );
        assert!(
            run_settings(&["--scope", "cluster"])
                .expect("valid")
                .push
                .is_none()
        );
        for (args, wanted) in [
            (
                &["--memory-table-url", "http://127.0.0.1:6100/"][..],
                "only applies with --scope cluster",
            ),
            (
                &["--scope", "cluster", "--base-interval", "1m"][..],
                "--base-interval only applies with --memory-table-url",
            ),
            (
                &[
                    "--scope",
                    "cluster",
                    "--memory-table-url",
                    "http://127.0.0.1:6100/",
                    "--base-interval",
                    "0s",
                ][..],
                "--base-interval must be longer than zero",
            ),
            (
                &[
                    "--scope",
                    "cluster",
                    "--format",
                    "json",
                    "--memory-table-url",
                    "http://127.0.0.1:6100/",
                ][..],
                "reads CSV only",
            ),
            (
                &["--scope", "cluster", "--memory-table-url", "ftp://x/"][..],
                "http:// or https://",
            ),
        ] {
            let error = run_settings(args).expect_err("refused").to_string();
            assert!(error.contains(wanted), "{args:?}: {error}");
        }
    }
}
