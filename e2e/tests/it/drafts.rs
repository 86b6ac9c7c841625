//! Live drafts end to end (`STREAM_MODE=draft`): the real cloud and daemon,
//! a real runner streaming a few lines apart, real Redis and the strict
//! fake Bot API. In a private chat the run streams through drafts and the
//! messages left in the chat are the output exactly (persisted by
//! `sendMessage`, never edited); in a group, where Telegram allows no
//! draft, the run's page is edited as in `STREAM_MODE=edit`, complete.

use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{BOT_USERNAME, FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 6006;
const GROUP: i64 = -1_006_000_000_001;
const WAIT: Duration = Duration::from_secs(30);

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start() -> World {
        let stack = Stack::start_with_cloud_env(
            RedisServer::start().unwrap(),
            None,
            "",
            &[("STREAM_MODE", "draft")],
        )
        .await
        .unwrap();
        World { stack }
    }

    /// Waits for a message of `chat` that `pred` accepts.
    async fn wait_message(
        &self,
        chat: i64,
        what: &str,
        pred: impl Fn(&FakeMessage) -> bool,
    ) -> FakeMessage {
        let found = wait_for(WAIT, || {
            let hit = self.tg.messages(chat).into_iter().find(|m| pred(m));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message {what} in chat {chat}; messages: {:#?}\n{}",
                self.texts(chat),
                self.logs()
            )
        })
    }
}

/// What `numbered.sh` prints for `count` lines.
fn numbered(count: u32) -> String {
    (1..=count)
        .map(|i| format!("L{i:07} the quick <brown> fox & é✓"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `answer.sh` prints for `prompt`.
fn expected_answer(prompt: &str) -> String {
    format!(
        "Looking at the project for: {prompt}\nFound 3 files.\nPlan:\n  1. read <main.rs> & tests\n  2. fix — done ✓\nFinished."
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_private_chat_a_run_streams_through_drafts_and_persists_the_output_exactly() {
    let w = World::start().await;
    // 40 lines, 10 a second: the run streams for 4 s.
    w.pair_project(OWNER, "webapp", "numbered.sh", WAIT).await;
    w.cloud.say(OWNER, "40 10").await;
    let ping = w
        .wait_message(OWNER, "with the ping", |m| {
            m.text.starts_with("✅ webapp finished in")
        })
        .await;
    // The output is one message, the output exactly and the status,
    // persisted once by sendMessage: never edited, without a button.
    let output_id = ping.reply_to.expect("the ping replies to the output");
    let output = w.tg.message(OWNER, output_id).expect("the output message");
    let (body, status) = output.text.rsplit_once("\n\n").expect("a status line");
    assert_eq!(body, numbered(40));
    assert!(status.starts_with("✅ done in"), "{status:?}");
    assert_eq!(output.edits, 0, "{output:#?}");
    assert_eq!(output.reply_markup, None);
    // The control message with the Stop button is gone.
    assert!(
        !w.texts(OWNER).iter().any(|t| t.contains("is working")),
        "{:#?}",
        w.texts(OWNER)
    );
    // While it ran, drafts showed it: growing pieces of the output, of
    // one page (one draft id), the last one all of it.
    let drafts = w.tg.drafts(OWNER);
    assert!(drafts.len() >= 2, "{drafts:#?}\n{}", w.logs());
    assert!(drafts.iter().all(|d| d.draft_id == drafts[0].draft_id));
    for d in &drafts {
        assert!(numbered(40).starts_with(&d.text), "{d:#?}");
    }
    // Each draft came before the message that persisted the page.
    let persisted =
        w.tg.calls_of("sendMessage")
            .into_iter()
            .find(|c| c.ok() && c.response["result"]["message_id"] == output_id)
            .expect("the sendMessage of the output");
    assert!(drafts.iter().all(|d| d.at <= persisted.at));
    assert!(
        w.tg.refused_calls().is_empty(),
        "{:#?}",
        w.tg.refused_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_fall_back_to_edits_in_a_group() {
    let w = World::start().await;
    w.pair_project(OWNER, "webapp", "answer.sh", WAIT).await;
    let group = |text: &str| updates::group_text(w.cloud.update_id(), OWNER, GROUP, text);
    w.cloud.deliver(&group("/allowgroup")).await;
    w.wait_message(GROUP, "opting the group in", |m| {
        m.text.contains("This group is opted in for webapp")
    })
    .await;
    w.cloud
        .deliver(&group(&format!("@{BOT_USERNAME} group prompt")))
        .await;
    let ping = w
        .wait_message(GROUP, "with the ping", |m| {
            m.text.starts_with("✅ webapp finished in")
        })
        .await;
    let output_id = ping.reply_to.expect("the ping replies to the output");
    let output = w.tg.message(GROUP, output_id).expect("the output message");
    let (body, status) = output.text.rsplit_once("\n\n").expect("a status line");
    assert_eq!(body, expected_answer("group prompt"));
    assert!(status.starts_with("✅ done in"), "{status:?}");
    // The placeholder was edited into the output, as with STREAM_MODE=edit.
    assert!(output.edits > 0, "{output:#?}");
    assert_eq!(output.reply_markup, None);
    let group_drafts: Vec<_> =
        w.tg.calls_of("sendMessageDraft")
            .into_iter()
            .filter(|c| c.chat_id() == Some(GROUP))
            .collect();
    assert!(group_drafts.is_empty(), "{group_drafts:#?}");
    assert!(w.tg.drafts(GROUP).is_empty());
}
