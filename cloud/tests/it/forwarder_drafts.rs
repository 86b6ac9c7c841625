//! `STREAM_MODE=draft`: in a private chat the current page is a live draft
//! (`sendMessageDraft`) persisted with `sendMessage` when it fills or the
//! run ends, so that the messages left are the output exactly; in a group,
//! or once Telegram refuses a draft mid-run, the page is edited as in
//! `STREAM_MODE=edit`, without losing a byte, and the refusal is not met
//! again on every chunk nor in the chat's next run. Real Redis, the strict
//! fake Telegram.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use remoteagent_cloud::config::StreamMode;
use remoteagent_cloud::forwarder::ForwarderOptions;
use remoteagent_proto::events::DoneStatus;
use remoteagent_testkit::telegram::{Call, FakeTelegram};

const PACE: Duration = Duration::from_millis(300);

fn url() -> String {
    remoteagent_testkit::redis_url()
}

fn draft_options(page_chars: usize) -> ForwarderOptions {
    ForwarderOptions {
        stream_mode: StreamMode::Draft,
        ..options(page_chars)
    }
}

fn calls_in(tg: &FakeTelegram, method: &str, chat: i64) -> Vec<Call> {
    tg.calls_of(method)
        .into_iter()
        .filter(|c| c.chat_id() == Some(chat))
        .collect()
}

#[tokio::test]
async fn in_a_private_chat_the_page_streams_as_drafts_and_the_messages_are_the_output() {
    let tg = FakeTelegram::start().await;
    let ids = Ids::new();
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", PACE, draft_options(700));
    let control = start(&fwd, &tg, ids.start("hello")).await;
    let text = tricky_text(40, false);
    let n = write_chunks(&mut conn, &ids, &text, 97, 0).await;
    // A draft shows output before any page is persisted.
    assert!(
        tg.wait_for_drafts(ids.chat, |d| !d.is_empty(), TIMEOUT)
            .await
    );
    let mut end = done(DoneStatus::Ok, Some(0), 1500, None);
    if let remoteagent_proto::events::OutputEvent::Done(d) = &mut end {
        d.chunks = n;
    }
    xadd(&mut conn, &ids, &end).await;
    finished(&mut rx).await;

    let (pages, _ping) = output_and_ping(&tg, ids.chat, "hello");
    assert!(pages.len() > 1, "the output fills pages: {pages:#?}");
    let (body, status) = body_and_status(&pages);
    assert_shows(&body, &text);
    assert_eq!(status, "✅ done in 1.5 s");
    // Pages were persisted by sendMessage, never edited; the control
    // message with the Stop button is gone.
    assert!(calls_in(&tg, "editMessageText", ids.chat).is_empty());
    assert!(tg.message(ids.chat, control).is_none(), "control kept");
    assert!(pages.iter().all(|m| m.reply_markup.is_none()));
    // Every draft is a piece of the output; a page's drafts share an id.
    let drafts = tg.drafts(ids.chat);
    assert!(
        drafts
            .iter()
            .all(|d| visible(&text).contains(&visible(&d.text)))
    );
    let ids_used: std::collections::BTreeSet<i64> = drafts.iter().map(|d| d.draft_id).collect();
    assert!(!ids_used.is_empty() && ids_used.len() <= pages.len());
    assert!(tg.refused_calls().is_empty(), "{:#?}", tg.refused_calls());
}

