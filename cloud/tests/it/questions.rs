//! Claude's questions and plans as buttons, in the cloud: how the
//! forwarder shows them (every button's data within Telegram's 64 bytes,
//! which the strict fake enforces) and what a press or the text after ✎
//! publishes to the agent.

use crate::support;

use redis::aio::PubSub;
use remoteagent_proto::events::{
    ApprovalPayload, ApprovalRequestPayload, CommandEvent, OutputEvent,
};
use remoteagent_proto::questions::{AskKind, PlanAsk, QuestionAsk, QuestionOption};
use remoteagent_proto::{AgentId, SessionId, envelope};
use remoteagent_testkit::telegram::FakeMessage;
use support::{TIMEOUT, TestApp, next_message, user_id};

async fn next_command(app: &TestApp, sub: &mut PubSub, agent: &AgentId) -> CommandEvent {
    let token = next_message(sub).await;
    envelope::verify(&app.state.key.public_key(), agent, &token)
        .unwrap()
        .command
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
    app.tg.messages(chat).into_iter().find(|m| pred(m)).unwrap()
}

fn buttons(m: &FakeMessage) -> Vec<(String, String)> {
    m.reply_markup
        .as_ref()
        .map(|k| {
            k["inline_keyboard"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap().iter())
                .map(|b| {
                    (
                        b["text"].as_str().unwrap().to_string(),
                        b["callback_data"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn request(id: &str, kind: AskKind) -> OutputEvent {
    OutputEvent::ApprovalRequest(ApprovalRequestPayload {
        request_id: id.into(),
        tool: "AskUserQuestion".into(),
        summary: "s".into(),
        timeout_secs: 300,
        kind: Some(kind),
        ..Default::default()
    })
}

fn answer(sid: &SessionId, rid: &str, allow: bool, text: Option<&str>) -> CommandEvent {
    CommandEvent::Approval(ApprovalPayload {
        session_id: sid.clone(),
        request_id: rid.into(),
        allow,
        answer: text.map(str::to_string),
        scope: None,
    })
}

async fn questions_and_plans_are_answered_with_buttons(app: &TestApp) {
    let user = user_id();
    let (agent, mut sub) = app.online_agent(user, "careful").await;
    app.say(user, "set it up").await;
    let CommandEvent::Command(cmd) = next_command(app, &mut sub, &agent).await else {
        panic!("expected a command");
    };
    let sid = cmd.session_id.clone();

    // A question: one button per option (indexes, never labels), ✎ other,
    // Stop; the longest request id still fits 64 bytes.
    let rid = "Q".repeat(remoteagent_proto::events::MAX_REQUEST_ID_LEN);
    let question = QuestionAsk {
        question: "Which <db>?".into(),
        header: "Storage".into(),
        options: vec![
            QuestionOption {
                label: "SQLite".into(),
                description: "one file".into(),
            },
            QuestionOption {
                label: "PostgreSQL & co".into(),
                description: String::new(),
            },
        ],
        multi_select: false,
        index: 1,
        count: 1,
    };
    app.xadd(&agent, &sid, &request(&rid, AskKind::Question(question)))
        .await;
    let shown = wait_message(app, user, |m| m.text.contains("Which <db>?")).await;
    assert!(
        shown.text.starts_with(
            "❓ careful asks · Storage:\nWhich <db>?\n\n1. SQLite — one file\n2. PostgreSQL & co\n"
        ),
        "{shown:#?}"
    );
    let b = buttons(&shown);
    let data = |choice: &str| format!("ans:{sid}:{rid}:{choice}");
    assert_eq!(
        b,
        vec![
            ("1. SQLite".to_string(), data("o0")),
            ("2. PostgreSQL & co".to_string(), data("o1")),
            ("✎ other".to_string(), data("ot")),
            ("⏹ Stop".to_string(), format!("stop:{sid}")),
        ]
    );
    assert!(b.iter().all(|(_, d)| d.len() <= 64));

    // A stranger, and a forged option index, publish nothing.
    let said = app.press_on(user_id(), shown.message_id, &data("o1")).await;
    assert!(said.contains("Only the account"), "{said}");
    let said = app.press_on(user, shown.message_id, &data("o7")).await;
    assert_eq!(said, "This button is malformed.");
    // The owner's press sends the label of the option.
    let said = app.press_on(user, shown.message_id, &data("o1")).await;
    assert_eq!(said, "Sent.");
    assert_eq!(
        next_command(app, &mut sub, &agent).await,
        answer(&sid, &rid, true, Some("PostgreSQL & co"))
    );
    let id = shown.message_id;
    let pending = wait_message(app, user, |m| {
        m.message_id == id
            && m.text
                .ends_with("⏳ answer \"PostgreSQL & co\", telling the agent…")
    })
    .await;
    assert_eq!(pending.reply_markup, None);

    // A plan: ✎ Revise, then the next text is the feedback (a denial).
    let plan = PlanAsk {
        plan: "1. add <tests>\n2. ship".into(),
        cut_chars: 0,
    };
    app.xadd(&agent, &sid, &request("p1", AskKind::Plan(plan)))
        .await;
    let shown = wait_message(app, user, |m| m.text.starts_with("📋 careful has a plan:")).await;
    assert!(shown.text.contains("1. add <tests>\n2. ship"), "{shown:#?}");
    let texts: Vec<String> = buttons(&shown).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        texts,
        ["✅ Approve plan", "✎ Revise", "⛔ Reject", "⏹ Stop"]
    );
    let said = app
        .press_on(user, shown.message_id, &format!("ans:{sid}:p1:pr"))
        .await;
    assert_eq!(said, "Send your changes as a message.");
    wait_message(app, user, |m| {
        m.text == "✎ Send what careful should change in the plan as your next message."
    })
    .await;
    app.say(user, "smaller steps").await;
    assert_eq!(
        next_command(app, &mut sub, &agent).await,
        answer(&sid, "p1", false, Some("smaller steps"))
    );
    wait_message(app, user, |m| m.text == "✎ Sent to careful.").await;
    // The next text is a prompt again (once the run ended, so that it is
    // not queued).
    app.end_run(&agent, &sid).await;
    app.say(user, "and then?").await;
    let CommandEvent::Command(next) = next_command(app, &mut sub, &agent).await else {
        panic!("expected a command");
    };
    assert_eq!(next.prompt, "and then?");
}

both_backends!(questions_and_plans_are_answered_with_buttons);
