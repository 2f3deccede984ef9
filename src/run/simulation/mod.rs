//! A deterministic simulation of `run` against Nomad's rules (the practice of FoundationDB's
//! simulator and TigerBeetle's VOPR): one `u64` seed gives a whole run of a simulated Nomad
//! ([`nomad`]), the node's client, the watchers' real loop state, the real [`Machine`] and
//! renderer, the file and Vector ([`world`]), in virtual time; the invariants ([`oracle`]) are
//! checked after every step. Orders of requests, answers, events, directory changes and timers
//! that example tests do not think of come from the seeds.
//!
//! `cargo test --lib simulation -- --nocapture` runs [`DEFAULT_SEEDS`] seeds and prints a
//! summary; `SIM_SEEDS=N` runs N, `SIM_SEED=S` replays one seed with its whole trace.
//!
//! [`Machine`]: super::machine::Machine

mod happening;
mod nomad;
mod oracle;
mod process;
mod scenario;
mod watchers;
mod world;

use world::World;

/// Seeds run by `cargo test` when `SIM_SEEDS` is not set.
const DEFAULT_SEEDS: u64 = 1_500;
/// Lines of a failing seed's trace printed by the summary (a replay prints all).
const TRACE_TAIL: usize = 120;

/// What one seed did.
struct Outcome {
    steps: u64,
    checks: u64,
    /// Vector's side: first lines read, those that found their row, reloads.
    first_lines: (u64, u64),
    reloads: u64,
    violations: Vec<String>,
    trace: Vec<String>,
    mode: world::Mode,
}

/// Runs one seed.
fn simulate(seed: u64) -> Outcome {
    // The watchers' backoffs draw their jitter from the thread's generator.
    fastrand::seed(seed);
    let mut world = World::new(seed);
    world.run();
    Outcome {
        steps: world.steps,
        checks: world.oracle.checks,
        first_lines: (world.oracle.first_lines, world.oracle.first_lines_labelled),
        reloads: world.oracle.reloads,
        violations: std::mem::take(&mut world.oracle.violations),
        trace: std::mem::take(&mut world.trace),
        mode: world.mode,
    }
}

/// Runs `seeds`; returns the summary line and the first failing seed's report.
fn simulate_many(seeds: impl Iterator<Item = u64>) -> (String, Option<String>) {
    let (mut count, mut steps, mut checks, mut violations) = (0u64, 0u64, 0u64, 0usize);
    let (mut first_lines, mut labelled, mut reloads) = (0u64, 0u64, 0u64);
    let mut first_failure = None;
    for seed in seeds {
        let outcome = simulate(seed);
        count += 1;
        steps += outcome.steps;
        checks += outcome.checks;
        violations += outcome.violations.len();
        first_lines += outcome.first_lines.0;
        labelled += outcome.first_lines.1;
        reloads += outcome.reloads;
        if !outcome.violations.is_empty() && first_failure.is_none() {
            let tail = outcome.trace.len().saturating_sub(TRACE_TAIL);
            first_failure = Some(format!(
                "seed {seed} ({:?}) broke {} invariant(s):\n  {}\nlast {} steps of its trace:\n{}\nreplay: SIM_SEED={seed} cargo test --lib simulation -- --nocapture",
                outcome.mode,
                outcome.violations.len(),
                outcome.violations.join("\n  "),
                outcome.trace.len() - tail,
                outcome.trace[tail..].join("\n"),
            ));
        }
    }
    let summary = format!(
        "Vector: {reloads} reloads, {labelled} of {first_lines} first log lines found their row\n\
         simulation: {count} seeds, {steps} steps, {checks} invariant checks, {violations} violations"
    );
    (summary, first_failure)
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(
        raw.parse()
            .unwrap_or_else(|_| panic!("{name}={raw:?} is not a whole number")),
    )
}

#[test]
fn simulation_of_many_seeds_breaks_no_invariant() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let outcome = simulate(seed);
        println!("{}", outcome.trace.join("\n"));
        let (summary, failure) = simulate_many(std::iter::once(seed));
        println!("{}", failure.as_deref().unwrap_or(""));
        println!("{summary}");
        assert!(failure.is_none(), "seed {seed} breaks an invariant");
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let first = env_u64("SIM_FIRST_SEED").unwrap_or(0);
    let (summary, failure) = simulate_many(first..first + seeds);
    if let Some(failure) = &failure {
        println!("{failure}");
    }
    println!("{summary}");
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
}

/// Seeds that found bugs, kept so that they stay fixed: 85 (blocking mode: a collected
/// allocation left one whole wait late), 1890 (a fetch answered 404 by a follower dropped the
/// placement event that came meanwhile); and the first seeds that caught earlier bugs put back:
/// 18 (a collected newest allocation kept for ever), 64 (updates ignored after an index reset),
/// 14 (a reload owed at SIGTERM dropped), 0 (a redundant reload).
const REGRESSIONS: [u64; 6] = [85, 1890, 18, 64, 14, 0];

#[test]
fn simulation_of_the_seeds_that_found_bugs() {
    let (summary, failure) = simulate_many(REGRESSIONS.into_iter());
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    println!("{summary}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let (a, b) = (simulate(7), simulate(7));
    assert_eq!(a.trace, b.trace);
    assert!(a.steps > 100, "a run takes many steps: {}", a.steps);
}