#[tokio::test]
async fn a_draft_refused_mid_run_falls_back_to_edits_without_losing_a_byte() {
    let tg = FakeTelegram::start().await;
    let ids = Ids::new();
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", PACE, draft_options(4096));
    let control = start(&fwd, &tg, ids.start("hello")).await;
    let first = "line one\n";
    write_chunks(&mut conn, &ids, first, 100, 0).await;
    assert!(
        tg.wait_for_drafts(
            ids.chat,
            |d| d.iter().any(|d| d.text == "line one"),
            TIMEOUT
        )
        .await
    );
    // The chat stops taking drafts (a client without them): 400.
    tg.refuse_drafts(ids.chat);
    let mut text = first.to_string();
    let mut seq = 1;
    for i in 0..6 {
        let line = format!("line {i} after the refusal <&>\n");
        text.push_str(&line);
        seq += write_chunks(&mut conn, &ids, &line, 100, seq).await;
        // Each in a batch of its own, so each would be a draft.
        let shown = visible(&text);
        assert!(
            tg.wait_for_messages(
                ids.chat,
                |m| m.iter().any(|m| visible(&m.text) == shown),
                TIMEOUT
            )
            .await,
            "the page shows {text:?} by edits"
        );
    }
    let mut end = done(DoneStatus::Ok, Some(0), 2000, None);
    if let remoteagent_proto::events::OutputEvent::Done(d) = &mut end {
        d.chunks = seq;
    }
    xadd(&mut conn, &ids, &end).await;
    finished(&mut rx).await;

    let (pages, ping) = output_and_ping(&tg, ids.chat, "hello");
    // Nothing was persisted before the refusal: the control message became
    // the page, edited to its end.
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert_eq!(pages[0].message_id, control);
    assert_eq!(ping.reply_to, Some(control));
    let (body, status) = body_and_status(&pages);
    assert_shows(&body, &text);
    assert_eq!(status, "✅ done in 2.0 s");
    assert!(!calls_in(&tg, "editMessageText", ids.chat).is_empty());
    // One refused draft: not tried again on every chunk.
    let refused: Vec<Call> = calls_in(&tg, "sendMessageDraft", ids.chat)
        .into_iter()
        .filter(|c| !c.ok())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(
        refused[0].description(),
        Some("Bad Request: TEXTDRAFT_PEER_INVALID")
    );

    // The chat's next run starts with edits: no draft at all.
    let drafts_before = calls_in(&tg, "sendMessageDraft", ids.chat).len();
    let next = Ids {
        chat: ids.chat,
        ..Ids::new()
    };
    let before = tg.messages(ids.chat).iter().map(|m| m.message_id).max();
    fwd.begin(next.start("hello")).await.unwrap();
    let placeholder_sent = |calls: &[Call]| {
        calls.iter().rev().find_map(|c| {
            let id = c.response["result"]["message_id"].as_i64()?;
            (c.method == "sendMessage"
                && c.chat_id() == Some(ids.chat)
                && c.text().is_some_and(|t| t.contains("is working"))
                && Some(id) > before)
                .then_some(id)
        })
    };
    assert!(
        tg.wait_for(|c| placeholder_sent(c).is_some(), TIMEOUT)
            .await
    );
    let placeholder = placeholder_sent(&tg.calls()).unwrap();
    write_chunks(&mut conn, &next, "again\n", 100, 0).await;
    let mut end = done(DoneStatus::Ok, Some(0), 1000, None);
    if let remoteagent_proto::events::OutputEvent::Done(d) = &mut end {
        d.chunks = 1;
    }
    xadd(&mut conn, &next, &end).await;
    finished(&mut rx).await;
    assert_eq!(
        calls_in(&tg, "sendMessageDraft", ids.chat).len(),
        drafts_before
    );
    let page = tg.message(ids.chat, placeholder).expect("the page");
    assert_eq!(page.text, "again\n\n✅ done in 1.0 s");
}

#[tokio::test]
async fn in_a_group_the_page_is_edited_and_no_draft_is_tried() {
    let tg = FakeTelegram::start().await;
    let ids = Ids {
        chat: -1_000_000_000_000 - i64::from(rand::random::<u32>() % 1_000_000),
        ..Ids::new()
    };
    let mut conn = connect(&url()).await;
    let (fwd, mut rx) = forwarder(&tg, &url(), "r1", PACE, draft_options(4096));
    let placeholder = start(&fwd, &tg, ids.start("hello")).await;
    let text = "group line one\ngroup line two\n";
    let n = write_chunks(&mut conn, &ids, text, 10, 0).await;
    let mut end = done(DoneStatus::Ok, Some(0), 1000, None);
    if let remoteagent_proto::events::OutputEvent::Done(d) = &mut end {
        d.chunks = n;
    }
    xadd(&mut conn, &ids, &end).await;
    finished(&mut rx).await;
    assert!(tg.calls_of("sendMessageDraft").is_empty());
    let page = tg.message(ids.chat, placeholder).expect("the page");
    assert_eq!(
        page.text,
        "group line one\ngroup line two\n\n✅ done in 1.0 s"
    );
    assert!(page.edits > 0);
}
