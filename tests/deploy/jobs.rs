//! The exporter's invocations.

use super::*;

/// One task that runs nomad-alloc-table.
pub(super) struct Invocation {
    pub(super) task: String,
    pub(super) args: Vec<String>,
    pub(super) env: BTreeMap<String, String>,
    /// `(hook, sidecar)` of the task's lifecycle block.
    pub(super) lifecycle: Option<(String, bool)>,
}

pub(super) fn task_env(task: &Block) -> BTreeMap<String, String> {
    blocks(task.body(), "env")
        .flat_map(|e| e.body().attributes())
        .filter_map(|a| string(a.expr()).map(|v| (a.key().to_owned(), v)))
        .collect()
}

pub(super) fn task_config(task: &Block) -> Option<&Body> {
    blocks(task.body(), "config").next().map(Block::body)
}

/// Whether a task runs nomad-alloc-table: its command (raw_exec), or its image (docker, whose
/// entrypoint is the binary).
pub(super) fn runs_exporter(task: &Block) -> bool {
    task_config(task).is_some_and(|config| {
        let command = attribute(config, "command").and_then(string);
        let image = attribute(config, "image").and_then(string);
        command.is_some_and(|c| c.ends_with("nomad-alloc-table"))
            || image.is_some_and(|i| i.starts_with("nomad-alloc-table:"))
    })
}

pub(super) fn runs_vector(task: &Block) -> bool {
    task_config(task).is_some_and(|config| {
        let command = attribute(config, "command").and_then(string);
        let image = attribute(config, "image").and_then(string);
        command.is_some_and(|c| c.ends_with("/vector"))
            || image.is_some_and(|i| i.starts_with("timberio/vector:"))
    })
}

pub(super) fn invocations(variant: &Variant) -> Vec<Invocation> {
    variant
        .tasks()
        .filter(|t| runs_exporter(t))
        .map(|task| {
            let config = task_config(task).expect("config");
            let args = match attribute(config, "args") {
                Some(Expression::Array(items)) => items
                    .iter()
                    .map(|i| string(i).expect("string args"))
                    .collect(),
                _ => panic!(
                    "{}: task {} runs nomad-alloc-table without args",
                    variant.place(),
                    label(task)
                ),
            };
            let lifecycle = blocks(task.body(), "lifecycle").next().map(|l| {
                let hook = attribute(l.body(), "hook")
                    .and_then(string)
                    .unwrap_or_default();
                let sidecar =
                    matches!(attribute(l.body(), "sidecar"), Some(Expression::Bool(true)));
                (hook, sidecar)
            });
            Invocation {
                task: label(task),
                args,
                env: task_env(task),
                lifecycle,
            }
        })
        .collect()
}

pub(super) fn assert_parses(args: &[String], place: &str) {
    let argv = std::iter::once("nomad-alloc-table".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!(
            "{place}: `nomad-alloc-table {}` does not parse:\n{e}",
            args.join(" ")
        );
    }
}

pub(super) fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[test]
fn every_hcl_file_parses_and_every_job_evaluates_for_every_choice_of_its_variables() {
    let files = hcl_files();
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        hcl::parse(&escape_runtime_references(&text))
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
    }
    let variants = all_variants();
    assert!(variants.len() >= 3, "{}", variants.len());
}

/// The one combination the aggregator's job refuses: a pushed table without the cluster
/// table; every other combination evaluates.
#[test]
fn only_a_push_feed_without_the_cluster_table_is_refused() {
    let file = repo("deploy/nomad/vector-aggregator.nomad.hcl");
    let refusals = refused(&file);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let (vars, locals) = &refusals[0];
    assert!(
        vars.contains(&("topology".to_owned(), "agent".to_owned())),
        "{vars:?}"
    );
    assert!(
        vars.contains(&("table_feed".to_owned(), "push".to_owned())),
        "{vars:?}"
    );
    assert_eq!(locals, &["push_needs_forward_agent"]);
    for file in job_files() {
        if !file.ends_with("vector-aggregator.nomad.hcl") {
            assert_eq!(refused(&file), [], "{}", file.display());
        }
    }
}

