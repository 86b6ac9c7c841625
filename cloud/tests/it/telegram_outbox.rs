//! The outbox against the fake Telegram server: pacing, coalescing, order,
//! 429 handling, skipped unchanged edits.

use std::time::Duration;

use remoteagent_cloud::telegram::{ChatRef, Outbox, OutboxConfig, Telegram};
use remoteagent_testkit::telegram::FakeTelegram;

fn outbox(tg: &FakeTelegram, per_chat: Duration) -> Outbox {
    Outbox::new(
        Telegram::api(&tg.api_base(), &tg.token()),
        OutboxConfig {
            per_chat_interval: per_chat,
            ..OutboxConfig::default()
        },
    )
}

#[tokio::test]
async fn an_edit_with_unchanged_text_is_not_sent() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(50));
    let id = out.send(7, "first".into(), None).await.unwrap();
    // Same text as sent: nothing to do.
    out.edit(7, id, "first".into(), None).wait().await.unwrap();
    assert_eq!(tg.calls_of("editMessageText").len(), 0);
    out.edit(7, id, "second".into(), None).wait().await.unwrap();
    out.edit(7, id, "second".into(), None).wait().await.unwrap();
    assert_eq!(tg.calls_of("editMessageText").len(), 1);
    assert_eq!(tg.message(7, id).unwrap().text, "second");
}

#[tokio::test]
async fn newer_edits_replace_queued_ones() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_secs(1));
    let id = out.send(8, "0".into(), None).await.unwrap();
    let deliveries: Vec<_> = (1..=50)
        .map(|i| out.edit(8, id, i.to_string(), None))
        .collect();
    for d in deliveries {
        d.wait().await.unwrap();
    }
    let edits = tg.calls_of("editMessageText");
    // The chat's next slot is a second after the send: by then all fifty
    // edits were merged into one.
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0].text(), Some("50"));
    assert_eq!(tg.message(8, id).unwrap().text, "50");
    // One request per second in a chat.
    let send_at = tg.calls_of("sendMessage")[0].at;
    assert!(edits[0].at.duration_since(send_at) >= Duration::from_millis(900));
}

#[tokio::test]
async fn sends_go_before_edits() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(500));
    let a = out.send(9, "a".into(), None).await.unwrap();
    // Both wait for the chat's next slot; the send is served first.
    let edit = out.edit(9, a, "a2".into(), None);
    let b = out.send(9, "b".into(), None).await.unwrap();
    edit.wait().await.unwrap();
    let order: Vec<String> = tg
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.method, c.text().unwrap_or("")))
        .collect();
    assert_eq!(
        order,
        ["sendMessage a", "sendMessage b", "editMessageText a2"]
    );
    assert_eq!(tg.message(9, b).unwrap().text, "b");
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_nothing_is_lost() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(50));
    let id = out.send(10, "x".into(), None).await.unwrap();
    tg.fail_next("editMessageText", 2, 1);
    out.edit(10, id, "y".into(), None).wait().await.unwrap();
    let edits = tg.calls_of("editMessageText");
    let statuses: Vec<u16> = edits.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    // Each retry came after the second Telegram asked for.
    for pair in edits.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(950));
    }
    assert_eq!(tg.message(10, id).unwrap().text, "y");
}

#[tokio::test]
async fn a_delete_drops_queued_edits_of_its_message() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(500));
    let id = out.send(11, "x".into(), None).await.unwrap();
    let edit = out.edit(11, id, "never shown".into(), None);
    out.delete(11, id).wait().await.unwrap();
    edit.wait().await.unwrap();
    assert!(tg.calls_of("editMessageText").is_empty());
    assert!(tg.messages(11).is_empty());
}

#[tokio::test]
async fn api_errors_reach_the_caller() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(10));
    let err = out
        .edit(12, 404, "x".into(), None)
        .wait()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("message to edit not found"),
        "{err}"
    );
    let err = out.send(12, "<oops".into(), None).await.unwrap_err();
    assert!(err.to_string().contains("can't parse entities"), "{err}");
}

