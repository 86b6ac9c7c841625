//! The execution side end to end within one process: signed envelopes on a
//! real Redis drive a real agent task that runs real scripts.

use crate::execution_support;

use std::time::Duration;

use execution_support::*;
use redis::AsyncCommands;
use remoteagent_proto::envelope::{self, EnvelopeClaims};
use remoteagent_proto::events::{DoneStatus, OutputEvent, StoppedBy, StreamKind};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{AgentId, SessionId, names, now_secs};
use remoteagent_testkit::wait_for;

#[tokio::test]
async fn a_signed_command_streams_the_runner_output_in_order() {
    let s = Setup::new().await;
    let agent = s
        .spawn(s.spec(vec![fixture("stream.sh"), "{prompt}".into(), "6".into()]))
        .await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "fix <the> tests & more")).await;
    let events = s.wait_done(&sid).await;

    match &events[0] {
        OutputEvent::Started(st) => {
            assert_eq!(st.session_id, sid);
            assert_eq!(st.runner, "stream.sh");
        }
        other => panic!("first event is {other:?}"),
    }
    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Ok);
    assert_eq!(done.exit_code, Some(0));

    let stdout: String = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Chunk(c) if c.stream == StreamKind::Stdout => Some(c.text.as_str()),
            _ => None,
        })
        .collect();
    let mut expected = String::from("thinking about: fix <the> tests & more\n");
    for i in 1..=6 {
        expected.push_str(&format!("line {i} — ✓ <ok> & done\n"));
    }
    expected.push_str("finished\n");
    assert_eq!(stdout, expected);
    let all = chunk_text(&events);
    assert!(all.contains("warning on stderr\n"));
    assert_eq!(
        done.chunks as usize,
        events
            .iter()
            .filter(|e| matches!(e, OutputEvent::Chunk(_)))
            .count()
    );

    // The local log holds the same output between its header and footer
    // (the footer is written just after the stream's `done`: waited for).
    let log = wait_for(WAIT, || async {
        let log = std::fs::read_to_string(s.log_path(&sid)).unwrap_or_default();
        log.contains("\n# done ").then_some(log)
    })
    .await
    .expect("the log's end record");
    assert!(
        log.starts_with(&format!("# session {sid} started")),
        "{log}"
    );
    for line in expected.lines() {
        assert!(log.contains(line), "log misses {line:?}:\n{log}");
    }
    assert!(log.trim_end().ends_with("ms"), "{log}");
    assert!(log.contains("# done ok exit 0 in "), "{log}");

    // The presence key says the agent is here.
    let mut admin = s.admin.clone();
    let presence: Option<String> = admin.get(names::presence_key(&s.agent)).await.unwrap();
    assert!(presence.is_some());
    agent.shutdown().await;
    let presence: Option<String> = admin.get(names::presence_key(&s.agent)).await.unwrap();
    assert!(presence.is_none(), "presence left behind after shutdown");
}

#[tokio::test]
async fn abort_kills_a_runner_that_ignores_sigterm() {
    let s = Setup::new().await;
    let pidfile = s.project.path().join("runner.pid");
    let agent = s
        .spawn(s.spec(vec![
            fixture("ignore_term.sh"),
            pidfile.to_string_lossy().into_owned(),
        ]))
        .await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "run forever")).await;
    let pid: i32 = wait_for(WAIT, || {
        let p = std::fs::read_to_string(&pidfile).ok();
        async move { p.and_then(|p| p.trim().parse().ok()) }
    })
    .await
    .expect("runner wrote its pid");
    assert_eq!(agent.running_session(), Some(sid.clone()));

    s.send(s.abort(&sid)).await;
    let events = s.wait_done(&sid).await;
    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Aborted);
    // The cloud's `abort` is the phone's Stop.
    assert_eq!(done.stopped_by, Some(StoppedBy::Phone));
    assert!(chunk_text(&events).contains("still running"));
    // SIGKILL reached it: the process is gone.
    let gone = wait_for(WAIT, || async move {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        (!alive).then_some(())
    })
    .await;
    assert!(gone.is_some(), "runner {pid} survived the abort");
    let idle = wait_for(WAIT, || {
        let r = agent.running_session();
        async move { r.is_none().then_some(()) }
    })
    .await;
    assert!(idle.is_some());
    agent.shutdown().await;
}

