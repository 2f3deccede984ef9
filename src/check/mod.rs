//! `check`: a doctor for a new install, run with the flags and environment `run` gets. Each
//! check is one line, ✓ or ✗, and every ✗ says what to do. It reads and never writes (but for
//! a probe file in the output directory, removed at once), and never sends a signal or prints a
//! token.
//!
//! One file per kind of check: `reachability` (does Nomad answer), `token` (does it know the
//! token), `acl` (what it grants), `stream` (the event-stream probe), `local` (alloc dir and
//! output), `reload` (Vector's reload target), `push` (Vector's memory table, with
//! `--memory-table-url`); `report` renders the findings.

mod acl;
mod local;
mod push;
mod reachability;
mod reload;
mod report;
mod stream;
mod token;

use std::sync::Arc;

pub use report::{Finding, render};

use crate::config::{CheckSettings, Scope};
use crate::nomad::NomadClient;

/// Runs every check the settings call for.
pub async fn run(
    client: Arc<NomadClient>,
    scope: &Scope,
    settings: &CheckSettings,
) -> Vec<Finding> {
    let answers = reachability::check_answers(&client).await;
    let reachable = answers.ok;
    let mut findings = vec![answers];
    let run = &settings.run;
    if reachable {
        findings.extend(match scope {
            Scope::Node(node_id) => acl::check_nomad(&client, node_id.as_deref(), settings).await,
            Scope::Cluster { .. } => acl::check_cluster(&client).await,
        });
    }
    // The local checks are worth making even when Nomad does not answer.
    if let Scope::Node(_) = scope {
        let alloc_dir = match &run.alloc_dir {
            Some(dir) => dir.clone(),
            None => crate::run::default_alloc_dir(&client).await,
        };
        findings.push(local::check_alloc_dir(&alloc_dir));
    }
    findings.extend(local::check_output(settings));
    findings.extend(
        reload::check_reload(client, run.publish.reloader.clone(), &run.publish.output).await,
    );
    if let Some(push) = &run.push {
        findings.push(push::check_memory_table(push).await);
    }
    findings
}
