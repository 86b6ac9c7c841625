//! The ping: when a session ends, the output message's last edit shows the
//! status without the Stop button, and the end is also sent as a new
//! message (Telegram notifies on those, not on edits) replying to it,
//! naming the agent; once, also when another replica takes the session
//! over; not at all with `FINAL_NOTIFY=false`. Real Redis, the fake
//! Telegram.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use redis::AsyncCommands;
use remoteagent_cloud::forwarder::ForwarderOptions;
use remoteagent_cloud::telegram::{MAX_MESSAGE_CHARS, Telegram};
use remoteagent_proto::events::{DonePayload, DoneStatus, OutputEvent, StoppedBy, Usd};
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::FakeTelegram;
use tokio_util::sync::CancellationToken;

const FAST: Duration = Duration::from_millis(100);

fn url() -> String {
    remoteagent_testkit::redis_url()
}

fn end(status: DoneStatus, exit_code: Option<i32>, message: Option<&str>) -> DonePayload {
    DonePayload {
        status,
        exit_code,
        duration_ms: 48_213,
        message: message.map(str::to_string),
        chunks: 1,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    }
}

/// Runs one session of agent `hello` that prints a line and ends with
/// `done`; returns the output message's id.
async fn run(tg: &FakeTelegram, options: ForwarderOptions, ids: &Ids, done: DonePayload) -> i64 {
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(tg, &url(), "r1", FAST, options);
    let output = start(&fwd, tg, ids.start("hello")).await;
    write_chunks(&mut conn, ids, "working on it\n", 100, 0).await;
    xadd(&mut conn, ids, &OutputEvent::Done(done)).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.session_id, ids.session);
    output
}

/// The output message's final edit: the status, and no Stop button.
#[track_caller]
fn assert_final_edit(tg: &FakeTelegram, ids: &Ids, output: i64, status: &str) {
    let last_edit = tg
        .calls_of("editMessageText")
        .into_iter()
        .rfind(|c| c.chat_id() == Some(ids.chat) && c.message_id() == Some(output))
        .expect("the output message was never edited");
    assert!(last_edit.ok());
    assert!(
        last_edit.body.get("reply_markup").is_none(),
        "the last edit keeps a button: {:?}",
        last_edit.body
    );
    let shown = tg.message(ids.chat, output).unwrap();
    assert_eq!(shown.text, format!("working on it\n\n{status}"));
    assert_eq!(shown.reply_markup, None);
}

/// The one `sendMessage` of the chat after the placeholder: the ping.
#[track_caller]
fn the_ping_call(tg: &FakeTelegram, ids: &Ids) -> remoteagent_testkit::telegram::Call {
    let sends: Vec<_> = tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.chat_id() == Some(ids.chat))
        .collect();
    assert_eq!(sends.len(), 2, "the placeholder and the ping: {sends:#?}");
    assert!(sends[1].ok(), "{:?}", sends[1].response);
    sends[1].clone()
}

#[tokio::test]
async fn each_end_is_a_new_message_replying_to_the_output_and_naming_the_agent() {
    let tg = FakeTelegram::start().await;
    let mut finished_ok = end(DoneStatus::Ok, Some(0), None);
    finished_ok.turns = Some(9);
    finished_ok.cost_usd = Usd::from_dollars(0.08734);
    let mut phone = end(DoneStatus::Aborted, None, Some("aborted"));
    phone.stopped_by = Some(StoppedBy::Phone);
    let mut computer = end(DoneStatus::Aborted, None, Some("aborted"));
    computer.stopped_by = Some(StoppedBy::Computer);
    let mut shutdown = end(DoneStatus::Aborted, None, Some("aborted"));
    shutdown.stopped_by = Some(StoppedBy::Shutdown);
    let cases = [
        (
            finished_ok,
            "✅ done in 48.2 s",
            "✅ hello finished in 48s · 9 turns · $0.09",
        ),
        (
            end(DoneStatus::Failed, Some(1), None),
            "❌ failed (exit 1)",
            "❌ hello failed: exit 1",
        ),
        (
            end(DoneStatus::Error, None, Some("the agent went offline")),
            "❌ error: the agent went offline",
            "❌ hello failed: the agent went offline",
        ),
        (
            phone,
            "⏹ aborted",
            "⏹ hello stopped by you (from the phone)",
        ),
        (
            computer,
            "⏹ aborted",
            "⏹ hello stopped by you (from your computer)",
        ),
        (shutdown, "⏹ aborted", "⏹ hello stopped (daemon shut down)"),
    ];
    for (done, status, ping_text) in cases {
        let ids = Ids::new();
        let output = run(&tg, options(MAX_MESSAGE_CHARS), &ids, done).await;
        assert_final_edit(&tg, &ids, output, status);
        let call = the_ping_call(&tg, &ids);
        assert_eq!(call.reply_to_message_id(), Some(output), "{ping_text}");
        assert_eq!(
            call.response["result"]["reply_to_message"]["message_id"],
            output
        );
        assert!(call.body.get("reply_markup").is_none());
        let (_, ping) = output_and_ping(&tg, ids.chat, "hello");
        assert_eq!(ping.text, ping_text);
        assert_eq!(ping.reply_to, Some(output));
    }
    assert!(tg.refused_calls().is_empty(), "{:#?}", tg.refused_calls());
}

