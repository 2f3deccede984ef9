//! The command line's own promises: complete help, a version, no secret in help output.

use predicates::prelude::*;
use predicates::str::contains;

use crate::util::{bin, text_of};

#[test]
fn every_command_has_complete_help() {
    let top = text_of(bin().arg("--help"));
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
    let dump_help = text_of(bin().args(["dump", "--help"]));
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
    let help = text_of(
        bin()
            .env("NOMAD_TOKEN", "super-secret-token")
            .env("NOMAD_HTTP_AUTH", "ops:super-secret-password")
            .args(["dump", "--help"]),
    );
    assert!(help.contains("NOMAD_TOKEN"));
    assert!(!help.contains("super-secret"), "{help}");
}
