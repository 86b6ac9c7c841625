//! Forum topics (`remoteagent_cloud::topics`): with the bot's topic mode on,
//! each agent's runs go to its own topic of the private chat, opened on
//! first use; a message in a topic goes to its agent with no `/use`; a
//! topic the user deleted is opened again; a renamed agent renames its
//! topic; unpairing closes it. Without topics, the chat stays flat.

use crate::support;

use redis::aio::PubSub;
use remoteagent_proto::events::{
    ChunkPayload, CommandEvent, CommandPayload, DonePayload, DoneStatus, OutputEvent, StreamKind,
};
use remoteagent_proto::{AgentId, SessionId, envelope};
use remoteagent_testkit::telegram::{BOT_USERNAME, FakeTelegram, updates};
use support::{Backend, TIMEOUT, TestApp, next_message, user_id};

async fn with_topics(backend: Backend) -> TestApp {
    let tg = FakeTelegram::start().await;
    tg.enable_private_topics();
    TestApp::start_with_fake(backend, &[], tg).await
}

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

/// The runner prints `text` and the run ends.
async fn run_prints(app: &TestApp, agent: &AgentId, session: &SessionId, text: &str) {
    let chunk = OutputEvent::Chunk(ChunkPayload {
        seq: 0,
        stream: StreamKind::Stdout,
        text: format!("{text}\n"),
    });
    app.xadd(agent, session, &chunk).await;
    let done = OutputEvent::Done(DonePayload {
        status: DoneStatus::Ok,
        exit_code: Some(0),
        duration_ms: 10,
        message: None,
        chunks: 1,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    });
    app.xadd(agent, session, &done).await;
}

/// `user` writes `text` in topic `thread` of their private chat.
async fn say_in_topic(app: &TestApp, user: i64, thread: i64, text: &str) {
    let update = updates::in_topic(
        updates::text(app.update_id(), user, user, text),
        thread,
        "t",
    );
    assert_eq!(app.webhook(&update).await.status(), 200);
}

/// Waits for a message of `chat` containing `needle` in topic `thread`.
async fn expect_in_topic(app: &TestApp, chat: i64, thread: i64, needle: &str) {
    let found = app
        .tg
        .wait_for_messages(
            chat,
            |ms| {
                ms.iter()
                    .any(|m| m.thread == Some(thread) && m.text.contains(needle))
            },
            TIMEOUT,
        )
        .await;
    assert!(
        found,
        "no {needle:?} in topic {thread}: {:#?}",
        app.tg.messages(chat)
    );
}

/// The live topic named `name` of `chat`.
fn topic_named(app: &TestApp, chat: i64, name: &str) -> i64 {
    app.tg
        .topics(chat)
        .into_iter()
        .find(|t| t.name == name && !t.deleted)
        .unwrap_or_else(|| panic!("no topic {name}: {:#?}", app.tg.topics(chat)))
        .message_thread_id
}

async fn topic_opened_on_first_use_takes_its_agents_messages(app: &TestApp) {
    let user = user_id();
    let (alpha, mut alpha_sub) = app.online_agent(user, "alpha").await;
    let (beta, mut beta_sub) = app.online_agent(user, "beta").await;
    app.say(user, "/use alpha").await;
    app.say(user, "first prompt").await;
    let cmd = next_prompt(app, &mut alpha_sub, &alpha).await;
    assert_eq!(cmd.prompt, "first prompt");
    // Opened on first use, named after the agent; the user is told where.
    let thread = topic_named(app, user, "alpha");
    app.expect_message(user, "alpha has its own topic now")
        .await;
    expect_in_topic(app, user, thread, "alpha is working").await;
    run_prints(app, &alpha, &cmd.session_id, "alpha says hi").await;
    expect_in_topic(app, user, thread, "alpha says hi").await;
    app.wait_run_ended(&cmd.session_id).await;
    app.tg
        .wait_for(
            |calls| {
                calls
                    .iter()
                    .any(|c| c.method == "sendMessage" && c.reply_to_message_id().is_some())
            },
            TIMEOUT,
        )
        .await;
    // Every message of the run (placeholder, ping) went into the topic.
    let run_sends: Vec<_> = app
        .tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| {
            c.text().is_some_and(|t| t.contains("is working")) || c.reply_to_message_id().is_some()
        })
        .collect();
    assert_eq!(run_sends.len(), 2, "{run_sends:#?}");
    for call in &run_sends {
        assert_eq!(call.thread(), Some(thread), "{:?}", call.body);
    }

    // A message in alpha's topic goes to alpha, whichever agent is current.
    app.say(user, "/use beta").await;
    app.expect_message(user, "beta").await;
    say_in_topic(app, user, thread, "second prompt").await;
    let cmd = next_prompt(app, &mut alpha_sub, &alpha).await;
    assert_eq!(cmd.prompt, "second prompt");
    // Commands there are about alpha too, answered in the topic.
    say_in_topic(app, user, thread, "/status").await;
    expect_in_topic(app, user, thread, "alpha").await;
    // And the current agent, beta, gets a topic of its own.
    app.say(user, "for beta").await;
    assert_eq!(
        next_prompt(app, &mut beta_sub, &beta).await.prompt,
        "for beta"
    );
    let beta_thread = topic_named(app, user, "beta");
    assert_ne!(beta_thread, thread);
    expect_in_topic(app, user, beta_thread, "beta is working").await;
    assert_eq!(app.tg.calls_of("createForumTopic").len(), 2);
    assert!(
        app.tg.refused_calls().is_empty(),
        "{:#?}",
        app.tg.refused_calls()
    );
}

