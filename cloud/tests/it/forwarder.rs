//! The output forwarder with real Redis (the shared server, unique keys) and
//! the fake Telegram: streams written the way the daemon writes them.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use redis::AsyncCommands;
use remoteagent_cloud::forwarder::ForwarderOptions;
use remoteagent_cloud::telegram::MAX_MESSAGE_CHARS;
use remoteagent_proto::events::{ApprovalRequestPayload, DoneStatus, OutputEvent};
use remoteagent_testkit::telegram::FakeTelegram;

fn url() -> String {
    remoteagent_testkit::redis_url()
}

const FAST: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_burst_becomes_full_pages_with_the_exact_text() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    // One line of 3.5 pages with HTML specials and multi-byte characters.
    let unit = "a<b>&c é中ü🚀 ";
    // Telegram counts UTF-16 units: the rocket counts 2.
    let text = unit.repeat(MAX_MESSAGE_CHARS * 7 / 2 / unit.encode_utf16().count());
    let total = text.encode_utf16().count();
    write_chunks(&mut conn, &ids, &text, 1000, 0).await;
    xadd(
        &mut conn,
        &ids,
        &done(DoneStatus::Ok, Some(0), 12_345, None),
    )
    .await;

    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    let placeholder = start(&fwd, &tg, ids.start("claude")).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.session_id, ids.session);
    assert_eq!(fin.chat_id, ids.chat);
    assert_eq!(fin.status, DoneStatus::Ok);
    assert_eq!(fin.duration_ms, 12_345);

    let (messages, ping) = output_and_ping(&tg, ids.chat, "claude");
    assert_eq!(ping.text, "✅ claude finished in 12s");
    let pages = total.div_ceil(MAX_MESSAGE_CHARS);
    assert_eq!(messages.len(), pages);
    assert_eq!(messages[0].message_id, placeholder);
    let (body, status) = body_and_status(&messages);
    assert_shows(&body, &text);
    assert_eq!(status, "✅ done in 12.3 s");
    for m in &messages[..pages - 1] {
        assert_eq!(m.text.encode_utf16().count(), MAX_MESSAGE_CHARS);
    }
    assert!(messages.iter().all(|m| m.reply_markup.is_none()));
    // The placeholder plus one message per further page, and the ping;
    // the placeholder was edited once into the first page and nothing else
    // was edited.
    assert_eq!(tg.calls_of("sendMessage").len(), pages + 1);
    assert_eq!(tg.calls_of("editMessageText").len(), 1);
    assert!(tg.calls().iter().all(|c| c.ok()));

    // Nothing is left of the session in Redis.
    let exists: bool = conn
        .exists(remoteagent_cloud::forwarder::keys::state_key(&ids.session))
        .await
        .unwrap();
    assert!(!exists);
    let active: bool = conn
        .sismember(
            remoteagent_cloud::forwarder::keys::active_key_of(&ids.session),
            ids.session.as_str(),
        )
        .await
        .unwrap();
    assert!(!active);
    let locked: bool = conn
        .exists(remoteagent_cloud::forwarder::keys::lock_key(&ids.session))
        .await
        .unwrap();
    assert!(!locked);
}

#[tokio::test]
async fn many_lines_and_a_line_longer_than_a_message_arrive_exactly() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let text = tricky_text(300, true);
    let total = text.chars().count();
    write_chunks(&mut conn, &ids, &text, 700, 0).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 800, None)).await;

    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("codex")).await;
    finished(&mut rx).await;

    let messages = output_of(&tg, ids.chat, "codex");
    let (body, status) = body_and_status(&messages);
    assert_shows(&body, &text);
    assert_eq!(status, "✅ done in 0.8 s");
    assert!(
        messages
            .iter()
            .all(|m| m.text.encode_utf16().count() <= MAX_MESSAGE_CHARS)
    );
    // Pages break on line ends while that keeps them at least half full.
    assert!(messages.len() >= total.div_ceil(MAX_MESSAGE_CHARS));
    assert!(messages.len() <= total.div_ceil(MAX_MESSAGE_CHARS / 2));
    // (Telegram trims what it shows: the page as sent ends the line.)
    let first = messages[0].message_id;
    let sent = tg
        .calls_of("editMessageText")
        .into_iter()
        .rfind(|c| c.message_id() == Some(first) && c.ok())
        .expect("the first page was edited");
    assert!(sent.text().is_some_and(|t| t.ends_with('\n')));
}

