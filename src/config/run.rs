//! What the daemon runs with: the publish settings plus its timing, the alloc dir, the HTTP
//! listener and the watch mode. `check` takes the same settings, so that it checks what `run`
//! would do.

use std::time::Duration;

use super::error::ConfigError;
use super::publish::{PublishSettings, publish};
use crate::cli::{DaemonArgs, PublishArgs, ReportFormat, TimingArgs, WatchMode};
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
}

/// `--min-relist-interval`'s default.
const MIN_RELIST_INTERVAL: Duration = Duration::from_millis(100);
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
    Ok(RunSettings {
        publish: publish(publish_args, format)?,
        timing: timing(&args.timing)?,
        alloc_dir: args.alloc_dir,
        listen: args.listen,
        watch: args.watch,
        cost_report_interval,
    })
}
