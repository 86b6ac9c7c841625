//! The replay record shared by the tasks of one agent: during a restart
//! (a token renewal starts the new task before the old one has stopped)
//! both tasks are subscribed and both receive the same envelope; exactly
//! one of them acts on it.

use crate::execution_support;

use std::sync::{Arc, Mutex};

use execution_support::*;
use remoteagent_proto::SessionId;
use remoteagent_proto::events::DoneStatus;
use remoteagent_testkit::wait_for;

/// Captures the daemon's log lines of this test process: the global
/// subscriber, so every test of the binary logs here; [`Captured::of`]
/// keeps the lines of one agent (its span names it).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines logged in the span of `agent`.
    fn of(&self, agent: &str) -> String {
        self.text()
            .lines()
            .filter(|l| l.contains(agent))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tasks_of_one_agent_act_on_an_envelope_once() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let s = Setup::new().await;
    let runner = || {
        s.spec(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo run >> runs.txt; echo ran".into(),
        ])
    };
    let old = s.spawn(runner()).await;
    let new = s.spawn(runner()).await;

    let sid = SessionId::generate();
    let token = s.sign(s.command(&sid, "x"));
    assert_eq!(s.publish_raw(&token).await, 2, "both tasks are subscribed");
    assert_eq!(done_of(&s.wait_done(&sid).await).status, DoneStatus::Ok);
    // The other task saw it too, and dropped it as seen.
    let agent = s.agent.to_string();
    let dropped = wait_for(WAIT, || async {
        logs.of(&agent).contains("replayed").then_some(())
    })
    .await;
    assert!(dropped.is_some(), "{}", logs.of(&agent));
    let runs = std::fs::read_to_string(s.project.path().join("runs.txt")).unwrap();
    assert_eq!(runs.lines().count(), 1, "{}", logs.of(&agent));

    old.shutdown().await;
    new.shutdown().await;
}
