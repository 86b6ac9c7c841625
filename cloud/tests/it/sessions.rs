//! `/sessions` and ▶ Resume in the cloud: the signed `list_sessions`
//! command, the answer a daemon writes (here written by the test as the
//! daemon does: `started`, `sessions`, `done`) shown with its buttons, the
//! choice put in the next prompt's `resume` (once), `/new` forgetting it,
//! a stranger's press refused, and a silent daemon told in words.

use redis::aio::PubSub;
use remoteagent_proto::events::{
    CommandEvent, CommandPayload, DonePayload, DoneStatus, OutputEvent, StartedPayload, Usd,
};
use remoteagent_proto::sessions::{ListSessionsPayload, SessionSummary, SessionsPayload};
use remoteagent_proto::{AgentId, envelope, names, now_ms};

use crate::support::{Backend, TestApp, next_message, user_id};

async fn next_command(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandEvent {
    let token = next_message(sub).await;
    envelope::verify(&app.state.key.public_key(), agent, &token)
        .unwrap()
        .command
}

async fn next_list(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> ListSessionsPayload {
    match next_command(app, sub, agent).await {
        CommandEvent::ListSessions(l) => l,
        other => panic!("expected list_sessions, got {other:?}"),
    }
}

async fn next_prompt(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandPayload {
    match next_command(app, sub, agent).await {
        CommandEvent::Command(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

/// Writes the daemon's answer to `list`.
async fn answer(
    app: &TestApp,
    agent: &AgentId,
    list: &ListSessionsPayload,
    sessions: Vec<SessionSummary>,
) {
    let mut c = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let events = [
        OutputEvent::Started(StartedPayload {
            session_id: list.session_id.clone(),
            agent_id: agent.clone(),
            runner: "/sessions".into(),
            started_at_ms: now_ms(),
            mode: None,
        }),
        OutputEvent::Sessions(SessionsPayload { sessions }),
        OutputEvent::Done(DonePayload {
            status: DoneStatus::Ok,
            exit_code: None,
            duration_ms: 0,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        }),
    ];
    for event in events {
        redis::cmd("XADD")
            .arg(names::output_stream(agent, &list.session_id))
            .arg("*")
            .arg(names::STREAM_FIELD)
            .arg(serde_json::to_string(&event).unwrap())
            .query_async::<String>(&mut c)
            .await
            .unwrap();
    }
}

fn session(id: &str, prompt: &str, minutes_ago: u64) -> SessionSummary {
    let at = now_ms() - minutes_ago * 60_000;
    SessionSummary {
        id: id.into(),
        runner: "claude".into(),
        first_prompt: prompt.into(),
        first_at_ms: at,
        last_at_ms: at,
        runs: 3,
        turns: Some(9),
        cost_usd: Usd::from_dollars(0.09),
    }
}

/// The callback data of the `n`th button of the latest list.
fn button(app: &TestApp, user: i64, n: usize) -> (i64, String) {
    let list = app
        .tg
        .messages(user)
        .into_iter()
        .rev()
        .find(|m| m.text.starts_with("🗂 Sessions of hello"))
        .expect("a list");
    let data = list.reply_markup.as_ref().unwrap()["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().clone())
        .nth(n)
        .unwrap()["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    (list.message_id, data)
}

async fn resume_goes_with_the_next_prompt_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "/help").await;
    app.expect_message(user, "/sessions — the agent's recent sessions")
        .await;

    app.say(user, "/sessions").await;
    let list = next_list(&app, &mut sub, &agent).await;
    answer(
        &app,
        &agent,
        &list,
        vec![
            session("new-0001", "second <thing>", 5),
            session("old-0002", "first thing", 125),
        ],
    )
    .await;
    let shown = app
        .expect_message(user, "🗂 Sessions of hello, newest first:")
        .await;
    assert!(
        shown.contains("5m 0s ago · 3 runs · 9 turns · $0.09")
            || shown.contains("5m 1s ago · 3 runs · 9 turns · $0.09"),
        "{shown}"
    );
    assert!(shown.contains("“second <thing>”"), "{shown}");
    assert!(
        shown.find("second").unwrap() < shown.find("first thing").unwrap(),
        "{shown}"
    );
    assert!(
        !shown.contains("new-0001") && !shown.contains("old-0002"),
        "{shown}"
    );
    let (message, older) = button(&app, user, 1);
    assert!(older.starts_with("sres:") && older.len() <= 64, "{older}");

    // Someone else's press chooses nothing; forged data is refused.
    let stranger = user_id();
    let refused = app.press_on(stranger, message, &older).await;
    assert_eq!(
        refused,
        "Only the account that paired this agent can do that."
    );
    let forged = app.press_on(user, message, "sres:../../x:0").await;
    assert_eq!(forged, "This list is too old; send /sessions again.");

    // /new before the press is overruled by it.
    app.say(user, "/new").await;
    app.expect_message(user, "Your next prompt to hello starts a new session.")
        .await;
    let said = app.press_on(user, message, &older).await;
    assert_eq!(said, "Your next prompt to hello continues that session.");
    app.expect_message(
        user,
        "▶ Next prompt to hello continues the session from 2h 5m ago: “first thing”",
    )
    .await;

    app.say(user, "go on").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.resume.as_deref(), Some("old-0002"));
    assert!(cmd.r#continue, "{cmd:?}");
    // Each run ends (as its daemon would), so the next prompt is not queued.
    app.end_run(&agent, &cmd.session_id).await;
    // Once: the prompt after continues the agent's last session as usual.
    app.say(user, "and then").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(cmd.resume, None);
    app.end_run(&agent, &cmd.session_id).await;

    // /new after a press forgets it.
    app.press_on(user, message, &older).await;
    app.say(user, "/new").await;
    app.say(user, "fresh").await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!((cmd.resume, cmd.r#continue), (None, false));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_goes_with_the_next_prompt_only_sqlite() {
    resume_goes_with_the_next_prompt_only(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_goes_with_the_next_prompt_only_postgres() {
    resume_goes_with_the_next_prompt_only(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_never_answers_sessions_is_told() {
    let app = TestApp::start_with(Backend::Sqlite, &[("GET_ANSWER_SECS", "1")]).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "/sessions").await;
    let _ = next_list(&app, &mut sub, &agent).await;
    app.expect_message(
        user,
        "hello did not answer /sessions; is its daemon up to date?",
    )
    .await;
    app.finish().await;
}
