//! Hostile remote input against the real daemon and CLI (issue 12):
//!
//! * a captured command envelope published again after a daemon restart
//!   (SIGTERM or SIGKILL) within its lifetime starts no runner, and a new
//!   envelope naming a session that already ran starts none either;
//! * terminal escape sequences and bidi controls in a prompt reach neither
//!   the session log file nor `remoteagentctl logs` (with and without `-f`);
//! * bidi and zero-width characters in an agent name reach neither the
//!   metadata file nor `remoteagentctl list`.

use crate::common;

use std::path::PathBuf;

use common::*;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::{SessionId, envelope, names};
use remoteagent_testkit::wait_for;

/// The runner: appends one line per run to `runs.txt` in the project
/// folder (the marker a replay would leave), then echoes its prompt.
const MARKER_SCRIPT: &str = "echo run >> runs.txt\necho \"prompt: $1\"\n";

/// A prompt that would set the title, clear the screen, write the
/// clipboard (OSC 52) and reverse the text after it.
const HOSTILE_PROMPT: &str = "hi \x1b]0;TITLE\x07\x1b[2J\x1b]52;c;aGk=\x07 there \u{202E}gpj.exe";

type Setup = Paired;

async fn setup(name: &str) -> Setup {
    setup_with(name, |_| {}).await
}

/// [`setup`], with `prepare` run on the home before the daemon starts.
async fn setup_with(name: &str, prepare: impl FnOnce(&Home)) -> Setup {
    setup_full(name, 30 * 24 * 3600, prepare).await
}

/// [`setup_with`], paired with a token valid for `ttl_secs`.
async fn setup_full(name: &str, ttl_secs: u64, prepare: impl FnOnce(&Home)) -> Setup {
    Paired::start(name, MARKER_SCRIPT, ttl_secs, prepare).await
}

impl Setup {
    /// A command envelope signed by the cloud key, valid for the longest
    /// lifetime allowed (what an attacker would capture).
    fn envelope(&self, session: &SessionId, prompt: &str) -> String {
        self.sign(session, prompt, envelope::MAX_LIFETIME_SECS)
    }

