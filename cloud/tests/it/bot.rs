//! The bot's prompt path and commands, observed on Redis (the signed
//! envelopes a daemon would receive) and in the fake Telegram.

use crate::support;

use redis::aio::PubSub;
use remoteagent_cloud::db::sessions;
use remoteagent_proto::events::{
    ApprovalPayload, ApprovalRequestPayload, ApprovalResolvedPayload, ChunkPayload, CommandEvent,
    DonePayload, DoneStatus, MAX_PROMPT_BYTES, OutputEvent, StreamKind,
};
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::{AgentId, SessionId, envelope, names};
use remoteagent_testkit::telegram::FakeMessage;
use support::{TIMEOUT, TestApp, next_message, user_id};

/// The next envelope on `sub`, verified as the daemon verifies it.
async fn next_command(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandEvent {
    let token = next_message(sub).await;
    let claims = envelope::verify(&app.state.key.public_key(), agent, &token).unwrap();
    assert!(claims.exp - claims.iat <= envelope::MAX_LIFETIME_SECS);
    claims.command
}

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

async fn a_prompt_becomes_a_signed_command_and_a_forwarded_session(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "proj").await;
    app.say(user, "fix the <failing> tests & more").await;
    let CommandEvent::Command(cmd) = next_command(app, &mut sub, &agent).await else {
        panic!("expected a command");
    };
    assert_eq!(cmd.prompt, "fix the <failing> tests & more");
    assert!(cmd.r#continue);
    let row = sessions::get(&app.state.db, &cmd.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "running");
    assert_eq!(row.agent_id.as_str(), agent.as_str());
    app.expect_message(user, "proj is working").await;

    // The daemon's output reaches the chat and the end is recorded.
    xadd(
        app,
        &agent,
        &cmd.session_id,
        &OutputEvent::Chunk(ChunkPayload {
            seq: 0,
            stream: StreamKind::Stdout,
            text: "all green\n".into(),
        }),
    )
    .await;
    xadd(
        app,
        &agent,
        &cmd.session_id,
        &OutputEvent::Done(DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 1200,
            message: None,
            chunks: 1,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        }),
    )
    .await;
    app.expect_message(user, "all green").await;
    let finished = remoteagent_testkit::wait_for(TIMEOUT, || async {
        let row = sessions::get(&app.state.db, &cmd.session_id)
            .await
            .unwrap()?;
        (row.status != "running").then_some(row)
    })
    .await
    .expect("the session was not recorded as finished");
    assert_eq!(finished.status, "ok");
    assert_eq!(finished.exit_code, Some(0));

    // /new: the next prompt does not continue the conversation, the one
    // after it does again.
    app.say(user, "/new").await;
    app.expect_message(user, "Your next prompt to proj starts a new session.")
        .await;
    app.say(user, "start over").await;
    let CommandEvent::Command(fresh) = next_command(app, &mut sub, &agent).await else {
        panic!("expected a command");
    };
    assert_eq!(fresh.prompt, "start over");
    assert!(!fresh.r#continue);
    // /stop aborts the running session.
    app.say(user, "/stop").await;
    assert_eq!(
        next_command(app, &mut sub, &agent).await,
        CommandEvent::Abort(remoteagent_proto::events::AbortPayload {
            session_id: fresh.session_id.clone()
        })
    );
    app.expect_message(user, "Stopping proj").await;
    // So does the Stop button, but only for the owner.
    let intruder = user_id();
    let answer = app
        .press(intruder, &format!("stop:{}", fresh.session_id))
        .await;
    assert!(answer.contains("Only the account"), "{answer}");
    let answer = app.press(user, &format!("stop:{}", fresh.session_id)).await;
    assert_eq!(answer, "Stopping…");
    assert!(matches!(
        next_command(app, &mut sub, &agent).await,
        CommandEvent::Abort(_)
    ));
}

async fn strangers_cannot_command_an_agent(app: &TestApp) {
    let owner = user_id();
    let (agent, mut sub) = app.online_agent(owner, "mine").await;

    let stranger = user_id();
    app.say(stranger, "rm -rf ~").await;
    app.expect_message(stranger, "no paired agents").await;
    let answer = app.press(stranger, &format!("use:{agent}")).await;
    assert!(answer.contains("Only the account"), "{answer}");
    app.say(stranger, "rm -rf ~ please").await;
    let found = app.wait_count(stranger, "no paired agents", 2).await;
    assert!(found);
    app.say(stranger, "/stop").await;
    app.say(stranger, "/unpair mine").await;
    app.expect_message(stranger, "no agent named").await;

    // The first command the agent ever receives is its owner's.
    app.say(owner, "hello").await;
    let token = next_message(&mut sub).await;
    let claims = envelope::verify(&app.state.key.public_key(), &agent, &token).unwrap();
    let CommandEvent::Command(cmd) = claims.command else {
        panic!("expected a command");
    };
    assert_eq!(cmd.prompt, "hello");
}

async fn an_offline_agent_is_reported_at_once(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "sleepy").await;
    let agent = paired.agent_id;
    let mut sub = app.agent_subscriber(&agent).await;
    // No presence key: refused before anything is published.
    app.say(user, "are you there?").await;
    app.expect_message(user, "sleepy is offline").await;

    // A presence key but no subscriber (the daemon died a moment ago): the
    // session is closed as rejected.
    drop(sub);
    app.set_presence(&agent).await;
    app.say(user, "and now?").await;
    app.expect_message(user, "rejected: agent is offline").await;
    let found = app.wait_count(user, "sleepy is offline", 2).await;
    assert!(found);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("remoteagent_offline_answers_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("remoteagent_prompts_published_total 0"),
        "{metrics}"
    );
    let rejected = remoteagent_testkit::wait_for(TIMEOUT, || async {
        let text = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("remoteagent_sessions{status=\"rejected\"} 1")
            .then_some(())
    })
    .await;
    assert!(rejected.is_some());

    sub = app.agent_subscriber(&agent).await;
    app.say(user, "third try").await;
    let token = next_message(&mut sub).await;
    let claims = envelope::verify(&app.state.key.public_key(), &agent, &token).unwrap();
    assert!(matches!(claims.command, CommandEvent::Command(c) if c.prompt == "third try"));
}

