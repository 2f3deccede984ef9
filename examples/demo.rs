//! `cargo run --example demo`: nomad-alloc-table at work, with nothing to install.
//!
//! Starts the project's fake Nomad in this process with a small cluster whose node keeps
//! changing (allocations placed, started, stopped, replaced, collected, with their directories
//! and log files written as a Nomad client would), runs the real `run` against it into a
//! temporary directory, and shows the table each time it is published and each time Vector
//! would be told to reload, until Ctrl-C (or `--for 30s`).
//!
//! The fake is a dev-dependency: nothing of it is in the shipped binary.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Parser;
use fake_nomad::FakeNomad;
use fake_nomad::generate::{Shape, cluster};
use fake_nomad::lifecycle::{DiskMirror, Lifecycle, Step};
use nomad_alloc_table::cli::Cli;
use nomad_alloc_table::config::{CommandSettings, Settings};
use nomad_alloc_table::nomad::NomadClient;

/// The columns the demo shows (after the keys alloc_id and task): few enough for a terminal.
const COLUMNS: &str = "job_id,group,task_lifecycle,client_status";

/// nomad-alloc-table against a fake Nomad with a churning node, showing each publish and reload.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Options {
    /// Stop after this long (e.g. 30s, 2m); default: run until Ctrl-C.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,

    /// Lifecycle steps per second on the node (place, start, stop, replace, collect, ...).
    #[arg(long, default_value_t = 0.5)]
    churn: f64,

    /// Allocations on the node at the start.
    #[arg(long, default_value_t = 6)]
    allocs: usize,

    /// Seed of the generated cluster and its churn (the same seed, the same story).
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// What the demo saw happen to the table file and to "Vector".
#[derive(Clone, Debug)]
enum Seen {
    /// The table file was replaced: its number, its bytes, and the changes from the last one.
    Published {
        number: usize,
        table: Vec<u8>,
        changes: Vec<String>,
    },
    /// `run` told Vector to reload (here: ran the reload command, which appends to a file).
    Reloaded { count: usize },
}

/// Runs the demo: the fake, its churn, `run`, and a watcher of the table and the reloads that
/// hands each sighting to `seen`. Returns when `options.duration` has passed, or when `run`
/// stops (Ctrl-C).
fn demo(options: &Options, seen: impl FnMut(Seen) + Send + 'static) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("nomad-alloc-table-demo.")
        .tempdir()
        .context("a temporary directory")?;
    let alloc_dir = dir.path().join("alloc");
    let table = dir.path().join("allocs.csv");
    let reloads = dir.path().join("reloads");
    std::fs::create_dir(&alloc_dir)?;

    // The fake Nomad: one client node (the agent's) with a few allocations, plus the node the
    // churn drains to.
    let mut generated = cluster(&Shape {
        allocations: options.allocs,
        nodes: 1,
        seed: options.seed,
    });
    let mut script = Lifecycle::new(&mut generated, options.seed);
    let node = script.node_id.clone();
    let fake = Arc::new(FakeNomad::start(generated));
    let mirror = DiskMirror {
        root: alloc_dir.clone(),
    };
    fake.read(|c| {
        c.allocations
            .values()
            .filter(|a| a.node_id == node)
            .try_for_each(|a| {
                mirror.apply(
                    &Step::Placed {
                        alloc_id: a.id.clone(),
                        node_id: node.clone(),
                    },
                    c,
                )
            })
    })?;
    println!(
        "fake Nomad at {} (node {node}); the table: {}",
        fake.address(),
        table.display()
    );
    println!("Ctrl-C stops it.\n");

    let done = Arc::new(AtomicBool::new(false));
    let churning = {
        let (fake, done, node) = (fake.clone(), done.clone(), node.clone());
        let period = Duration::from_secs_f64(1.0 / options.churn.max(0.01));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                // In short naps, so that a stop is not held up by a slow churn.
                let until = Instant::now() + period;
                while !done.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50).min(period));
                }
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let step = fake.update(|c| script.step(c));
                let here = fake.read(|c| {
                    step.alloc_id()
                        .and_then(|id| c.allocations.get(id))
                        .is_none_or(|a| a.node_id == node)
                });
                if here {
                    if matches!(step, Step::Placed { .. } | Step::Replaced { .. }) {
                        // A Nomad client creates the directory a little after the placement.
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    // The temporary directory may be going away at the end: nothing to report.
                    let _ = fake.read(|c| mirror.apply(&step, c));
                }
            }
        })
    };
    let watching = {
        let (table, reloads, done) = (table.clone(), reloads.clone(), done.clone());
        std::thread::spawn(move || watch(&table, &reloads, &done, seen))
    };

    // The real `run`, as `nomad-alloc-table` would run it, reloading "Vector" with a command
    // that only counts.
    let reload_hook = format!("echo reload >> '{}'", reloads.display());
    let args: Vec<String> = [
        "nomad-alloc-table",
        "--address",
        fake.address(),
        "--node-id",
        &node,
        "run",
        "--output",
        path(&table)?,
        "--alloc-dir",
        path(&alloc_dir)?,
        "--columns",
        COLUMNS,
        "--reload",
        "command",
        "--",
        "sh",
        "-c",
        &reload_hook,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let settings = Settings::from_cli(Cli::try_parse_from(args)?, false)?;
    let CommandSettings::Run(run_settings) = settings.command else {
        bail!("the demo's command line is not `run`");
    };
    let client = Arc::new(NomadClient::new(settings.connection)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let running = nomad_alloc_table::run::run(client, settings.scope, run_settings);
        match options.duration {
            Some(duration) => match tokio::time::timeout(duration, running).await {
                Ok(result) => result,
                Err(_elapsed) => Ok(()),
            },
            None => running.await,
        }
    });
    drop(runtime);
    done.store(true, Ordering::Relaxed);
    churning.join().expect("the churn thread");
    watching.join().expect("the watcher thread");
    outcome?;
    Ok(())
}