#[tokio::test]
async fn edits_of_a_chat_are_paced_and_merged() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    // The production pace: one request per second per chat.
    let (fwd, mut rx) = forwarder(
        &tg,
        &url(),
        "r1",
        Duration::from_secs(1),
        options(MAX_MESSAGE_CHARS),
    );
    start(&fwd, &tg, ids.start("aider")).await;

    let mut text = String::new();
    for i in 0..200u64 {
        let line = format!("step {i} <ok>\n");
        text.push_str(&line);
        write_chunks(&mut conn, &ids, &line, 100, i).await;
    }
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    finished(&mut rx).await;

    let messages = output_of(&tg, ids.chat, "aider");
    let (body, _) = body_and_status(&messages);
    assert_shows(&body, &text);
    // Every request to the chat, the ping's included, is paced.
    let calls: Vec<_> = tg
        .calls()
        .into_iter()
        .filter(|c| c.chat_id() == Some(ids.chat))
        .collect();
    let edits = calls
        .iter()
        .filter(|c| c.method == "editMessageText")
        .count();
    // 200 chunks, a handful of edits.
    assert!((1..=10).contains(&edits), "{edits} edits for 200 chunks");
    for pair in calls.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(900),
            "two requests to one chat less than a second apart"
        );
    }
}

#[tokio::test]
async fn a_rate_limit_is_obeyed_and_nothing_is_lost() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let text = tricky_text(120, false);
    write_chunks(&mut conn, &ids, &text, 500, 0).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    tg.fail_next("editMessageText", 1, 1);

    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("gemini")).await;
    finished(&mut rx).await;

    let edits = tg.calls_of("editMessageText");
    assert_eq!(edits[0].status, 429);
    assert!(edits.len() >= 2);
    assert!(edits[1].ok());
    assert_eq!(edits[1].message_id(), edits[0].message_id());
    assert!(edits[1].at.duration_since(edits[0].at) >= Duration::from_millis(950));
    let (body, _) = body_and_status(&output_of(&tg, ids.chat, "gemini"));
    assert_shows(&body, &text);
}

#[tokio::test]
async fn two_sessions_in_two_chats_do_not_mix() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    let a = Ids::new();
    let b = Ids::new();
    start(&fwd, &tg, a.start("alpha")).await;
    start(&fwd, &tg, b.start("beta")).await;
    let mut text_a = String::new();
    let mut text_b = String::new();
    for i in 0..60u64 {
        let la = format!("alpha {i} <a>\n").repeat(20);
        let lb = format!("beta {i} & b\n").repeat(25);
        write_chunks(&mut conn, &a, &la, 10_000, i).await;
        write_chunks(&mut conn, &b, &lb, 10_000, i).await;
        text_a.push_str(&la);
        text_b.push_str(&lb);
    }
    xadd(&mut conn, &a, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    xadd(&mut conn, &b, &done(DoneStatus::Failed, Some(2), 1, None)).await;
    let f1 = finished(&mut rx).await;
    let f2 = finished(&mut rx).await;
    let mut got = [f1.session_id.clone(), f2.session_id.clone()];
    got.sort();
    let mut want = [a.session.clone(), b.session.clone()];
    want.sort();
    assert_eq!(got, want);

    let (output_a, ping_a) = output_and_ping(&tg, a.chat, "alpha");
    let (output_b, ping_b) = output_and_ping(&tg, b.chat, "beta");
    let (body_a, status_a) = body_and_status(&output_a);
    let (body_b, status_b) = body_and_status(&output_b);
    assert_shows(&body_a, &text_a);
    assert_shows(&body_b, &text_b);
    assert!(status_a.starts_with("✅ done in"));
    assert_eq!(status_b, "❌ failed (exit 2)");
    assert_eq!(ping_a.text, "✅ alpha finished in 0s");
    assert_eq!(ping_b.text, "❌ beta failed: exit 2");
}

