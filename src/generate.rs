//! The shell completions, the man page and the option reference (`docs/reference.md`),
//! generated from the clap definition itself, so that none can drift from `--help`.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "nomad-alloc-table", out);
}

/// Writes the man page (section 1) of the program itself.
pub fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

/// Writes the man pages of the program and of each command (`nomad-alloc-table-run.1`, ...)
/// into `dir`.
pub fn man_pages_to(dir: &Path) -> std::io::Result<()> {
    clap_mangen::generate_to(Cli::command(), dir)
}

/// The option reference in Markdown (`docs/reference.md`): every command and every option, with
/// its environment variable, default, possible values and long help, as `--help` has them.
pub fn reference_markdown() -> String {
    let mut root = Cli::command();
    // Building settles what derive leaves open (how many values each option takes) and copies
    // the global options into every command, where they are then skipped.
    root.build();
    let name = root.get_name().to_owned();
    let mut out = String::new();
    out.push_str("# Command-line reference\n\n");
    out.push_str(
        "<!-- Generated from the clap definition (src/cli.rs) by src/generate.rs: do not edit. \
         Regenerate with `NAT_BLESS=1 cargo test --lib generate`. -->\n\n",
    );
    out.push_str(
        "Every option can also be set through the environment variable shown. The Nomad \
         connection options use Nomad's own variables and meanings, and may be given before \
         or after the command. The same text is in `--help` and in the man pages \
         (`nomad-alloc-table man`).\n\n",
    );
    if let Some(about) = root.get_long_about().or(root.get_about()) {
        out.push_str(&format!("{about}\n\n"));
    }
    out.push_str("## Commands\n\n");
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let about = sub.get_about().map(|a| first_sentence(&a.to_string()));
        out.push_str(&format!(
            "- [`{}`](#{name}-{}): {}\n",
            sub.get_name(),
            sub.get_name(),
            about.unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "\n## Options of every command\n\nGiven before or after the command: `{name} [OPTIONS] <COMMAND>`.\n"
    ));
    write_arguments(&mut out, root.get_arguments().filter(|a| a.is_global_set()));
    for sub in root
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        out.push_str(&format!("\n## `{name} {}`\n\n", sub.get_name()));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            out.push_str(&format!("{about}\n"));
        }
        write_arguments(&mut out, sub.get_arguments().filter(|a| !a.is_global_set()));
    }
    // One blank line between blocks, and one newline at the end.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    format!("{}\n", out.trim_end())
}

/// The arguments under their help headings, in definition order.
fn write_arguments<'a>(out: &mut String, arguments: impl Iterator<Item = &'a clap::Arg>) {
    let arguments: Vec<&clap::Arg> = arguments
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    let mut headings: Vec<Option<&str>> = Vec::new();
    for arg in &arguments {
        if !headings.contains(&arg.get_help_heading()) {
            headings.push(arg.get_help_heading());
        }
    }
    for heading in headings {
        out.push_str(&format!("\n### {}\n\n", heading.unwrap_or("Options")));
        for arg in arguments.iter().filter(|a| a.get_help_heading() == heading) {
            write_argument(out, arg);
        }
    }
}

/// One argument: its spellings, its facts, then its help, indented under the item.
fn write_argument(out: &mut String, arg: &clap::Arg) {
    let value = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
    let mut spellings = Vec::new();
    if let Some(short) = arg.get_short() {
        spellings.push(format!("`-{short}`"));
    }
    match arg.get_long() {
        Some(long) if takes_value => spellings.push(format!("`--{long} {value}`")),
        Some(long) => spellings.push(format!("`--{long}`")),
        None if arg.is_last_set() => spellings.push(format!("`-- {value}...`")),
        None => spellings.push(format!("`{value}`")),
    }
    let mut facts = Vec::new();
    if let Some(env) = arg.get_env() {
        facts.push(format!("env `{}`", env.to_string_lossy()));
    }
    if arg.is_required_set() {
        facts.push("required".to_owned());
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && takes_value {
        facts.push(format!("default `{}`", defaults.join(",")));
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !possible.is_empty() && takes_value {
        facts.push(format!("one of {}", possible.join(", ")));
    }
    let facts = if facts.is_empty() {
        String::new()
    } else {
        format!(" ({})", facts.join("; "))
    };
    out.push_str(&format!("- {}{facts}\n", spellings.join(", ")));
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    for line in help.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push('\n');
        } else if let Some(entry) = line.strip_prefix("  ") {
            // The catalog in a long help (--columns): a nested list.
            out.push_str(&format!("  - {}\n", escape(entry)));
        } else {
            out.push_str(&format!("\n  {}\n", escape(line)));
        }
    }
    out.push('\n');
}