fn path(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("a UTF-8 temporary directory")
}

/// Polls the table file and the reload counter until `done`, reporting each new publish and
/// each reload. (A demo may poll; `run` itself is told by Nomad.)
fn watch(table: &Path, reloads: &Path, done: &AtomicBool, mut seen: impl FnMut(Seen)) {
    let mut last: Option<(SystemTime, Vec<u8>)> = None;
    let mut published = 0;
    let mut reloaded = 0;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(modified) = std::fs::metadata(table).and_then(|m| m.modified()).ok()
            && last.as_ref().is_none_or(|(at, _)| *at != modified)
            && let Ok(bytes) = std::fs::read(table)
        {
            let old = last.as_ref().map(|(_, bytes)| bytes.as_slice());
            let changes = nomad_alloc_table::table::diff::diff(old, &bytes).unwrap_or_default();
            published += 1;
            seen(Seen::Published {
                number: published,
                table: bytes.clone(),
                changes,
            });
            last = Some((modified, bytes));
        }
        let count = std::fs::read_to_string(reloads).map_or(0, |text| text.lines().count());
        while reloaded < count {
            reloaded += 1;
            seen(Seen::Reloaded { count: reloaded });
        }
    }
}

/// Prints a sighting for a person: the changes, then the table with the changed rows marked.
fn show(seen: Seen, started: Instant) {
    let at = started.elapsed().as_secs_f64();
    match seen {
        Seen::Reloaded { count } => {
            println!("[{at:6.1}s] ↻ Vector told to reload (reload {count})\n");
        }
        Seen::Published {
            number,
            table,
            changes,
        } => {
            let rows = parse(&table);
            let data_rows = rows.len().saturating_sub(1);
            println!("[{at:6.1}s] ● publish {number}: {data_rows} rows");
            for change in changes.iter().take(12) {
                println!("           {}", short_ids(change));
            }
            if changes.len() > 12 {
                println!("           … and {} more changes", changes.len() - 12);
            }
            let changed = |row: &[String]| {
                let key = format!("{} {}", row[0], row[1]);
                changes.iter().any(|c| c[2..].starts_with(&key))
            };
            print_aligned(&rows, &changed);
            println!();
        }
    }
}

/// A change line (`+ <alloc_id> <task>`, `~ <alloc_id> <task>: …`) with the allocation ID cut to
/// 8 characters, as the table shows it.
fn short_ids(change: &str) -> String {
    match (change.get(..2), change.get(2..38), change.get(38..)) {
        (Some(mark), Some(id), Some(rest)) if id.as_bytes().get(8) == Some(&b'-') => {
            format!("{mark}{}{rest}", &id[..8])
        }
        _ => change.to_owned(),
    }
}

/// The CSV's rows, the header first.
fn parse(table: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(table)
        .records()
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_owned).collect())
        .collect()
}

/// The table in aligned columns, allocation IDs cut to 8 characters, changed rows marked `*`.
fn print_aligned(rows: &[Vec<String>], changed: &dyn Fn(&[String]) -> bool) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, cell)| match i {
                    0 => cell.chars().take(8).collect(),
                    _ => cell.clone(),
                })
                .collect()
        })
        .collect();
    let columns = cells.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, (row, full)) in cells.iter().zip(rows).enumerate() {
        let mark = if n > 0 && changed(full) { '*' } else { ' ' };
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("         {mark} {}", line.join("  ").trim_end());
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    // `run`'s own log: warnings and errors only, unless RUST_LOG says otherwise (RUST_LOG=info
    // shows its "table published" lines too).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let started = Instant::now();
    demo(&options, move |seen| show(seen, started))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The README's first command must keep working: within seconds the table is published,
    /// its rows change with the churn, and Vector is told to reload.
    #[test]
    fn the_demo_shows_rows_changing_and_reloads() {
        let options = Options::parse_from(["demo", "--for", "12s", "--churn", "4"]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        demo(&options, move |s| record.lock().expect("lock").push(s)).expect("the demo runs");
        let seen = seen.lock().expect("lock");
        let tables: Vec<Vec<Vec<String>>> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Published { table, .. } => Some(parse(table)),
                Seen::Reloaded { .. } => None,
            })
            .filter(|rows| rows.len() > 1)
            .collect();
        let last = tables.last().expect("a table with rows");
        assert_eq!(
            last[0],
            [
                "alloc_id",
                "task",
                "job_id",
                "group",
                "task_lifecycle",
                "client_status"
            ]
        );
        assert!(
            tables.windows(2).any(|pair| pair[0] != pair[1]),
            "the churn changed rows after the first listing: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| matches!(s, Seen::Reloaded { .. })),
            "Vector was told to reload: {seen:?}"
        );
    }
}
