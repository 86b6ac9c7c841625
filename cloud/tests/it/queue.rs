//! The queue while busy, on SQLite and PostgreSQL: prompts for a busy agent
//! wait in the database and run in order when the run ends (the daemon's
//! part is played here: the signed commands are read from the agent's
//! channel and each run is ended with a `done` in its stream); the limit,
//! `/queue`, ▶ Run now (abort, then this prompt next), ✖ Cancel, owner-only
//! buttons, the housekeeping pass that picks up a queue after a restart,
//! and a queue whose agent is offline when its turn comes.

use crate::support;

use redis::aio::PubSub;
use remoteagent_cloud::bot::dequeue;
use remoteagent_cloud::db::{queue, sessions};
use remoteagent_proto::events::{
    CommandEvent, CommandPayload, DonePayload, DoneStatus, OutputEvent,
};
use remoteagent_proto::{AgentId, SessionId, envelope, names};
use remoteagent_testkit::telegram::FakeMessage;
use support::{Backend, TIMEOUT, TestApp, next_message, user_id};

async fn next_command(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandEvent {
    let token = next_message(sub).await;
    envelope::verify(&app.state.key.public_key(), agent, &token)
        .unwrap()
        .command
}

/// The next envelope, which must be a prompt's command.
async fn next_prompt(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandPayload {
    match next_command(app, sub, agent).await {
        CommandEvent::Command(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

/// Ends `session` as the daemon would: `done` in its stream.
async fn end_run(app: &TestApp, agent: &AgentId, session: &SessionId, status: DoneStatus) {
    let done = OutputEvent::Done(DonePayload {
        status,
        exit_code: Some(0),
        duration_ms: 1_000,
        message: None,
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    });
    app.xadd(agent, session, &done).await;
}

async fn wait_message(
    app: &TestApp,
    chat: i64,
    pred: impl Fn(&FakeMessage) -> bool,
) -> FakeMessage {
    let found = app
        .tg
        .wait_for_messages(chat, |m| m.iter().any(&pred), TIMEOUT)
        .await;
    assert!(found, "no such message; saw {:#?}", app.tg.messages(chat));
    app.tg
        .messages(chat)
        .into_iter()
        .rev()
        .find(|m| pred(m))
        .unwrap()
}

fn buttons(m: &FakeMessage) -> Vec<String> {
    m.reply_markup
        .as_ref()
        .map(|k| {
            k["inline_keyboard"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap().iter())
                .map(|b| b["callback_data"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The "queued" message of the prompt at `place` (1st, 2nd…), once its id
/// is recorded (so that it can be edited later).
async fn queued_message(app: &TestApp, user: i64, name: &str, place: &str) -> FakeMessage {
    let text = format!("⏳ queued ({place}) for {name}");
    let m = wait_message(app, user, |m| m.text.starts_with(&text)).await;
    let id = buttons(&m)[0].rsplit(':').next().unwrap().to_string();
    let recorded = remoteagent_testkit::wait_for(TIMEOUT, || async {
        queue::get(&app.state.db, &id)
            .await
            .unwrap()
            .and_then(|e| e.message_id)
    })
    .await;
    assert_eq!(recorded, Some(m.message_id));
    m
}

/// Prompts sent during a run wait, in order, and run one after another;
/// over `QUEUE_MAX_PROMPTS` one is refused in words; `/queue` lists them.
async fn prompts_wait_and_run_in_order(backend: Backend) {
    let app = TestApp::start_with(backend, &[("QUEUE_MAX_PROMPTS", "2")]).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "first").await;
    let first = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(first.prompt, "first");

    app.say(user, "second").await;
    app.say(user, "third\nwith a second line").await;
    app.say(user, "fourth").await;
    let second_msg = queued_message(&app, user, "hello", "1st").await;
    assert_eq!(buttons(&second_msg).len(), 2, "{second_msg:#?}");
    assert!(buttons(&second_msg)[0].starts_with("queue:run:"));
    assert!(buttons(&second_msg)[1].starts_with("queue:cancel:"));
    queued_message(&app, user, "hello", "2nd").await;
    let refused = wait_message(&app, user, |m| m.text.contains("was not queued")).await;
    assert_eq!(
        refused.text,
        "✋ hello already has 2 prompts waiting, the most its queue holds. This prompt was not \
queued: send it again when a run ends, or cancel one with /queue."
    );
    assert_eq!(queue::count(&app.state.db, &agent).await.unwrap(), 2);

    app.say(user, "/queue").await;
    let listing = wait_message(&app, user, |m| m.text.contains("queued, run in this order")).await;
    assert_eq!(
        listing.text,
        "⏳ hello has 2 prompts queued, run in this order when the current run ends:\n1. “second”\n2. “third with a second line”"
    );
    assert_eq!(buttons(&listing).len(), 2);

    // Nothing else was published while the first run went on.
    end_run(&app, &agent, &first.session_id, DoneStatus::Ok).await;
    let second = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(second.prompt, "second");
    // Its message lost its buttons and says it runs.
    let edited = wait_message(&app, user, |m| {
        m.message_id == second_msg.message_id && m.text.starts_with("▶ your queued prompt runs now")
    })
    .await;
    assert!(edited.reply_markup.is_none(), "{edited:#?}");
    // Its buttons now answer in words.
    let data = &buttons(&second_msg)[0];
    assert_eq!(
        app.press(user, data).await,
        "That queued prompt already ran or was cancelled."
    );

    end_run(&app, &agent, &second.session_id, DoneStatus::Ok).await;
    let third = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(third.prompt, "third\nwith a second line");
    end_run(&app, &agent, &third.session_id, DoneStatus::Ok).await;
    wait_message(&app, user, |m| m.text.starts_with("✅ hello finished")).await;
    assert_eq!(queue::count(&app.state.db, &agent).await.unwrap(), 0);
    app.say(user, "/queue").await;
    wait_message(&app, user, |m| m.text == "The queue of hello is empty.").await;
    app.finish().await;
}

/// ▶ Run now — stop current: the running run is aborted (a signed
/// `abort`), and this prompt runs next, ahead of the one queued before it.
/// Only the owner may press; Cancel removes a prompt, whose message says so.
async fn run_now_cancel_and_owner_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = user_id();
    let stranger = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "first").await;
    let first = next_prompt(&app, &mut sub, &agent).await;
    app.say(user, "second").await;
    app.say(user, "third").await;
    app.say(user, "fourth").await;
    queued_message(&app, user, "hello", "1st").await;
    let third_msg = queued_message(&app, user, "hello", "2nd").await;
    let fourth_msg = queued_message(&app, user, "hello", "3rd").await;
    let run_now = buttons(&third_msg)[0].clone();

    // A stranger's press does nothing.
    assert_eq!(
        app.press(stranger, &run_now).await,
        "Only the account that paired this agent can do that."
    );
    assert_eq!(
        app.press(stranger, &buttons(&fourth_msg)[1]).await,
        "Only the account that paired this agent can do that."
    );
    assert_eq!(queue::count(&app.state.db, &agent).await.unwrap(), 3);

    // The owner cancels the fourth.
    assert_eq!(
        app.press_on(user, fourth_msg.message_id, &buttons(&fourth_msg)[1])
            .await,
        "Cancelled."
    );
    wait_message(&app, user, |m| {
        m.message_id == fourth_msg.message_id
            && m.text == "✖ cancelled: “fourth” will not run on hello."
            && m.reply_markup.is_none()
    })
    .await;
    assert_eq!(
        app.press(user, &buttons(&fourth_msg)[1]).await,
        "That queued prompt already ran or was cancelled."
    );

    // Run now on the third: the first run is aborted.
    assert_eq!(
        app.press_on(user, third_msg.message_id, &run_now).await,
        "Stopping the current run; this prompt runs next."
    );
    match next_command(&app, &mut sub, &agent).await {
        CommandEvent::Abort(a) => assert_eq!(a.session_id, first.session_id),
        other => panic!("expected an abort, got {other:?}"),
    }
    end_run(&app, &agent, &first.session_id, DoneStatus::Aborted).await;
    let next = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(next.prompt, "third");
    end_run(&app, &agent, &next.session_id, DoneStatus::Ok).await;
    let last = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(last.prompt, "second");
    end_run(&app, &agent, &last.session_id, DoneStatus::Ok).await;
    // The cancelled prompt never ran.
    remoteagent_testkit::wait_for(TIMEOUT, || async {
        sessions::running_for_agent(&app.state.db, &agent)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(queue::count(&app.state.db, &agent).await.unwrap(), 0);
    app.finish().await;
}

/// Cancel under `/queue`'s list: the prompt leaves the queue, the list is
/// shown again without it, and the prompt's own message says it was
/// cancelled.
async fn cancel_from_the_list(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    app.say(user, "first").await;
    next_prompt(&app, &mut sub, &agent).await;
    app.say(user, "second").await;
    app.say(user, "third").await;
    let second_msg = queued_message(&app, user, "hello", "1st").await;
    queued_message(&app, user, "hello", "2nd").await;
    app.say(user, "/queue").await;
    let listing = wait_message(&app, user, |m| m.text.contains("run in this order")).await;
    let cancel_first = buttons(&listing)[0].clone();
    assert_eq!(
        app.press_on(user, listing.message_id, &cancel_first).await,
        "Cancelled."
    );
    wait_message(&app, user, |m| {
        m.message_id == listing.message_id
            && m.text == "⏳ hello has 1 prompt queued, run in this order when the current run ends:\n1. “third”"
    })
    .await;
    wait_message(&app, user, |m| {
        m.message_id == second_msg.message_id && m.text.starts_with("✖ cancelled: “second”")
    })
    .await;
    app.finish().await;
}

/// After a restart of the cloud the queue is still in the database, and
/// the housekeeping pass runs the next prompt of an idle agent; one whose
/// agent is offline is dropped, and the user told so, quoting it.
async fn housekeeping_runs_or_drops_a_waiting_queue(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "hello").await;
    // What a cloud that stopped mid-run left: prompts queued, no run.
    for (i, prompt) in ["left over one", "left over two"].iter().enumerate() {
        let pushed = queue::push(
            &app.state.db,
            &queue::new_id(),
            &agent,
            user,
            user,
            true,
            prompt,
            5,
        )
        .await
        .unwrap();
        assert_eq!(pushed, queue::Pushed::At(i + 1));
    }
    dequeue::sweep(&app.state).await.unwrap();
    let run = next_prompt(&app, &mut sub, &agent).await;
    assert_eq!(run.prompt, "left over one");
    // Busy now: another pass takes nothing.
    dequeue::sweep(&app.state).await.unwrap();
    assert_eq!(queue::count(&app.state.db, &agent).await.unwrap(), 1);

    // The agent goes offline before the run's end: the rest is dropped.
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    redis::cmd("DEL")
        .arg(names::presence_key(&agent))
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    end_run(&app, &agent, &run.session_id, DoneStatus::Ok).await;
    let told = wait_message(&app, user, |m| {
        m.text.contains("was dropped from the queue")
    })
    .await;
    assert_eq!(
        told.text,
        "⚪ hello was not available when your queued prompt's turn came (it is offline), so it \
was dropped from the queue. Send it again once hello is back: “left over two”"
    );
    assert_eq!(queue::count(&app.state.db, &agent).await.unwrap(), 0);
    app.finish().await;
}

/// A prompt with files does not wait: refused in words, files kept.
/// A prompt for an offline agent is refused as before, not queued.
async fn offline_is_refused_not_queued(backend: Backend) {
    let app = TestApp::start(backend).await;
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "hello").await;
    app.say(user, "anyone there?").await;
    wait_message(&app, user, |m| m.text.contains("hello is offline")).await;
    assert_eq!(
        queue::count(&app.state.db, &paired.agent_id).await.unwrap(),
        0
    );
    app.finish().await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    )*};
}

on_both!(
    prompts_wait_and_run_in_order,
    run_now_cancel_and_owner_only,
    cancel_from_the_list,
    housekeeping_runs_or_drops_a_waiting_queue,
    offline_is_refused_not_queued,
);

/// `QUEUE_MAX_PROMPTS`: 5 by default, 1 to 100, anything else refused
/// with the setting's name.
#[test]
fn the_queue_limit_is_a_checked_setting() {
    use remoteagent_cloud::Config;
    let base = [
        ("PUBLIC_URL", "https://ra.example/"),
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_WEBHOOK_SECRET", "s3cret-hook"),
        ("REMOTEAGENT_DATA_DIR", "/tmp/ra-test"),
    ];
    assert_eq!(Config::from_pairs(base).unwrap().queue_max_prompts, 5);
    let with = |v: &'static str| {
        let mut pairs = base.to_vec();
        pairs.push(("QUEUE_MAX_PROMPTS", v));
        Config::from_pairs(pairs)
    };
    assert_eq!(with("1").unwrap().queue_max_prompts, 1);
    for bad in ["0", "101", "five"] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains("QUEUE_MAX_PROMPTS"), "{bad}: {err}");
    }
}