/// What Markdown would otherwise read as markup outside code spans: angle brackets (HTML),
/// underscores, stars, brackets.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code && matches!(c, '<' | '>' | '*' | '_' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn first_sentence(text: &str) -> String {
    let text = text.replace('\n', " ");
    match text.find(". ") {
        Some(end) => text[..=end].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_every_command_and_flag() {
        let mut bash = Vec::new();
        completions(clap_complete::Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).expect("utf8");
        for word in [
            "run",
            "dump",
            "print-table",
            "check",
            "--listen",
            "--shutdown-timeout",
        ] {
            assert!(bash.contains(word), "{word}");
        }
    }

    #[test]
    fn the_man_pages_document_the_commands_and_their_options() {
        let mut page = Vec::new();
        man_page(&mut page).expect("rendered");
        let page = String::from_utf8(page).expect("utf8");
        assert!(page.contains(".TH nomad-alloc-table 1"), "{page}");
        assert!(page.contains("print\\-table"), "the commands are listed");
        let dir = tempfile::tempdir().expect("tempdir");
        man_pages_to(dir.path()).expect("written");
        let run = std::fs::read_to_string(dir.path().join("nomad-alloc-table-run.1"))
            .expect("a page for run");
        for word in ["\\-\\-listen", "\\-\\-shutdown\\-timeout", "\\-\\-output"] {
            assert!(run.contains(word), "{word}");
        }
        assert!(dir.path().join("nomad-alloc-table-check.1").exists());
    }

    /// `docs/reference.md` is what [`reference_markdown`] makes now; `NAT_BLESS=1` rewrites it.
    #[test]
    fn the_option_reference_in_docs_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
        let generated = reference_markdown();
        if std::env::var_os("NAT_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("docs/reference.md written");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            let first = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "its length".to_owned(), |n| format!("line {}", n + 1));
            panic!(
                "docs/reference.md is stale (it differs from --help at {first}): regenerate it \
                 with `NAT_BLESS=1 cargo test --lib generate` and commit it"
            );
        }
    }

    #[test]
    fn the_reference_lists_every_option_of_every_command() {
        let reference = reference_markdown();
        let root = Cli::command();
        for command in std::iter::once(&root).chain(root.get_subcommands()) {
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(reference.contains(&format!("`--{long}")), "--{long}");
                }
                if let Some(env) = arg.get_env() {
                    assert!(reference.contains(&*env.to_string_lossy()), "{env:?}");
                }
            }
        }
        assert!(reference.contains("## `nomad-alloc-table run`"));
        assert!(reference.contains("`-- <COMMAND>...`"));
    }

    /// Options are described in the generated reference only: no page keeps a table of flags
    /// by hand (a row that starts with a flag).
    #[test]
    fn no_page_keeps_an_option_table_by_hand() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut pages = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "md") && !path.ends_with("reference.md") {
                pages.push(path);
            }
        }
        for page in pages {
            let text = std::fs::read_to_string(&page).expect("readable");
            for line in text.lines() {
                assert!(
                    !(line.starts_with("| `--") || line.starts_with("| `-o`")),
                    "{}: an option table by hand (the options are in docs/reference.md): {line}",
                    page.display()
                );
            }
        }
    }
}