#[tokio::test]
async fn statuses_notices_and_the_stop_button_render() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));

    // Running: the placeholder carries the Stop button, then the output does.
    let run = Ids::new();
    let id = start(&fwd, &tg, run.start("my <agent>")).await;
    let placeholder = tg.message(run.chat, id).unwrap();
    assert_eq!(placeholder.text, "⏳ my <agent> is working…");
    assert_eq!(placeholder.html, "⏳ <b>my &lt;agent&gt;</b> is working…");
    let stop = format!("stop:{}", run.session);
    assert_eq!(
        placeholder.reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"],
        stop.as_str()
    );
    write_chunks(&mut conn, &run, "compiling…", 100, 0).await;
    xadd(&mut conn, &run, &notice("queued <behind> another session")).await;
    let appr = OutputEvent::ApprovalRequest(ApprovalRequestPayload {
        request_id: "r1".into(),
        tool: "Bash".into(),
        summary: "rm -rf target".into(),
        timeout_secs: 300,
        kind: None,
        ..Default::default()
    });
    // Output so far stays on its page; the request is a message below it.
    xadd(&mut conn, &run, &appr).await;
    assert!(
        tg.wait_for_messages(
            run.chat,
            |m| m.len() == 2 && m[1].text.contains("rm -rf target"),
            TIMEOUT
        )
        .await
    );
    let shown = tg.message(run.chat, id).unwrap();
    // Telegram trims the message's last line break.
    assert_eq!(shown.text, "compiling…\nqueued <behind> another session");
    assert!(
        shown
            .html
            .contains("<i>queued &lt;behind&gt; another session</i>")
    );
    assert_eq!(shown.reply_markup, None);
    xadd(
        &mut conn,
        &run,
        &done(DoneStatus::Aborted, None, 5, Some("stopped by the user")),
    )
    .await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.status, DoneStatus::Aborted);
    let (messages, ping) = output_and_ping(&tg, run.chat, "my <agent>");
    let last = messages.last().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(last.text, "⏹ aborted");
    assert_eq!(last.reply_markup, None);
    // Who stopped it is not in this `done`: the ping says what it says.
    assert_eq!(ping.text, "⏹ my <agent> stopped: stopped by the user");
    assert_eq!(
        ping.html,
        "⏹ <b>my &lt;agent&gt;</b> stopped: stopped by the user"
    );

    // No output at all: the placeholder becomes the status.
    let rejected = Ids::new();
    xadd(
        &mut conn,
        &rejected,
        &done(DoneStatus::Rejected, None, 0, Some("agent is <busy>")),
    )
    .await;
    let id = start(&fwd, &tg, rejected.start("a")).await;
    finished(&mut rx).await;
    // A prompt that never ran gets no ping: its answer came at once.
    let m = tg.messages(rejected.chat);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].message_id, id);
    assert_eq!(m[0].text, "⚠️ rejected: agent is <busy>");
    assert_eq!(m[0].reply_markup, None);

    let failed = Ids::new();
    write_chunks(&mut conn, &failed, "error: oops\n", 100, 0).await;
    xadd(
        &mut conn,
        &failed,
        &done(DoneStatus::Failed, Some(1), 0, None),
    )
    .await;
    start(&fwd, &tg, failed.start("a")).await;
    finished(&mut rx).await;
    let (output, ping) = output_and_ping(&tg, failed.chat, "a");
    assert_eq!(output[0].text, "error: oops\n\n❌ failed (exit 1)");
    assert_eq!(ping.text, "❌ a failed: exit 1");
}

#[tokio::test]
async fn malformed_and_unknown_entries_are_skipped() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    write_chunks(&mut conn, &ids, "one\n", 100, 0).await;
    xadd_field(&mut conn, &ids, "event", "{not json").await;
    xadd_field(&mut conn, &ids, "other", "{}").await;
    xadd_field(
        &mut conn,
        &ids,
        "event",
        r#"{"event":"chunk","payload":{"seq":"x"}}"#,
    )
    .await;
    xadd_field(
        &mut conn,
        &ids,
        "event",
        r#"{"event":"telemetry","payload":{"cpu":3}}"#,
    )
    .await;
    write_chunks(&mut conn, &ids, "two\n", 100, 1).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1, None)).await;

    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("a")).await;
    finished(&mut rx).await;
    // Never silent: each entry that could not be read is said; unknown
    // events (a newer daemon's) are skipped quietly.
    let (body, _) = body_and_status(&output_of(&tg, ids.chat, "a"));
    let skipped = "⚠️ an output entry could not be read and was skipped\n";
    assert_eq!(body, format!("one\n{}two\n", skipped.repeat(3)));
}

