//! The command line: Nomad's own connection flags and environment variables, and the options of
//! each command (each also settable as a `NOMAD_ALLOC_TABLE_*` variable). Only parsing lives
//! here; [`crate::config`] turns the result into validated settings.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rustix::process::Signal;

use crate::nomad::Secret;
use crate::table::format::FileFormat;
use crate::timing::{Wait, parse_wait};

/// Keeps a table of the Nomad allocations on one node for Vector's `file` enrichment table, so
/// that every line of `<data_dir>/alloc/<alloc_id>/alloc/logs/<task>.stdout.<n>` can be labelled
/// with its namespace, job, group, task and node.
#[derive(Debug, Parser)]
#[command(name = "nomad-alloc-table", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub nomad: NomadArgs,

    /// Log format on stderr (the level comes from RUST_LOG, default info).
    #[arg(long, global = true, env = "NOMAD_ALLOC_TABLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How to reach Nomad, with Nomad's own flag meanings and environment variables.
#[derive(Debug, Args)]
#[command(next_help_heading = "Nomad connection")]
pub struct NomadArgs {
    /// Nomad agent address: http://host:port, https://host:port or unix:///path/to/api.sock
    /// (inside a task, the Task API: unix://${NOMAD_SECRETS_DIR}/api.sock, since Nomad 1.5.0;
    /// NOMAD_UNIX_ADDR names it only from Nomad 1.10.3).
    #[arg(
        long,
        global = true,
        env = "NOMAD_ADDR",
        default_value = "http://127.0.0.1:4646"
    )]
    pub address: String,

    /// ACL token secret ID, sent as X-Nomad-Token. Prefer the environment variable or
    /// --token-file: other users can read a process's arguments.
    #[arg(long, global = true, env = "NOMAD_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub token: Option<Secret>,

    /// File holding the ACL token; re-read whenever it changes. Takes precedence over
    /// --token/NOMAD_TOKEN.
    #[arg(long, global = true, env = "NOMAD_ALLOC_TABLE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Nomad region to query (default: the agent's).
    #[arg(long, global = true, env = "NOMAD_REGION")]
    pub region: Option<String>,

    /// PEM CA certificate to verify the agent's certificate (replaces the system roots).
    #[arg(long, global = true, env = "NOMAD_CACERT")]
    pub ca_cert: Option<PathBuf>,

    /// Directory of PEM CA certificates to verify the agent's certificate.
    #[arg(long, global = true, env = "NOMAD_CAPATH")]
    pub ca_path: Option<PathBuf>,

    /// PEM client certificate, for agents that verify clients (verify_https_client).
    #[arg(
        long,
        global = true,
        env = "NOMAD_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of the client certificate.
    #[arg(
        long,
        global = true,
        env = "NOMAD_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    /// Name to verify the agent's certificate against, e.g. server.global.nomad or
    /// client.global.nomad when the address is 127.0.0.1.
    #[arg(long, global = true, env = "NOMAD_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,

    /// Do not verify the agent's certificate (insecure).
    #[arg(long, global = true, env = "NOMAD_SKIP_VERIFY", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    pub tls_skip_verify: bool,

    /// HTTP basic auth for a proxy in front of Nomad, as user[:password].
    #[arg(long, global = true, env = "NOMAD_HTTP_AUTH", hide_env_values = true, value_parser = parse_secret)]
    pub http_auth: Option<Secret>,

    /// The node whose allocations make the table (default: the local agent's client node, from
    /// /v1/agent/self, which needs agent:read). In a Nomad job: "${node.unique.id}".
    #[arg(long, global = true, env = "NOMAD_NODE_ID")]
    pub node_id: Option<String>,

    /// What the table covers: node (the allocations of one node, for a Vector on that node) or
    /// cluster (every allocation of the cluster with its own node columns, for one Vector
    /// aggregator that labels what agents on every node forward; needs node:read and read-job
    /// in every namespace). The cluster scope refuses --node-id, --alloc-dir, --watch blocking,
    /// --cost-report-interval and the deployment_id column.
    #[arg(long, global = true, env = "NOMAD_ALLOC_TABLE_SCOPE", value_enum, default_value_t = ScopeArg::Node)]
    pub scope: ScopeArg,

    /// With --scope cluster: allocations per page of /v1/allocations (per_page) [default: 1000].
    #[arg(long, global = true, env = "NOMAD_ALLOC_TABLE_PAGE_SIZE")]
    pub page_size: Option<std::num::NonZeroUsize>,
}