async fn an_oversized_prompt_is_refused(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "big").await;
    app.set_presence(&paired.agent_id).await;
    let mut sub = app.agent_subscriber(&paired.agent_id).await;
    app.say(user, &"x".repeat(MAX_PROMPT_BYTES + 1)).await;
    app.expect_message(user, "prompt is too long").await;
    app.say(user, "small").await;
    let token = next_message(&mut sub).await;
    let claims = envelope::verify(&app.state.key.public_key(), &paired.agent_id, &token).unwrap();
    assert!(matches!(claims.command, CommandEvent::Command(c) if c.prompt == "small"));
}

async fn agents_use_and_status(app: &TestApp) {
    let user = user_id();
    let (_, a) = app.pair_agent(user, "alpha").await;
    let (_, b) = app.pair_agent(user, "beta").await;
    app.set_presence(&a.agent_id).await;
    app.say(user, "/agents").await;
    let text = app.expect_message(user, "Your agents").await;
    assert!(text.contains("🟢 alpha"), "{text}");
    assert!(text.contains("⚪ beta on devbox ← current"), "{text}");
    let listing = app
        .tg
        .messages(user)
        .into_iter()
        .find(|m| m.text.contains("Your agents"))
        .unwrap();
    let markup = listing.reply_markup.unwrap().to_string();
    assert!(markup.contains(&format!("use:{}", a.agent_id)), "{markup}");

    let answer = app.press(user, &format!("use:{}", a.agent_id)).await;
    assert_eq!(answer, "Now using alpha");
    app.say(user, "/status").await;
    let status = app.expect_message(user, "Current agent").await;
    assert!(status.contains("alpha on devbox — 🟢 online"), "{status}");
    assert!(status.contains("Trial"), "{status}");
    app.say(user, "/use BETA").await;
    app.expect_message(user, "Now talking to beta").await;
    app.say(user, "/use gamma").await;
    app.expect_message(user, "no agent named gamma").await;
    // A name as long as a Telegram message: the reply must still fit in one.
    let long = "x".repeat(4090);
    app.say(user, &format!("/use {long}")).await;
    app.say(user, &format!("/unpair {long}")).await;
    let shown = format!("no agent named {}…", "x".repeat(40));
    assert!(
        app.tg
            .wait_for_messages(
                user,
                |m| m.iter().filter(|m| m.text.contains(&shown)).count() == 2,
                TIMEOUT
            )
            .await,
        "{:#?}",
        app.tg
            .calls_of("sendMessage")
            .iter()
            .filter(|c| !c.ok())
            .collect::<Vec<_>>()
    );
    app.say(user, "/frobnicate").await;
    app.expect_message(user, "Unknown command").await;
    let _ = b;
}

