//! Checks of the CLI's definition against the rest of the repository: every
//! subcommand is run by some test or the demo, and every environment
//! variable it reads is in README.md.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::Cli;

/// Subcommands allowed to have no test yet (none: keep it that way).
const EXPECTED_UNCOVERED: &[&str] = &[];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The text of every file under `dir` (recursively); nothing when absent.
fn texts(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        if let Ok(text) = std::fs::read_to_string(dir) {
            out.push(text);
        }
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            texts(&path, out);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push(text);
        }
    }
}

/// Whether `text` runs `name`: as an argument in Rust (`&["stop", …]`,
/// `["--json", "list"]`) or after `remoteagentctl` in a script.
fn invokes(text: &str, name: &str) -> bool {
    text.contains(&format!("\"{name}\"")) || text.contains(&format!("remoteagentctl {name}"))
}

#[test]
fn every_subcommand_is_exercised_by_a_test_or_the_demo() {
    let root = repo();
    let mut corpus = Vec::new();
    for dir in ["remoteagentctl/tests", "e2e/tests", "scripts/demo"] {
        texts(&root.join(dir), &mut corpus);
    }
    assert!(
        !corpus.is_empty(),
        "no test files found under {}",
        root.display()
    );
    let missing: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|name| !EXPECTED_UNCOVERED.contains(&name.as_str()))
        .filter(|name| !corpus.iter().any(|text| invokes(text, name)))
        .collect();
    assert!(
        missing.is_empty(),
        "remoteagentctl subcommands no test in remoteagentctl/tests, e2e/tests or scripts/demo runs: {missing:?}"
    );
}

#[test]
fn readme_lists_every_environment_variable_of_the_cli() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let cmd = Cli::command();
    let mut vars: Vec<String> = crate::man::ENV_VARS
        .iter()
        .map(|(v, _)| v.to_string())
        .collect();
    let clap_env = cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|c| c.get_arguments()))
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    for var in clap_env {
        assert!(
            crate::man::ENV_VARS.iter().any(|(v, _)| *v == var),
            "{var} is read by clap but missing from man::ENV_VARS"
        );
        vars.push(var);
    }
    vars.sort();
    vars.dedup();
    let missing: Vec<&String> = vars
        .iter()
        .filter(|v| !readme.contains(&format!("`{v}`")))
        .collect();
    assert!(missing.is_empty(), "README.md does not list: {missing:?}");
}
