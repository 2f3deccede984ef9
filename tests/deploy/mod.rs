//! The deployment files must keep working as the CLI changes: every HCL file in `deploy/`
//! parses, and every `nomad-alloc-table` invocation in them (Nomad task `config.args`, systemd
//! `ExecStart`/`ExecStartPre`) parses with the binary's own clap definition, so a renamed or
//! removed flag fails here instead of in production. The Vector pipeline the jobs ship is
//! checked in [`vector`].

mod vector;

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

/// Whether a task runs nomad-alloc-table: its command (raw_exec), or its image (docker, whose
/// entrypoint is the binary).
fn runs_exporter(task: &Block) -> bool {
    blocks(task.body(), "config").any(|config| {
        let command = attribute(config.body(), "command").and_then(string);
        let image = attribute(config.body(), "image").and_then(string);
        command.is_some_and(|c| c.ends_with("nomad-alloc-table"))
            || image.is_some_and(|i| i.starts_with("nomad-alloc-table:"))
    })
}

fn invocations(job: &Body) -> Vec<Invocation> {
    let mut found = Vec::new();
    for job in blocks(job, "job") {
        for group in blocks(job.body(), "group") {
            for task in blocks(group.body(), "task") {
                let Some(config) = blocks(task.body(), "config").next() else {
                    continue;
                };
                if !runs_exporter(task) {
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

/// The Nomad jobs that run nomad-alloc-table (the aggregator's does not).
fn exporter_jobs() -> Vec<PathBuf> {
    hcl_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".nomad.hcl"))
        .filter(|f| !invocations(&parse(f)).is_empty())
        .collect()
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
    let jobs = exporter_jobs();
    assert!(
        jobs.len() >= 3,
        "the Docker job, the raw_exec and the exporter-in-Docker variants"
    );
    for job in jobs {
        let found = invocations(&parse(&job));
        for invocation in &found {
            assert_parses(
                &invocation.args,
                &format!("{} task {}", job.display(), invocation.task),
            );
        }
        // dump finishes before Vector starts; run is a prestart sidecar beside it.
        for (command, lifecycle) in [("dump", false), ("run", true)] {
            let task = found
                .iter()
                .find(|i| i.args.first().map(String::as_str) == Some(command))
                .unwrap_or_else(|| panic!("{}: no {command} task", job.display()));
            assert_eq!(
                task.lifecycle,
                Some(("prestart".to_owned(), lifecycle)),
                "{}: {command}",
                job.display()
            );
        }
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
            loaded >= 1,
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
        if program == "-+/usr/bin/setfacl" {
            // As root: the alloc dir (Nomad's 0711) made listable by the exporter's user.
            assert!(command.contains("-m u:nomad-alloc-table:rx"), "{line}");
            continue;
        }
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
    assert!(drop_in.contains("ExecStartPre=-+/usr/bin/setfacl -m u:vector:rx"));
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
    for job in exporter_jobs() {
        let body = parse(&job);
        let place = job.display().to_string();
        let group = blocks(&body, "job")
            .flat_map(|j| blocks(j.body(), "group"))
            .next()
            .unwrap_or_else(|| panic!("{place}: a group"));
        let port = blocks(group.body(), "network")
            .flat_map(|n| blocks(n.body(), "port"))
            .find(|p| p.labels().iter().any(|l| l.as_str() == "metrics"))
            .unwrap_or_else(|| panic!("{place}: a port labelled metrics"));
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
        // On the host's network, the port's address; in a container, the port it is mapped to.
        let in_container = blocks(task.body(), "config").any(|c| {
            matches!(attribute(c.body(), "ports"), Some(Expression::Array(ports))
                if ports.iter().filter_map(string).any(|p| p == "metrics"))
        });
        let expected = if in_container {
            let to = attribute(port.body(), "to")
                .map(|to| to.to_string())
                .unwrap_or_else(|| panic!("{place}: the port's container side (to)"));
            format!("0.0.0.0:{to}")
        } else {
            "${NOMAD_ADDR_metrics}".to_owned()
        };
        assert_eq!(
            listen.as_deref(),
            Some(expected.as_str()),
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

/// The minimum Nomad version a job states in its header comment.
fn minimum_nomad_version(job: &Path) -> (u32, u32, u32) {
    let text = std::fs::read_to_string(job).expect("readable");
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("# Minimum Nomad version: "))
        .unwrap_or_else(|| panic!("{} states no minimum Nomad version", job.display()));
    let numbers: Vec<u32> = version
        .split_whitespace()
        .next()
        .expect("a version")
        .split('.')
        .map(|n| n.parse().expect("a number"))
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

#[test]
fn every_nomad_addr_exists_in_the_jobs_minimum_nomad_version() {
    for job in hcl_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(".nomad.hcl"))
    {
        let minimum = minimum_nomad_version(&job);
        let body = parse(&job);
        for group in blocks(&body, "job").flat_map(|j| blocks(j.body(), "group")) {
            for task in blocks(group.body(), "task") {
                let runs_exporter = runs_exporter(task);
                let address = blocks(task.body(), "env")
                    .find_map(|env| attribute(env.body(), "NOMAD_ADDR"))
                    .and_then(string);
                let place = format!("{} task {:?}", job.display(), task.labels());
                if runs_exporter {
                    assert!(
                        address.is_some(),
                        "{place}: without NOMAD_ADDR it talks plain HTTP to 127.0.0.1:4646"
                    );
                }
                let Some(address) = address else { continue };
                // Since when Nomad provides each form (the Task API socket since 1.5.0, the
                // NOMAD_UNIX_ADDR variable naming it since 1.10.3, hashicorp/nomad#25598).
                let needs = match address.as_str() {
                    "unix://${NOMAD_SECRETS_DIR}/api.sock" => (1, 5, 0),
                    "${NOMAD_UNIX_ADDR}" => (1, 10, 3),
                    other if other.starts_with("http") => (0, 0, 0),
                    other => panic!("{place}: NOMAD_ADDR = {other:?} is not a known form"),
                };
                assert!(
                    needs <= minimum,
                    "{place}: {address} needs Nomad {needs:?}, the job states {minimum:?}"
                );
            }
        }
    }
}
