//! The shell completions and the man page, generated from the clap definition itself, so that
//! neither can drift from `--help`.

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
}
