//! Sessions through the whole local half: a signed command published on
//! `agent:{id}` runs a script runner in the project folder, its output lands
//! in the output stream and the local log (`remoteagentctl logs`), `stop`
//! aborts it, and SIGTERM to the daemon ends it with `done {aborted}`.

use crate::common;

use common::*;
use remoteagent_proto::events::{CommandEvent, DoneStatus, OutputEvent};
use remoteagent_proto::{SessionId, envelope, names};
use remoteagent_testkit::wait_for;

type Setup = Paired;

/// Pairs a project whose runner is `sh run.sh PROMPT` and waits until the
/// agent is online.
async fn setup(script: &str) -> Setup {
    Paired::start("web", script, 30 * 24 * 3600, |_| {}).await
}

impl Setup {
    /// Signs and publishes a command; returns its session id.
    async fn command(&self, prompt: &str) -> SessionId {
        let session = SessionId::generate();
        self.publish(&self.sign(&session, prompt, 30)).await;
        session
    }

    async fn wait_text(&self, session: &SessionId, text: &str) {
        let found = wait_for(PATIENCE, || async {
            self.events(session)
                .await
                .iter()
                .any(|e| matches!(e, OutputEvent::Chunk(c) if c.text.contains(text)))
                .then_some(())
        })
        .await;
        assert!(
            found.is_some(),
            "no output {text:?}:\n{}",
            self.daemon.log_text()
        );
    }
}

fn output_text(events: &[OutputEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Chunk(c) => Some(c.text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_command_runs_and_logs_show_it() {
    let s = setup("echo \"prompt: $1\"\nfor i in 1 2 3; do echo \"line $i\"; done\n").await;
    let session = s.command("hello there").await;
    let (events, status) = s.wait_done(&session).await;
    assert_eq!(status, DoneStatus::Ok);
    let text = output_text(&events);
    assert!(
        text.contains("prompt: hello there") && text.contains("line 3"),
        "{text}"
    );

    // The local log, through the CLI.
    let h = s.home.clone();
    let logs = wait_for(PATIENCE, || {
        let h = h.clone();
        async move {
            let out = blocking(move || h.ctl(&["logs", "web"])).await;
            let text = stdout(&out);
            (out.status.success() && text.contains("line 3")).then_some(text)
        }
    })
    .await;
    let logs = logs.expect("logs never showed the output");
    assert!(logs.contains("prompt: hello there"), "{logs}");
    let h = s.home.clone();
    let sid = session.to_string();
    let out =
        blocking(move || h.ctl(&["logs", "web", "--session", &sid, "-n", "1", "--json"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let replies: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The session's header, then its last line.
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0]["type"], "log_session");
    assert_eq!(replies[0]["session_id"], session.as_str());
    assert_eq!(replies[0]["prompt"], "hello there");
    assert_eq!(replies[1]["type"], "log_line");
    assert_eq!(replies[1]["session_id"], session.as_str());
    assert!(replies[1]["time_ms"].as_u64().is_some(), "{replies:?}");
    let out = s.home.ctl(&["logs", "web", "--session", "nope"]);
    assert_eq!(out.status.code(), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_streams_new_lines() {
    let s = setup("echo first\nwhile [ ! -f go ]; do sleep 0.05; done\necho second\n").await;
    let session = s.command("x").await;
    s.wait_text(&session, "first").await;
    let project = s.home.path().join("projects/web");
    let h = s.home.clone();
    let mut child = blocking(move || h.spawn_ctl(&["logs", "web", "-f"])).await;
    let lines = Lines::of(&mut child);
    let (seen, lines) = blocking(move || (lines.until("first"), lines)).await;
    assert!(seen.contains("first"));
    std::fs::write(project.join("go"), "").unwrap();
    let (seen, lines) = blocking(move || (lines.until("second"), lines)).await;
    assert!(seen.contains("second"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    // Keep reading until it exits, so it never writes into a closed pipe.
    let (_, out) = blocking(move || (lines.rest(), finish(child))).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_aborts_a_long_session() {
    let s = setup("echo started\nsleep 600\necho never\n").await;
    let session = s.command("long").await;
    s.wait_text(&session, "started").await;
    let h = s.home.clone();
    let out = blocking(move || h.ctl(&["stop", "web"])).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        s.daemon.log_text()
    );
    let said = stdout(&out);
    // The session started seconds ago, said as `status` says a span.
    let since = said
        .strip_prefix("Stopped web's run (started ")
        .and_then(|rest| rest.split_once(").\n"))
        .map(|(since, _)| since.to_string());
    let spoken = since.as_deref().is_some_and(|since| {
        since == "just now" || since.strip_suffix(" ago").is_some_and(is_span)
    });
    assert!(spoken, "{said}");
    assert!(said.contains(&format!("logs --run {session}")), "{said}");
    let (events, status) = s.wait_done(&session).await;
    assert_eq!(status, DoneStatus::Aborted);
    assert!(!output_text(&events).contains("never"));
    // Nothing left to stop.
    let out = s.home.ctl(&["stop", "web"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_session_publishes_done_aborted_and_exits_0() {
    let mut s = setup("echo started\nsleep 600\n").await;
    let session = s.command("long").await;
    s.wait_text(&session, "started").await;
    let mut daemon = std::mem::replace(
        &mut s.daemon,
        Daemon {
            child: None,
            log: Default::default(),
        },
    );
    let log = daemon.log.clone();
    let status = blocking(move || daemon.terminate()).await;
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    let (_, done) = s.wait_done(&session).await;
    assert_eq!(done, DoneStatus::Aborted);
    assert!(!s.home.socket().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpaired_envelope_makes_the_daemon_forget_the_agent() {
    let s = setup("echo hi\n").await;
    let env = envelope::sign(
        &s.cloud.state.key,
        &s.agent,
        CommandEvent::Unpaired(remoteagent_proto::events::UnpairedPayload {}),
        30,
    )
    .unwrap();
    let mut conn = s.conn().await;
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(names::agent_channel(&s.agent))
        .arg(env)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let meta = s.home.agents_dir().join(format!("{}.json", s.agent));
    let gone = wait_for(PATIENCE, || async { (!meta.exists()).then_some(()) }).await;
    assert!(gone.is_some(), "still paired:\n{}", s.daemon.log_text());
    assert!(!s.home.secrets_dir().join(s.agent.as_str()).exists());
    let out = s.home.ctl(&["--json", "list"]);
    assert_eq!(stdout(&out).trim(), "[]");
    // The local forget does not call the cloud back: the cloud started it.
    assert!(s.cloud.deletes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_unpaired_message_changes_nothing() {
    let s = setup("echo hi\n").await;
    let mut conn = s.conn().await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(names::agent_channel(&s.agent))
        .arg(r#"{"event":"unpaired","payload":{}}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    // A signed command afterwards still runs: the agent is still paired.
    let session = s.command("still here").await;
    let (_, status) = s.wait_done(&session).await;
    assert_eq!(status, DoneStatus::Ok);
    assert!(
        s.home
            .agents_dir()
            .join(format!("{}.json", s.agent))
            .exists()
    );
}
