//! The checks of this machine, worth making even when Nomad does not answer: the alloc dir can
//! be listed, the output directory is writable, and a table already there loads by Vector's
//! rules.

use std::path::Path;

use super::report::Finding;
use crate::config::CheckSettings;
use crate::table::validate::ValidTable;

/// The alloc dir exists and this user can list it.
pub(super) fn check_alloc_dir(dir: &Path) -> Finding {
    const CHECK: &str = "the alloc dir can be listed";
    match std::fs::read_dir(dir) {
        Ok(entries) => Finding::pass(
            CHECK,
            format!("{} ({} entries)", dir.display(), entries.count()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Finding::fail(
            CHECK,
            format!("{}: {e}", dir.display()),
            "Nomad creates it with mode 0711: give this user read access (setfacl -m u:USER:rx, see deploy/systemd) or run with CAP_DAC_READ_SEARCH",
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("{}: {e}", dir.display()),
            "set --alloc-dir to the Nomad client's alloc dir (<data_dir>/alloc)",
        ),
    }
}

/// The output directory is writable, and a table already there loads by Vector's rules.
pub(super) fn check_output(settings: &CheckSettings) -> Vec<Finding> {
    let output = &settings.run.publish.output;
    let dir = crate::publish::directory_of(output);
    let mut findings = vec![match tempfile::Builder::new()
        .prefix(".nomad-alloc-table-check.")
        .tempfile_in(dir)
    {
        Ok(_) => Finding::pass(
            "the output directory is writable",
            dir.display().to_string(),
        ),
        Err(e) => Finding::fail(
            "the output directory is writable",
            format!("{}: {e}", dir.display()),
            "create the directory and make it writable by this user (same filesystem as the table)",
        ),
    }];
    let format = settings.run.publish.format;
    // Vector's file table reads CSV only: a JSON table is checked for what it promises, and
    // never said to load in Vector.
    let check = if format.loaded_by_vector() {
        "the table loads in Vector"
    } else {
        "the table is valid JSON (for other tools: Vector's file table reads CSV only)"
    };
    findings.push(match std::fs::read(output) {
        Ok(bytes) => match ValidTable::check(bytes, format) {
            Ok(valid) => Finding::pass(
                check,
                format!("{} ({} rows)", output.display(), valid.rows()),
            ),
            Err(e) => Finding::fail(
                check,
                format!("{}: {e}", output.display()),
                "run `dump` to replace it with a valid table",
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Finding::pass(
            check,
            format!(
                "{} does not exist yet; run and dump create it",
                output.display()
            ),
        ),
        Err(e) => Finding::fail(
            check,
            format!("{}: {e}", output.display()),
            "make the table readable by this user and by Vector",
        ),
    });
    findings
}
