//! Approval requests in the forwarder: a message of their own with
//! [✅ Approve | ⛔ Deny], edited with the verdict, found again by a replica
//! that resumes the session. Real Redis, the fake Telegram.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use remoteagent_cloud::forwarder::approval_message;
use remoteagent_cloud::telegram::MAX_MESSAGE_CHARS;
use remoteagent_proto::events::DoneStatus;
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram};
use tokio_util::sync::CancellationToken;

const FAST: Duration = Duration::from_millis(100);

fn url() -> String {
    remoteagent_testkit::redis_url()
}

/// `(text, callback_data)` of every button under a message.
fn buttons(m: &FakeMessage) -> Vec<(String, String)> {
    let Some(markup) = &m.reply_markup else {
        return Vec::new();
    };
    markup["inline_keyboard"]
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
}

async fn wait_messages(tg: &FakeTelegram, chat: i64, pred: impl Fn(&[FakeMessage]) -> bool) {
    let ok = tg.wait_for_messages(chat, &pred, TIMEOUT).await;
    assert!(
        ok,
        "chat never reached the expected state: {:#?}",
        tg.messages(chat)
    );
}

#[tokio::test]
async fn an_approval_request_gets_buttons_and_its_verdict() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    let placeholder = start(&fwd, &tg, ids.start("claude")).await;

    write_chunks(&mut conn, &ids, "building…\n", 100, 0).await;
    xadd(
        &mut conn,
        &ids,
        &approval_request("r-1", "Bash", "cargo test <all> && rm x"),
    )
    .await;
    write_chunks(&mut conn, &ids, "tests pass\n", 100, 1).await;
    wait_messages(&tg, ids.chat, |m| m.len() == 3 && m[2].text == "tests pass").await;

    // The page before the request is finished (no button), the request is
    // a new message below it, and later output a new page below that.
    let messages = tg.messages(ids.chat);
    assert_eq!(messages[0].message_id, placeholder);
    assert_eq!(messages[0].text, "building…");
    assert_eq!(messages[0].reply_markup, None);
    let request = &messages[1];
    // It names the agent that asks: one user may drive several.
    assert_eq!(
        request.text,
        "🔐 claude asks to run:\ncargo test <all> && rm x\nNo answer in 5 min = denied."
    );
    assert_eq!(
        request.html,
        "🔐 <b>claude</b> asks to run:\n<pre>cargo test &lt;all&gt; &amp;&amp; rm x</pre>\nNo answer in 5 min = denied."
    );
    assert_eq!(
        buttons(request),
        vec![
            (
                "✅ Approve".to_string(),
                format!("approve:{}:r-1", ids.session)
            ),
            ("⛔ Deny".to_string(), format!("deny:{}:r-1", ids.session)),
            ("⏹ Stop".to_string(), format!("stop:{}", ids.session)),
        ]
    );
    for (_, data) in buttons(request) {
        assert!(data.len() <= 64, "{data}");
    }
    // It was sent, not edited into an older message: the phone notifies.
    let sent: Vec<_> = tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.text().is_some_and(|t| t.contains("asks to run")))
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        buttons(&messages[2]),
        vec![("⏹ Stop".to_string(), format!("stop:{}", ids.session))]
    );

    // The button handler finds the message while it is pending.
    let view = approval_message(&mut conn, &ids.session, "r-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.chat_id, ids.chat);
    assert_eq!(view.message_id, request.message_id);
    assert_eq!(view.html, request.html);
    assert_eq!(view.resolved_html, None);
    assert_eq!(
        view.pending_html(true),
        format!("{}\n⏳ approved, telling the agent…", request.html)
    );
    assert!(
        approval_message(&mut conn, &ids.session, "nope")
            .await
            .unwrap()
            .is_none()
    );

    // The verdict: the same message, buttons gone.
    xadd(&mut conn, &ids, &approval_resolved("r-1", true, "approved")).await;
    let id = request.message_id;
    wait_messages(&tg, ids.chat, |m| {
        m.iter()
            .any(|m| m.message_id == id && m.text.ends_with("\n✅ approved"))
    })
    .await;
    let resolved = tg.message(ids.chat, id).unwrap();
    assert_eq!(resolved.text, format!("{}\n✅ approved", request.text));
    assert_eq!(resolved.reply_markup, None);
    let view = approval_message(&mut conn, &ids.session, "r-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.resolved_html.as_deref(), Some(resolved.html.as_str()));

    // A denial by timeout, an id that cannot go into a button, a verdict
    // for a request never seen.
    xadd(
        &mut conn,
        &ids,
        &approval_request("r-2", "Edit", "src/main.rs"),
    )
    .await;
    xadd(
        &mut conn,
        &ids,
        &approval_resolved("r-2", false, "no answer in 300 s"),
    )
    .await;
    xadd(&mut conn, &ids, &approval_request("bad:id", "Bash", "ls")).await;
    xadd(
        &mut conn,
        &ids,
        &approval_resolved("zz", false, "the run ended"),
    )
    .await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 2_000, None)).await;
    finished(&mut rx).await;

    let (messages, ping) = output_and_ping(&tg, ids.chat, "claude");
    assert_eq!(ping.text, "✅ claude finished in 2s");
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(messages.len(), 6, "{texts:#?}");
    assert_eq!(
        texts[3],
        "🔐 claude asks to use Edit:\nsrc/main.rs\nNo answer in 5 min = denied.\n⛔ denied — no answer in 300 s"
    );
    assert_eq!(messages[3].reply_markup, None);
    assert!(
        texts[4].starts_with("🔐 claude asks to run:\nls\n"),
        "{}",
        texts[4]
    );
    assert_eq!(
        messages[4].reply_markup, None,
        "no buttons for an invalid id"
    );
    assert_eq!(
        texts[5],
        "🔐 request zz: ⛔ denied — the run ended\n\n✅ done in 2.0 s"
    );
    assert!(messages.iter().all(|m| m.reply_markup.is_none()));
    // Nothing was ever rejected by the fake (HTML, lengths, empty texts).
    assert!(tg.calls().iter().all(|c| c.ok()), "{:#?}", tg.calls());
}

