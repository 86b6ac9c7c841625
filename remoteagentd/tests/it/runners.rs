//! The runner presets end to end: the real `remoteagentd` binary in a
//! temporary HOME (file secret store), fake `claude`, `codex` and `aider`
//! executables first on its PATH (`fixtures/replay.sh`: they record their
//! arguments and replay recorded event streams), and signed commands
//! published on a private Redis. Checks the readable text that reaches the
//! output stream, and which conversation each prompt resumes: across
//! prompts, after `/new` (`continue = false`) and across a daemon restart.

use crate::execution_support;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use execution_support::daemon::DaemonHome;
use execution_support::{Setup, WAIT, chunk_text, done_of, fixture};
use remoteagent_proto::SessionId;
use remoteagent_proto::control::{PROTOCOL_VERSION, Reply, Response};
use remoteagent_proto::events::{CommandEvent, CommandPayload, DoneStatus, OutputEvent};
use remoteagent_proto::runner::{Preset, RunnerSpec};
use remoteagent_testkit::wait_for;
use remoteagentd::state::StateDir;

/// The ids in the recorded streams.
const CLAUDE_SESSION: &str = "3f6d1c2e-8a4b-4f7e-9c1d-2b5a6e7f8091";
const CLAUDE_ERROR_SESSION: &str = "9b2e4c6a-1d3f-4a5b-8c7d-0e1f2a3b4c5d";
const CODEX_THREAD: &str = "0199a213-81c0-7800-8aa1-bbab2a035a53";
const CODEX_FAILED_THREAD: &str = "0199b7c4-2d1e-7f30-9a8b-5c6d7e8f9012";

/// A directory of fake CLIs, each a symlink to `replay.sh`.
struct FakeClis {
    dir: tempfile::TempDir,
}

