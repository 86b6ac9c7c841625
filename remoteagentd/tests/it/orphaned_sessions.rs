//! A daemon killed in the middle of a session (SIGKILL: a crash, a power
//! cut) never writes the session's `done`. The real `remoteagentd` binary
//! in a temporary HOME, a real Redis and a real script runner: once
//! restarted, the daemon ends such a session with exactly one
//! `done {error}`, in its stream and in its local log, and never again.

use crate::execution_support;

use execution_support::daemon::DaemonHome;
use execution_support::{Setup, WAIT, done_of, fixture};
use remoteagent_proto::SessionId;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_testkit::wait_for;

const MESSAGE: &str = "the daemon stopped before this run finished (restarted at ";

fn dones(events: &[OutputEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, OutputEvent::Done(_)))
        .count()
}

/// Starts a session of the long runner and waits for its first output.
async fn start_session(s: &Setup, d: &DaemonHome) -> SessionId {
    let session = SessionId::generate();
    s.send(s.command(&session, "work for a long time")).await;
    let running = wait_for(WAIT, || async {
        s.events(&session)
            .await
            .iter()
            .any(|e| matches!(e, OutputEvent::Chunk(_)))
            .then_some(())
    })
    .await;
    assert!(running.is_some(), "the runner never printed:\n{}", d.log());
    session
}

/// The session's local log, after checking it holds one end record. The
/// daemon writes it just after the stream's `done`: waited for.
async fn log_with_one_end(s: &Setup, d: &DaemonHome, session: &SessionId) -> String {
    let ended = wait_for(WAIT, || async {
        let log = d.session_log(s, session);
        log.contains("\n# done ").then_some(log)
    })
    .await;
    let Some(log) = ended else {
        panic!("no end record:\n{}", d.session_log(s, session))
    };
    assert_eq!(log.matches("\n# done ").count(), 1, "{log}");
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_the_daemon_died_in_ends_once_with_an_error() {
    let s = Setup::new().await;
    // 2000 lines 50 ms apart: still running when the daemon is killed.
    let runner = RunnerSpec::Command(vec![fixture("slow.sh"), "2000".into()]);
    let mut d = DaemonHome::new(&s, runner, "").await;
    d.start(&s).await;

    let first = start_session(&s, &d).await;
    d.kill(&s).await;
    let before = s.events(&first).await;
    assert_eq!(dones(&before), 0, "{before:?}");
    let log = d.session_log(&s, &first);
    assert!(log.contains("tick 0"), "{log}");
    assert!(!log.contains("# done"), "{log}");

    // The restarted daemon ends it: its stream keeps what the dead daemon
    // wrote and gets one `done {error}` after it.
    d.start(&s).await;
    let events = s.wait_done(&first).await;
    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Error);
    let message = done.message.clone().unwrap_or_default();
    assert!(
        message.starts_with(MESSAGE) && message.ends_with("Z)"),
        "{message}"
    );
    assert_eq!(dones(&events), 1, "{events:?}");
    assert_eq!(events[..events.len() - 1], before[..]);
    let log = log_with_one_end(&s, &d, &first).await;
    assert!(
        log.ends_with(&format!("\n# done error exit - in 0 ms: {message}\n")),
        "{log}"
    );

    // A second session dies the same way. The next start ends it, and
    // leaves the first one alone: it was found (oldest first) before the
    // second, so had it been taken again, its second `done` would be in
    // the stream by the time the second session's is.
    let second = start_session(&s, &d).await;
    d.kill(&s).await;
    d.start(&s).await;
    let events = s.wait_done(&second).await;
    assert_eq!(done_of(&events).status, DoneStatus::Error);
    assert_eq!(dones(&events), 1, "{events:?}");
    log_with_one_end(&s, &d, &second).await;
    let first_events = s.events(&first).await;
    assert_eq!(dones(&first_events), 1, "{first_events:?}");
    assert_eq!(log_with_one_end(&s, &d, &first).await, log);

    // The agent still works: a new session runs (and a clean stop ends
    // it as aborted, as before).
    let third = start_session(&s, &d).await;
    d.stop().await;
    let events = s.wait_done(&third).await;
    assert_eq!(done_of(&events).status, DoneStatus::Aborted);
}