#[tokio::test]
async fn a_document_waits_out_a_rate_limit_and_is_sent_once() {
    use remoteagent_cloud::telegram::{Document, DocumentSource};
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(50));
    tg.fail_next("sendDocument", 1, 1);
    let doc = Document {
        file_name: "output-s.txt".into(),
        caption: Some("✅ done".into()),
        source: DocumentSource::Bytes(b"all of it".to_vec()),
    };
    let id = out.send_document(9, doc).await.unwrap();
    let calls = tg.calls_of("sendDocument");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, 429);
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(950));
    let docs = tg.documents_in(9);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].message_id, id);
    assert_eq!(docs[0].bytes, b"all of it");
}

/// Drafts are not paced per chat (Telegram animates them; they are not
/// limited like edits), nor do they hold up the chat's next message; a 429
/// answers a draft at once, not retried, and drafts sent while the bot is
/// paused are answered the same way, without a request.
#[tokio::test]
async fn drafts_are_not_paced_and_never_wait_out_a_429() {
    use remoteagent_cloud::telegram::TelegramError;
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_secs(1));
    let id = out.send(11, "placeholder".into(), None).await.unwrap();
    for i in 1..=5 {
        out.send_draft(ChatRef::flat(11), 77, format!("draft {i}"))
            .await
            .unwrap();
    }
    let send_at = tg.calls_of("sendMessage")[0].at;
    let drafts = tg.calls_of("sendMessageDraft");
    assert_eq!(drafts.len(), 5);
    // All five within the second the chat's pacing would have cost one.
    assert!(drafts[4].at.duration_since(send_at) < Duration::from_millis(900));
    assert_eq!(tg.drafts(11).last().unwrap().text, "draft 5");
    // The chat's next edit still waits for its own slot after the send,
    // not for the drafts.
    out.edit(11, id, "edited".into(), None)
        .wait()
        .await
        .unwrap();
    let edit_at = tg.calls_of("editMessageText")[0].at;
    let waited = edit_at.duration_since(send_at);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1_900),
        "{waited:?}"
    );

    tg.fail_next("sendMessageDraft", 1, 3);
    let limited = out
        .send_draft(ChatRef::flat(11), 77, "limited".into())
        .await;
    assert!(
        matches!(limited, Err(TelegramError::RetryAfter(3))),
        "{limited:?}"
    );
    let before = tg.calls_of("sendMessageDraft").len();
    let paused = out.send_draft(ChatRef::flat(11), 77, "paused".into()).await;
    assert!(
        matches!(paused, Err(TelegramError::RetryAfter(_))),
        "{paused:?}"
    );
    assert_eq!(
        tg.calls_of("sendMessageDraft").len(),
        before,
        "sent while paused"
    );
}

/// The help for a stranger is queued once per chat: fifty messages that
/// arrive while it waits for the chat's next slot add nobody to the queue
/// and all learn the one delivery; other chats and other texts are not
/// merged, nor are plain sends.
#[tokio::test]
async fn a_reply_sent_once_is_not_queued_twice_for_a_chat() {
    let tg = FakeTelegram::start().await;
    let out = outbox(&tg, Duration::from_millis(500));
    let first = out.queue_send_once_to(ChatRef::flat(21), "help".into());
    let more: Vec<_> = (0..50)
        .map(|_| out.queue_send_once_to(ChatRef::flat(21), "help".into()))
        .collect();
    let other_chat = out.queue_send_once_to(ChatRef::flat(22), "help".into());
    let other_text = out.queue_send_once_to(ChatRef::flat(21), "other".into());
    let plain: Vec<_> = (0..2)
        .map(|_| out.queue_send(23, "help".into(), None))
        .collect();
    let id = first.wait().await.unwrap();
    let mut ids = Vec::new();
    for s in more {
        ids.push(s.wait().await.unwrap());
    }
    other_chat.wait().await.unwrap();
    other_text.wait().await.unwrap();
    for s in plain {
        s.wait().await.unwrap();
    }
    let texts =
        |chat: i64| -> Vec<String> { tg.messages(chat).into_iter().map(|m| m.text).collect() };
    // The first went at once; the fifty waited behind it as one.
    assert_eq!(texts(21), ["help", "help", "other"]);
    assert!(ids.iter().all(|i| *i != id && *i == ids[0]), "{id} {ids:?}");
    assert_eq!(texts(22), ["help"]);
    assert_eq!(texts(23), ["help", "help"]);
}
