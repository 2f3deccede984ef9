//! The operator's pages keep up with the source: every failure `check` can report and every
//! warning or error the program logs is in `docs/troubleshooting.md`, found by reading `src/`
//! for them, so that a new `warn!` or a new check fails here until the page explains it; and the
//! watch modes' chart is the one the scale bench's table in BENCHMARKS.md draws.

use std::path::{Path, PathBuf};

#[path = "../benches/common/chart.rs"]
mod chart;

const PAGE: &str = "docs/troubleshooting.md";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The program's source files under `dir`, each without its test code: the items marked
/// `#[cfg(test)]` are cut out, and the files of modules declared `#[cfg(test)] mod name;` (and
/// files that say `#![cfg(test)]`) are left out.
fn sources(dir: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut test_only: Vec<PathBuf> = Vec::new();
    let mut paths = Vec::new();
    let mut dirs = vec![repo(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable");
        if text.trim_start().starts_with("#![cfg(test)]") {
            continue;
        }
        let (code, modules) = without_test_code(&text);
        // A module declared in `a/mod.rs` (or `lib.rs`) lives in `a/`; one declared in `a/b.rs`
        // lives in `a/b/`.
        let parent = path.parent().expect("a directory");
        let home = match path.file_stem().and_then(|s| s.to_str()) {
            Some("mod" | "lib" | "main") => parent.to_path_buf(),
            Some(stem) => parent.join(stem),
            None => parent.to_path_buf(),
        };
        for module in modules {
            test_only.push(home.join(format!("{module}.rs")));
            test_only.push(home.join(module));
        }
        let name = path
            .strip_prefix(repo(""))
            .unwrap_or(&path)
            .display()
            .to_string();
        files.push((path, name, code));
    }
    files
        .into_iter()
        .filter(|(path, _, _)| !test_only.iter().any(|t| path.starts_with(t)))
        .map(|(_, name, code)| (name, code))
        .collect()
}

/// `text` without the items marked `#[cfg(test)]`, and the names of the modules so declared
/// without a body (`#[cfg(test)] mod name;`).
fn without_test_code(text: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut code = String::new();
    let mut modules = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        code.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        // The item ends at its body's closing brace, or at a `;` before any body.
        let bytes = item.as_bytes();
        let mut end = item.len();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i = literal_at(item, i).1;
                    continue;
                }
                b'#' if item[i..].starts_with("#[") => {
                    i += group_at(&item[i + 1..], 0).len() + 3;
                    continue;
                }
                b';' => {
                    end = i + 1;
                    let declaration = item[..i].split_whitespace().collect::<Vec<_>>();
                    if let [.., "mod", name] = declaration[..] {
                        modules.push(name.to_owned());
                    }
                    break;
                }
                b'{' => {
                    end = i + group_at(&item[i..], 0).len() + 2;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        rest = &item[end.min(item.len())..];
    }
    code.push_str(rest);
    (code, modules)
}

/// A string literal starting at `text[start]` (a `"`): its value (escapes of quotes and
/// backslashes undone) and the index after its closing quote.
fn literal_at(text: &str, start: usize) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut value = String::new();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let next = text[i + 1..].chars().next().unwrap_or(' ');
                if next == '\n' {
                    // A line continuation: the newline and the next line's indentation go.
                    i += 2;
                    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    continue;
                }
                value.push(next);
                i += 1 + next.len_utf8();
            }
            b'"' => return (value, i + 1),
            _ => {
                let c = text[i..].chars().next().expect("a char");
                value.push(c);
                i += c.len_utf8();
            }
        }
    }
    (value, i)
}

/// The text of the parenthesised (or braced) group that opens at `text[open]`, without its
/// delimiters, skipping string literals and character literals.
fn group_at(text: &str, open: usize) -> &str {
    let bytes = text.as_bytes();
    let mut depth = 0;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = literal_at(text, i).1;
                continue;
            }
            b'\'' if i + 2 < bytes.len() && bytes[i + 2] == b'\'' => i += 2,
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    &text[open + 1..]
}

/// The string literals at the top level of `args` (a macro's or a call's arguments): not
/// inside a nested call such as `format!(…)`.
fn top_level_literals(args: &str) -> Vec<String> {
    let bytes = args.as_bytes();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let (value, end) = literal_at(args, i);
                literals.push(value);
                i = end;
            }
            b'(' | b'{' | b'[' => i += group_at(&args[i..], 0).len() + 2,
            _ => i += 1,
        }
    }
    literals
}

