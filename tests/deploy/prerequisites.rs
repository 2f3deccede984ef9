//! Client prerequisites, metrics, versions.

use super::*;

#[test]
fn docker_tasks_with_host_volumes_run_only_where_docker_allows_them() {
    for variant in all_variants() {
        let host_paths = variant.tasks().any(|t| {
            t.body()
                .attributes()
                .any(|a| a.key() == "driver" && string(a.expr()).as_deref() == Some("docker"))
                && task_config(t).is_some_and(|c| {
                    strings(attribute(c, "volumes"))
                        .iter()
                        .any(|v| v.starts_with('/'))
                })
        });
        if !host_paths {
            continue;
        }
        let place = variant.place();
        let constrained = blocks(variant.job.body(), "constraint").any(|c| {
            attribute(c.body(), "attribute").and_then(string).as_deref()
                == Some("${attr.driver.docker.volumes.enabled}")
        });
        assert!(
            constrained,
            "{place}: Docker refuses host-path volumes unless volumes are enabled"
        );
        assert!(
            variant.header().contains("volumes { enabled = true }"),
            "{place}: the header states the client prerequisite"
        );
    }
}

#[test]
fn the_jobs_serve_metrics_and_let_nomad_check_readiness() {
    for variant in all_variants() {
        let place = variant.place();
        let Some(task) = variant.tasks().find(|t| {
            runs_exporter(t)
                && task_config(t).is_some_and(|c| {
                    strings(attribute(c, "args")).first().map(String::as_str) == Some("run")
                })
        }) else {
            continue;
        };
        let group = variant.groups().next().expect("a group");
        let port = blocks(group.body(), "network")
            .flat_map(|n| blocks(n.body(), "port"))
            .find(|p| label(p) == "metrics")
            .unwrap_or_else(|| panic!("{place}: a port labelled metrics"));
        let listen = task_env(task).get("NOMAD_ALLOC_TABLE_LISTEN").cloned();
        // On the host's network, the port's address; in a container, the port it is mapped to.
        let in_container = task_config(task).is_some_and(|c| {
            strings(attribute(c, "ports"))
                .iter()
                .any(|p| p == "metrics")
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
    let listen = systemd_env()
        .get("NOMAD_ALLOC_TABLE_LISTEN")
        .cloned()
        .expect("the systemd env example sets the listener");
    let address: std::net::SocketAddr = listen.parse().expect("an address");
    assert!(address.ip().is_loopback(), "on loopback: {address}");
}

/// The minimum Nomad version a job states in its header comment.
pub(super) fn minimum_nomad_version(job: &Path) -> (u32, u32, u32) {
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
    for variant in all_variants() {
        let minimum = minimum_nomad_version(&variant.file);
        for task in variant.tasks() {
            let address = task_env(task).get("NOMAD_ADDR").cloned();
            let place = format!("{} task {}", variant.place(), label(task));
            if runs_exporter(task) {
                assert!(
                    address.is_some(),
                    "{place}: without NOMAD_ADDR it talks plain HTTP to 127.0.0.1:4646"
                );
                // The identity block exposes the workload identity since Nomad 1.5.0 (its
                // job-attached policies since 1.4.0, hashicorp/nomad#14140).
                if blocks(task.body(), "identity").next().is_some() {
                    assert!((1, 5, 0) <= minimum, "{place}: identity needs Nomad 1.5.0");
                }
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

/// Vector releases and the `vrl` each depends on (its Cargo.toml), for the pinned ones.
pub(super) const VRL_OF_VECTOR: &[(&str, &str)] = &[("0.57.0", "0.34.0")];

/// The Vector release the jobs pin (every job the same).
pub(super) fn pinned_vector() -> String {
    let mut pinned = BTreeSet::new();
    for variant in all_variants() {
        for task in variant.tasks().filter(|t| runs_vector(t)) {
            if let Some(image) = task_config(task)
                .and_then(|c| attribute(c, "image"))
                .and_then(string)
            {
                let version = image
                    .trim_start_matches("timberio/vector:")
                    .split('-')
                    .next()
                    .expect("a version")
                    .to_owned();
                pinned.insert(version);
            }
        }
    }
    assert_eq!(
        pinned.len(),
        1,
        "one Vector release across the jobs: {pinned:?}"
    );
    pinned.pop_first().expect("one")
}

#[test]
fn the_vrl_check_uses_the_vrl_of_the_pinned_vector() {
    let vector = pinned_vector();
    let manifest = read("tests/vrl-check/Cargo.toml");
    let vrl = manifest
        .lines()
        .find_map(|l| l.strip_prefix("vrl = { version = \"="))
        .and_then(|rest| rest.split('"').next())
        .expect("vrl-check pins vrl exactly");
    let expected = VRL_OF_VECTOR
        .iter()
        .find(|(v, _)| *v == vector)
        .map(|(_, vrl)| *vrl)
        .unwrap_or_else(|| panic!("add Vector {vector}'s vrl version to VRL_OF_VECTOR"));
    assert_eq!(vrl, expected, "Vector {vector} runs vrl {expected}");
}

#[test]
fn the_compatibility_tables_name_the_pinned_releases() {
    let vector = pinned_vector();
    let minor = vector.rsplit_once('.').expect("x.y.z").0;
    // The README's short table, then the full one in docs/compatibility.md.
    let readme = read("README.md");
    let short = readme
        .split("## Compatibility")
        .nth(1)
        .expect("a Compatibility section in the README");
    let short = short.split("\n## ").next().expect("the section");
    assert!(
        short.contains(&vector),
        "the README's table names the pinned Vector {vector}"
    );
    let table = read("docs/compatibility.md");
    assert!(
        table.contains(minor),
        "the pinned Vector {vector} has a row"
    );
    for claim in [
        "--dangerously-allow-env-var-interpolation",
        "NOMAD_UNIX_ADDR",
        "preserve-state",
        "--watch-config",
        "api.sock",
    ] {
        assert!(
            table.contains(claim),
            "the compatibility table covers {claim}"
        );
    }
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
fn the_test_models_vector_057_and_nomads_templates() {
    // Vector 0.57 leaves ${…} as it is; an exclude with it matches nothing.
    let env = BTreeMap::from([("NOMAD_ALLOC_ID".to_owned(), OWN.to_owned())]);
    assert_eq!(
        interpolate("a/${NOMAD_ALLOC_ID:-x}/b", &env),
        format!("a/{OWN}/b")
    );
    // Nomad's template step, with the template's delimiters.
    let world = TemplateWorld {
        env,
        services: BTreeMap::from([("agg".to_owned(), ("10.1.2.3".to_owned(), 6001))]),
    };
    assert_eq!(
        render_template("x/[[ env \"NOMAD_ALLOC_ID\" ]]/{{ y }}", "[[", "]]", &world),
        format!("x/{OWN}/{{{{ y }}}}")
    );
    assert_eq!(
        render_template(
            "[[ range nomadService \"agg\" ]][[ .Address ]]:[[ .Port ]][[ break ]][[ else ]]none[[ end ]]",
            "[[",
            "]]",
            &world
        ),
        "10.1.2.3:6001"
    );
    assert_eq!(
        render_template(
            "[[ range nomadService \"gone\" ]][[ .Port ]][[ else ]]none[[ end ]]",
            "[[",
            "]]",
            &world
        ),
        "none"
    );
    // Nomad's HCL2: run-time references stay, variables resolve.
    let body = hcl::parse(&escape_runtime_references(
        "variable \"v\" {\n  default = \"d\"\n}\njob \"j\" {\n  meta {\n    a = \"${NOMAD_ALLOC_ID}/${var.v}\"\n  }\n}\n",
    ))
    .expect("parses");
    let mut ctx = base_context();
    let mut var = hcl::Map::new();
    var.insert("v".to_owned(), Value::from("d"));
    ctx.declare_var("var", Value::Object(var));
    let job = expand(
        blocks(&body, "job").next().expect("job").body(),
        &ctx,
        "model",
    );
    let meta = blocks(&job, "meta").next().expect("meta");
    assert_eq!(
        attribute(meta.body(), "a").and_then(string).as_deref(),
        Some("${NOMAD_ALLOC_ID}/d")
    );
    assert!(valid_address("vector-aggregator:6000"));
    assert!(!valid_address(
        "${VECTOR_AGGREGATOR_ADDRESS:-vector-aggregator.service.consul:6000}"
    ));
}