both_backends!(
    a_prompt_becomes_a_signed_command_and_a_forwarded_session,
    strangers_cannot_command_an_agent,
    an_offline_agent_is_reported_at_once,
    an_oversized_prompt_is_refused,
    agents_use_and_status,
);

async fn commands_for_another_bot_are_ignored(app: &TestApp) {
    let user = user_id();
    app.say(user, "/help@some_other_bot").await;
    app.say(user, "/help@RemoteAgent_Test_Bot").await;
    app.expect_message(user, "/unpair").await;
    assert_eq!(app.count_messages(user, "/unpair"), 1);
    assert_eq!(app.tg.calls_of("sendMessage").len(), 1);
}

both_backends!(commands_for_another_bot_are_ignored);

async fn approval_buttons_publish_the_owners_answer(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "careful").await;
    app.say(user, "delete the build dir").await;
    let CommandEvent::Command(cmd) = next_command(app, &mut sub, &agent).await else {
        panic!("expected a command");
    };
    xadd(
        app,
        &agent,
        &cmd.session_id,
        &approval_request("req-1", "rm -rf build"),
    )
    .await;
    wait_message(app, user, |m| m.text.contains("rm -rf build")).await;
    let stranger = user_id();
    let answer = app
        .press(stranger, &format!("approve:{}:req-1", cmd.session_id))
        .await;
    assert!(answer.contains("Only the account"), "{answer}");
    // A well-formed request id the agent never asked about is not
    // "Approved.": nothing is published and the owner is told so.
    let answer = app
        .press(user, &format!("approve:{}:req-404", cmd.session_id))
        .await;
    assert_eq!(answer, "That request is unknown or was already answered.");
    let answer = app
        .press(user, &format!("deny:{}:req-1", cmd.session_id))
        .await;
    assert_eq!(answer, "Denied.");
    // The stranger's and the unknown request's presses published nothing:
    // the first event is the denial.
    match next_command(app, &mut sub, &agent).await {
        CommandEvent::Approval(a) => {
            assert_eq!(a.session_id, cmd.session_id);
            assert_eq!(a.request_id, "req-1");
            assert!(!a.allow);
        }
        other => panic!("expected an approval, got {other:?}"),
    }
    let answer = app.press(user, "bogus:data").await;
    assert!(answer.contains("no longer supported"), "{answer}");
}

both_backends!(approval_buttons_publish_the_owners_answer);

/// Buttons of a session the cloud has no record of (another deployment's,
/// a wiped database, or forged) say the session ended, to the owner and to
/// anyone else alike, rather than refusing the owner as a stranger.
async fn buttons_of_a_vanished_session_say_it_ended(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "gone").await;
    app.set_presence(&paired.agent_id).await;
    let mut sub = app.agent_subscriber(&paired.agent_id).await;
    let vanished = SessionId::generate();
    for data in [
        format!("stop:{vanished}"),
        format!("approve:{vanished}:req-1"),
        format!("deny:{vanished}:req-1"),
    ] {
        assert_eq!(
            app.press(user, &data).await,
            "This run has ended.",
            "{data}"
        );
        assert_eq!(
            app.press(user_id(), &data).await,
            "This run has ended.",
            "{data}"
        );
    }
    // Nothing was published: the next envelope is the next prompt.
    app.say(user, "still here?").await;
    let CommandEvent::Command(cmd) = next_command(app, &mut sub, &paired.agent_id).await else {
        panic!("expected a command");
    };
    assert_eq!(cmd.prompt, "still here?");
}

