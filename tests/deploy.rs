//! The deployment files must keep working as the CLI changes: every HCL file in `deploy/`
//! parses, and every `nomad-alloc-table` invocation in them (Nomad task `config.args`, systemd
//! `ExecStart`/`ExecStartPre`) parses with the binary's own clap definition, so a renamed or
//! removed flag fails here instead of in production.

use std::path::{Path, PathBuf};

use clap::Parser;
use hcl::{Block, Body, Expression};
use nomad_alloc_table::cli::Cli;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn hcl_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![repo("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/ exists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "hcl") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path).expect("readable");
    hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> {
    body.blocks().filter(move |b| b.identifier() == identifier)
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// A string or a quoted template (`"${NOMAD_SECRETS_DIR}/token"`) as written.
fn string(expr: &Expression) -> Option<String> {
    match expr {
        Expression::String(s) => Some(s.clone()),
        Expression::TemplateExpr(t) => Some(t.to_string()),
        _ => None,
    }
}

/// One task that runs nomad-alloc-table.
struct Invocation {
    task: String,
    args: Vec<String>,
    /// `(hook, sidecar)` of the task's lifecycle block.
    lifecycle: Option<(String, bool)>,
}

fn invocations(job: &Body) -> Vec<Invocation> {
    let mut found = Vec::new();
    for job in blocks(job, "job") {
        for group in blocks(job.body(), "group") {
            for task in blocks(group.body(), "task") {
                let Some(config) = blocks(task.body(), "config").next() else {
                    continue;
                };
                let command = attribute(config.body(), "command")
                    .and_then(string)
                    .unwrap_or_default();
                if !command.ends_with("nomad-alloc-table") {
                    continue;
                }
                let Some(Expression::Array(items)) = attribute(config.body(), "args") else {
                    panic!(
                        "task {:?} runs nomad-alloc-table without args",
                        task.labels()
                    );
                };
                let args = items
                    .iter()
                    .map(|i| string(i).expect("string args"))
                    .collect();
                let lifecycle = blocks(task.body(), "lifecycle").next().map(|l| {
                    let hook = attribute(l.body(), "hook")
                        .and_then(string)
                        .unwrap_or_default();
                    let sidecar =
                        matches!(attribute(l.body(), "sidecar"), Some(Expression::Bool(true)));
                    (hook, sidecar)
                });
                found.push(Invocation {
                    task: task
                        .labels()
                        .first()
                        .map(|l| l.as_str().to_owned())
                        .unwrap_or_default(),
                    args,
                    lifecycle,
                });
            }
        }
    }
    found
}

fn assert_parses(args: &[String], place: &str) {
    let argv = std::iter::once("nomad-alloc-table".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!(
            "{place}: `nomad-alloc-table {}` does not parse:\n{e}",
            args.join(" ")
        );
    }
}

#[test]
fn every_hcl_file_parses() {
    let files = hcl_files();
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        parse(&file);
    }
}

#[test]
fn every_job_runs_dump_before_vector_and_run_beside_it_with_flags_that_exist() {
    let jobs: Vec<PathBuf> = hcl_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".nomad.hcl"))
        .collect();
    assert!(jobs.len() >= 2, "the Docker job and the raw_exec variant");
    for job in jobs {
        let found = invocations(&parse(&job));
        for invocation in &found {
            assert_parses(
                &invocation.args,
                &format!("{} task {}", job.display(), invocation.task),
            );
        }
        let dump = found
            .iter()
            .find(|i| i.args.first().map(String::as_str) == Some("dump"))
            .unwrap_or_else(|| panic!("{}: no dump task", job.display()));
        assert_eq!(
            dump.lifecycle,
            Some(("prestart".to_owned(), false)),
            "{}: dump must finish before Vector",
            job.display()
        );
        let run = found
            .iter()
            .find(|i| i.args.first().map(String::as_str) == Some("run"))
            .unwrap_or_else(|| panic!("{}: no run task", job.display()));
        assert_eq!(
            run.lifecycle,
            Some(("prestart".to_owned(), true)),
            "{}: run is a prestart sidecar",
            job.display()
        );
    }
}

#[test]
fn files_the_jobs_load_exist() {
    for job in hcl_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".nomad.hcl"))
    {
        let text = std::fs::read_to_string(&job).expect("readable");
        let mut rest = text.as_str();
        let mut loaded = 0;
        while let Some(start) = rest.find("file(\"") {
            let after = &rest[start + 6..];
            let end = after.find('"').expect("closing quote");
            let path = &after[..end];
            assert!(
                repo(path).is_file(),
                "{} loads {path}, which does not exist",
                job.display()
            );
            loaded += 1;
            rest = &after[end..];
        }
        assert!(
            loaded >= 2,
            "{} loads the shipped Vector configuration",
            job.display()
        );
    }
}