#[tokio::test]
async fn a_request_before_any_output_closes_the_placeholder() {
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&url()).await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", FAST, options(MAX_MESSAGE_CHARS));
    let placeholder = start(&fwd, &tg, ids.start("claude")).await;
    let request = xadd(&mut conn, &ids, &approval_request("r1", "Bash", "make")).await;
    wait_messages(&tg, ids.chat, |m| m.len() == 2).await;
    // Nothing is sent below the request while it waits for an answer: the
    // batch that carried it is done once its progress is stored past it
    // (a page below it would have been sent before that).
    let state_key = remoteagent_cloud::forwarder::keys::state_key(&ids.session);
    let stored = remoteagent_testkit::wait_for(TIMEOUT, || {
        let mut conn = conn.clone();
        let (state_key, request) = (state_key.clone(), request.clone());
        async move {
            let last: Option<String> = redis::cmd("HGET")
                .arg(&state_key)
                .arg("last_id")
                .query_async(&mut conn)
                .await
                .ok()?;
            (last.as_deref() == Some(request.as_str())).then_some(())
        }
    })
    .await;
    assert!(stored.is_some(), "the request's batch was never stored");
    let messages = tg.messages(ids.chat);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].message_id, placeholder);
    assert_eq!(messages[0].text, "⏳ claude is working…");
    assert_eq!(messages[0].reply_markup, None);
    assert_eq!(buttons(&messages[1]).len(), 3);

    xadd(&mut conn, &ids, &approval_resolved("r1", false, "denied")).await;
    write_chunks(&mut conn, &ids, "skipped make\n", 100, 0).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 100, None)).await;
    finished(&mut rx).await;
    let messages = output_of(&tg, ids.chat, "claude");
    assert_eq!(messages.len(), 3);
    assert!(
        messages[1].text.ends_with("\n⛔ denied"),
        "{}",
        messages[1].text
    );
    assert_eq!(messages[2].text, "skipped make\n\n✅ done in 0.1 s");
}

#[tokio::test]
async fn a_resumed_forwarder_edits_the_request_shown_by_another() {
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&server.url()).await;
    let ids = Ids::new();

    let (a, mut rx_a) = forwarder(
        &tg,
        &server.url(),
        "replica-a",
        FAST,
        options(MAX_MESSAGE_CHARS),
    );
    let stop_a = CancellationToken::new();
    a.spawn_resumer(stop_a.clone());
    start(&a, &tg, ids.start("claude")).await;
    write_chunks(&mut conn, &ids, "before\n", 100, 0).await;
    xadd(&mut conn, &ids, &approval_request("q7", "Bash", "git push")).await;
    wait_messages(&tg, ids.chat, |m| {
        m.len() == 2 && m[1].text.contains("git push")
    })
    .await;
    let request = tg.messages(ids.chat)[1].clone();
    stop_a.cancel();

    // Replica B takes over between the request and its verdict.
    let (b, mut rx_b) = forwarder(
        &tg,
        &server.url(),
        "replica-b",
        FAST,
        options(MAX_MESSAGE_CHARS),
    );
    let stop_b = CancellationToken::new();
    b.spawn_resumer(stop_b.clone());
    xadd(&mut conn, &ids, &approval_resolved("q7", true, "approved")).await;
    write_chunks(&mut conn, &ids, "pushed\n", 100, 1).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 3_000, None)).await;
    let fin = finished(&mut rx_b).await;
    assert_eq!(fin.session_id, ids.session);
    assert!(rx_a.try_recv().is_err());

    let messages = output_of(&tg, ids.chat, "claude");
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert_eq!(texts[0], "before");
    assert_eq!(messages[1].message_id, request.message_id);
    assert_eq!(texts[1], format!("{}\n✅ approved", request.text));
    assert_eq!(messages[1].reply_markup, None);
    assert_eq!(texts[2], "pushed\n\n✅ done in 3.0 s");
    // The request was sent once, by replica A.
    let requests = tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.text().is_some_and(|t| t.contains("git push")))
        .count();
    assert_eq!(requests, 1);
    stop_b.cancel();
}
