//! Claude's questions and plans as buttons, the whole way: Claude Code (a
//! fake that speaks its stream-json and runs its real PreToolUse hook,
//! `remoteagentd approval-hook`) calls `AskUserQuestion` or `ExitPlanMode`;
//! the phone shows the question with one button per option and ✎ other, or
//! the plan with ✅ Approve plan / ✎ Revise / ⛔ Reject; the answer travels
//! back through the signed envelope, the daemon and the hook, and the fake
//! prints what the hook returned (the `answers` of `updatedInput`).

use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(30);

/// A policy that allows every tool: questions and plans are still asked.
const ALLOW_ALL: &str = "[approval]\npolicy = \"allow\"\n";

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    /// The stack, with the fake Claude Code installed as `claude` and a
    /// project `app` paired with `--runner claude`.
    async fn start(config: &str) -> World {
        let stack = Stack::start_on(RedisServer::start().unwrap(), None, config)
            .await
            .unwrap();
        let fake_claude = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../remoteagentd/tests/fixtures/fake-claude/claude");
        stack.home.install_tool("claude", &fake_claude).unwrap();
        let w = World { stack };
        let project = w.home.project("app").unwrap();
        let (mut ctl, code) = w
            .home
            .start_pairing("pair-app", &project, &["--runner", "claude"])
            .await;
        w.cloud.say(OWNER, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        w
    }

    /// Waits for a message whose text satisfies `pred`.
    async fn wait_message(&self, what: &str, pred: impl Fn(&FakeMessage) -> bool) -> FakeMessage {
        let found = wait_for(WAIT, || {
            let hit = self.tg.messages(OWNER).into_iter().find(|m| pred(m));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message {what}; messages: {:#?}\n{}",
                self.tg.messages(OWNER),
                self.logs()
            )
        })
    }

    async fn wait_text(&self, what: &str, needle: &str) -> FakeMessage {
        self.wait_message(what, |m| m.text.contains(needle)).await
    }

    /// Presses the button of `message` whose text is `text`.
    async fn press(&self, message: &FakeMessage, text: &str) {
        let data = buttons(message)
            .into_iter()
            .find(|(t, _)| t == text)
            .unwrap_or_else(|| panic!("no button {text:?} on {message:#?}"))
            .1;
        assert!(data.len() <= 64, "{data}");
        let update = updates::callback(
            self.cloud.update_id(),
            OWNER,
            OWNER,
            message.message_id,
            &data,
        );
        self.cloud.deliver(&update).await;
    }

    /// The message `id` once `pred` holds for it.
    async fn wait_for_message(
        &self,
        id: i64,
        what: &str,
        pred: impl Fn(&FakeMessage) -> bool,
    ) -> FakeMessage {
        let found = wait_for(WAIT, || {
            let m = self.tg.message(OWNER, id).filter(|m| pred(m));
            async move { m }
        })
        .await;
        found
            .unwrap_or_else(|| panic!("{what}: {:#?}\n{}", self.tg.message(OWNER, id), self.logs()))
    }
}