#[tokio::test]
async fn stop_from_the_handle_aborts_and_reports_the_session() {
    let s = Setup::new().await;
    let agent = s
        .spawn(s.spec(vec![fixture("slow.sh"), "1000".into()]))
        .await;
    assert_eq!(agent.abort_running().await, None);
    let sid = SessionId::generate();
    s.send(s.command(&sid, "ignored")).await;
    wait_for(WAIT, || async {
        chunk_text(&s.events(&sid).await)
            .contains("tick 2")
            .then_some(())
    })
    .await
    .expect("runner started");
    assert_eq!(agent.abort_running().await, Some(sid.clone()));
    // abort_running returns after `done` is in the stream.
    let done = done_of(&s.events(&sid).await);
    assert_eq!(done.status, DoneStatus::Aborted);
    // `remoteagentctl stop` is the computer's.
    assert_eq!(done.stopped_by, Some(StoppedBy::Computer));
    agent.shutdown().await;
}

#[tokio::test]
async fn forged_expired_foreign_and_replayed_envelopes_are_dropped() {
    let s = Setup::new().await;
    let marker = s.project.path().join("ran");
    let agent = s
        .spawn(s.spec(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo ran >> {}; echo $0", marker.display()),
        ]))
        .await;

    // Signed by someone else.
    let forged = SessionId::generate();
    let other = CloudSigningKey::generate();
    let token = envelope::sign(&other, &s.agent, s.command(&forged, "x"), 30).unwrap();
    assert_eq!(s.publish_raw(&token).await, 1);
    // Expired.
    let expired = SessionId::generate();
    let now = now_secs();
    let token = envelope::sign_claims(
        &s.key,
        &EnvelopeClaims {
            aud: s.agent.to_string(),
            iat: now - 200,
            exp: now - 100,
            jti: "old".into(),
            command: s.command(&expired, "x"),
        },
    )
    .unwrap();
    s.publish_raw(&token).await;
    // For another agent.
    let foreign = SessionId::generate();
    let token = envelope::sign(&s.key, &AgentId::generate(), s.command(&foreign, "x"), 30).unwrap();
    s.publish_raw(&token).await;
    // Unsigned JSON, garbage, and an unknown (but validly signed) event.
    let unsigned = SessionId::generate();
    s.publish_raw(&serde_json::to_string(&s.command(&unsigned, "x")).unwrap())
        .await;
    s.publish_raw("\u{0}\u{1} not a token").await;
    let future = envelope::sign_claims(
        &s.key,
        &EnvelopeClaims {
            aud: s.agent.to_string(),
            iat: now,
            exp: now + 30,
            jti: "future".into(),
            command: remoteagent_proto::events::CommandEvent::Unknown,
        },
    )
    .unwrap();
    s.publish_raw(&future).await;

    // A valid one runs — once, even when replayed.
    let valid = SessionId::generate();
    let token = s.sign(s.command(&valid, "x"));
    s.publish_raw(&token).await;
    s.wait_done(&valid).await;
    s.publish_raw(&token).await;
    // A second valid command proves the replay was processed (and dropped)
    // before it, since the channel is handled in order.
    let after = SessionId::generate();
    s.send(s.command(&after, "x")).await;
    s.wait_done(&after).await;

    let runs = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(runs.lines().count(), 2, "runs: {runs:?}");
    for sid in [&forged, &expired, &foreign, &unsigned] {
        assert!(s.events(sid).await.is_empty(), "{sid} produced output");
    }
    assert!(agent.online());
    agent.shutdown().await;
}