#[test]
fn the_acl_policy_grants_what_the_exporter_needs() {
    let policy = parse(&repo("deploy/nomad/acl-policy.hcl"));
    let node = blocks(&policy, "node").next().expect("a node rule");
    assert_eq!(
        attribute(node.body(), "policy").and_then(string).as_deref(),
        Some("read")
    );
    let every_namespace = blocks(&policy, "namespace")
        .find(|b| b.labels().first().map(|l| l.as_str()) == Some("*"))
        .expect("namespace \"*\"");
    let Some(Expression::Array(capabilities)) = attribute(every_namespace.body(), "capabilities")
    else {
        panic!("namespace \"*\" without capabilities");
    };
    assert!(
        capabilities
            .iter()
            .any(|c| string(c).as_deref() == Some("read-job"))
    );
}

#[test]
fn systemd_units_invoke_commands_and_flags_that_exist() {
    let unit =
        std::fs::read_to_string(repo("deploy/systemd/nomad-alloc-table.service")).expect("unit");
    let mut checked = 0;
    for line in unit.lines() {
        let Some((key, command)) = line.split_once('=') else {
            continue;
        };
        if !matches!(key, "ExecStart" | "ExecStartPre") {
            continue;
        }
        let mut words = command.split_whitespace();
        let program = words.next().expect("a program");
        assert!(program.ends_with("nomad-alloc-table"), "{line}");
        let args: Vec<String> = words.map(str::to_owned).collect();
        assert_parses(&args, &format!("systemd {key}"));
        checked += 1;
    }
    assert_eq!(checked, 2, "ExecStartPre (dump) and ExecStart (run)");
    let drop_in = std::fs::read_to_string(repo(
        "deploy/systemd/vector.service.d/10-nomad-alloc-table.conf",
    ))
    .expect("drop-in");
    assert!(drop_in.contains("After=nomad-alloc-table.service"));
}

#[test]
fn a_renamed_flag_would_be_caught() {
    let err = Cli::try_parse_from([
        "nomad-alloc-table",
        "run",
        "--output",
        "/t.csv",
        "--reload-tasks",
        "vector",
    ]);
    assert!(
        err.is_err(),
        "the check above relies on clap refusing unknown flags"
    );
}

#[test]
fn the_jobs_serve_metrics_and_let_nomad_check_readiness() {
    for job in hcl_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".nomad.hcl"))
    {
        let body = parse(&job);
        let place = job.display().to_string();
        let group = blocks(&body, "job")
            .flat_map(|j| blocks(j.body(), "group"))
            .next()
            .unwrap_or_else(|| panic!("{place}: a group"));
        let port = blocks(group.body(), "network")
            .flat_map(|n| blocks(n.body(), "port"))
            .find(|p| p.labels().iter().any(|l| l.as_str() == "metrics"));
        assert!(port.is_some(), "{place}: a port labelled metrics");
        let task = blocks(group.body(), "task")
            .find(|t| {
                blocks(t.body(), "config").any(|c| {
                    attribute(c.body(), "args").is_some_and(|a| {
                        matches!(a, Expression::Array(items) if items.first().and_then(string).as_deref() == Some("run"))
                    })
                })
            })
            .unwrap_or_else(|| panic!("{place}: the task running `run`"));
        let listen = blocks(task.body(), "env")
            .find_map(|env| attribute(env.body(), "NOMAD_ALLOC_TABLE_LISTEN"))
            .and_then(string);
        assert_eq!(
            listen.as_deref(),
            Some("${NOMAD_ADDR_metrics}"),
            "{place}: run listens on the metrics port"
        );
        let service = blocks(task.body(), "service")
            .next()
            .unwrap_or_else(|| panic!("{place}: a service for run"));
        assert_eq!(
            attribute(service.body(), "port")
                .and_then(string)
                .as_deref(),
            Some("metrics")
        );
        let check = blocks(service.body(), "check")
            .next()
            .unwrap_or_else(|| panic!("{place}: a check"));
        assert_eq!(
            attribute(check.body(), "type").and_then(string).as_deref(),
            Some("http")
        );
        assert_eq!(
            attribute(check.body(), "path").and_then(string).as_deref(),
            Some("/readyz")
        );
    }
    let env = std::fs::read_to_string(repo("deploy/systemd/env.example")).expect("env example");
    let listen = env
        .lines()
        .find_map(|l| l.strip_prefix("NOMAD_ALLOC_TABLE_LISTEN="))
        .expect("the systemd env example sets the listener");
    let address: std::net::SocketAddr = listen.parse().expect("an address");
    assert!(address.ip().is_loopback(), "on loopback: {address}");
}