/// The ping goes through the outbox like every message: a 429 is waited
/// out and the same ping sent again, once.
#[tokio::test]
async fn a_rate_limited_ping_is_sent_after_the_pause() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("hello")).await;
    // The next sendMessage of the bot is the ping (one page of output).
    tg.fail_next("sendMessage", 1, 1);
    write_chunks(&mut conn, &ids, "working on it\n", 100, 0).await;
    xadd(
        &mut conn,
        &ids,
        &OutputEvent::Done(end(DoneStatus::Ok, Some(0), None)),
    )
    .await;
    finished(&mut rx).await;
    let sends: Vec<_> = tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.chat_id() == Some(ids.chat))
        .collect();
    assert_eq!(sends.len(), 3, "{sends:#?}");
    assert_eq!(sends[1].status, 429);
    assert!(sends[2].ok());
    assert!(sends[2].at.duration_since(sends[1].at) >= Duration::from_millis(950));
    let (_, ping) = output_and_ping(&tg, ids.chat, "hello");
    assert_eq!(ping.text, "✅ hello finished in 48s");
}

/// `FINAL_NOTIFY=false`: today's behaviour, the silent final edit only.
#[tokio::test]
async fn with_final_notify_off_only_the_output_is_edited() {
    let tg = FakeTelegram::start().await;
    let ids = Ids::new();
    let quiet = ForwarderOptions {
        final_notify: false,
        ..options(MAX_MESSAGE_CHARS)
    };
    let output = run(&tg, quiet, &ids, end(DoneStatus::Ok, Some(0), None)).await;
    assert_final_edit(&tg, &ids, output, "✅ done in 48.2 s");
    let sends = tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.chat_id() == Some(ids.chat))
        .count();
    assert_eq!(
        sends,
        1,
        "only the placeholder: {:#?}",
        tg.messages(ids.chat)
    );
    assert_eq!(tg.messages(ids.chat).len(), 1);
}

/// A replica died after the ping went out and was recorded, before it
/// cleared the session: the replica that takes over finishes the session
/// without sending the ping (or the status) again. Had the ping not been
/// recorded, the new owner sends it: once.
#[tokio::test]
async fn a_ping_is_sent_once_across_a_takeover() {
    for pinged in [true, false] {
        let server = RedisServer::start().unwrap();
        let tg = FakeTelegram::start().await;
        let mut conn = connect(&server.url()).await;
        let ids = Ids::new();
        let chunk_id = xadd(&mut conn, &ids, &chunk(0, "all green\n")).await;
        let mut done = end(DoneStatus::Ok, Some(0), None);
        done.duration_ms = 1_200;
        xadd(&mut conn, &ids, &OutputEvent::Done(done)).await;

        // What the dead replica left: the output edited with the status
        // (no button), and, if `pinged`, the ping as a reply to it.
        let telegram = Telegram::api(&tg.api_base(), &tg.token());
        let html = "all green\n\n✅ done in 1.2 s";
        let output = telegram.send_message(ids.chat, html, None).await.unwrap();
        if pinged {
            telegram
                .send_message_replying(
                    ids.chat,
                    "✅ <b>hello</b> finished in 1s",
                    None,
                    Some(output),
                )
                .await
                .unwrap();
        }
        let state_key = remoteagent_cloud::forwarder::keys::state_key(&ids.session);
        let chars = html.chars().count().to_string();
        let fields: Vec<(&str, String)> = vec![
            ("agent", ids.agent.to_string()),
            ("session", ids.session.to_string()),
            ("chat", ids.chat.to_string()),
            ("name", "hello".into()),
            ("msg", output.to_string()),
            (
                "html",
                if pinged { html } else { "all green\n" }.to_string(),
            ),
            ("chars", if pinged { chars } else { "10".to_string() }),
            ("last_id", chunk_id.clone()),
            ("skip", "0".into()),
            ("next_seq", "1".into()),
            ("pinged", u8::from(pinged).to_string()),
        ];
        let _: () = conn.hset_multiple(&state_key, &fields).await.unwrap();
        let _: () = conn
            .sadd(
                remoteagent_cloud::forwarder::keys::active_key_of(&ids.session),
                ids.session.as_str(),
            )
            .await
            .unwrap();
        let sends_before = tg.calls_of("sendMessage").len();

        let (b, mut rx) = forwarder(
            &tg,
            &server.url(),
            "replica-b",
            FAST,
            options(MAX_MESSAGE_CHARS),
        );
        let stop = CancellationToken::new();
        b.spawn_resumer(stop.clone());
        let fin = finished(&mut rx).await;
        assert_eq!(fin.session_id, ids.session);

        let (messages, ping) = output_and_ping(&tg, ids.chat, "hello");
        assert_eq!(messages.len(), 1, "{messages:#?}");
        assert_eq!(messages[0].text, "all green\n\n✅ done in 1.2 s");
        assert_eq!(messages[0].reply_markup, None);
        assert_eq!(ping.text, "✅ hello finished in 1s");
        let sent_now = tg.calls_of("sendMessage").len() - sends_before;
        assert_eq!(sent_now, usize::from(!pinged), "pinged before: {pinged}");
        let exists: bool = conn.exists(&state_key).await.unwrap();
        assert!(!exists, "the session was not cleared");
        stop.cancel();
        b.shutdown();
    }
}