both_backends!(buttons_of_a_vanished_session_say_it_ended);

fn approval_request(request_id: &str, summary: &str) -> OutputEvent {
    OutputEvent::ApprovalRequest(ApprovalRequestPayload {
        request_id: request_id.into(),
        tool: "Bash".into(),
        summary: summary.into(),
        timeout_secs: 300,
        kind: None,
        ..Default::default()
    })
}

/// Waits for the bot's message in `chat` that satisfies `pred`.
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
    app.tg.messages(chat).into_iter().find(|m| pred(m)).unwrap()
}

fn callback_data(m: &FakeMessage) -> Vec<String> {
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

async fn an_approval_is_answered_with_its_buttons(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "careful").await;
    let agent = paired.agent_id.clone();
    // The daemon verifies envelopes with the key it pinned at pairing.
    let pinned = CloudPublicKey::from_base64(&paired.cloud_public_key).unwrap();
    app.set_presence(&agent).await;
    let mut sub = app.agent_subscriber(&agent).await;
    app.say(user, "clean the build").await;
    let CommandEvent::Command(cmd) = next_command(app, &mut sub, &agent).await else {
        panic!("expected a command");
    };
    let sid = cmd.session_id.clone();

    xadd(
        app,
        &agent,
        &sid,
        &approval_request("req-1", "rm -rf target"),
    )
    .await;
    let request = wait_message(app, user, |m| m.text.contains("rm -rf target")).await;
    let (approve, deny) = (format!("approve:{sid}:req-1"), format!("deny:{sid}:req-1"));
    assert_eq!(
        callback_data(&request),
        vec![approve.clone(), deny.clone(), format!("stop:{sid}")]
    );

    // A stranger is refused and changes nothing.
    let stranger = user_id();
    let answer = app.press_on(stranger, request.message_id, &approve).await;
    assert!(answer.contains("Only the account"), "{answer}");
    assert_eq!(app.tg.message(user, request.message_id).unwrap(), request);

    // The owner approves: a signed envelope (the first one since the
    // command, so the stranger published nothing), and the buttons go.
    let answer = app.press_on(user, request.message_id, &approve).await;
    assert_eq!(answer, "Approved.");
    let token = next_message(&mut sub).await;
    let claims = envelope::verify(&pinned, &agent, &token).unwrap();
    assert_eq!(
        claims.command,
        CommandEvent::Approval(ApprovalPayload {
            session_id: sid.clone(),
            request_id: "req-1".into(),
            allow: true,
            answer: None,
            scope: None,
        })
    );
    let id = request.message_id;
    let pending = wait_message(app, user, |m| {
        m.message_id == id && m.text.ends_with("\n⏳ approved, telling the agent…")
    })
    .await;
    assert_eq!(pending.reply_markup, None);
    assert!(pending.text.starts_with(&request.text));

    // The daemon's verdict replaces the "⏳" line.
    xadd(
        app,
        &agent,
        &sid,
        &OutputEvent::ApprovalResolved(ApprovalResolvedPayload {
            request_id: "req-1".into(),
            allow: true,
            reason: "approved".into(),
        }),
    )
    .await;
    let resolved = wait_message(app, user, |m| {
        m.message_id == id && m.text.ends_with("\n✅ approved")
    })
    .await;
    assert_eq!(resolved.text, format!("{}\n✅ approved", request.text));
    assert_eq!(resolved.reply_markup, None);

    // A late second press (a client that still shows the buttons) is not
    // published: the next envelope is the answer to the next request.
    let answer = app.press_on(user, id, &deny).await;
    assert_eq!(answer, "That request is unknown or was already answered.");
    xadd(app, &agent, &sid, &approval_request("req-2", "git push")).await;
    let second = wait_message(app, user, |m| m.text.contains("git push")).await;
    let answer = app
        .press_on(user, second.message_id, &format!("deny:{sid}:req-2"))
        .await;
    assert_eq!(answer, "Denied.");
    let claims = envelope::verify(&pinned, &agent, &next_message(&mut sub).await).unwrap();
    assert!(
        matches!(&claims.command, CommandEvent::Approval(a) if a.request_id == "req-2" && !a.allow),
        "{:?}",
        claims.command
    );
    let second_id = second.message_id;
    wait_message(app, user, |m| {
        m.message_id == second_id && m.text.ends_with("\n⏳ denied, telling the agent…")
    })
    .await;

    // With the agent offline the press reaches nobody: the user is told,
    // and the buttons stay for another try.
    drop(sub);
    xadd(app, &agent, &sid, &approval_request("req-3", "make deploy")).await;
    let third = wait_message(app, user, |m| m.text.contains("make deploy")).await;
    let answer = app
        .press_on(user, third.message_id, &format!("approve:{sid}:req-3"))
        .await;
    assert_eq!(answer, "careful is offline.");
    assert_eq!(app.tg.message(user, third.message_id).unwrap(), third);
    assert_eq!(callback_data(&third).len(), 3);
}

