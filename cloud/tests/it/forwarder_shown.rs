//! What an approval request shows (issue 17, part 4): ⚠️ and the reason of
//! a dangerous use, a command's folder, an edit's diff in the message, and
//! a diff too long for it sent whole as a file just above. Real Redis, the
//! strict fake Telegram (its entity and length rules apply to every send).

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use remoteagent_cloud::telegram::MAX_MESSAGE_CHARS;
use remoteagent_proto::events::{ApprovalRequestPayload, DoneStatus, OutputEvent};
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram};

const FAST: Duration = Duration::from_millis(100);

fn url() -> String {
    remoteagent_testkit::redis_url()
}

fn request(id: &str, tool: &str, summary: &str) -> ApprovalRequestPayload {
    ApprovalRequestPayload {
        request_id: id.into(),
        tool: tool.into(),
        summary: summary.into(),
        timeout_secs: 300,
        ..Default::default()
    }
}

/// The message of request `needle` (a text it contains), waited for.
async fn request_message(tg: &FakeTelegram, chat: i64, needle: &str) -> FakeMessage {
    let found = tg
        .wait_for_messages(
            chat,
            &|m: &[FakeMessage]| m.iter().any(|m| m.text.contains(needle)),
            TIMEOUT,
        )
        .await;
    assert!(found, "{:#?}", tg.messages(chat));
    tg.messages(chat)
        .into_iter()
        .find(|m| m.text.contains(needle))
        .unwrap()
}

#[tokio::test]
async fn a_dangerous_command_is_marked_and_shows_its_folder() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("hello")).await;

    let mut push = request("r-1", "Bash", "cargo test && git push --force origin main");
    push.danger = Some("force-pushes with git, which can overwrite commits on the remote".into());
    push.cwd = Some("crates/app".into());
    xadd(&mut conn, &ids, &OutputEvent::ApprovalRequest(push)).await;
    let m = request_message(&tg, ids.chat, "git push --force").await;
    assert_eq!(
        m.text,
        "⚠️ Dangerous: force-pushes with git, which can overwrite commits on the remote\n\
         🔐 hello asks to run:\ncargo test && git push --force origin main\nin crates/app\n\
         No answer in 5 min = denied."
    );
    assert!(m.reply_markup.is_some(), "it keeps its buttons");

    let mut plain = request("r-2", "Bash", "ls");
    plain.cwd = Some(".".into());
    xadd(&mut conn, &ids, &OutputEvent::ApprovalRequest(plain)).await;
    let m = request_message(&tg, ids.chat, "\nls\n").await;
    assert_eq!(
        m.text,
        "🔐 hello asks to run:\nls\nin the project folder\nNo answer in 5 min = denied."
    );

    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1_000, None)).await;
    finished(&mut rx).await;
    assert!(
        tg.calls().iter().all(|c| c.ok()),
        "{:#?}",
        tg.refused_calls()
    );
}

#[tokio::test]
async fn a_short_diff_is_in_the_message() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("hello")).await;

    let diff = "--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,3 +1,3 @@\n fn main() {\n-    println!(\"<hello>\");\n+    println!(\"&world\");\n }\n";
    let mut edit = request("r-1", "Edit", "src/main.rs");
    edit.diff = Some(diff.into());
    xadd(&mut conn, &ids, &OutputEvent::ApprovalRequest(edit)).await;
    let m = request_message(&tg, ids.chat, "asks to use Edit").await;
    assert_eq!(
        m.text,
        format!("🔐 hello asks to use Edit:\nsrc/main.rs\n{diff}\nNo answer in 5 min = denied.")
    );
    // Shown as code in a `pre` block marked as a diff.
    assert!(
        m.html
            .contains("<pre><code class=\"language-diff\">--- a/src/main.rs\n"),
        "{}",
        m.html
    );
    assert!(tg.documents_in(ids.chat).is_empty(), "nothing to attach");

    xadd(
        &mut conn,
        &ids,
        &approval_resolved("r-1", true, "approved from the phone"),
    )
    .await;
    let id = m.message_id;
    let ok = tg
        .wait_for_messages(
            ids.chat,
            &|ms: &[FakeMessage]| {
                ms.iter()
                    .any(|x| x.message_id == id && x.text.ends_with("approved from the phone"))
            },
            TIMEOUT,
        )
        .await;
    assert!(ok, "{:#?}", tg.messages(ids.chat));
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1_000, None)).await;
    finished(&mut rx).await;
    assert!(
        tg.calls().iter().all(|c| c.ok()),
        "{:#?}",
        tg.refused_calls()
    );
}

#[tokio::test]
async fn a_long_diff_is_cut_and_attached_whole_above_the_request() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("hello")).await;

    let mut diff = String::from("--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,0 +1,3000 @@\n");
    for n in 0..3000 {
        diff.push_str(&format!("+let v{n} = \"<é & 🦀>\";\n"));
    }
    let mut write = request("r-1", "Write", "src/main.rs");
    write.danger = Some("writes it, outside the project folder".into());
    write.diff = Some(diff.clone());
    xadd(&mut conn, &ids, &OutputEvent::ApprovalRequest(write)).await;
    let m = request_message(&tg, ids.chat, "asks to use Write").await;

    let docs = tg.documents_in(ids.chat);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs[0].file_name, "write-main.rs.diff");
    assert_eq!(
        docs[0].bytes,
        diff.as_bytes(),
        "the whole diff, byte for byte"
    );
    assert!(
        docs[0].message_id < m.message_id,
        "the file is just above the request"
    );
    assert!(m.text.starts_with("⚠️ Dangerous: writes it"), "{}", m.text);
    assert!(m.text.contains("+let v0 = \"<é & 🦀>\";\n"), "{}", m.text);
    assert!(!m.text.contains("v2999"), "cut");
    assert!(
        m.text.contains("\n…\nThe diff is cut here: the whole diff is in write-main.rs.diff above.\nNo answer in 5 min = denied."),
        "{}",
        m.text
    );

    // The verdict still fits the message.
    let reason = "denied from your computer: ".to_string() + &"x".repeat(270);
    xadd(&mut conn, &ids, &approval_resolved("r-1", false, &reason)).await;
    let id = m.message_id;
    let ok = tg
        .wait_for_messages(
            ids.chat,
            &|ms: &[FakeMessage]| {
                ms.iter()
                    .any(|x| x.message_id == id && x.text.ends_with("xxx"))
            },
            TIMEOUT,
        )
        .await;
    assert!(ok, "{:#?}", tg.refused_calls());
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1_000, None)).await;
    finished(&mut rx).await;
    assert!(
        tg.calls().iter().all(|c| c.ok()),
        "{:#?}",
        tg.refused_calls()
    );
}
