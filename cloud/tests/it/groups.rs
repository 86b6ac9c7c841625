//! Group chats: nothing runs from a group until the owner opts it in with
//! `/allowgroup`; then only the owner's messages that mention the bot or
//! reply to it are prompts, and the opt-in hint is given once per group.
//!
//! Whether a message published nothing is shown by order, not by waiting:
//! each user's updates are handled in order, so once a later prompt of the
//! same user arrives on the agent's channel, the earlier messages were
//! handled; a stranger's messages are followed by a private message whose
//! answer shows they were handled.

use crate::support;

use redis::aio::PubSub;
use remoteagent_proto::events::{CommandEvent, CommandPayload};
use remoteagent_proto::{AgentId, envelope};
use remoteagent_testkit::telegram::{BOT_USERNAME, updates};
use support::{TestApp, next_message, user_id};

/// A group chat id no other test uses (groups have negative ids).
fn group_id() -> i64 {
    -(1_000_000_000_000 + i64::from(rand::random::<u32>()))
}

async fn in_group(app: &TestApp, user: i64, chat: i64, text: &str) {
    let update = updates::group_text(app.update_id(), user, chat, text);
    assert_eq!(app.webhook(&update).await.status(), 200);
}

async fn reply_in_group(app: &TestApp, user: i64, chat: i64, text: &str, to: i64) {
    let update =
        updates::replying_to_bot(updates::group_text(app.update_id(), user, chat, text), to);
    assert_eq!(app.webhook(&update).await.status(), 200);
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

const HINT: &str = "I only take prompts in private chats";

async fn a_group_runs_nothing_until_the_owner_opts_it_in(app: &TestApp) {
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "proj").await;
    let group = group_id();
    let me = format!("@{BOT_USERNAME}");

    // Not opted in: plain text (privacy mode off) and even a mention run
    // nothing; the mention gets the hint, once.
    in_group(app, owner, group, "rm -rf ~").await;
    in_group(app, owner, group, &format!("{me} rm -rf ~")).await;
    in_group(app, owner, group, &format!("{me} please rm -rf ~")).await;
    app.say(owner, "private prompt").await;
    let private = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(private.prompt, "private prompt");
    app.end_run(&agent, &private.session_id).await;
    app.expect_message(group, HINT).await;
    assert_eq!(app.count_messages(group, HINT), 1);
    assert_eq!(app.count_messages(group, "proj is working"), 0);

    // Opted in by the owner: plain text still runs nothing, a stranger's
    // mention runs nothing, the owner's mention and reply do.
    in_group(app, owner, group, "/allowgroup").await;
    app.expect_message(group, "This group is opted in for proj")
        .await;
    in_group(app, owner, group, "just chatting, not for the bot").await;
    let stranger = user_id();
    in_group(app, stranger, group, &format!("{me} cat ~/.ssh/id_rsa")).await;
    app.say(stranger, "hello").await;
    app.expect_message(stranger, "no paired agents").await;
    in_group(app, owner, group, &format!("{me} run the tests")).await;
    let first = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(first.prompt, "run the tests");
    app.expect_message(group, "proj is working").await;
    let bot_message = app.tg.messages(group).last().unwrap().message_id;
    // The run ends (as its daemon would), so the next prompt runs at once
    // instead of waiting in the queue.
    app.end_run(&agent, &first.session_id).await;
    reply_in_group(app, owner, group, "and the lints", bot_message).await;
    let second = next_prompt(app, &mut sub, &agent).await;
    assert_eq!(second.prompt, "and the lints");
    app.end_run(&agent, &second.session_id).await;
    // The hint was not repeated for the stranger.
    assert_eq!(app.count_messages(group, HINT), 1);
    // Only the owner's prompts: a stranger's reply runs nothing either.
    reply_in_group(app, stranger, group, "rm -rf ~", bot_message).await;
    app.say(stranger, "hello again").await;
    let told = app.wait_count(stranger, "no paired agents", 2).await;
    assert!(told);

    // Private-chat commands are not answered in the group with data.
    in_group(app, owner, group, "/agents").await;
    app.expect_message(group, "Please send /agents to me in a private chat")
        .await;

    // /disallowgroup withdraws the opt-in.
    in_group(app, owner, group, "/disallowgroup").await;
    app.expect_message(group, "no longer sends your prompts")
        .await;
    in_group(app, owner, group, &format!("{me} one more")).await;
    app.say(owner, "private again").await;
    assert_eq!(
        next_prompt(app, &mut sub, &agent).await.prompt,
        "private again"
    );
}

