//! README.md is true to the code: every cloud setting (the `SETTINGS`
//! table of `cloud/src/config/settings.rs`, read as text so this test
//! needs no cloud build, and the cloud's clap `env`s), every daemon config
//! key (`remoteagentd::config::KEYS`, itself checked against the config
//! structs) and every variable the daemon reads (`config::ENV_VARS`) is
//! listed; the failure names what is missing. The CLI's own variables are
//! checked by a unit test of the binary (`cli_checks`).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The quoted names after `marker` (`setting(`, `env = `) in `source`.
fn names_after(source: &str, marker: &str) -> Vec<String> {
    source
        .split(marker)
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix('"')?;
            let name = &rest[..rest.find('"')?];
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
            .then(|| name.to_string())
        })
        .collect()
}

/// The README's text between two headings.
fn section<'a>(readme: &'a str, from: &str, to: &str) -> &'a str {
    let start = readme
        .find(from)
        .unwrap_or_else(|| panic!("README.md has no {from:?}"));
    let rest = &readme[start..];
    &rest[..rest[from.len()..]
        .find(to)
        .map_or(rest.len(), |i| i + from.len())]
}

#[test]
fn readme_lists_every_cloud_setting() {
    let readme = read("README.md");
    let settings = read("cloud/src/config/settings.rs");
    let mut names = names_after(&settings, "setting(");
    names.extend(names_after(&settings, "secret("));
    names.extend(names_after(&read("cloud/src/main.rs"), "env = "));
    assert!(
        names.len() > 15,
        "the SETTINGS table was not read: {names:?}"
    );
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not list these cloud settings: {missing:?}"
    );
}

#[test]
fn readme_lists_every_daemon_config_key_and_variable() {
    let readme = read("README.md");
    let daemon = section(&readme, "### Daemon:", "\n### ");
    let missing: Vec<&str> = remoteagentd::config::KEYS
        .iter()
        .copied()
        .filter(|key| {
            match key.split_once('.') {
                // `[logs]` `max_log_mb` on one line of the table.
                Some((table, key)) => !daemon.lines().any(|line| {
                    (line.contains(&format!("`[{table}]`"))
                        || line.contains(&format!("`[[{table}]]`")))
                        && line.contains(&format!("`{key}`"))
                }),
                None => !daemon.contains(&format!("`{key}`")),
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's daemon config table does not list: {missing:?}"
    );
    let missing: Vec<&str> = remoteagentd::config::ENV_VARS
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !readme.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not list the daemon's variables: {missing:?}"
    );
}