/// `--scope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    Node,
    Cluster,
}

/// `--columns`' long help, from the catalog itself so that it cannot drift from it.
fn columns_help() -> String {
    let mut help = String::from(
        "Columns after alloc_id and task, in this order (default: the default columns). The catalog:",
    );
    for entry in crate::table::columns::CATALOG {
        let default = if entry.default { " [default]" } else { "" };
        help.push_str(&format!(
            "\n  {}{default}: {}",
            entry.name, entry.description
        ));
    }
    help
}

fn parse_secret(raw: &str) -> Result<Secret, String> {
    Ok(Secret::new(raw.to_owned()))
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the node's allocations once, publish the table atomically if it changed, reload
    /// Vector if it changed, and exit. For cron, a prestart task or ExecStartPre.
    Dump(DumpArgs),
    /// Print the table to stdout: aligned columns for a person (the default on a terminal), or
    /// exactly the bytes dump would write (csv, json).
    PrintTable(PrintTableArgs),
    /// Keep the table up to date: follow Nomad's event stream, resync periodically and on
    /// SIGHUP, keep departed allocations for a grace period, publish debounced and only on
    /// change, and reload Vector after each change. SIGTERM or SIGINT stops it.
    Run(RunArgs),
    /// Check a new install, run as `run` would be run (same flags and environment): the
    /// address, TLS, token, each ACL capability the options need, the node, the alloc dir,
    /// the output directory and table, Vector's reload target. One line per check; exits 1
    /// when any fails.
    Check(CheckArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from this command line's own definition; with
    /// --out-dir, write the pages of the program and of every command there instead.
    Man {
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Which columns the table has.
#[derive(Debug, Args)]
#[command(next_help_heading = "Table")]
pub struct TableArgs {
    /// Columns after alloc_id and task, in this order (default: the default columns).
    #[arg(long, env = "NOMAD_ALLOC_TABLE_COLUMNS", value_delimiter = ',', long_help = columns_help())]
    pub columns: Option<Vec<String>>,

    /// Meta keys to append as meta_<key> columns (task meta over group meta over job meta;
    /// characters outside [A-Za-z0-9_] become _).
    #[arg(long, env = "NOMAD_ALLOC_TABLE_META", value_delimiter = ',')]
    pub meta: Vec<String>,
}

/// Where and how the table is published, and how Vector is told: `dump`'s and `run`'s options.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The table file to publish; its directory must exist. Keep it outside Vector's config
    /// directories (Vector issue #24541).
    #[arg(long, short = 'o', env = "NOMAD_ALLOC_TABLE_OUTPUT")]
    pub output: PathBuf,

    /// Mode of the published file, in octal (set exactly, not reduced by the umask).
    #[arg(long, env = "NOMAD_ALLOC_TABLE_FILE_MODE", default_value = "0644", value_parser = parse_mode)]
    pub file_mode: u32,

    #[command(flatten)]
    pub table: TableArgs,

    #[command(flatten)]
    pub reload: ReloadArgs,
}

/// How Vector is told that the table changed.
#[derive(Debug, Args)]
#[command(next_help_heading = "Reload")]
pub struct ReloadArgs {
    /// How to make Vector reload after a change: none (Vector ≥ 0.49 with --watch-config
    /// notices by itself), signal (a local process: --vector-pid, --vector-pidfile, or the one
    /// process named --vector-process-name), nomad-task (Nomad's signal API, for a Vector task
    /// in a container) or command (the command after --). Default: what the other reload
    /// options imply, else none.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_RELOAD", value_enum)]
    pub reload: Option<ReloadMode>,

    /// PID of the Vector process to signal.
    #[arg(
        long,
        env = "NOMAD_ALLOC_TABLE_VECTOR_PID",
        conflicts_with = "vector_pidfile"
    )]
    pub vector_pid: Option<i32>,

    /// File holding the PID of the Vector process, read at each reload.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_VECTOR_PIDFILE")]
    pub vector_pidfile: Option<PathBuf>,

    /// Signal that makes Vector reload [default: SIGHUP].
    #[arg(long, env = "NOMAD_ALLOC_TABLE_RELOAD_SIGNAL", value_parser = crate::reload::parse_signal)]
    pub reload_signal: Option<Signal>,

    /// The signalled process must have this name, so that a recycled PID is never hit;
    /// without a PID, the one process of this name is signalled [default: vector].
    #[arg(long, env = "NOMAD_ALLOC_TABLE_VECTOR_PROCESS_NAME")]
    pub vector_process_name: Option<String>,

    /// The Vector task to signal through Nomad (--reload nomad-task); needs alloc-lifecycle.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_RELOAD_TASK")]
    pub reload_task: Option<String>,

    /// The allocation of that task (--reload nomad-task); inside a Nomad task NOMAD_ALLOC_ID
    /// is the task's own allocation.
    #[arg(long, env = "NOMAD_ALLOC_ID")]
    pub reload_alloc_id: Option<String>,

    /// How long the reload command (--reload command) may run before it is killed.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_RELOAD_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reload_timeout: std::time::Duration,

    /// The reload command and its arguments, after --, run without a shell (--reload command),
    /// e.g. -- systemctl reload vector.
    #[arg(last = true, value_name = "COMMAND")]
    pub reload_command: Vec<String>,
}