#[tokio::test]
async fn a_finished_session_is_reported_once_and_not_resumed() {
    // A private Redis: a resumer on the shared one could pick up sessions
    // of other tests.
    let server = remoteagent_testkit::RedisServer::start().unwrap();
    let url = || server.url();
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    write_chunks(&mut conn, &ids, "hello", 100, 0).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    let shutdown = tokio_util::sync::CancellationToken::new();
    fwd.spawn_resumer(shutdown.clone());
    start(&fwd, &tg, ids.start("a")).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.session_id, ids.session);

    // A later session, handed over by a stopped replica: once this resumer
    // has taken it over and finished it, the resumer has looked at the
    // unfinished sessions after the first one finished, and would have
    // picked that one up again in the same round or before.
    let later = Ids::new();
    let (other, _other_rx) = forwarder(&tg, &url(), "r2", FAST, options(MAX_MESSAGE_CHARS));
    start(&other, &tg, later.start("b")).await;
    other.shutdown();
    write_chunks(&mut conn, &later, "bye", 100, 0).await;
    xadd(&mut conn, &later, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.session_id, later.session, "SessionFinished sent twice");
    assert!(rx.try_recv().is_err(), "SessionFinished sent twice");
    // One page and one ping: nothing sent again.
    assert_eq!(output_of(&tg, ids.chat, "a").len(), 1);
    // Nor can a later round pick it up: it is not among the unfinished
    // sessions the resumer reads, and its state is gone.
    let active: Vec<String> = conn
        .smembers(remoteagent_cloud::forwarder::keys::active_key_of(
            &ids.session,
        ))
        .await
        .unwrap();
    assert!(!active.contains(&ids.session.to_string()), "{active:?}");
    let state: bool = conn
        .exists(remoteagent_cloud::forwarder::keys::state_key(&ids.session))
        .await
        .unwrap();
    assert!(!state, "the finished session's state is left");
    shutdown.cancel();
}

#[tokio::test]
async fn starting_a_session_twice_is_refused() {
    let tg = FakeTelegram::start().await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    start(&fwd, &tg, ids.start("a")).await;
    let err = fwd.begin(ids.start("a")).await.unwrap_err();
    assert!(err.to_string().contains("already being forwarded"), "{err}");
    assert_eq!(tg.messages(ids.chat).len(), 1);
    let mut conn = connect(&url()).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    finished(&mut rx).await;
}

#[tokio::test]
async fn a_dead_redis_fails_start_cleanly() {
    let tg = FakeTelegram::start().await;
    let port = remoteagent_testkit::free_port();
    let ids = Ids::new();
    let (fwd, _rx) = forwarder(
        &tg,
        &format!("redis://127.0.0.1:{port}"),
        "r1",
        FAST,
        options(MAX_MESSAGE_CHARS),
    );
    let err = fwd.begin(ids.start("a")).await.unwrap_err();
    assert!(err.to_string().starts_with("redis:"), "{err}");
    assert!(
        tg.calls().is_empty(),
        "nothing is sent without a session record"
    );
}

/// A session's `XREAD BLOCK` runs on a connection of its own: while it
/// waits, another session starts (the prompt's command waits for that),
/// reads and finishes at once instead of queueing behind the read on a
/// shared connection (Redis answers a connection's commands in order).
#[tokio::test]
async fn a_pending_read_holds_up_no_other_session() {
    // Far longer than a session takes: a start or a run that had to wait
    // for the quiet session's read would run into the hang guards
    // (`TIMEOUT`), and no clock is read to judge it.
    const BLOCK: Duration = Duration::from_secs(120);
    // A private Redis: its blocked clients are this test's.
    let server = remoteagent_testkit::RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let opts = ForwarderOptions {
        block: BLOCK,
        // The lock outlives the block: only the reads are under test.
        lock_ttl: Duration::from_secs(60),
        ..options(MAX_MESSAGE_CHARS)
    };
    let (fwd, mut rx) = forwarder(&tg, &server.url(), "r1", FAST, opts);
    let quiet = Ids::new();
    start(&fwd, &tg, quiet.start("quiet")).await;
    let mut conn = connect(&server.url()).await;
    let blocked = remoteagent_testkit::wait_for(TIMEOUT, || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut conn)
                .await
                .unwrap();
            info.lines()
                .any(|l| l.trim() == "blocked_clients:1")
                .then_some(())
        }
    })
    .await;
    assert!(blocked.is_some(), "the quiet session's read never blocked");

    let busy = Ids::new();
    tokio::time::timeout(TIMEOUT, fwd.begin(busy.start("busy")))
        .await
        .expect("starting a session waited for another session's read")
        .unwrap();
    write_chunks(&mut conn, &busy, "all done here", 100, 0).await;
    xadd(&mut conn, &busy, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.session_id, busy.session);
    // And all of it while the quiet session's first read still waits.
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        info.lines().any(|l| l.trim() == "blocked_clients:1"),
        "the quiet session's read is no longer pending: {info}"
    );
    fwd.shutdown();
}
