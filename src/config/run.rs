//! What the daemon runs with: the publish settings plus its timing, the alloc dir, the HTTP
//! listener and the watch mode. `check` takes the same settings, so that it checks what `run`
//! would do.

use std::time::Duration;

use super::error::ConfigError;
use super::publish::{PublishSettings, publish};
use crate::cli::{DaemonArgs, PublishArgs, ReportFormat, TimingArgs, WatchMode};
use crate::push::{PushSettings, PushUrl};
use crate::table::format::FileFormat;
use crate::timing::Timing;

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
    /// Cluster scope: changes pushed to Vector's memory table, the file a base.
    pub push: Option<PushSettings>,
}

/// `--min-relist-interval`'s default.
const MIN_RELIST_INTERVAL: Duration = Duration::from_millis(100);
/// `--base-interval`'s default.
const BASE_INTERVAL: Duration = Duration::from_secs(300);
/// `--cost-report-interval`'s default.
const COST_REPORT_INTERVAL: Duration = Duration::from_secs(3600);

/// The timing flags, each duration that must be positive checked.
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

/// `run` (and `check`): the publish settings, the timing and the daemon's own options.
pub(super) fn run(
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
    let push = push(args.memory_table_url.as_deref(), args.base_interval, format)?;
    Ok(RunSettings {
        push,
        publish: publish(publish_args, format)?,
        timing: timing(&args.timing)?,
        alloc_dir: args.alloc_dir,
        listen: args.listen,
        watch: args.watch,
        cost_report_interval,
    })
}

/// `--memory-table-url` and `--base-interval`: the base file is Vector's file table, so CSV.
fn push(
    url: Option<&str>,
    base_interval: Option<Duration>,
    format: FileFormat,
) -> Result<Option<PushSettings>, ConfigError> {
    let Some(url) = url else {
        return match base_interval {
            Some(_) => Err(ConfigError::BaseWithoutPush),
            None => Ok(None),
        };
    };
    if !format.loaded_by_vector() {
        return Err(ConfigError::PushWithJson);
    }
    let base_interval = base_interval.unwrap_or(BASE_INTERVAL);
    if base_interval.is_zero() {
        return Err(ConfigError::ZeroDuration {
            option: "--base-interval",
        });
    }
    Ok(Some(PushSettings {
        url: PushUrl::parse(url)?,
        base_interval,
    }))
}