    /// How many times the runner started.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.project.join("runs.txt"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Stops the daemon (SIGKILL like a crash, or SIGTERM), starts a new
    /// one and waits until the agent is online again.
    async fn restart_daemon(&mut self, crash: bool) {
        let mut old = std::mem::replace(
            &mut self.daemon,
            Daemon {
                child: None,
                log: Default::default(),
            },
        );
        if crash {
            blocking(move || old.kill()).await;
        } else {
            let log = old.log.clone();
            let status = blocking(move || old.terminate()).await;
            assert!(
                status.success(),
                "{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let h = self.home.clone();
        self.daemon = blocking(move || h.start_daemon()).await;
        self.wait_online().await;
    }

    fn seen_file(&self) -> PathBuf {
        envelopes_dir(&self.home).join(format!("{}.seen", self.agent))
    }

    /// Waits until the daemon's log has a line containing `needle`, or the
    /// runner ran more than `runs` times (a replay that got through), and
    /// says which.
    async fn refused_or_ran(&self, needle: &str, runs: usize) -> Refusal {
        let seen = wait_for(PATIENCE, || async {
            if self.runs() > runs {
                return Some(Refusal::Ran);
            }
            self.daemon
                .log_text()
                .lines()
                .any(|l| l.contains(needle))
                .then_some(Refusal::Refused)
        })
        .await;
        seen.unwrap_or(Refusal::Neither)
    }
}

fn envelopes_dir(home: &Home) -> PathBuf {
    home.path().join("state/remoteagent/envelopes")
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Refused,
    Ran,
    Neither,
}

async fn replay_after_restart(crash: bool) {
    let mut s = setup("web").await;
    let session = SessionId::generate();
    let captured = s.envelope(&session, "deploy");
    s.publish(&captured).await;
    assert_eq!(s.wait_status(&session).await, DoneStatus::Ok);
    assert_eq!(s.runs(), 1);

    s.restart_daemon(crash).await;

    // The same envelope again, well within its 60 s lifetime.
    s.publish(&captured).await;
    let outcome = s.refused_or_ran("replayed", 1).await;
    assert_eq!(
        outcome,
        Refusal::Refused,
        "the replayed envelope was not refused (runs: {}):\n{}",
        s.runs(),
        s.daemon.log_text()
    );
    assert_eq!(s.runs(), 1, "{}", s.daemon.log_text());

    // A fresh envelope (new jti) for the session that already ran: refused
    // too, since its log exists.
    let again = s.envelope(&session, "deploy");
    s.publish(&again).await;
    let outcome = s.refused_or_ran("already ran", 1).await;
    assert_eq!(
        outcome,
        Refusal::Refused,
        "a second command for a session that ran was not refused (runs: {}):\n{}",
        s.runs(),
        s.daemon.log_text()
    );
    assert_eq!(s.runs(), 1);

    // The agent still runs new sessions.
    let fresh = SessionId::generate();
    let env = s.envelope(&fresh, "next");
    s.publish(&env).await;
    assert_eq!(s.wait_status(&fresh).await, DoneStatus::Ok);
    assert_eq!(s.runs(), 2);

    // The record of seen envelopes is private.
    let file = s.seen_file();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_captured_command_does_not_run_again_after_a_daemon_restart() {
    replay_after_restart(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_captured_command_does_not_run_again_after_a_daemon_crash() {
    replay_after_restart(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_captured_command_does_not_run_again_after_a_token_renewal() {
    // A token with a day left: the next daemon start renews it, which
    // restarts the agent's task once more.
    let mut s = setup_full("web", 24 * 3600, |_| {}).await;
    let session = SessionId::generate();
    let captured = s.envelope(&session, "deploy");
    s.publish(&captured).await;
    assert_eq!(s.wait_status(&session).await, DoneStatus::Ok);

    s.restart_daemon(false).await;
    // Renewed, the task that started before the renewal stopped, and the
    // new one is the channel's only subscriber.
    let channel = names::agent_channel(&s.agent);
    let renewed = wait_for(PATIENCE, || async {
        let log = s.daemon.log_text();
        if s.cloud.state.refreshes.lock().unwrap().is_empty()
            || !log.contains("agent token renewed")
            || !log.contains("agent stopped")
        {
            return None;
        }
        let mut conn = s.conn().await;
        let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .ok()?;
        (subscribers == 1).then_some(())
    })
    .await;
    assert!(
        renewed.is_some(),
        "no renewal and agent restart:\n{}",
        s.daemon.log_text()
    );

    s.publish(&captured).await;
    let outcome = s.refused_or_ran("replayed", 1).await;
    assert_eq!(
        outcome,
        Refusal::Refused,
        "runs: {}\n{}",
        s.runs(),
        s.daemon.log_text()
    );
    assert_eq!(s.runs(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_with_a_stream_does_not_run_again_even_without_its_log_and_record() {
    let mut s = setup("web").await;
    let session = SessionId::generate();
    let captured = s.envelope(&session, "deploy");
    s.publish(&captured).await;
    assert_eq!(s.wait_status(&session).await, DoneStatus::Ok);
    let events = s.events(&session).await.len();

    // Whoever deletes the daemon's record and the session's log still
    // cannot run it twice: its stream in Redis says it ran.
    let mut old = std::mem::replace(
        &mut s.daemon,
        Daemon {
            child: None,
            log: Default::default(),
        },
    );
    blocking(move || old.kill()).await;
    std::fs::remove_file(s.seen_file()).unwrap();
    let log = s
        .home
        .log_root()
        .join(s.agent.as_str())
        .join(format!("{session}.log"));
    std::fs::remove_file(&log).unwrap();
    let h = s.home.clone();
    s.daemon = blocking(move || h.start_daemon()).await;
    s.wait_online().await;

    s.publish(&captured).await;
    let outcome = s.refused_or_ran("already ran", 1).await;
    assert_eq!(
        outcome,
        Refusal::Refused,
        "runs: {}\n{}",
        s.runs(),
        s.daemon.log_text()
    );
    assert_eq!(s.runs(), 1);
    // Its stream is left as it was (no second `done`).
    assert_eq!(s.events(&session).await.len(), events);
    assert!(!log.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_cannot_be_recorded_is_refused_and_the_owner_told() {
    // The record's directory cannot be created: a file is in its way.
    let s = setup_with("web", |home| {
        let dir = envelopes_dir(home);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        std::fs::write(&dir, "").unwrap();
    })
    .await;
    let session = SessionId::generate();
    let env = s.envelope(&session, "deploy");
    s.publish(&env).await;
    assert_eq!(s.wait_status(&session).await, DoneStatus::Rejected);
    assert_eq!(s.runs(), 0);
    // A refusal says why once, in its `done`.
    let notice = s.events(&session).await.into_iter().find_map(|e| match e {
        OutputEvent::Done(d) => d.message,
        _ => None,
    });
    assert!(
        notice
            .as_deref()
            .is_some_and(|n| n.contains("cannot record")),
        "{notice:?}"
    );

    // Once the way is clear, commands run again.
    std::fs::remove_file(envelopes_dir(&s.home)).unwrap();
    let session = SessionId::generate();
    let env = s.envelope(&session, "deploy");
    s.publish(&env).await;
    assert_eq!(s.wait_status(&session).await, DoneStatus::Ok);
    assert_eq!(s.runs(), 1);
}

/// The bytes a terminal would act on, or that reorder what it shows.
fn hostile_bytes(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            matches!(
                c,
                '\x1b' | '\x07' | '\u{9b}' | '\u{9d}' | '\u{202E}' | '\u{200B}'
            ) || (c.is_control() && c != '\n' && c != '\t')
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_sequences_in_a_prompt_reach_neither_the_log_file_nor_the_terminal() {
    let s = setup("web").await;
    let session = SessionId::generate();
    let env = s.envelope(&session, HOSTILE_PROMPT);
    s.publish(&env).await;
    assert_eq!(s.wait_status(&session).await, DoneStatus::Ok);

    let file = s
        .home
        .log_root()
        .join(s.agent.as_str())
        .join(format!("{session}.log"));
    let text = std::fs::read_to_string(&file).unwrap();
    // The header (what `cat` shows first) is clean; the runner's echo of
    // the prompt below it went through the runner's escape stripper (its
    // bidi characters are the runner's own text, cleaned on display).
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("prompt: hi") && header.contains("gpj.exe"),
        "{text}"
    );
    assert_eq!(hostile_bytes(header), Vec::<char>::new(), "{text:?}");
    assert!(!text.contains(['\x1b', '\x07']), "{text:?}");

    let out = s.home.ctl(&["logs", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("hi") && shown.contains("gpj.exe"), "{shown}");
    assert_eq!(hostile_bytes(&shown), Vec::<char>::new(), "{shown:?}");

    // `-f` prints the same lines (and follows): read up to the end record.
    let h = s.home.clone();
    let mut child = blocking(move || h.spawn_ctl(&["logs", "web", "-f"])).await;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let lines = Lines::of(&mut child);
    let (followed, lines) = blocking(move || (lines.until("# done"), lines)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let _ = blocking(move || (lines.rest(), finish(child))).await;
    assert!(followed.contains("gpj.exe"), "{followed}");
    assert_eq!(hostile_bytes(&followed), Vec::<char>::new(), "{followed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bidi_and_zero_width_characters_are_stripped_from_agent_names() {
    let s = setup("w\u{202E}e\u{200B}b\u{2066}\u{FEFF}\x1b[2J").await;
    let meta = s.home.agents_dir().join(format!("{}.json", s.agent));
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(stored["name"], "web", "{stored}");

    let out = s.home.ctl(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("web"), "{shown}");
    assert_eq!(hostile_bytes(&shown), Vec::<char>::new(), "{shown:?}");
    // And the agent is addressable by its clean name.
    let out = s.home.ctl(&["--json", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "web");
}