#[tokio::test]
async fn prompt_is_one_argument_and_the_environment_is_scrubbed() {
    let s = Setup::new().await;
    let agent = s.spawn(s.spec(vec![fixture("argv_env.sh")])).await;
    let sid = SessionId::generate();
    let prompt = "$(touch pwned); rm -rf ~ `id` \"quoted\" 'single'";
    s.send(s.command(&sid, prompt)).await;
    let events = s.wait_done(&sid).await;
    let text = chunk_text(&events);
    assert!(text.contains("argc=1\n"), "{text}");
    assert!(text.contains(&format!("arg=[{prompt}]\n")), "{text}");
    assert!(!s.project.path().join("pwned").exists());
    let env = text.split("--- env\n").nth(1).unwrap();
    for forbidden in [
        "not-used-without-acl",
        "REMOTEAGENT",
        "DBUS_SESSION_BUS_ADDRESS",
    ] {
        assert!(
            !env.contains(forbidden),
            "runner env leaks {forbidden}:\n{env}"
        );
    }
    assert!(env.contains("NO_COLOR=1"), "{env}");
    // The session's id (not a secret): what tells the runner's leftovers
    // apart after a daemon crash (`runner::process`).
    assert!(env.contains(&format!("RA_SESSION_ID={sid}\n")), "{env}");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_second_prompt_while_busy_and_an_oversized_prompt_are_rejected() {
    let s = Setup::new().await;
    let agent = s.spawn(s.spec(vec![fixture("slow.sh"), "40".into()])).await;
    let first = SessionId::generate();
    s.send(s.command(&first, "first")).await;
    wait_for(WAIT, || async {
        (!s.events(&first).await.is_empty()).then_some(())
    })
    .await
    .unwrap();
    let second = SessionId::generate();
    s.send(s.command(&second, "second")).await;
    let events = s.wait_done(&second).await;
    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Rejected);
    // Said once (in `done`, which the cloud shows as the status), naming
    // the agent and not the running session's id.
    let said = done.message.unwrap();
    assert!(said.contains("is busy with another run"), "{said}");
    assert!(!said.contains(first.as_str()), "{said}");
    assert!(
        !events.iter().any(|e| matches!(e, OutputEvent::Notice(_))),
        "{events:?}"
    );

    let big = SessionId::generate();
    s.send(s.command(&big, &"x".repeat(5000))).await;
    let done = done_of(&s.wait_done(&big).await);
    assert_eq!(done.status, DoneStatus::Rejected);
    assert!(done.message.unwrap().contains("limit"));

    // The first session was not disturbed.
    let events = s.wait_done(&first).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    assert!(chunk_text(&events).ends_with("tick 39\nslow done\n"));
    agent.shutdown().await;
}

#[tokio::test]
async fn a_missing_program_is_reported_not_fatal() {
    let s = Setup::new().await;
    let agent = s.spawn(s.spec(vec!["/nonexistent/ai-cli".into()])).await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "hello")).await;
    let done = done_of(&s.wait_done(&sid).await);
    assert_eq!(done.status, DoneStatus::Error);
    assert!(done.message.unwrap().contains("could not start"));
    assert!(agent.online());
    agent.shutdown().await;
}

#[tokio::test]
async fn a_failing_runner_reports_its_exit_code() {
    let s = Setup::new().await;
    let agent = s
        .spawn(s.spec(vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo oops >&2; exit 3".into(),
        ]))
        .await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "x")).await;
    let events = s.wait_done(&sid).await;
    let done = done_of(&events);
    assert_eq!((done.status, done.exit_code), (DoneStatus::Failed, Some(3)));
    assert_eq!(chunk_text(&events), "oops\n");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_flood_arrives_complete_in_few_writes() {
    let s = Setup::new().await;
    let agent = s
        .spawn(s.spec(vec![fixture("flood.sh"), "200000".into()]))
        .await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "x")).await;
    let events = s.wait_done(&sid).await;
    let text = chunk_text(&events);
    let line = format!("{}\n", "0".repeat(99));
    assert_eq!(text.len(), 200_000 * 100);
    assert!(text.split_inclusive('\n').all(|l| l == line));
    // 200,000 lines became far fewer stream entries.
    assert!(events.len() < 200_000 / 50, "{} entries", events.len());
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    agent.shutdown().await;
}

#[tokio::test]
async fn shutdown_during_a_session_publishes_aborted() {
    let s = Setup::new().await;
    let agent = s
        .spawn(s.spec(vec![fixture("slow.sh"), "1000".into()]))
        .await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "x")).await;
    wait_for(WAIT, || async {
        chunk_text(&s.events(&sid).await)
            .contains("tick 1")
            .then_some(())
    })
    .await
    .unwrap();
    agent.shutdown().await;
    let done = done_of(&s.events(&sid).await);
    assert_eq!(done.status, DoneStatus::Aborted);
    assert_eq!(done.stopped_by, Some(StoppedBy::Shutdown));
}

#[tokio::test]
async fn unpaired_envelope_notifies_the_supervisor() {
    let mut s = Setup::new().await;
    let agent = s.spawn(s.spec(vec![fixture("stream.sh")])).await;
    s.send(remoteagent_proto::events::CommandEvent::Unpaired(
        Default::default(),
    ))
    .await;
    let notice = tokio::time::timeout(Duration::from_secs(30), s.notices.recv())
        .await
        .unwrap();
    assert_eq!(
        notice,
        Some(remoteagentd::agent::AgentNotice::Unpaired(s.agent.clone()))
    );
    agent.shutdown().await;
}
