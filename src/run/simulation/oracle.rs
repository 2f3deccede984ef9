//! The simulation's invariants: what must hold after every step, judged from the truth (what
//! Nomad and the client did, and when) against the file on disk, what Vector was told and what
//! the watchers applied. Liveness bounds are checked only over quiet stretches (no outage, cut,
//! restore, full disk or restart), where the program promises them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::nomad::SimNomad;
use super::world::{Mode, OUR_NODE};
use crate::nomad::query::Consistency;
use crate::table::format::FileFormat;
use crate::table::validate::ValidTable;
use crate::timing::Timing;

/// Slack for latencies the bounds do not name (answers, deliveries, reloads).
const SLACK: Duration = Duration::from_millis(1_500);
/// How long a restart disturbs: the new process's first listing.
const RESTART: Duration = Duration::from_secs(2);
/// A first log line read this long after its directory appeared finds its row.
const FIRST_LINE_BOUND: Duration = Duration::from_millis(2_500);

/// What is known of one allocation.
#[derive(Debug)]
struct Track {
    node: String,
    /// The last change of what its rows show (placement, a new job version).
    changed_at: Duration,
    /// When it was collected, or its directory removed, whichever came first.
    gone_at: Option<Duration>,
    /// When the server collected it.
    collected_at: Option<Duration>,
    dir_at: Option<Duration>,
    /// Its rows left the file after its collection.
    left: bool,
}

/// The invariants' bookkeeping.
pub struct Oracle {
    mode: Mode,
    timing: Timing,
    allocs: BTreeMap<String, Track>,
    disturbances: Vec<(Duration, Duration)>,
    /// The current process: when it started, whether its first reload may come without a
    /// publish (the table on disk was never announced).
    started_at: Duration,
    start_owes: bool,
    first_write_pending: bool,
    written_since_reload: bool,
    /// The first write (or the start with an unannounced table) that no reload started since
    /// has announced.
    unannounced_since: Option<Duration>,
    /// The job version of each allocation's rows in the file.
    on_disk: BTreeMap<String, String>,
    /// The highest index the watcher applied, and the last one.
    highest_applied: u64,
    last_applied: u64,
    stopping: bool,
    /// What was reported already.
    reported: std::collections::BTreeSet<String>,
    pub checks: u64,
    pub violations: Vec<String>,
    /// First log lines Vector read, and how many found their row; reloads started.
    pub first_lines: u64,
    pub first_lines_labelled: u64,
    pub reloads: u64,
}

impl Oracle {
    pub fn new(mode: Mode, timing: Timing) -> Oracle {
        Oracle {
            mode,
            timing,
            allocs: BTreeMap::new(),
            disturbances: Vec::new(),
            started_at: Duration::ZERO,
            start_owes: false,
            first_write_pending: true,
            written_since_reload: false,
            unannounced_since: None,
            on_disk: BTreeMap::new(),
            highest_applied: 0,
            last_applied: 0,
            stopping: false,
            reported: std::collections::BTreeSet::new(),
            checks: 0,
            violations: Vec::new(),
            first_lines: 0,
            first_lines_labelled: 0,
            reloads: 0,
        }
    }

    /// Records a violation, once per allocation and kind: the first word (an allocation's
    /// ID, if it names one) and the words without digits.
    fn violation(&mut self, now: Duration, what: String) {
        let mut words = what.split_whitespace();
        let first = words.next().unwrap_or_default();
        let kind: Vec<&str> = std::iter::once(first)
            .chain(words.filter(|w| !w.contains(|c: char| c.is_ascii_digit())))
            .collect();
        if self.reported.insert(kind.join(" ")) {
            self.violations
                .push(format!("{:>9.3}s {what}", now.as_secs_f64()));
        }
    }

    fn covers(&self, node: &str) -> bool {
        self.mode.cluster() || node == OUR_NODE
    }

    /// No fault or restart overlapped `[from, to]`.
    fn quiet(&self, from: Duration, to: Duration) -> bool {
        !self.disturbances.iter().any(|&(a, b)| a <= to && b >= from)
    }

    // ---- what happened ----

    pub fn placed(&mut self, id: &str, node: &str, now: Duration) {
        self.allocs.insert(
            id.to_owned(),
            Track {
                node: node.to_owned(),
                changed_at: now,
                gone_at: None,
                collected_at: None,
                dir_at: None,
                left: false,
            },
        );
    }

    pub fn changed(&mut self, id: &str, now: Duration) {
        if let Some(track) = self.allocs.get_mut(id) {
            track.changed_at = now;
        }
    }