/// The arguments of `args` split at top-level commas.
fn arguments(args: &str) -> Vec<&str> {
    let bytes = args.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = literal_at(args, i).1;
                continue;
            }
            b'(' | b'{' | b'[' => {
                i += group_at(&args[i..], 0).len() + 2;
                continue;
            }
            b',' => {
                parts.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(args[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// Where `name(` or `name!(` is called in `code` (not as part of a longer name): the index of
/// each call's opening parenthesis.
fn calls(code: &str, name: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(name) {
        let start = from + at;
        let end = start + name.len();
        from = end;
        let before = code[..start].chars().next_back().unwrap_or(' ');
        if (before.is_alphanumeric() || before == '_') && !name.starts_with('.') {
            continue;
        }
        if code[end..].starts_with('(') {
            found.push(end);
        }
    }
    found
}

/// The value of `const NAME: &str = "…";` in `code`.
fn constant(code: &str, name: &str) -> Option<String> {
    let at = code.find(&format!("const {name}: &str = \""))?;
    let quote = at + code[at..].find('"')?;
    Some(literal_at(code, quote).0)
}

/// The string values an expression can stand for: a literal, a constant, or a local variable
/// bound by a `let` before `before` (its literals outside calls such as `format!`).
fn values_of(code: &str, expression: &str, before: usize) -> Vec<String> {
    if expression.starts_with('"') {
        return vec![literal_at(expression, 0).0];
    }
    if expression
        .chars()
        .all(|c| c.is_ascii_uppercase() || c == '_')
    {
        return constant(code, expression).into_iter().collect();
    }
    let binding = [format!("let {expression} ="), format!("let ({expression},")]
        .iter()
        .filter_map(|pattern| code[..before].rfind(pattern.as_str()))
        .max();
    let Some(at) = binding else {
        return Vec::new();
    };
    let statement_start = at + code[at..].find('=').expect("an =") + 1;
    let statement = &code[statement_start..];
    let end = {
        let mut end = statement.len();
        let (mut i, bytes) = (0, statement.as_bytes());
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i = literal_at(statement, i).1;
                    continue;
                }
                b'(' | b'{' | b'[' => {
                    i += group_at(&statement[i..], 0).len() + 2;
                    continue;
                }
                b';' => {
                    end = i;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        end
    };
    // The names are the literals that stand alone: not an argument of format! and the like.
    let statement = &statement[..end];
    let mut values = Vec::new();
    let mut rest = statement;
    while let Some(quote) = rest.find('"') {
        let (value, after) = literal_at(rest, quote);
        let before_quote = rest[..quote].trim_end();
        if !before_quote.ends_with("!(") {
            values.push(value);
        }
        rest = &rest[after..];
    }
    values
}

/// What a log message must be found by: its fixed parts (between `{…}` placeholders) that are
/// long enough to say something.
fn fragments(message: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = message;
    loop {
        let (text, after) = match rest.find('{') {
            Some(open) => (
                &rest[..open],
                rest[open..]
                    .find('}')
                    .map(|close| &rest[open + close + 1..]),
            ),
            None => (rest, None),
        };
        let text = text.trim_matches(|c: char| c.is_whitespace() || ";:,.".contains(c));
        if text.len() >= 12 {
            parts.push(text.to_owned());
        }
        match after {
            Some(after) => rest = after,
            None => return parts,
        }
    }
}

/// Every WARN and ERROR log line of the program: (where, message).
fn logged_warnings_and_errors() -> Vec<(String, String)> {
    let files = sources("src");
    let mut messages = Vec::new();
    for (file, code) in &files {
        for macro_name in ["warn!", "error!"] {
            for open in calls(code, macro_name) {
                let line = code[..open].lines().count();
                let args = group_at(code, open);
                let message = top_level_literals(args).pop().unwrap_or_default();
                messages.push((format!("{file}:{line}"), message));
            }
        }
        // `ErrorLog::report(what, …)` logs `what` at warn level.
        for open in calls(code, ".report") {
            let line = code[..open].lines().count();
            let args = arguments(group_at(code, open));
            if let Some(what) = args.first() {
                for value in values_of(code, what, open) {
                    messages.push((format!("{file}:{line}"), value));
                }
            }
        }
    }
    messages
}

/// Every check `check` can fail: (where, the check's name as the report prints it).
fn check_failures() -> Vec<(String, String)> {
    let mut names = Vec::new();
    for (file, code) in sources("src/check") {
        for open in calls(&code, "Finding::fail") {
            let line = code[..open].lines().count();
            let args = arguments(group_at(&code, open));
            let first = args.first().expect("a check name");
            let values = values_of(&code, first, open);
            assert!(
                !values.is_empty(),
                "{file}:{line}: cannot tell which check `{first}` names; name it with a literal, a \
                 constant or a local `let`"
            );
            for value in values {
                names.push((format!("{file}:{line}"), value));
            }
        }
    }
    names
}

/// The page with its whitespace collapsed and Markdown's escapes undone.
fn page() -> String {
    let text = std::fs::read_to_string(repo(PAGE)).expect("docs/troubleshooting.md");
    text.replace('\\', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_warning_and_error_the_program_logs_is_explained() {
    let page = page();
    let messages = logged_warnings_and_errors();
    assert!(
        messages.len() >= 15,
        "the scan finds the program's warnings: {messages:?}"
    );
    let mut missing = Vec::new();
    for (at, message) in &messages {
        let parts = fragments(message);
        if parts.is_empty() {
            // A message that is all placeholders ("{what}") is told where it is filled in.
            continue;
        }
        for part in parts {
            if !page.contains(&normalise(&part)) {
                missing.push(format!("  {at}: \"{part}\""));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{PAGE} does not explain these log messages (add each, quoted, with its cause and fix):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_check_failure_is_explained() {
    let page = page();
    let checks = check_failures();
    assert!(checks.len() >= 10, "the scan finds the checks: {checks:?}");
    let missing: Vec<String> = checks
        .iter()
        .filter(|(_, name)| !page.contains(&normalise(name)))
        .map(|(at, name)| format!("  {at}: \"{name}\""))
        .collect();
    assert!(
        missing.is_empty(),
        "{PAGE} does not explain these `check` failures (add each check's name with its causes \
         and fixes):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scan_reads_macros_constants_and_bindings() {
    let code = r#"
        const WHAT: &str = "a constant message here";
        warn!(error = %e, "cannot do the thing; {why} and more text");
        tracing::error!(x = ?y, "second message is here");
        let (check, fix) = if a { ("first check name", format!("fix {}", 1)) } else { ("other check name", format!("x")) };
        Finding::fail(check, e.to_string(), fix);
        self.report(WHAT, &m, d);
    "#;
    let warn = calls(code, "warn!")[0];
    assert_eq!(
        top_level_literals(group_at(code, warn)),
        ["cannot do the thing; {why} and more text"]
    );
    assert_eq!(
        fragments("cannot do the thing; {why} and more text"),
        ["cannot do the thing", "and more text"]
    );
    assert_eq!(calls(code, "error!").len(), 1);
    let fail = calls(code, "Finding::fail")[0];
    assert_eq!(
        values_of(code, arguments(group_at(code, fail))[0], fail),
        ["first check name", "other check name"]
    );
    let report = calls(code, ".report")[0];
    assert_eq!(
        values_of(code, arguments(group_at(code, report))[0], report),
        ["a constant message here"]
    );
    assert!(fragments("{what}").is_empty());
    let (code, modules) = without_test_code(
        "fn a() { warn!(\"kept\"); }\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\n#[allow(x)]\nfn b() { warn!(\"cut\"); }\nfn c() {}\n#[cfg(test)]\nmod more { fn d() {} }\nfn e() {}",
    );
    assert!(
        code.contains("kept") && code.contains("fn c()") && code.contains("fn e()"),
        "{code}"
    );
    assert!(!code.contains("cut") && !code.contains("fn d()"), "{code}");
    assert_eq!(modules, ["tests"]);
}

/// The chart in `docs/` is what `benches/common/chart.rs` draws from the scale table in
/// BENCHMARKS.md (the bench redraws it on every run; `NAT_BLESS=1` redraws it here), and the
/// pages that show it embed it.
#[test]
fn the_watch_modes_chart_is_drawn_from_the_benchmark_table() {
    let benchmarks = std::fs::read_to_string(repo("BENCHMARKS.md")).expect("BENCHMARKS.md");
    let cells = chart::parse_scale_table(&benchmarks);
    assert_eq!(
        cells.len(),
        21,
        "3 sizes × 3 churns × 2 modes, and a poll per size: {cells:?}"
    );
    let drawn = chart::svg(&cells);
    if std::env::var_os("NAT_BLESS").is_some() {
        std::fs::write(repo(chart::CHART), &drawn).expect("the chart written");
    }
    let committed = std::fs::read_to_string(repo(chart::CHART)).unwrap_or_default();
    assert!(
        committed == drawn,
        "{} is not the chart of BENCHMARKS.md's scale table: redraw it with \
         `NAT_BLESS=1 cargo test --test integration docs::` (or run `cargo bench --bench scale`)",
        chart::CHART
    );
    for page in ["BENCHMARKS.md", "docs/watch-modes.md"] {
        let text = std::fs::read_to_string(repo(page)).expect("readable");
        assert!(
            text.contains("watch-modes-cost.svg)"),
            "{page} embeds the chart"
        );
    }
}