async fn only_the_owner_presses_a_group_sessions_buttons(app: &TestApp) {
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "proj").await;
    let group = group_id();
    in_group(app, owner, group, "/allowgroup proj").await;
    app.expect_message(group, "opted in").await;
    in_group(app, owner, group, &format!("@{BOT_USERNAME} build it")).await;
    let cmd = next_prompt(app, &mut sub, &agent).await;
    let stranger = user_id();
    let id = app.update_id();
    let mut press = updates::callback(id, stranger, group, 1, &format!("stop:{}", cmd.session_id));
    press["callback_query"]["message"]["chat"] =
        serde_json::json!({"id": group, "type": "supergroup", "title": "Test group"});
    assert_eq!(app.webhook(&press).await.status(), 200);
    let query_id = press["callback_query"]["id"].as_str().unwrap().to_string();
    let answered = app
        .tg
        .wait_for(
            |calls| {
                calls.iter().any(|c| {
                    c.method == "answerCallbackQuery"
                        && c.body["callback_query_id"].as_str() == Some(query_id.as_str())
                })
            },
            support::TIMEOUT,
        )
        .await;
    assert!(answered);
    let answer = app
        .tg
        .calls_of("answerCallbackQuery")
        .into_iter()
        .find(|c| c.body["callback_query_id"].as_str() == Some(query_id.as_str()))
        .and_then(|c| c.body["text"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(answer.contains("Only the account"), "{answer}");
    // The owner's press works.
    assert_eq!(
        app.press(owner, &format!("stop:{}", cmd.session_id)).await,
        "Stopping…"
    );
    assert!(matches!(
        envelope::verify(
            &app.state.key.public_key(),
            &agent,
            &next_message(&mut sub).await
        )
        .unwrap()
        .command,
        CommandEvent::Abort(_)
    ));
}

both_backends!(
    a_group_runs_nothing_until_the_owner_opts_it_in,
    only_the_owner_presses_a_group_sessions_buttons,
);

/// With `ALLOW_GROUP_PROMPTS`, no `/allowgroup` is needed, but the mention
/// rule still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_flag_opts_every_group_in() {
    let app =
        TestApp::start_with(support::Backend::Sqlite, &[("ALLOW_GROUP_PROMPTS", "true")]).await;
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "flagged").await;
    let group = group_id();
    in_group(&app, owner, group, "not addressed").await;
    in_group(&app, owner, group, &format!("@{BOT_USERNAME} addressed")).await;
    assert_eq!(
        next_prompt(&app, &mut sub, &agent).await.prompt,
        "addressed"
    );
    app.finish().await;
}

/// An approval request of a session started in a group is shown to the
/// owner in their private chat, never in the group (the prompt path sets
/// `SessionStart::approval_chat_id`, the forwarder sends there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sessions_approvals_go_to_the_owners_private_chat() {
    use remoteagent_proto::events::{ApprovalRequestPayload, OutputEvent};
    let app = TestApp::start(support::Backend::Sqlite).await;
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "proj").await;
    let group = group_id();
    in_group(&app, owner, group, "/allowgroup").await;
    app.expect_message(group, "opted in").await;
    in_group(&app, owner, group, &format!("@{BOT_USERNAME} deploy")).await;
    let cmd = next_prompt(&app, &mut sub, &agent).await;
    let event = OutputEvent::ApprovalRequest(ApprovalRequestPayload {
        request_id: "req-1".into(),
        tool: "Bash".into(),
        summary: "make deploy".into(),
        timeout_secs: 300,
        kind: None,
        rule: None,
    });
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    redis::cmd("XADD")
        .arg(remoteagent_proto::names::output_stream(
            &agent,
            &cmd.session_id,
        ))
        .arg("*")
        .arg(remoteagent_proto::names::STREAM_FIELD)
        .arg(serde_json::to_string(&event).unwrap())
        .query_async::<String>(&mut conn)
        .await
        .unwrap();
    app.expect_message(owner, "make deploy").await;
    assert_eq!(app.count_messages(group, "make deploy"), 0);
}
