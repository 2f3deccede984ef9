//! systemd.

use super::*;

/// `KEY=VALUE` lines of the systemd env example that are set (not comments).
pub(super) fn systemd_env() -> BTreeMap<String, String> {
    read("deploy/systemd/env.example")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A unit file's `(section, key, value)` lines.
pub(super) fn unit_lines(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.to_owned(), v.to_owned()));
        }
    }
    out
}

pub(super) fn drop_in() -> String {
    read("deploy/systemd/vector.service.d/10-nomad-alloc-table.conf")
}

#[test]
fn systemd_units_invoke_commands_and_flags_that_exist() {
    let unit = read("deploy/systemd/nomad-alloc-table.service");
    let mut checked = 0;
    for (_, key, command) in unit_lines(&unit) {
        if !matches!(key.as_str(), "ExecStart" | "ExecStartPre") {
            continue;
        }
        let mut words = command.split_whitespace();
        let program = words.next().expect("a program");
        if program == "-+/usr/bin/setfacl" {
            // As root: the alloc dir (Nomad's 0711) made listable by the exporter's user.
            assert!(command.contains("-m u:nomad-alloc-table:rx"), "{command}");
            continue;
        }
        assert!(program.ends_with("nomad-alloc-table"), "{command}");
        let args: Vec<String> = words.map(str::to_owned).collect();
        assert_parses(&args, &format!("systemd {key}"));
        checked += 1;
    }
    assert_eq!(checked, 2, "ExecStartPre (dump) and ExecStart (run)");
    // Every setting of the env file is one the binary reads (clap's env names).
    let mut names = BTreeSet::new();
    let command = Cli::command();
    let mut commands = vec![&command];
    while let Some(c) = commands.pop() {
        for arg in c.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.insert(env.to_string_lossy().into_owned());
            }
        }
        commands.extend(c.get_subcommands());
    }
    let example = read("deploy/systemd/env.example");
    for line in example.lines() {
        let line = line.trim_start_matches("# ").trim();
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !key.is_empty() {
            assert!(
                names.contains(key),
                "env.example sets {key}, which the binary does not read"
            );
        }
    }
    let drop_in = drop_in();
    assert!(drop_in.contains("After=nomad-alloc-table.service"));
    assert!(drop_in.contains("ExecStartPre=-+/usr/bin/setfacl -m u:vector:rx"));
}

#[test]
fn a_failed_first_dump_cannot_leave_vector_down_for_good() {
    // Vector's packaged unit: Restart=always, StartLimitInterval=10, StartLimitBurst=5 in
    // [Service], systemd's default RestartSec=100ms (vectordotdev/vector v0.57.0
    // distribution/systemd/vector.service). The drop-in lifts the limit where systemd reads it
    // ([Unit]) and spaces the restarts.
    let lines = unit_lines(&drop_in());
    let get = |section: &str, key: &str| {
        lines
            .iter()
            .find(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.clone())
    };
    assert_eq!(get("Unit", "StartLimitIntervalSec").as_deref(), Some("0"));
    let restart_sec = get("Service", "RestartSec").expect("RestartSec= in [Service]");
    let seconds: f64 = restart_sec
        .trim_end_matches('s')
        .parse()
        .expect("RestartSec in seconds");
    assert!(seconds >= 1.0, "RestartSec={restart_sec}");
    assert!(
        !lines
            .iter()
            .any(|(s, k, _)| s == "Service" && k.starts_with("StartLimit")),
        "StartLimit…= belongs in [Unit]"
    );
}

/// A stand-in for Vector's packaged unit with the settings that matter here (written from
/// vectordotdev/vector v0.57.0 `distribution/systemd/vector.service`).
pub(super) const VECTOR_UNIT: &str = "[Unit]\nDescription=Vector\nAfter=network-online.target\nRequires=network-online.target\n\n[Service]\nUser=vector\nGroup=vector\nExecStartPre=/usr/bin/vector validate\nExecStart=/usr/bin/vector\nExecReload=/usr/bin/vector validate --no-environment\nExecReload=/bin/kill -HUP $MAINPID\nRestart=always\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nEnvironmentFile=-/etc/default/vector\nStartLimitInterval=10\nStartLimitBurst=5\n\n[Install]\nWantedBy=multi-user.target\n";

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Ok(which) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: the units are not verified");
        return;
    };
    assert!(which.status.success());
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    let write = |path: &str, text: &str, mode: u32| {
        let path = r.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let units = "usr/lib/systemd/system";
    write(&format!("{units}/vector.service"), VECTOR_UNIT, 0o644);
    write(
        &format!("{units}/nomad-alloc-table.service"),
        &read("deploy/systemd/nomad-alloc-table.service"),
        0o644,
    );
    write(
        "etc/systemd/system/vector.service.d/10-nomad-alloc-table.conf",
        &drop_in(),
        0o644,
    );
    for target in [
        "sysinit.target",
        "basic.target",
        "shutdown.target",
        "network-online.target",
        "multi-user.target",
    ] {
        write(
            &format!("{units}/{target}"),
            "[Unit]\nDescription=stand-in\n",
            0o644,
        );
    }
    write(
        &format!("{units}/nomad.service"),
        "[Unit]\nDescription=stand-in\n[Service]\nExecStart=/usr/bin/nomad\n",
        0o644,
    );
    for program in [
        "usr/bin/vector",
        "usr/bin/nomad",
        "usr/bin/nomad-alloc-table",
        "usr/bin/setfacl",
        "bin/sh",
        "bin/kill",
    ] {
        write(program, "#!/bin/true\n", 0o755);
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", r.display()))
        .args(["vector.service", "nomad-alloc-table.service"])
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_package_ships_vectors_drop_in_as_an_example_only() {
    let manifest = read("Cargo.toml");
    let deb = manifest
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("deb metadata");
    let deb = deb.split("\n[").next().expect("section");
    for line in deb.lines().filter(|l| l.contains("vector.service.d")) {
        assert!(
            line.contains("usr/share/doc/nomad-alloc-table/examples/"),
            "a live drop-in starts the exporter with the unedited env file: {line}"
        );
    }
}

#[test]
fn the_systemd_reload_target_is_unambiguous() {
    // By process name, two Vectors on a host (a systemd one and a Nomad task) mean no reload
    // ever; the drop-in writes the unit's main PID, which the exporter signals.
    let env = systemd_env();
    let pidfile = env
        .get("NOMAD_ALLOC_TABLE_VECTOR_PIDFILE")
        .expect("the env file names Vector's PID file");
    let lines = unit_lines(&drop_in());
    assert!(
        lines.iter().any(|(s, k, v)| s == "Service"
            && k == "ExecStartPost"
            && v.contains("$MAINPID")
            && v.contains(pidfile.as_str())),
        "the drop-in writes $MAINPID to {pidfile}"
    );
    let runtime = Path::new(pidfile).parent().expect("a directory");
    assert!(
        lines.iter().any(|(s, k, v)| s == "Service"
            && k == "RuntimeDirectory"
            && runtime == Path::new("/run").join(v)),
        "{pidfile} lies in Vector's RuntimeDirectory (removed when Vector stops)"
    );
}
