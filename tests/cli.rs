//! The command line's own promises: complete help, a version, no secret in help output.

use predicates::prelude::*;
use predicates::str::contains;

use crate::util::bin;

#[test]
fn every_command_has_complete_help() {
    let top = bin()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let top = String::from_utf8(top).expect("utf8");
    for word in [
        "dump",
        "print-table",
        "--address",
        "--token-file",
        "--node-id",
        "NOMAD_ADDR",
    ] {
        assert!(top.contains(word), "top-level help lacks {word}");
    }
    bin().args(["dump", "--help"]).assert().success().stdout(
        contains("--output")
            .and(contains("--format"))
            .and(contains("--file-mode"))
            .and(contains("--meta"))
            .and(contains("--columns"))
            .and(contains("--reload"))
            .and(contains("--vector-pid"))
            .and(contains("--vector-pidfile"))
            .and(contains("--reload-signal"))
            .and(contains("--vector-process-name"))
            .and(contains("NOMAD_ALLOC_TABLE_OUTPUT")),
    );
    let dump_help = bin()
        .args(["dump", "--help"])
        .output()
        .expect("runs")
        .stdout;
    let dump_help = String::from_utf8(dump_help).expect("utf8");
    for entry in nomad_alloc_table::table::columns::CATALOG {
        assert!(
            dump_help.contains(entry.name),
            "--columns help lacks {}",
            entry.name
        );
        assert!(
            dump_help.contains(entry.description),
            "--columns help lacks {}'s description",
            entry.name
        );
    }
    bin()
        .args(["print-table", "--help"])
        .assert()
        .success()
        .stdout(
            contains("--format")
                .and(contains("table"))
                .and(contains("--ca-cert")),
        );
}

#[test]
fn version_is_printed() {
    bin()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_never_shows_secret_environment_values() {
    let output = bin()
        .env("NOMAD_TOKEN", "super-secret-token")
        .env("NOMAD_HTTP_AUTH", "ops:super-secret-password")
        .args(["dump", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(output).expect("utf8");
    assert!(help.contains("NOMAD_TOKEN"));
    assert!(!help.contains("super-secret"), "{help}");
}
