//! The Debian package's changelog is CHANGELOG.md in Debian's format: every released section
//! (`## X.Y.Z - YYYY-MM-DD`) becomes an entry of version `X.Y.Z-1`, newest first, and the newest
//! is the version Cargo.toml builds. `NAT_BLESS=1` rewrites `deploy/debian/changelog`.

use super::*;

const DEBIAN_CHANGELOG: &str = "deploy/debian/changelog";

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD` as Debian's changelog writes a date (RFC 5322), at midnight UTC.
fn rfc5322(date: &str) -> String {
    let parts: Vec<i64> = date
        .split('-')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("a date YYYY-MM-DD: {date}"))
        })
        .collect();
    let [year, month, day] = parts[..] else {
        panic!("a date YYYY-MM-DD: {date}")
    };
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        [days_from_civil(year, month, day).rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month_name} {year} 00:00:00 +0000")
}

/// `text` wrapped to 80 columns, the first line after `first`, the others after `rest`.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut lines = Vec::new();
    let mut line = first.to_owned();
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 80 && line.trim().len() > 1 {
            lines.push(std::mem::replace(&mut line, rest.to_owned()));
        }
        if !(line.ends_with(' ') || line.is_empty()) {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

/// CHANGELOG.md in Debian's changelog format.
fn debian_changelog(changelog: &str, package: &str, maintainer: &str) -> String {
    let mut entries = Vec::new();
    for section in changelog.split("\n## ").skip(1) {
        let (heading, body) = section.split_once('\n').unwrap_or((section, ""));
        let Some((version, date)) = heading.split_once(" - ") else {
            continue; // Unreleased
        };
        let mut lines = Vec::new();
        let mut item: Option<String> = None;
        let flush = |item: &mut Option<String>, lines: &mut Vec<String>| {
            if let Some(text) = item.take() {
                lines.push(wrap(&text, "  * ", "    "));
            }
        };
        for line in body.lines() {
            if let Some(group) = line.strip_prefix("### ") {
                flush(&mut item, &mut lines);
                lines.push(format!("  [ {group} ]"));
            } else if let Some(text) = line.strip_prefix("- ") {
                flush(&mut item, &mut lines);
                item = Some(text.to_owned());
            } else if let Some(text) = item.as_mut().filter(|_| line.starts_with("  ")) {
                text.push_str(line);
            } else {
                flush(&mut item, &mut lines);
            }
        }
        flush(&mut item, &mut lines);
        entries.push(format!(
            "{package} ({version}-1) unstable; urgency=medium\n\n{}\n\n -- {maintainer}  {}\n",
            lines.join("\n"),
            rfc5322(date.trim())
        ));
    }
    entries.join("\n")
}

fn cargo_field(cargo: &str, key: &str) -> String {
    cargo
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("Cargo.toml has {key}"))
        .to_owned()
}

#[test]
fn the_debian_changelog_is_the_changelog() {
    let cargo = read("Cargo.toml");
    let version = cargo_field(&cargo, "version");
    let expected = debian_changelog(
        &read("CHANGELOG.md"),
        "nomad-alloc-table",
        &cargo_field(&cargo, "maintainer"),
    );
    assert!(
        expected.starts_with(&format!("nomad-alloc-table ({version}-1) ")),
        "CHANGELOG.md's newest released section is Cargo.toml's version {version}:\n{expected}"
    );
    if std::env::var_os("NAT_BLESS").is_some() {
        std::fs::write(repo(DEBIAN_CHANGELOG), &expected).expect("written");
    }
    assert!(
        std::fs::read_to_string(repo(DEBIAN_CHANGELOG)).unwrap_or_default() == expected,
        "{DEBIAN_CHANGELOG} is not CHANGELOG.md in Debian's format: regenerate it with \
         `NAT_BLESS=1 cargo test --test integration deploy::debian` and commit it"
    );
    assert!(
        cargo.contains(&format!("changelog = \"{DEBIAN_CHANGELOG}\"")),
        "the package ships it"
    );
}

#[test]
fn dates_are_written_as_debian_writes_them() {
    assert_eq!(rfc5322("2026-12-03"), "Thu, 03 Dec 2026 00:00:00 +0000");
    assert_eq!(rfc5322("2000-02-29"), "Tue, 29 Feb 2000 00:00:00 +0000");
    assert_eq!(rfc5322("1970-01-01"), "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_eq!(
        wrap("a b", "  * ", "    "),
        "  * a b",
        "short items stay on one line"
    );
}
