//! The example alert rules (`deploy/prometheus/alerts.yml`): Prometheus accepts them, their unit
//! tests pass, and every metric they read is one the program exports.

use std::process::Command;

use super::*;

const RULES: &str = "deploy/prometheus/alerts.yml";

/// The `nomad_alloc_table_*` names in `text`, without a histogram's `_bucket`, `_sum` or `_count`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("nomad_alloc_table_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(base.to_owned());
    }
    names
}

#[test]
fn the_alert_rules_read_only_metrics_the_program_exports() {
    let rules = read(RULES);
    let exported = read("src/observe/metrics.rs");
    let used = metric_names(&rules);
    assert!(used.len() >= 6, "the rules read metrics: {used:?}");
    for name in &used {
        let short = name.strip_prefix("nomad_alloc_table_").expect("prefixed");
        assert!(
            exported.contains(&format!("\"{short}\""))
                || exported.contains(&format!("{{PREFIX}}_{short}\"")),
            "{RULES} reads {name}, which src/observe/metrics.rs does not export"
        );
    }
}

#[test]
fn promtool_accepts_the_alert_rules_and_their_tests_pass() {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!(
            "promtool is not installed (Debian: apt-get install prometheus): skipped; CI runs it"
        );
        return;
    }
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(args)
            .current_dir(repo("deploy/prometheus"))
            .output()
            .expect("promtool runs");
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