#[test]
fn every_job_runs_dump_before_vector_and_run_beside_it_with_flags_that_exist() {
    let mut exporter_variants = 0;
    for variant in all_variants() {
        let found = invocations(&variant);
        if found.is_empty() {
            continue;
        }
        exporter_variants += 1;
        let place = variant.place();
        for invocation in &found {
            assert_parses(
                &invocation.args,
                &format!("{place} task {}", invocation.task),
            );
        }
        let dump = found
            .iter()
            .find(|i| i.args.first().map(String::as_str) == Some("dump"))
            .unwrap_or_else(|| panic!("{place}: no dump task"));
        assert_eq!(
            dump.lifecycle,
            Some(("prestart".to_owned(), false)),
            "{place}: dump must finish before Vector"
        );
        let run = found
            .iter()
            .find(|i| i.args.first().map(String::as_str) == Some("run"))
            .unwrap_or_else(|| panic!("{place}: no run task"));
        assert_eq!(
            run.lifecycle,
            Some(("prestart".to_owned(), true)),
            "{place}: run is a prestart sidecar"
        );
        assert_eq!(
            value_of(&dump.args, "--output"),
            value_of(&run.args, "--output"),
            "{place}: dump and run publish the same table"
        );
        // The reload reaches the one Vector of this allocation: through Nomad, never by a
        // process name that a second Vector on the host would make ambiguous.
        assert_eq!(
            value_of(&run.args, "--reload"),
            Some("nomad-task"),
            "{place}: run reloads the Vector task through Nomad"
        );
        let reloaded = value_of(&run.args, "--reload-task").expect("--reload-task");
        assert!(
            variant
                .tasks()
                .any(|t| label(t) == reloaded && runs_vector(t)),
            "{place}: --reload-task {reloaded} names no Vector task of the job"
        );
    }
    assert!(
        exporter_variants >= 4,
        "the exporter under raw_exec and docker, node and cluster scope"
    );
}

#[test]
fn every_exporter_finds_its_node_and_alloc_dir_without_agent_read() {
    // The shipped policy grants no agent:read; without a node ID (and, for run, an alloc dir)
    // the exporter asks /v1/agent/self and gets 403.
    let policy = hcl::parse(&read("deploy/nomad/acl-policy.hcl")).expect("policy");
    let grants_agent = blocks(&policy, "agent").next().is_some();
    if grants_agent {
        return;
    }
    for variant in all_variants() {
        for invocation in invocations(&variant) {
            if value_of(&invocation.args, "--scope") == Some("cluster") {
                continue;
            }
            let place = format!("{} task {}", variant.place(), invocation.task);
            assert_eq!(
                invocation.env.get("NOMAD_NODE_ID").map(String::as_str),
                Some("${node.unique.id}"),
                "{place}: the node ID"
            );
            if invocation.args[0] == "run" {
                assert!(
                    value_of(&invocation.args, "--alloc-dir").is_some(),
                    "{place}: --alloc-dir"
                );
            }
        }
    }
    let env = systemd_env();
    let node_id = env
        .get("NOMAD_NODE_ID")
        .expect("deploy/systemd/env.example sets NOMAD_NODE_ID (a required line, not a comment)");
    assert!(!node_id.is_empty());
    assert!(
        env.contains_key("NOMAD_ALLOC_TABLE_ALLOC_DIR"),
        "the alloc dir in the env file, where `check` reads it too"
    );
}

#[test]
fn files_the_jobs_load_exist() {
    // file() fails the evaluation when a file is missing; each job loads a Vector config.
    for variant in all_variants() {
        let templates = variant
            .tasks()
            .flat_map(|t| blocks(t.body(), "template"))
            .count();
        assert!(templates >= 1, "{}: no template", variant.place());
    }
}
