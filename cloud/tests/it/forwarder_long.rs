//! Long outputs: a page budget per session, past it the whole output as a
//! file when the session ends (cut at Telegram's upload limit), and chunks
//! lost from a trimmed stream reported instead of silently missing.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use redis::aio::MultiplexedConnection;
use remoteagent_cloud::forwarder::ForwarderOptions;
use remoteagent_proto::events::{DonePayload, DoneStatus, OutputEvent};
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram};
use tokio_util::sync::CancellationToken;

const FAST: Duration = Duration::from_millis(100);
const PAGE: usize = 200;
const CONTINUES: &str =
    "… output continues: the whole output will be attached as a file when the run ends";

fn url() -> String {
    remoteagent_testkit::redis_url()
}

fn budget(max_pages: usize) -> ForwarderOptions {
    ForwarderOptions {
        max_pages,
        ..options(PAGE)
    }
}

/// `done` as the daemon writes it, with the number of chunks it produced.
fn done_after(chunks: u64, duration_ms: u64) -> OutputEvent {
    OutputEvent::Done(DonePayload {
        status: DoneStatus::Ok,
        exit_code: Some(0),
        duration_ms,
        message: None,
        chunks,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    })
}

/// Keeps only the newest `keep` entries, as `XADD … MAXLEN` does when the
/// forwarder falls behind.
async fn trim(conn: &mut MultiplexedConnection, ids: &Ids, keep: usize) {
    let _: i64 = redis::cmd("XTRIM")
        .arg(ids.stream())
        .arg("MAXLEN")
        .arg(keep)
        .query_async(conn)
        .await
        .unwrap();
}

/// The live pages' output: every message's text with the final line that
/// announces the file removed.
fn live_output(messages: &[FakeMessage]) -> String {
    let (last, before) = messages.split_last().unwrap();
    let mut out: String = before.iter().map(|m| m.text.as_str()).collect();
    let tail = last
        .text
        .strip_suffix(CONTINUES)
        .unwrap_or_else(|| panic!("the last page does not announce the file: {:?}", last.text));
    out.push_str(tail.strip_suffix('\n').unwrap_or(tail));
    out
}

#[tokio::test]
async fn output_past_the_page_budget_arrives_whole_as_a_file() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let text = tricky_text(60, false);
    assert!(text.chars().count() > 3 * PAGE * 4);
    let n = write_chunks(&mut conn, &ids, &text, 97, 0).await;
    xadd(&mut conn, &ids, &done_after(n, 1_234)).await;

    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, budget(3));
    let placeholder = start(&fwd, &tg, ids.start("claude")).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.status, DoneStatus::Ok);

    // The ping replies to the file, the message with the status.
    let (messages, ping) = output_and_ping(&tg, ids.chat, "claude");
    assert_eq!(ping.text, "✅ claude finished in 1s");
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(messages[0].message_id, placeholder);
    assert!(
        messages
            .iter()
            .all(|m| m.text.encode_utf16().count() <= PAGE)
    );
    assert!(messages.iter().all(|m| m.reply_markup.is_none()));
    let live = live_output(&messages);
    assert!(
        text.starts_with(&live),
        "live pages are not the output's start"
    );

    let docs = tg.documents_in(ids.chat);
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc.file_name, format!("output-{}.txt", ids.session));
    assert_eq!(doc.bytes, text.as_bytes(), "the file is not the output");
    assert_eq!(doc.caption.as_deref(), Some("✅ done in 1.2 s"));
    assert!(
        doc.message_id > messages[2].message_id,
        "the file comes last"
    );
    assert!(tg.calls().iter().all(|c| c.ok()));
}

#[tokio::test]
async fn the_file_is_sent_once_across_a_takeover() {
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&server.url()).await;
    let ids = Ids::new();

    let (a, _rx_a) = forwarder(&tg, &server.url(), "replica-a", FAST, budget(2));
    let stop_a = CancellationToken::new();
    a.spawn_resumer(stop_a.clone());
    start(&a, &tg, ids.start("codex")).await;
    let part1: String = (0..40).map(|i| format!("a{i:02} <é中> & 🚀\n")).collect();
    let n = write_chunks(&mut conn, &ids, &part1, 13, 0).await;
    let announced = tg
        .wait_for_messages(
            ids.chat,
            |m| m.iter().any(|m| m.text.ends_with(CONTINUES)),
            TIMEOUT,
        )
        .await;
    assert!(announced, "{:#?}", tg.messages(ids.chat));
    // The session still runs: the last live page keeps its Stop button.
    let last = tg.messages(ids.chat).pop().unwrap();
    assert!(last.reply_markup.is_some());
    stop_a.cancel();

    let part2: String = (0..30).map(|i| format!("b{i:02} done\n")).collect();
    let m = write_chunks(&mut conn, &ids, &part2, 11, n).await;
    xadd(&mut conn, &ids, &done_after(n + m, 60_000)).await;
    let (b, mut rx_b) = forwarder(&tg, &server.url(), "replica-b", FAST, budget(2));
    let stop_b = CancellationToken::new();
    b.spawn_resumer(stop_b.clone());
    finished(&mut rx_b).await;

    let messages = output_of(&tg, ids.chat, "codex");
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages.iter().all(|m| m.reply_markup.is_none()));
    assert!(visible(&part1).starts_with(&visible(&live_output(&messages))));
    let docs = tg.documents_in(ids.chat);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].bytes, format!("{part1}{part2}").as_bytes());
    assert_eq!(docs[0].caption.as_deref(), Some("✅ done in 1 min 0 s"));
    stop_b.cancel();
}