impl FakeClis {
    fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::os::unix::fs::symlink(fixture("replay.sh"), dir.path().join(name)).unwrap();
        }
        FakeClis { dir }
    }

    /// What `name` prints on its next runs.
    fn replay(&self, name: &str, fixture_file: &str) {
        std::fs::write(
            self.dir.path().join(format!("{name}.replay")),
            fixture(fixture_file),
        )
        .unwrap();
    }

    /// `name` stays busy for `secs` after its output.
    fn linger(&self, name: &str, secs: Option<u32>) {
        let file = self.dir.path().join(format!("{name}.linger"));
        match secs {
            Some(s) => std::fs::write(file, s.to_string()).unwrap(),
            None => {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    fn exit_with(&self, name: &str, code: i32) {
        std::fs::write(
            self.dir.path().join(format!("{name}.exit")),
            code.to_string(),
        )
        .unwrap();
    }

    /// The arguments of every run of `name` so far.
    fn runs(&self, name: &str) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.argv")))
            .unwrap_or_default();
        text.split("\u{1e}\n")
            .filter(|run| !run.is_empty())
            .map(|run| {
                run.split('\u{1f}')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    }

    fn last_run(&self, name: &str) -> Vec<String> {
        self.runs(name).pop().expect("the fake CLI never ran")
    }
}

/// The value after `flag` in `args`.
fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// A prompt as a preset other than Claude Code gets it: after the outbox
/// hint (`[outbox] hint`, on by default) and a blank line.
fn hinted(prompt: &str) -> String {
    format!("{}\n\n{prompt}", remoteagentd::files::outbox::HINT)
}

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

/// A temporary HOME holding one paired agent (metadata and file-stored
/// token written as pairing would), and the daemon running in it.
struct Home {
    daemon: DaemonHome,
    clis: FakeClis,
}

impl Home {
    async fn new(setup: &Setup, runner: RunnerSpec, clis: FakeClis) -> Home {
        let mut daemon = DaemonHome::new(setup, runner, "").await;
        daemon.path_prefix.push(clis.dir.path().to_path_buf());
        Home { daemon, clis }
    }

    fn state(&self) -> StateDir {
        self.daemon.state()
    }

    fn socket(&self) -> PathBuf {
        self.daemon.socket()
    }

    /// The agent's conversation id as stored in its metadata file.
    fn stored_conversation(&self) -> Option<String> {
        let all = self.state().load_all().unwrap();
        let [Ok(meta)] = all.as_slice() else {
            panic!("expected one readable agent file: {all:?}")
        };
        meta.conversation.clone()
    }

    async fn wait_stored_conversation(&self, want: &str) {
        let stored = wait_for(WAIT, || {
            let ok = self.stored_conversation().as_deref() == Some(want);
            async move { ok.then_some(()) }
        })
        .await;
        assert!(
            stored.is_some(),
            "the metadata never got conversation {want}: {:?}\n{}",
            self.stored_conversation(),
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        self.daemon.log()
    }

    /// Starts the daemon with the fake CLIs first on its PATH and waits
    /// until the agent listens on its channel.
    async fn start_daemon(&mut self, setup: &Setup) {
        self.daemon.start(setup).await;
    }

    /// SIGTERM, and wait for the daemon to exit.
    async fn stop_daemon(&mut self) {
        self.daemon.stop().await;
    }

    /// Sessions running, from the daemon's `status` over its socket.
    async fn sessions_running(&self) -> Option<usize> {
        let socket = self.socket();
        tokio::task::spawn_blocking(move || {
            use std::io::{BufRead, BufReader, Write};
            let s = UnixStream::connect(&socket).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            let mut w = s.try_clone().ok()?;
            let mut r = BufReader::new(s);
            let hello = format!(
                r#"{{"id":1,"request":{{"type":"hello","protocol":{PROTOCOL_VERSION},"client_version":"t"}}}}"#
            );
            let mut reply = String::new();
            for line in [hello.as_str(), r#"{"id":2,"request":{"type":"status"}}"#] {
                writeln!(w, "{line}").ok()?;
                reply.clear();
                r.read_line(&mut reply).ok()?;
            }
            match serde_json::from_str::<Reply>(&reply).ok()?.data? {
                Response::Status(s) => Some(s.sessions_running),
                _ => None,
            }
        })
        .await
        .unwrap()
    }

    /// Sends a prompt, waits for its `done` and for the agent to be idle
    /// again (it has then taken note of the conversation).
    async fn prompt(&self, setup: &Setup, text: &str, continue_: bool) -> Vec<OutputEvent> {
        let session = SessionId::generate();
        setup
            .send(CommandEvent::Command(CommandPayload {
                session_id: session.clone(),
                prompt: text.into(),
                r#continue: continue_,
                attachments: Vec::new(),
                mode: None,
                resume: None,
            }))
            .await;
        let events = setup.wait_done(&session).await;
        let idle = wait_for(WAIT, || async {
            (self.sessions_running().await == Some(0)).then_some(())
        })
        .await;
        assert!(
            idle.is_some(),
            "the agent stayed busy:\n{}",
            self.log_text()
        );
        events
    }
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_streams_readable_text_and_resumes_its_conversation() {
    let setup = Setup::new().await;
    let clis = FakeClis::new(&["claude"]);
    clis.replay("claude", "claude-session.jsonl");
    let mut home = Home::new(&setup, RunnerSpec::Preset(Preset::Claude), clis).await;
    home.start_daemon(&setup).await;
    let base = [
        "-p",
        "fix the parser",
        "--output-format",
        "stream-json",
        "--verbose",
    ];

    // First prompt: no conversation known yet, so Claude continues its
    // latest one in the folder; the stream is rendered readable.
    let events = home.prompt(&setup, "fix the parser", true).await;
    assert_eq!(chunk_text(&events), expected("claude-session.txt"));
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    let args = home.clis.last_run("claude");
    assert_eq!(args[..5], base.map(String::from), "{args:?}");
    assert!(
        has(&args, "--continue") && !has(&args, "--resume"),
        "{args:?}"
    );
    // The outbox hint goes to Claude's system prompt, not into the prompt.
    assert_eq!(
        value_of(&args, "--append-system-prompt"),
        Some(remoteagentd::files::outbox::HINT),
        "{args:?}"
    );
    home.wait_stored_conversation(CLAUDE_SESSION).await;

    // Second prompt continues: that conversation is resumed by id. This run
    // ends in an error result (exit 1) that reports another id.
    home.clis.replay("claude", "claude-error.jsonl");
    home.clis.exit_with("claude", 1);
    let events = home.prompt(&setup, "now migrate", true).await;
    assert_eq!(chunk_text(&events), expected("claude-error.txt"));
    let done = done_of(&events);
    assert_eq!((done.status, done.exit_code), (DoneStatus::Failed, Some(1)));
    let args = home.clis.last_run("claude");
    assert_eq!(
        value_of(&args, "--resume"),
        Some(CLAUDE_SESSION),
        "{args:?}"
    );
    assert!(!has(&args, "--continue"), "{args:?}");
    home.wait_stored_conversation(CLAUDE_ERROR_SESSION).await;

    // After /new: a fresh conversation, whose id replaces the stored one.
    home.clis.replay("claude", "claude-session.jsonl");
    home.clis.exit_with("claude", 0);
    home.prompt(&setup, "fix the parser", false).await;
    let args = home.clis.last_run("claude");
    assert_eq!(args[..5], base.map(String::from), "{args:?}");
    assert!(
        !has(&args, "--resume") && !has(&args, "--continue"),
        "{args:?}"
    );
    home.wait_stored_conversation(CLAUDE_SESSION).await;

    // The id survives a restart of the daemon.
    home.stop_daemon().await;
    assert_eq!(home.stored_conversation().as_deref(), Some(CLAUDE_SESSION));
    home.start_daemon(&setup).await;
    // A run that reports no id (not stream-json at all) keeps the old one.
    home.clis.replay("claude", "aider-ansi.txt");
    let events = home.prompt(&setup, "what now", true).await;
    assert_eq!(chunk_text(&events), expected("aider-ansi.expected.txt"));
    let args = home.clis.last_run("claude");
    assert_eq!(
        value_of(&args, "--resume"),
        Some(CLAUDE_SESSION),
        "{args:?}"
    );
    home.clis.replay("claude", "claude-session.jsonl");
    home.prompt(&setup, "and then", true).await;
    let args = home.clis.last_run("claude");
    assert_eq!(
        value_of(&args, "--resume"),
        Some(CLAUDE_SESSION),
        "{args:?}"
    );
    assert_eq!(home.clis.runs("claude").len(), 5);
    assert_eq!(home.stored_conversation().as_deref(), Some(CLAUDE_SESSION));

    // A session the daemon's shutdown aborts still hands over the id it
    // reported: the next daemon resumes it.
    home.clis.replay("claude", "claude-error.jsonl");
    home.clis.linger("claude", Some(60));
    let session = SessionId::generate();
    setup
        .send(CommandEvent::Command(CommandPayload {
            session_id: session.clone(),
            prompt: "long task".into(),
            r#continue: false,
            attachments: Vec::new(),
            mode: None,
            resume: None,
        }))
        .await;
    let reported = wait_for(WAIT, || async {
        chunk_text(&setup.events(&session).await)
            .contains("failed during execution")
            .then_some(())
    })
    .await;
    assert!(reported.is_some(), "no result line:\n{}", home.log_text());
    home.stop_daemon().await;
    let done = done_of(&setup.events(&session).await);
    assert_eq!(done.status, DoneStatus::Aborted);
    assert_eq!(
        home.stored_conversation().as_deref(),
        Some(CLAUDE_ERROR_SESSION)
    );
    home.clis.linger("claude", None);
    home.start_daemon(&setup).await;
    home.prompt(&setup, "go on", true).await;
    let args = home.clis.last_run("claude");
    assert_eq!(
        value_of(&args, "--resume"),
        Some(CLAUDE_ERROR_SESSION),
        "{args:?}"
    );
    home.stop_daemon().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codex_exec_streams_readable_text_and_resumes_its_thread() {
    let setup = Setup::new().await;
    let clis = FakeClis::new(&["codex"]);
    clis.replay("codex", "codex-session.jsonl");
    let mut home = Home::new(&setup, RunnerSpec::Preset(Preset::CodexExec), clis).await;
    home.start_daemon(&setup).await;
    let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // After /new (and on a first prompt of a fresh conversation): no resume.
    let events = home.prompt(&setup, "fix the parser", false).await;
    assert_eq!(chunk_text(&events), expected("codex-session.txt"));
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    assert_eq!(
        home.clis.last_run("codex"),
        s(&[
            "exec",
            "--sandbox",
            "workspace-write",
            "--json",
            "--",
            &hinted("fix the parser")
        ])
    );
    home.wait_stored_conversation(CODEX_THREAD).await;

    // Continue: `codex exec --json resume <thread_id> -- <prompt>`. This turn
    // fails and reports another thread.
    home.clis.replay("codex", "codex-failed.jsonl");
    home.clis.exit_with("codex", 1);
    let events = home.prompt(&setup, "--apply the migration", true).await;
    assert_eq!(chunk_text(&events), expected("codex-failed.txt"));
    assert_eq!(done_of(&events).status, DoneStatus::Failed);
    assert_eq!(
        home.clis.last_run("codex"),
        s(&[
            "exec",
            "--sandbox",
            "workspace-write",
            "--json",
            "resume",
            CODEX_THREAD,
            "--",
            &hinted("--apply the migration")
        ])
    );
    home.wait_stored_conversation(CODEX_FAILED_THREAD).await;

    // Across a restart, the stored thread is resumed.
    home.stop_daemon().await;
    home.start_daemon(&setup).await;
    home.clis.exit_with("codex", 0);
    home.prompt(&setup, "retry", true).await;
    assert_eq!(
        home.clis.last_run("codex"),
        s(&[
            "exec",
            "--sandbox",
            "workspace-write",
            "--json",
            "resume",
            CODEX_FAILED_THREAD,
            "--",
            &hinted("retry")
        ])
    );
    home.stop_daemon().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_runner_loses_its_escape_sequences() {
    let setup = Setup::new().await;
    let clis = FakeClis::new(&["aider"]);
    clis.replay("aider", "aider-ansi.txt");
    let mut home = Home::new(&setup, RunnerSpec::Preset(Preset::Aider), clis).await;
    home.start_daemon(&setup).await;
    let events = home.prompt(&setup, "add a test", true).await;
    assert_eq!(chunk_text(&events), expected("aider-ansi.expected.txt"));
    assert_eq!(
        home.clis.last_run("aider"),
        [
            "--message",
            &hinted("add a test"),
            "--yes-always",
            "--no-pretty"
        ]
        .map(String::from)
    );
    // Plain runners keep no conversation.
    assert_eq!(home.stored_conversation(), None);
    home.stop_daemon().await;
}