async fn without_topics_the_chat_stays_flat(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "flat").await;
    app.say(user, "a prompt").await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    run_prints(app, &agent, &cmd.session_id, "flat output").await;
    app.expect_message(user, "flat output").await;
    assert!(app.tg.calls_of("createForumTopic").is_empty());
    for call in app.tg.calls() {
        assert_eq!(call.thread(), None, "{:?}", call.body);
    }
}

async fn a_deleted_topic_is_opened_again(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "gamma").await;
    app.say(user, "one").await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    let first = topic_named(app, user, "gamma");
    run_prints(app, &agent, &cmd.session_id, "first run").await;
    expect_in_topic(app, user, first, "first run").await;
    app.wait_run_ended(&cmd.session_id).await;
    app.tg.user_deletes_topic(user, first);
    // The next run finds the topic gone, opens a new one and shows there.
    app.say(user, "two").await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    run_prints(app, &agent, &cmd.session_id, "second run").await;
    let found = app
        .tg
        .wait_for(|_| app.tg.topics(user).iter().any(|t| !t.deleted), TIMEOUT)
        .await;
    assert!(found);
    let second = topic_named(app, user, "gamma");
    assert_ne!(first, second);
    expect_in_topic(app, user, second, "second run").await;
    app.wait_run_ended(&cmd.session_id).await;
    // The one refusal was the send into the deleted topic.
    let refused = app.tg.refused_calls();
    assert!(
        refused
            .iter()
            .all(|c| c.description() == Some("Bad Request: message thread not found")),
        "{refused:#?}"
    );
    // And the new topic is the agent's: a message there reaches it.
    say_in_topic(app, user, second, "three").await;
    assert_eq!(next_prompt(app, &mut sub, &agent).await.prompt, "three");
}

async fn renaming_and_unpairing_rename_and_close_the_topic(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "delta").await;
    app.say(user, "one").await;
    let one = next_prompt(app, &mut sub, &agent).await;
    let thread = topic_named(app, user, "delta");
    app.end_run(&agent, &one.session_id).await;
    // The agent is renamed (its row's name changed): the next run renames
    // the topic.
    sqlx::query("UPDATE agents SET name = 'delta2' WHERE id = $1")
        .bind(agent.as_str().to_string())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.say(user, "two").await;
    next_prompt(app, &mut sub, &agent).await;
    assert_eq!(topic_named(app, user, "delta2"), thread);
    assert_eq!(app.tg.calls_of("editForumTopic").len(), 1);
    // Unpairing tells the topic and closes it.
    app.say(user, "/unpair delta2").await;
    app.expect_message(user, "delta2 was unpaired.").await;
    expect_in_topic(app, user, thread, "this topic is closed").await;
    let closed = app
        .tg
        .wait_for(|_| app.tg.topics(user).iter().any(|t| t.closed), TIMEOUT)
        .await;
    assert!(closed, "{:#?}", app.tg.topics(user));
}

macro_rules! with_topics_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = super::with_topics(super::Backend::Sqlite).await;
                super::$name(&app).await;
                app.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = super::with_topics(super::Backend::Postgres).await;
                super::$name(&app).await;
                app.finish().await;
            }
        }
    )*};
}

with_topics_both!(
    topic_opened_on_first_use_takes_its_agents_messages,
    a_deleted_topic_is_opened_again,
    renaming_and_unpairing_rename_and_close_the_topic,
);

both_backends!(without_topics_the_chat_stays_flat);

/// A forum supergroup the owner opted in: a mention opens the agent's
/// topic there; the owner's messages in it are prompts with no mention; a
/// stranger's are not, and get no hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forum_group_gets_a_topic_per_agent() {
    let tg = FakeTelegram::start().await;
    let group = -(1_000_000_000_000 + i64::from(rand::random::<u32>()));
    tg.make_forum(group, true);
    let app = TestApp::start_with_fake(Backend::Sqlite, &[], tg).await;
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "proj").await;
    let in_group = |user: i64, text: &str| {
        let mut u = updates::group_text(app.update_id(), user, group, text);
        u["message"]["chat"]["is_forum"] = serde_json::json!(true);
        u
    };
    assert_eq!(
        app.webhook(&in_group(owner, "/allowgroup")).await.status(),
        200
    );
    app.expect_message(group, "opted in").await;
    let mention = in_group(owner, &format!("@{BOT_USERNAME} build it"));
    assert_eq!(app.webhook(&mention).await.status(), 200);
    let build = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(build.prompt, "build it");
    let thread = topic_named(&app, group, "proj");
    expect_in_topic(&app, group, thread, "proj is working").await;
    let stranger = user_id();
    let theirs = updates::in_topic(in_group(stranger, "rm -rf ~"), thread, "proj");
    assert_eq!(app.webhook(&theirs).await.status(), 200);
    app.end_run(&agent, &build.session_id).await;
    let mine = updates::in_topic(in_group(owner, "and test it"), thread, "proj");
    assert_eq!(app.webhook(&mine).await.status(), 200);
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await.prompt,
        "and test it"
    );
    assert_eq!(app.count_messages(group, "I only take prompts"), 0);
    app.finish().await;
}
