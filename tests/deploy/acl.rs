//! ACL policies.

use super::*;

/// Every `nomad acl policy apply` in a text: `(name, job)` (`job` without `-job`).
pub(super) fn policy_applications(text: &str) -> Vec<(String, Option<String>)> {
    const APPLY: &str = "nomad acl policy apply";
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(APPLY) {
        let after = &rest[at + APPLY.len()..];
        // A command names the policy file; a mention in prose (`nomad acl policy apply`
        // without …) is none.
        let Some(end) = after
            .find("acl-policy.hcl")
            .filter(|end| *end < 200 && !after[..*end].contains('`'))
        else {
            rest = after;
            continue;
        };
        let words: Vec<&str> = after[..end]
            .split(|c: char| c.is_whitespace() || c == '\\' || c == '`' || c == '#')
            .filter(|w| !w.is_empty())
            .collect();
        let mut job = None;
        let mut plain = Vec::new();
        let mut i = 0;
        while i < words.len() {
            match words[i] {
                "-job" => {
                    job = Some(words[i + 1].to_owned());
                    i += 2;
                }
                "-namespace" | "-description" => i += 2,
                w if w.starts_with('-') => i += 1,
                w => {
                    plain.push(w);
                    i += 1;
                }
            }
        }
        // The name, then the file path (cut off above, with its directory left as a word).
        let name = plain
            .iter()
            .find(|w| !w.contains('/'))
            .unwrap_or_else(|| panic!("`{APPLY}` without a name: {words:?}"));
        found.push(((*name).to_owned(), job));
        rest = &after[end..];
    }
    found
}

#[test]
fn one_acl_policy_name_per_job_in_every_file_that_applies_one() {
    let mut texts: Vec<(String, String)> = hcl_files()
        .iter()
        .map(|f| (relative(f), std::fs::read_to_string(f).expect("readable")))
        .collect();
    texts.push(("README.md".to_owned(), read("README.md")));
    for page in files_under("docs", "md") {
        texts.push((
            relative(&page),
            std::fs::read_to_string(&page).expect("readable"),
        ));
    }
    let mut jobs_of: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    for (_, text) in &texts {
        for (name, job) in policy_applications(text) {
            jobs_of.entry(name).or_default().insert(job);
        }
    }
    for (name, jobs) in &jobs_of {
        assert_eq!(
            jobs.len(),
            1,
            "policy {name} is applied to {jobs:?}: a policy belongs to one job, and applying it \
             with another -job (or none) takes it away from the first, whose exporter then gets 403"
        );
    }
    // Each job whose exporter uses its workload identity has a policy of its own in its header.
    for variant in all_variants() {
        let identity = variant
            .tasks()
            .any(|t| runs_exporter(t) && blocks(t.body(), "identity").next().is_some());
        if !identity {
            continue;
        }
        let job = label(&variant.job);
        let applied = policy_applications(&variant.header());
        assert!(
            applied
                .iter()
                .any(|(_, j)| j.as_deref() == Some(job.as_str())),
            "{}: its header applies no policy to job {job}",
            variant.place()
        );
    }
}

#[test]
fn the_acl_policy_grants_what_the_exporter_needs() {
    let policy = hcl::parse(&read("deploy/nomad/acl-policy.hcl")).expect("policy");
    let node = blocks(&policy, "node").next().expect("a node rule");
    assert_eq!(
        attribute(node.body(), "policy").and_then(string).as_deref(),
        Some("read")
    );
    let every_namespace = blocks(&policy, "namespace")
        .find(|b| label(b) == "*")
        .expect("namespace \"*\"");
    assert!(
        strings(attribute(every_namespace.body(), "capabilities")).contains(&"read-job".to_owned())
    );
    let default = blocks(&policy, "namespace")
        .find(|b| label(b) == "default")
        .expect("namespace \"default\"");
    assert!(
        strings(attribute(default.body(), "capabilities")).contains(&"alloc-lifecycle".to_owned()),
        "the jobs reload Vector with --reload nomad-task"
    );
}