#[tokio::test]
async fn an_output_over_the_upload_limit_is_cut_on_a_character() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    // 10 bytes per unit: é (2), 中 (3), 🚀 (4), x (1).
    let text = "é中🚀x".repeat(300);
    let n = write_chunks(&mut conn, &ids, &text, 50, 0).await;
    xadd(&mut conn, &ids, &done_after(n, 500)).await;

    let options = ForwarderOptions {
        max_document_bytes: 1003,
        ..budget(1)
    };
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options);
    start(&fwd, &tg, ids.start("gemini")).await;
    finished(&mut rx).await;

    let messages = output_of(&tg, ids.chat, "gemini");
    assert_eq!(messages.len(), 1);
    assert!(messages[0].text.ends_with(CONTINUES));
    let docs = tg.documents_in(ids.chat);
    assert_eq!(docs.len(), 1);
    // 1003 bytes would split 中: the file stops before it.
    assert_eq!(docs[0].bytes, text.as_bytes()[..1002]);
    assert!(std::str::from_utf8(&docs[0].bytes).is_ok());
    assert_eq!(
        docs[0].caption.as_deref(),
        Some(
            "✂️ Only the first 1 kB of 3 kB are attached (Telegram's upload limit).\n✅ done in 0.5 s"
        )
    );
}

#[tokio::test]
async fn lost_chunks_are_reported_live() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, budget(10));

    // The stream was trimmed before the forwarder read it, and the daemon
    // wrote two more chunks that never arrived.
    let trimmed = Ids::new();
    for i in 0..10u64 {
        xadd(&mut conn, &trimmed, &chunk(i, &format!("line {i}\n"))).await;
    }
    trim(&mut conn, &trimmed, 4).await;
    xadd(&mut conn, &trimmed, &done_after(12, 100)).await;
    start(&fwd, &tg, trimmed.start("a")).await;
    finished(&mut rx).await;
    let messages = output_of(&tg, trimmed.chat, "a");
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].text,
        "⚠️ 6 chunks of output were lost\nline 6\nline 7\nline 8\nline 9\n\n⚠️ 2 chunks of output were lost\n✅ done in 0.1 s"
    );

    // A hole in the middle.
    let hole = Ids::new();
    xadd(&mut conn, &hole, &chunk(0, "a\n")).await;
    xadd(&mut conn, &hole, &chunk(1, "b")).await;
    xadd(&mut conn, &hole, &chunk(3, "d\n")).await;
    xadd(&mut conn, &hole, &done_after(4, 100)).await;
    start(&fwd, &tg, hole.start("a")).await;
    finished(&mut rx).await;
    assert_eq!(
        output_of(&tg, hole.chat, "a")[0].text,
        "a\nb\n⚠️ 1 chunk of output was lost\nd\n\n✅ done in 0.1 s"
    );
}

#[tokio::test]
async fn lost_chunks_are_reported_in_the_file_caption() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let mut kept = String::new();
    for i in 0..40u64 {
        let piece = format!("{i:02} {}\n", "é".repeat(40));
        if i >= 10 {
            kept.push_str(&piece);
        }
        xadd(&mut conn, &ids, &chunk(i, &piece)).await;
    }
    trim(&mut conn, &ids, 30).await;
    xadd(&mut conn, &ids, &done_after(40, 100)).await;

    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, budget(1));
    start(&fwd, &tg, ids.start("a")).await;
    finished(&mut rx).await;

    let messages = output_of(&tg, ids.chat, "a");
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0]
            .text
            .starts_with("⚠️ 10 chunks of output were lost\n10 "),
        "{}",
        messages[0].text
    );
    let docs = tg.documents_in(ids.chat);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].bytes, kept.as_bytes());
    assert_eq!(
        docs[0].caption.as_deref(),
        Some("⚠️ 10 chunks of output were lost\n✅ done in 0.1 s")
    );
}