    pub fn dir_created(&mut self, id: &str, now: Duration) {
        if let Some(track) = self.allocs.get_mut(id) {
            track.dir_at = Some(now);
        }
    }

    /// The directory was removed (`collected` false) or the server collected it.
    pub fn gone(&mut self, id: &str, now: Duration, collected: bool) {
        if let Some(track) = self.allocs.get_mut(id) {
            track.gone_at.get_or_insert(now);
            if collected {
                track.collected_at = Some(now);
            }
        }
    }

    pub fn disturbed(&mut self, from: Duration, to: Duration) {
        self.disturbances.push((from, to));
    }

    pub fn started(&mut self, now: Duration, unannounced: bool) {
        self.started_at = now;
        self.start_owes = unannounced;
        self.first_write_pending = true;
        self.written_since_reload = false;
        self.highest_applied = 0;
        self.last_applied = 0;
        self.stopping = false;
        // A table left unannounced by the last process is announced by this one, once the
        // restart is over.
        if unannounced {
            self.unannounced_since = Some(now + RESTART);
        }
    }

    pub fn stopping(&mut self, now: Duration) {
        self.stopping = true;
        self.disturbed(now, Duration::MAX);
    }

    /// The process exited; `early` when before its shutdown deadline, so with nothing owed.
    pub fn exited(
        &mut self,
        now: Duration,
        early: bool,
        disk: Option<&[u8]>,
        announced: Option<&[u8]>,
    ) {
        self.checks += 1;
        if early && disk != announced {
            self.violation(
                now,
                "exited before its deadline with the table on disk unannounced".to_owned(),
            );
        }
    }

    /// The next process starts after the restart; liveness waits for it.
    pub fn restarting(&mut self, now: Duration) {
        if let Some(last) = self.disturbances.last_mut()
            && last.1 == Duration::MAX
        {
            last.1 = now + RESTART;
        }
    }

    pub fn reload_started(&mut self, now: Duration) {
        self.checks += 1;
        self.reloads += 1;
        if !self.written_since_reload && !std::mem::take(&mut self.start_owes) {
            self.violation(now, "a reload without a publish since the last".to_owned());
        }
        self.written_since_reload = false;
        self.unannounced_since = None;
    }

    /// A publish replaced `old` with `new`.
    pub fn written(&mut self, now: Duration, old: Option<&[u8]>, new: &[u8]) {
        self.checks += 2;
        if let Err(e) = ValidTable::check(new.to_vec(), FileFormat::Csv) {
            self.violation(now, format!("published a table Vector cannot load: {e}"));
        }
        if old == Some(new) {
            self.violation(now, "a publish wrote the bytes already on disk".to_owned());
        }
        self.written_since_reload = true;
        self.start_owes = false;
        let first_after_start = std::mem::take(&mut self.first_write_pending);
        self.unannounced_since.get_or_insert(now);
        let rows = versions(new);
        let removed: Vec<String> = self
            .on_disk
            .keys()
            .filter(|id| !rows.contains_key(*id))
            .cloned()
            .collect();
        for id in removed {
            self.checks += 1;
            // A process does not inherit the grace periods of the one before it (the model is
            // not kept across a restart): its first publish may drop what left meanwhile.
            let early = match self.allocs.get(&id) {
                Some(track) => track.gone_at.is_none_or(|gone| {
                    !(first_after_start || gone < self.started_at)
                        && now + Duration::from_millis(1) < gone + self.timing.grace
                }),
                None => true,
            };
            if early {
                let gone = self.allocs.get(&id).and_then(|t| t.gone_at);
                self.violation(
                    now,
                    format!("the rows of {id} left the table before their grace ended (gone at {gone:?})"),
                );
            }
        }
        self.on_disk = rows;
    }

    pub fn first_line(&mut self, id: &str, found: bool, now: Duration) {
        self.first_lines += 1;
        self.first_lines_labelled += u64::from(found);
        let Some(dir_at) = self.allocs.get(id).and_then(|t| t.dir_at) else {
            return;
        };
        let crowded = self
            .allocs
            .values()
            .filter(|t| {
                t.dir_at
                    .is_some_and(|d| d + Duration::from_secs(1) >= dir_at && d <= dir_at)
            })
            .count()
            > 2;
        if now >= dir_at + FIRST_LINE_BOUND
            && !crowded
            && self.quiet(dir_at.saturating_sub(Duration::from_secs(3)), now)
            && self.mode != Mode::ClusterEvents
        {
            self.checks += 1;
            if !found {
                self.violation(
                    now,
                    format!("Vector read the first line of {id} without its row ({:?} after its directory)", now - dir_at),
                );
            }
        }
    }

