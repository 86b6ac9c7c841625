//! `/mode`: the mode chosen per agent on the phone, stored in the database
//! (SQLite and PostgreSQL), sent in every signed `command`, and the run's
//! mode (from `started`) in the output's status line.

use crate::support;

use redis::aio::PubSub;
use remoteagent_cloud::db::{modes, sessions};
use remoteagent_proto::events::{
    ChunkPayload, CommandEvent, CommandPayload, DonePayload, DoneStatus, OutputEvent,
    StartedPayload, StreamKind,
};
use remoteagent_proto::modes::Mode;
use remoteagent_proto::{AgentId, SessionId, envelope, names, now_ms};
use support::{TIMEOUT, TestApp, next_message, user_id};

async fn next_prompt(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandPayload {
    let token = next_message(sub).await;
    match envelope::verify(&app.state.key.public_key(), agent, &token)
        .unwrap()
        .command
    {
        CommandEvent::Command(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

/// The session of the prompt just published, ended by playing the daemon:
/// `started` (with `mode`), one line, `done`. Returns the output's text
/// once the forwarder has shown the status.
async fn run_in_mode(
    app: &TestApp,
    user: i64,
    agent: &AgentId,
    session: &SessionId,
    mode: Option<Mode>,
) -> String {
    let line = format!("output of {session}");
    for event in [
        OutputEvent::Started(StartedPayload {
            session_id: session.clone(),
            agent_id: agent.clone(),
            runner: "claude".into(),
            started_at_ms: now_ms(),
            mode,
        }),
        OutputEvent::Chunk(ChunkPayload {
            seq: 0,
            stream: StreamKind::Stdout,
            text: format!("{line}\n"),
        }),
        OutputEvent::Done(DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 3_000,
            message: None,
            chunks: 1,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        }),
    ] {
        app.xadd(agent, session, &event).await;
    }
    let finished = remoteagent_testkit::wait_for(TIMEOUT, || async {
        let row = sessions::get(&app.state.db, session).await.unwrap()?;
        (row.status != "running").then_some(())
    })
    .await;
    assert!(
        finished.is_some(),
        "the session was not recorded as finished"
    );
    app.tg
        .messages(user)
        .into_iter()
        .find(|m| m.text.starts_with(&line))
        .expect("the output message")
        .text
}

/// `user` sends `text`; returns the mode its command carried, once its
/// run (played here) has ended.
async fn prompt(
    app: &TestApp,
    user: i64,
    sub: &mut PubSub,
    agent: &AgentId,
    text: &str,
) -> Option<Mode> {
    app.say(user, text).await;
    let command = next_prompt(app, sub, agent).await;
    assert_eq!(command.prompt, text);
    run_in_mode(app, user, agent, &command.session_id, command.mode).await;
    command.mode
}

/// `/mode` shows none chosen and a button per mode; `/mode plan`, a
/// button press and the database agree; every prompt's command carries
/// the stored mode; a stranger's press and a bad word change nothing.
async fn the_mode_is_stored_per_agent_and_sent_with_every_prompt(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;

    app.say(user, "/mode").await;
    let shown = app.expect_message(user, "No mode chosen for hello").await;
    assert!(shown.contains("allow_remote_loosen = true"), "{shown}");
    assert!(!shown.contains("no effect"), "{shown}");
    let message = app
        .tg
        .messages(user)
        .into_iter()
        .find(|m| m.text.starts_with("⚙️ No mode chosen for hello"))
        .unwrap();
    let buttons: Vec<String> = message.reply_markup.as_ref().unwrap()["inline_keyboard"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["callback_data"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        buttons,
        ["plan", "ask", "edits", "auto"].map(|m| format!("mode:{agent}:{m}"))
    );
    // None chosen: the command carries none, and the computer decides.
    assert_eq!(prompt(app, user, &mut sub, &agent, "first").await, None);

    app.say(user, "/mode PLAN").await;
    app.expect_message(user, "hello runs in plan mode from the next prompt on")
        .await;
    assert_eq!(
        modes::get(&app.state.db, &agent).await.unwrap(),
        Some(Mode::Plan)
    );
    assert_eq!(
        prompt(app, user, &mut sub, &agent, "second").await,
        Some(Mode::Plan)
    );

    // A stranger's press (forged callback data) changes nothing.
    let answer = app.press(user_id(), &format!("mode:{agent}:auto")).await;
    assert_eq!(
        answer,
        "Only the account that paired this agent can do that."
    );
    assert_eq!(
        modes::get(&app.state.db, &agent).await.unwrap(),
        Some(Mode::Plan)
    );
    // The owner's press sets it.
    let answer = app
        .press_on(user, message.message_id, &format!("mode:{agent}:edits"))
        .await;
    assert_eq!(answer, "hello: edits mode");
    app.expect_message(user, "hello runs in edits mode from the next prompt on")
        .await;
    assert_eq!(
        modes::get(&app.state.db, &agent).await.unwrap(),
        Some(Mode::Edits)
    );
    app.say(user, "/mode").await;
    app.expect_message(user, "hello is in edits mode").await;
    assert_eq!(
        prompt(app, user, &mut sub, &agent, "third").await,
        Some(Mode::Edits)
    );

    // A word that is no mode is refused in words, and nothing changes.
    app.say(user, "/mode yolo").await;
    app.expect_message(
        user,
        "hello: 'yolo' is not a mode; the modes are plan, ask, edits and auto",
    )
    .await;
    assert_eq!(
        modes::get(&app.state.db, &agent).await.unwrap(),
        Some(Mode::Edits)
    );
    // Malformed button data.
    assert_eq!(
        app.press(user, &format!("mode:{agent}:yolo")).await,
        "This button is malformed."
    );
    // A daemon that reports a runner without modes: said once in the answer.
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(names::presence_key(&agent))
        .arg(r#"{"hostname":"box","version":"0","busy":false,"modes":false}"#)
        .arg("EX")
        .arg(120)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    app.say(user, "/mode").await;
    let note = "hello runs a custom command (or Aider or Gemini): modes have no effect on it";
    let shown = app.expect_message(user, note).await;
    assert!(shown.starts_with("⚙️ hello is in edits mode."), "{shown}");
    assert_eq!(shown.matches(note).count(), 1, "{shown}");
    // Another agent of the same owner has its own mode.
    let (other, _other_sub) = app.online_agent(user, "other").await;
    assert_eq!(modes::get(&app.state.db, &other).await.unwrap(), None);
    // The command is in the help.
    app.say(user, "/help").await;
    app.expect_message(user, "/mode — ").await;
}

both_backends!(the_mode_is_stored_per_agent_and_sent_with_every_prompt);

/// The run's mode, as `started` reports it, ends the status line; a run
/// without one (an older daemon, a custom command) shows none.
async fn the_status_line_shows_the_runs_mode(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "/mode plan").await;
    app.say(user, "first").await;
    let command = next_prompt(app, &mut sub, &agent).await;
    let text = run_in_mode(app, user, &agent, &command.session_id, Some(Mode::Plan)).await;
    assert!(text.ends_with("✅ done in 3.0 s · plan mode"), "{text}");

    app.say(user, "second").await;
    let command = next_prompt(app, &mut sub, &agent).await;
    let text = run_in_mode(app, user, &agent, &command.session_id, None).await;
    assert!(text.ends_with("✅ done in 3.0 s"), "{text}");
}

both_backends!(the_status_line_shows_the_runs_mode);
