//! `/notify` and `FINAL_NOTIFY`: whether a run's end is also sent as a new
//! message (the ping) besides the final edit of its output. The whole
//! cloud, on SQLite and PostgreSQL: the choice is stored per user in the
//! database and read by the forwarder when a session ends.

use crate::support;

use remoteagent_cloud::db::sessions;
use remoteagent_proto::events::{ChunkPayload, DonePayload, DoneStatus, OutputEvent, StreamKind};
use remoteagent_proto::{AgentId, SessionId, names};
use support::{Backend, TIMEOUT, TestApp, user_id};

const OFF: &str =
    "🔕 I will no longer send a message when a run ends; the output message is still updated.";
const ON: &str = "🔔 I will send a message when a run ends, so that your phone notifies you.";

async fn xadd(app: &TestApp, agent: &AgentId, session: &SessionId, event: &OutputEvent) {
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let stream = names::output_stream(agent, session);
    redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg(names::STREAM_FIELD)
        .arg(serde_json::to_string(event).unwrap())
        .query_async::<String>(&mut conn)
        .await
        .unwrap();
    redis::cmd("EXPIRE")
        .arg(&stream)
        .arg(600)
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
}

/// `user` sends `prompt` to agent `agent` (named `name`); the daemon's
/// part is played here: one line of output, then `done`. Returns once the
/// session is recorded as finished, which the forwarder reports after the
/// ping (or the decision not to send one). Returns the output's message.
async fn one_run(app: &TestApp, user: i64, agent: &AgentId, name: &str, prompt: &str) -> i64 {
    let before = app.count_messages(user, &format!("{name} is working"));
    app.say(user, prompt).await;
    assert!(
        app.wait_count(user, &format!("{name} is working"), before + 1)
            .await
    );
    let session = remoteagent_testkit::wait_for(TIMEOUT, || async {
        sessions::running_for_agent(&app.state.db, agent)
            .await
            .unwrap()
    })
    .await
    .expect("no running session");
    let line = format!("answer to {prompt}\n");
    xadd(
        app,
        agent,
        &session.id,
        &OutputEvent::Chunk(ChunkPayload {
            seq: 0,
            stream: StreamKind::Stdout,
            text: line.clone(),
        }),
    )
    .await;
    xadd(
        app,
        agent,
        &session.id,
        &OutputEvent::Done(DonePayload {
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
    )
    .await;
    let finished = remoteagent_testkit::wait_for(TIMEOUT, || async {
        let row = sessions::get(&app.state.db, &session.id).await.unwrap()?;
        (row.status != "running").then_some(())
    })
    .await;
    assert!(
        finished.is_some(),
        "the session was not recorded as finished"
    );
    let output = app
        .tg
        .messages(user)
        .into_iter()
        .find(|m| m.text.starts_with(line.trim_end()))
        .expect("the output message");
    assert!(output.text.ends_with("✅ done in 3.0 s"), "{output:#?}");
    assert_eq!(output.reply_markup, None, "the Stop button is left");
    output.message_id
}

/// The pings in `user`'s chat that reply to `output`.
fn pings_of(app: &TestApp, user: i64, output: i64) -> Vec<String> {
    app.tg
        .messages(user)
        .into_iter()
        .filter(|m| m.reply_to == Some(output))
        .map(|m| m.text)
        .collect()
}

async fn notify_off_leaves_only_the_edit_and_on_brings_the_ping_back(app: &TestApp) {
    let user = user_id();
    let (agent, _sub) = app.online_agent(user, "hello").await;

    // On by default.
    let output = one_run(app, user, &agent, "hello", "first").await;
    assert_eq!(
        pings_of(app, user, output),
        vec!["✅ hello finished in 3s".to_string()]
    );
    app.say(user, "/notify").await;
    app.expect_message(user, "🔔 When a run ends, I send a message")
        .await;

    app.say(user, "/notify off").await;
    app.expect_message(user, OFF).await;
    let sends = app.tg.calls_of("sendMessage").len();
    let output = one_run(app, user, &agent, "hello", "second").await;
    assert!(pings_of(app, user, output).is_empty());
    assert!(
        !app.tg
            .messages(user)
            .iter()
            .any(|m| m.text.contains("hello finished") && m.message_id > output),
        "{:#?}",
        app.tg.messages(user)
    );
    // The prompt's placeholder was the one message sent for the run.
    assert_eq!(app.tg.calls_of("sendMessage").len(), sends + 1);
    app.say(user, "/notify").await;
    app.expect_message(
        user,
        "🔕 When a run ends, only the output message is updated",
    )
    .await;

    app.say(user, "/notify ON").await;
    app.expect_message(user, ON).await;
    let output = one_run(app, user, &agent, "hello", "third").await;
    assert_eq!(
        pings_of(app, user, output),
        vec!["✅ hello finished in 3s".to_string()]
    );
    app.say(user, "/notify sometimes").await;
    app.expect_message(user, "Send /notify on or /notify off")
        .await;
    // The command is in the help.
    app.say(user, "/help").await;
    app.expect_message(user, "/notify on|off").await;
    // Another user's choice is theirs: this one's is untouched.
    assert!(
        remoteagent_cloud::db::notify::wants_final(&app.state.db, user)
            .await
            .unwrap()
    );
    assert!(
        remoteagent_cloud::db::notify::wants_final(&app.state.db, user_id())
            .await
            .unwrap()
    );
}

both_backends!(notify_off_leaves_only_the_edit_and_on_brings_the_ping_back);

/// `FINAL_NOTIFY=false`: nobody gets the ping, whatever their `/notify`;
/// `/notify` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_notify_false_sends_no_ping_to_anyone() {
    let app = TestApp::start_with(Backend::Sqlite, &[("FINAL_NOTIFY", "false")]).await;
    let user = user_id();
    let (agent, _sub) = app.online_agent(user, "quiet").await;
    app.say(user, "/notify on").await;
    let said = app.expect_message(user, ON).await;
    assert!(said.contains("FINAL_NOTIFY=false"), "{said}");
    let sends = app.tg.calls_of("sendMessage").len();
    let output = one_run(&app, user, &agent, "quiet", "anything").await;
    assert!(pings_of(&app, user, output).is_empty());
    assert_eq!(app.tg.calls_of("sendMessage").len(), sends + 1);
    app.finish().await;
}