both_backends!(an_approval_is_answered_with_its_buttons);

/// The webhook answers at once and handles updates in the background; a
/// user's updates must still be handled in order, or a prompt typed right
/// after `/use alpha` could run in the previous project.
///
/// The user's row is held locked by a transaction of the test while `/use
/// alpha` and a prompt arrive, so `/use` cannot finish its write; a prompt
/// handled beside it (not behind it) would read the old current agent, beta.
/// Then rounds of `/use X` + prompt back to back.
async fn a_users_updates_are_handled_in_order(app: &TestApp) {
    let user = user_id();
    let (_, a) = app.pair_agent(user, "alpha").await;
    let (_, b) = app.pair_agent(user, "beta").await;
    app.set_presence(&a.agent_id).await;
    app.set_presence(&b.agent_id).await;
    let mut sub_a = app.agent_subscriber(&a.agent_id).await;
    let mut sub_b = app.agent_subscriber(&b.agent_id).await;

    let mut tx = app.state.db.pool.begin().await.unwrap();
    sqlx::query("UPDATE users SET plan = plan WHERE telegram_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .unwrap();
    app.say(user, "/use alpha").await;
    app.say(user, "while locked, for alpha").await;
    // The prompt waits in the user's lane while `/use` is stuck on the
    // lock: it is not handled beside it. (Waited for, as `/use` may not
    // have been taken from the queue yet.)
    let queued = remoteagent_testkit::wait_for(TIMEOUT, || async {
        (app.state.lanes.waiting(user) == 1).then_some(())
    })
    .await;
    assert!(
        queued.is_some(),
        "the prompt is not waiting behind /use ({} waiting)",
        app.state.lanes.waiting(user)
    );
    tx.commit().await.unwrap();
    let CommandEvent::Command(cmd) = next_command(app, &mut sub_a, &a.agent_id).await else {
        panic!("expected a command for alpha");
    };
    assert_eq!(cmd.prompt, "while locked, for alpha");
    // Each run ends (as its daemon would) before the next prompt, which
    // would otherwise wait in the queue.
    app.end_run(&a.agent_id, &cmd.session_id).await;

    for round in 0..6 {
        for (name, agent, sub) in [
            ("alpha", &a.agent_id, &mut sub_a),
            ("beta", &b.agent_id, &mut sub_b),
        ] {
            app.say(user, &format!("/use {name}")).await;
            app.say(user, &format!("round {round} for {name}")).await;
            let CommandEvent::Command(cmd) = next_command(app, sub, agent).await else {
                panic!("expected a command for {name}");
            };
            assert_eq!(cmd.prompt, format!("round {round} for {name}"));
            app.end_run(agent, &cmd.session_id).await;
        }
    }
}

both_backends!(a_users_updates_are_handled_in_order);