/// `dump`'s options.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// File format: csv is what Vector's file enrichment table reads.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_FORMAT", value_enum, default_value_t = FileFormat::Csv)]
    pub format: FileFormat,

    #[command(flatten)]
    pub publish: PublishArgs,
}

/// `run`'s options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// File format: csv is what Vector's file enrichment table reads.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_FORMAT", value_enum, default_value_t = FileFormat::Csv)]
    pub format: FileFormat,

    #[command(flatten)]
    pub publish: PublishArgs,

    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// `check`'s options: `run`'s, with `--format` for the report.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Report format: text (one line per check) or json (for tools).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    /// The table file's format, as `run --format` takes it.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_FORMAT", value_enum, default_value_t = FileFormat::Csv)]
    pub table_format: FileFormat,

    #[command(flatten)]
    pub publish: PublishArgs,

    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// `check --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// What only the long-running `run` uses (and `check` checks).
#[derive(Debug, Args)]
#[command(next_help_heading = "Run")]
pub struct DaemonArgs {
    /// Nomad's alloc directory, watched for new and removed allocation directories (default:
    /// the agent's client.alloc_dir, else its data_dir/alloc, else /opt/nomad/data/alloc).
    /// Node scope only.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_ALLOC_DIR")]
    pub alloc_dir: Option<PathBuf>,

    /// Serve /metrics (Prometheus), /healthz and /readyz on this address, e.g. 127.0.0.1:9466
    /// (default: no listener).
    #[arg(long, env = "NOMAD_ALLOC_TABLE_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,

    /// How to learn of changes: `events` follows Nomad's event stream (every node receives
    /// every allocation event of the cluster: cheapest on small clusters and busy nodes);
    /// `blocking` long-polls this node's allocation listing (wakes only on this node's changes:
    /// cheaper for the servers from about 100 nodes on). See docs/watch-modes.md for the crossover.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_WATCH", value_enum, default_value_t = WatchMode::Events)]
    pub watch: WatchMode,

    /// With --watch events and --scope node: how often to compare what the event stream costs with what
    /// blocking queries would cost, and warn when `--watch blocking` would be cheaper (the
    /// first comparison comes after a minute, or this interval if shorter) [default: 1h].
    #[arg(long, env = "NOMAD_ALLOC_TABLE_COST_REPORT_INTERVAL", value_parser = humantime::parse_duration)]
    pub cost_report_interval: Option<std::time::Duration>,

    /// With --scope cluster: push every change to Vector's `memory` enrichment table through
    /// this `http_server` source (vector/aggregator-cluster-push.yaml), and publish the file
    /// only as the base, at start and every --base-interval: for an aggregator with tens of
    /// thousands of allocations, where reloading the whole file on each change costs Vector
    /// a lot. Needs Vector 0.57 or later.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_MEMORY_TABLE_URL", value_name = "URL")]
    pub memory_table_url: Option<String>,

