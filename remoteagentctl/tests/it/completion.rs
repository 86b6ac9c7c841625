//! Shell completion as a shell runs it: the bash script from
//! `remoteagentctl completions bash`, sourced in a real bash, offers the
//! paired agents' names (asked of the running daemon) and `--runner`'s
//! values; with no daemon, or one that does not answer, it offers no
//! names, silently and at once. zsh and fish are not installed here: their
//! scripts are checked for the same hooks.

use crate::common;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::Stdio;

use common::*;

/// Runs the bash completion for `words` (the last one being completed) in
/// `home`, with the CLI on the PATH; returns the offered words and stderr.
fn complete_bash(home: &Home, words: &[&str]) -> (Vec<String>, String) {
    let script = home.path().join("remoteagentctl.bash");
    if !script.exists() {
        let out = home.ctl(&["completions", "bash"]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::write(&script, &out.stdout).unwrap();
    }
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n_remoteagentctl_with_agents remoteagentctl '{}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
    );
    let ctl_dir = ctl_bin().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", ctl_dir.display(), home.env["PATH"]);
    let out = home
        .command(Path::new("bash"))
        .arg("-c")
        .arg(program)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("running bash");
    assert!(out.status.success(), "bash failed: {}", stderr(&out));
    let offered = stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    (offered, stderr(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_offers_the_running_daemons_agent_names() {
    let s = Paired::start("webapp", "echo hi\n", 30 * 24 * 3600, |_| {}).await;
    let home = s.home.clone();
    let (offered, err) =
        blocking(move || complete_bash(&home, &["remoteagentctl", "stop", ""])).await;
    assert!(offered.contains(&"webapp".to_string()), "{offered:?} {err}");
    assert!(!offered.iter().any(|w| w.starts_with('<')), "{offered:?}");
    let home = s.home.clone();
    let (offered, _) =
        blocking(move || complete_bash(&home, &["remoteagentctl", "logs", "-f", "we"])).await;
    assert_eq!(offered, ["webapp"]);
    let home = s.home.clone();
    let (offered, _) =
        blocking(move || complete_bash(&home, &["remoteagentctl", "unpair", ""])).await;
    assert!(offered.contains(&"webapp".to_string()), "{offered:?}");
    // The helper itself: one name a line.
    let out = s.home.ctl(&["__complete-agents"]);
    assert_eq!(stdout(&out), "webapp\n");
}

#[test]
fn runner_values_are_offered_and_in_every_script() {
    let home = Home::new();
    let (offered, err) = complete_bash(&home, &["remoteagentctl", "pair", "--runner", ""]);
    assert_eq!(
        offered,
        ["claude", "codex", "codex-exec", "aider", "gemini"],
        "{err}"
    );
    let zsh = stdout(&home.ctl(&["completions", "zsh"]));
    assert!(
        zsh.contains("--runner=") && zsh.contains("(claude codex codex-exec aider gemini)"),
        "{zsh}"
    );
    assert!(zsh.contains(":agent -- Agent name or id prefix:_remoteagentctl_agents'"));
    assert!(zsh.starts_with("#compdef remoteagentctl\n"));
    let fish = stdout(&home.ctl(&["completions", "fish"]));
    for runner in ["claude", "codex", "codex-exec", "aider", "gemini"] {
        assert!(fish.contains(&format!("{runner}\\t")), "{runner}: {fish}");
    }
    for command in ["stop", "logs", "unpair"] {
        assert!(
            fish.contains(&format!(
                "using_subcommand {command}\" -f -a \"(remoteagentctl __complete-agents 2>/dev/null)\""
            )),
            "{command}: {fish}"
        );
    }
    // Hidden from what people read: help, scripts' command lists.
    let help = stdout(&home.ctl(&["--help"]));
    assert!(!help.contains("__complete-agents"), "{help}");
}

#[test]
fn without_an_answering_daemon_completion_offers_no_names_silently() {
    let home = Home::new();
    // No daemon at all.
    let out = home.ctl(&["__complete-agents"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
    let (offered, err) = complete_bash(&home, &["remoteagentctl", "stop", ""]);
    assert!(offered.iter().all(|w| w.starts_with('-')), "{offered:?}");
    assert_eq!(err, "");

    // A socket that accepts but never answers (a hung daemon): still
    // nothing, and no hang (the helper gives up within a second).
    let dir = home.socket().parent().unwrap().to_path_buf();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(home.socket()).unwrap();
    let started = std::time::Instant::now();
    let out = home.ctl(&["__complete-agents"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
    assert!(started.elapsed() < PATIENCE, "the helper hung");
}