/// (text, callback data) of every inline button of `message`.
fn buttons(message: &FakeMessage) -> Vec<(String, String)> {
    let Some(rows) = message
        .reply_markup
        .as_ref()
        .and_then(|k| k.get("inline_keyboard"))
        .and_then(|k| k.as_array())
    else {
        return Vec::new();
    };
    rows.iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| {
            Some((
                b.get("text")?.as_str()?.to_string(),
                b.get("callback_data")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn has_button(message: &FakeMessage, text: &str) -> bool {
    buttons(message).iter().any(|(t, _)| t == text)
}

const TWO_QUESTIONS: &str = r#"AskUserQuestion {"questions": [{"question": "Which colour?", "header": "Colour", "multiSelect": false, "options": [{"label": "Blue", "description": "cool"}, {"label": "Red", "description": "warm"}]}, {"question": "Which sizes?", "header": "Size", "multiSelect": true, "options": [{"label": "S"}, {"label": "M"}, {"label": "L"}]}]}"#;

/// An AskUserQuestion answer reaches the hook: under a policy that allows
/// every tool (the Bash use runs unasked), the two questions are still
/// asked, one message each: an option's button answers the first; the
/// second is multi-select (toggles, then ✔ Done). The fake prints the
/// `answers` the hook gave it in `updatedInput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_user_question_answer_reaches_the_hook() {
    let w = World::start(ALLOW_ALL).await;
    w.cloud
        .say(OWNER, &format!("Bash cargo test\n{TWO_QUESTIONS}"))
        .await;
    let first = w
        .wait_message("asking the first question", |m| {
            m.text.contains("Which colour?") && has_button(m, "2. Red")
        })
        .await;
    assert!(
        first.text.starts_with(
            "❓ app asks (1 of 2) · Colour:\nWhich colour?\n\n1. Blue — cool\n2. Red — warm"
        ),
        "{first:#?}"
    );
    assert!(has_button(&first, "✎ other"), "{first:#?}");
    // The policy let the tool run without asking.
    assert!(
        w.texts(OWNER).iter().any(|t| t.contains("ran: cargo test")),
        "{:#?}",
        w.texts(OWNER)
    );
    w.press(&first, "2. Red").await;
    w.wait_for_message(first.message_id, "the first answer shown", |m| {
        m.text.ends_with("✅ answered from the phone: Red") && m.reply_markup.is_none()
    })
    .await;

    let second = w
        .wait_message("asking the second question", |m| {
            m.text.contains("Which sizes?") && has_button(m, "☐ S")
        })
        .await;
    assert!(second.text.contains("(2 of 2)"), "{second:#?}");
    w.press(&second, "☐ S").await;
    let toggled = w
        .wait_for_message(second.message_id, "S selected", |m| has_button(m, "☑ S"))
        .await;
    w.press(&toggled, "☐ L").await;
    let toggled = w
        .wait_for_message(second.message_id, "S and L selected", |m| {
            has_button(m, "☑ S") && has_button(m, "☑ L") && has_button(m, "☐ M")
        })
        .await;
    w.press(&toggled, "✔ Done").await;
    w.wait_text(
        "with the answers Claude got",
        r#"answers: {"Which colour?": "Red", "Which sizes?": "S, L"}"#,
    )
    .await;
    w.wait_for_message(second.message_id, "the second answer shown", |m| {
        m.text.ends_with("✅ answered from the phone: S, L")
    })
    .await;
}

/// ✎ other: the user's next text message is the answer, not a prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_takes_the_next_message_as_the_answer() {
    let w = World::start("").await;
    w.cloud
        .say(
            OWNER,
            r#"AskUserQuestion {"questions": [{"question": "Which colour?", "header": "Colour", "multiSelect": false, "options": [{"label": "Blue", "description": "cool"}, {"label": "Red", "description": "warm"}]}]}"#,
        )
        .await;
    let question = w
        .wait_message("asking", |m| {
            m.text.contains("Which colour?") && has_button(m, "✎ other")
        })
        .await;
    w.press(&question, "✎ other").await;
    w.wait_text(
        "asking for the answer",
        "✎ Send your answer to app's question as your next message.",
    )
    .await;
    w.cloud.say(OWNER, "Green, <please>").await;
    w.wait_text(
        "with the typed answer",
        r#"answers: {"Which colour?": "Green, <please>"}"#,
    )
    .await;
    w.wait_text("confirming", "✎ Sent to app.").await;
    w.wait_for_message(question.message_id, "the answer shown", |m| {
        m.text
            .ends_with("✅ answered from the phone: Green, <please>")
            && m.reply_markup.is_none()
    })
    .await;
    // It was not taken as a prompt: nothing said the agent was busy.
    assert!(
        !w.texts(OWNER)
            .iter()
            .any(|t| t.to_lowercase().contains("busy")),
        "{:#?}",
        w.texts(OWNER)
    );
}

/// ExitPlanMode: ✎ Revise sends the next message back as feedback (Claude
/// is denied with it and presents a revised plan), ✅ Approve plan allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_revised_then_approved() {
    let w = World::start(ALLOW_ALL).await;
    w.cloud
        .say(OWNER, r"ExitPlanMode 1. read <main.rs>\n2. fix the bug")
        .await;
    let plan = w
        .wait_message("showing the plan", |m| {
            m.text.starts_with("📋 app has a plan:") && has_button(m, "✅ Approve plan")
        })
        .await;
    assert!(
        plan.text.contains("1. read <main.rs>\n2. fix the bug"),
        "{plan:#?}"
    );
    assert!(has_button(&plan, "⛔ Reject"), "{plan:#?}");
    w.press(&plan, "✎ Revise").await;
    w.wait_text(
        "asking for changes",
        "✎ Send what app should change in the plan",
    )
    .await;
    w.cloud.say(OWNER, "add a test first").await;
    w.wait_text(
        "with Claude told to revise",
        "revising: The user wants the plan revised: add a test first",
    )
    .await;
    w.wait_for_message(plan.message_id, "the revision shown", |m| {
        m.text
            .ends_with("✎ revision asked from the phone: add a test first")
            && m.reply_markup.is_none()
    })
    .await;
    let revised = w
        .wait_message("showing the revised plan", |m| {
            m.text.contains("(revised) 1. read") && has_button(m, "✅ Approve plan")
        })
        .await;
    w.press(&revised, "✅ Approve plan").await;
    w.wait_text(
        "with the plan carried out",
        "plan approved, carrying it out",
    )
    .await;
    w.wait_for_message(revised.message_id, "the approval shown", |m| {
        m.text.ends_with("✅ plan approved from the phone")
    })
    .await;
}

/// A question answered from the computer: `approve ID` alone is refused
/// with the way to answer, `approve ID --answer TEXT` answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_answered_from_the_computer() {
    let w = World::start("").await;
    w.cloud
        .say(
            OWNER,
            r#"AskUserQuestion {"questions": [{"question": "Deploy where?", "header": "Target", "multiSelect": false, "options": [{"label": "staging"}, {"label": "prod"}]}]}"#,
        )
        .await;
    let question = w
        .wait_message("asking", |m| {
            m.text.contains("Deploy where?") && has_button(m, "1. staging")
        })
        .await;
    let listed = tokio::task::block_in_place(|| w.home.ctl(&["approvals", "--json"]).unwrap());
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["tool"], "AskUserQuestion", "{listed}");
    assert_eq!(
        listed[0]["summary"], "Deploy where?\n1. staging\n2. prod",
        "{listed}"
    );
    let id = listed[0]["request_id"].as_str().unwrap().to_string();
    let refused = tokio::task::block_in_place(|| w.home.ctl(&["approve", &id]).unwrap());
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!("approve {id} --answer TEXT")),
        "{said}"
    );
    let answered = tokio::task::block_in_place(|| {
        w.home
            .ctl(&["approve", &id, "--answer", "staging"])
            .unwrap()
    });
    assert!(answered.status.success(), "{answered:?}");
    assert!(
        String::from_utf8_lossy(&answered.stdout).starts_with("Answered request"),
        "{answered:?}"
    );
    w.wait_text(
        "with the answer",
        r#"answers: {"Deploy where?": "staging"}"#,
    )
    .await;
    w.wait_for_message(question.message_id, "the answer shown", |m| {
        m.text.ends_with("✅ answered from your computer: staging") && m.reply_markup.is_none()
    })
    .await;
}