    /// With --memory-table-url: how often the base file is published (and Vector reloaded)
    /// and the memory table sent every row again, which heals a Vector restart nobody
    /// noticed [default: 5m].
    #[arg(long, env = "NOMAD_ALLOC_TABLE_BASE_INTERVAL", value_parser = humantime::parse_duration)]
    pub base_interval: Option<std::time::Duration>,

    #[command(flatten)]
    pub timing: TimingArgs,
}

/// `--watch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WatchMode {
    /// The event stream, with a listing on every (re)connect and every --resync-interval.
    Events,
    /// Blocking queries on this node's allocation listing.
    Blocking,
}

/// When `run` publishes, resyncs and forgets.
#[derive(Debug, Args)]
#[command(next_help_heading = "Timing")]
pub struct TimingArgs {
    /// Full resync interval (a listing that replaces the model), with ±10% jitter. Resync
    /// heals missed events and garbage collection (which sends no event; the alloc-dir watch
    /// sees it too). In events mode the stream is also resubscribed every 5 minutes without a
    /// listing, to follow new namespaces; in blocking mode every answer is a full listing and
    /// a query waits at most this long (Nomad caps it at 5 minutes).
    #[arg(long, env = "NOMAD_ALLOC_TABLE_RESYNC_INTERVAL", default_value = "30m", value_parser = humantime::parse_duration)]
    pub resync_interval: std::time::Duration,

    /// With --watch blocking: the least time between two listings, so a node whose
    /// allocations change constantly costs at most one listing per interval (changes in
    /// between arrive together) [default: 100ms].
    #[arg(long, env = "NOMAD_ALLOC_TABLE_MIN_RELIST_INTERVAL", value_parser = humantime::parse_duration)]
    pub min_relist_interval: Option<std::time::Duration>,

    /// How long the rows of an allocation stay after Nomad stops listing it, so that Vector
    /// can finish reading its files.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_GRACE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,

    /// Debounce as consul-template's wait: publish after MIN without changes, but no later than
    /// MAX after the first one (MAX defaults to 4×MIN).
    #[arg(long, env = "NOMAD_ALLOC_TABLE_WAIT", default_value = "100ms:1s", value_parser = parse_wait)]
    pub wait: Wait,

    /// Least time between two reloads of Vector; changes in between are coalesced into one
    /// trailing reload.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_MIN_RELOAD_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub min_reload_interval: std::time::Duration,

    /// Read deadline on the event stream: no byte for this long (Nomad sends a heartbeat every
    /// 30 s) means the connection is dead and is replaced.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_STREAM_TIMEOUT", default_value = "75s", value_parser = humantime::parse_duration)]
    pub stream_timeout: std::time::Duration,

    /// On SIGTERM or SIGINT: how long to publish a pending change and deliver a reload that is
    /// owed (waiting out --min-reload-interval if it ends in time, else at once) before exiting
    /// anyway. A second signal exits at once.
    #[arg(long, env = "NOMAD_ALLOC_TABLE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: std::time::Duration,
}

/// `--reload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReloadMode {
    None,
    Signal,
    NomadTask,
    Command,
}

/// `print-table`'s options.
#[derive(Debug, Args)]
pub struct PrintTableArgs {
    /// Output format [default: table on a terminal, csv otherwise].
    #[arg(long, env = "NOMAD_ALLOC_TABLE_PRINT_FORMAT", value_enum)]
    pub format: Option<PrintFormat>,

    /// Instead of the table, print how it differs from the table file at PATH (default:
    /// NOMAD_ALLOC_TABLE_OUTPUT): "+ alloc task" added, "- alloc task" removed, "~ alloc task:
    /// column: old → new" changed, in key order. Exits 0 when identical, 1 when different.
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub diff: Option<Option<PathBuf>>,

    #[command(flatten)]
    pub table: TableArgs,
}

/// `print-table --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrintFormat {
    /// Aligned columns for a person.
    Table,
    /// Exactly the bytes `dump --format csv` writes.
    Csv,
    /// Exactly the bytes `dump --format json` writes.
    Json,
}

/// Parses an octal file mode such as `0644` or `640`.
fn parse_mode(raw: &str) -> Result<u32, String> {
    let digits = raw.strip_prefix("0o").unwrap_or(raw);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("{raw:?} is not an octal file mode such as 0644"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("640"), Ok(0o640));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("rw-r--r--").is_err());
    }
}