    /// The watcher applied a listing at `index`.
    pub fn applied_listing(&mut self, index: u64, consistency: Consistency, now: Duration) {
        self.checks += 1;
        if index < self.highest_applied && consistency == Consistency::Stale {
            let highest = self.highest_applied;
            self.violation(
                now,
                format!(
                    "applied a stale listing at {index}, below {highest}, without asking the leader"
                ),
            );
        }
        self.highest_applied = if consistency == Consistency::Leader {
            index
        } else {
            self.highest_applied.max(index)
        };
        self.last_applied = index;
    }

    /// The run took more steps than any run needs: the loop spins.
    pub fn spinning(&mut self, now: Duration, steps: u64) {
        self.checks += 1;
        self.violation(now, format!("the loop spins: {steps} steps"));
    }

    /// The events watcher applied a listing at `index`: its cursor starts from there.
    pub fn cursor_reset(&mut self, index: u64) {
        self.last_applied = index;
    }

    /// The watcher applied an event frame at `index`.
    pub fn applied_frame(&mut self, index: u64, now: Duration) {
        self.checks += 1;
        if index <= self.last_applied {
            let last = self.last_applied;
            self.violation(now, format!("applied a frame at {index}, not above {last}"));
        }
        self.last_applied = index;
        self.highest_applied = self.highest_applied.max(index);
    }

    // ---- after every step ----

    /// Checks the file against the truth.
    pub fn check(&mut self, now: Duration, nomad: &SimNomad, process_alive: bool) {
        if !process_alive || self.stopping {
            return;
        }
        let wait = self.timing.wait.max;
        let placed_bound = wait + SLACK;
        let period = if self.mode.blocking() {
            self.timing.resync_interval.mul_f64(17.0 / 16.0)
        } else {
            self.timing.resync_interval.mul_f64(1.1)
        };
        let leave_bound = self.timing.grace + period + wait + SLACK;
        let mut found = Vec::new();
        for (id, track) in &self.allocs {
            if !self.covers(&track.node) {
                continue;
            }
            let on_disk = self.on_disk.get(id);
            match (nomad.leader.allocs.get(id), track.collected_at) {
                (Some(alloc), None) => {
                    // Its directory gone, its rows may go once the grace ends.
                    if track.gone_at.is_none()
                        && now >= track.changed_at + placed_bound
                        && self.quiet(track.changed_at, now)
                    {
                        self.checks += 1;
                        let want = alloc.job_version.to_string();
                        if on_disk != Some(&want) {
                            found.push(format!(
                                "{id} (job version {want}) is not in the table as Nomad has it {:?} after its change: {on_disk:?}",
                                now - track.changed_at
                            ));
                        }
                    }
                }
                (_, Some(collected)) => {
                    self.checks += 1;
                    if on_disk.is_some() && track.left {
                        found.push(format!("{id} came back after it left the table"));
                    }
                    if now >= collected + leave_bound
                        && self.quiet(collected, now)
                        && on_disk.is_some()
                    {
                        found.push(format!(
                            "{id} is still in the table {:?} after its collection",
                            now - collected
                        ));
                    }
                }
                (None, None) => {}
            }
        }
        let left: Vec<String> = self
            .allocs
            .iter()
            // A listing requested before the collection may still bring it back once.
            .filter(|(id, t)| {
                t.collected_at.is_some_and(|at| now >= at + SLACK)
                    && !self.on_disk.contains_key(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in left {
            if let Some(track) = self.allocs.get_mut(&id) {
                track.left = true;
            }
        }
        for what in found {
            self.violation(now, what);
        }
        if let Some(since) = self.unannounced_since {
            self.checks += 1;
            let bound = self.timing.min_reload_interval + wait + SLACK;
            if now >= since + bound && self.quiet(since, now) {
                self.violation(
                    now,
                    format!("a table written {:?} ago is still unannounced", now - since),
                );
                self.unannounced_since = None;
            }
        }
    }
}

/// The job version of each allocation's rows in a CSV table.
fn versions(table: &[u8]) -> BTreeMap<String, String> {
    let mut reader = csv::Reader::from_reader(table);
    let Ok(header) = reader.headers().cloned() else {
        return BTreeMap::new();
    };
    let id = header.iter().position(|h| h == "alloc_id");
    let version = header.iter().position(|h| h == "job_version");
    let (Some(id), Some(version)) = (id, version) else {
        return BTreeMap::new();
    };
    reader
        .records()
        .filter_map(Result::ok)
        .map(|r| (r[id].to_owned(), r[version].to_owned()))
        .collect()
}

/// Whether a table has rows of the allocation.
pub fn has_rows(table: &[u8], id: &str) -> bool {
    versions(table).contains_key(id)
}
