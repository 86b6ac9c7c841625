//! The Bot API client against the fake Telegram server: request shape, error
//! mapping, secrecy of the token, console mode.

use remoteagent_cloud::telegram::{
    Document, DocumentSource, InlineKeyboard, MAX_CAPTION_CHARS, Telegram, TelegramError,
    escape_html,
};
use remoteagent_testkit::telegram::FakeTelegram;

#[tokio::test]
async fn sends_html_with_buttons_and_edits() {
    let tg = FakeTelegram::start().await;
    let client = Telegram::api(&tg.api_base(), &tg.token());
    let keyboard = InlineKeyboard::single("⏹ Stop", "stop:s1");
    let html = format!("<b>hi</b> {}", escape_html("a<b & c>d é"));
    let id = client
        .send_message(42, &html, Some(&keyboard))
        .await
        .unwrap();
    assert_eq!(id, 1);

    let call = &tg.calls_of("sendMessage")[0];
    assert_eq!(call.body["parse_mode"], "HTML");
    assert_eq!(call.body["link_preview_options"]["is_disabled"], true);
    assert_eq!(
        call.body["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "stop:s1"
    );
    let msg = tg.message(42, id).unwrap();
    assert_eq!(msg.text, "hi a<b & c>d é");
    assert!(msg.reply_markup.is_some());

    client
        .edit_message_text(42, id, "done", None)
        .await
        .unwrap();
    let msg = tg.message(42, id).unwrap();
    assert_eq!(msg.text, "done");
    assert_eq!(msg.reply_markup, None);

    // An edit that changes nothing is Telegram's 400 "not modified", which
    // the client treats as done.
    client
        .edit_message_text(42, id, "done", None)
        .await
        .unwrap();
    let edits = tg.calls_of("editMessageText");
    assert_eq!(edits.len(), 2);
    assert_eq!(edits[1].status, 400);

    let second = client.send_message(42, "next", None).await.unwrap();
    assert_eq!(second, 2);
    client.delete_message(42, second).await.unwrap();
    assert_eq!(tg.messages(42).len(), 1);
}

#[tokio::test]
async fn other_methods_reach_the_api() {
    let tg = FakeTelegram::start().await;
    let client = Telegram::api(&format!("{}/", tg.api_base()), &tg.token());
    let me = client.get_me().await.unwrap();
    assert!(me.id > 0);
    assert!(me.username.is_some());
    client
        .set_webhook("https://example.test/telegram/webhook", "s3cret")
        .await
        .unwrap();
    assert_eq!(
        tg.webhook(),
        Some((
            "https://example.test/telegram/webhook".to_string(),
            Some("s3cret".to_string())
        ))
    );
    client
        .answer_callback_query("cb1", Some("Stopping…"))
        .await
        .unwrap();
    assert_eq!(
        tg.calls_of("answerCallbackQuery")[0].body["text"],
        "Stopping…"
    );
}

#[tokio::test]
async fn rate_limits_map_to_retry_after() {
    let tg = FakeTelegram::start().await;
    let client = Telegram::api(&tg.api_base(), &tg.token());
    tg.fail_next("sendMessage", 1, 7);
    match client.send_message(1, "x", None).await {
        Err(TelegramError::RetryAfter(7)) => {}
        other => panic!("expected RetryAfter(7), got {other:?}"),
    }
    tg.fail_next_without_retry_after("sendMessage", 1);
    match client.send_message(1, "x", None).await {
        Err(TelegramError::RetryAfter(5)) => {}
        other => panic!("expected the default RetryAfter(5), got {other:?}"),
    }
    // The failures are used up.
    client.send_message(1, "x", None).await.unwrap();
}

#[tokio::test]
async fn api_errors_carry_telegrams_description_and_never_the_token() {
    let tg = FakeTelegram::start().await;
    let token = tg.token();
    let client = Telegram::api(&tg.api_base(), &token);

    let err = client
        .edit_message_text(5, 99, "x", None)
        .await
        .unwrap_err();
    match &err {
        TelegramError::Api { code, description } => {
            assert_eq!(*code, 400);
            assert!(
                description.contains("message to edit not found"),
                "{description}"
            );
        }
        other => panic!("expected Api, got {other:?}"),
    }

    let err = client.send_message(5, "a < b", None).await.unwrap_err();
    assert!(err.to_string().contains("can't parse entities"), "{err}");

    let err = client
        .send_message(5, &"x".repeat(4097), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("message is too long"), "{err}");

    let wrong = Telegram::api(&tg.api_base(), "123:wrong-token-value");
    let err = wrong.get_me().await.unwrap_err();
    assert!(
        matches!(err, TelegramError::Api { code: 401, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-token-value"));

    assert!(!format!("{client:?}").contains(&token));
}

#[tokio::test]
async fn transport_errors_hide_the_url_and_token() {
    let port = remoteagent_testkit::free_port();
    let token = "4242:SECRET-token-never-shown";
    let client = Telegram::api(&format!("http://127.0.0.1:{port}"), token);
    let err = client.send_message(1, "x", None).await.unwrap_err();
    assert!(matches!(err, TelegramError::Transport(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(!shown.contains("4242"), "{shown}");
}

#[tokio::test]
async fn a_non_telegram_answer_is_an_api_error() {
    // Something that is not the Bot API (a proxy's error page, say).
    let tg = FakeTelegram::start().await;
    let client = Telegram::api(&format!("{}/elsewhere", tg.api_base()), &tg.token());
    let err = client.get_me().await.unwrap_err();
    assert!(
        matches!(err, TelegramError::Api { code: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn console_mode_prints_and_numbers_messages() {
    let client = Telegram::console();
    assert!(client.is_console());
    let keyboard = InlineKeyboard::single("Stop", "stop:s");
    let a = client
        .send_message(42, "<b>a</b> &lt;", Some(&keyboard))
        .await
        .unwrap();
    let b = client.send_message(43, "b", None).await.unwrap();
    assert!(b > a);
    client
        .edit_message_text(42, a, "edited", None)
        .await
        .unwrap();
    client.delete_message(43, b).await.unwrap();
    client.answer_callback_query("q", Some("ok")).await.unwrap();
    client.set_webhook("https://x", "s").await.unwrap();
    client.get_me().await.unwrap();
}

#[tokio::test]
async fn documents_upload_as_multipart_from_bytes_or_a_file() {
    let tg = FakeTelegram::start().await;
    let client = Telegram::api(&tg.api_base(), &tg.token());
    let bytes = "é中🚀 <x> & y\n".as_bytes().to_vec();
    let id = client
        .send_document(
            42,
            &Document {
                file_name: "out.txt".into(),
                caption: Some("<b>done</b> &amp; ok".into()),
                source: DocumentSource::Bytes(bytes.clone()),
            },
        )
        .await
        .unwrap();
    let call = &tg.calls_of("sendDocument")[0];
    assert!(call.ok(), "{:?}", call.response);
    assert_eq!(call.chat_id(), Some(42));
    assert_eq!(call.body["parse_mode"], "HTML");
    let doc = &tg.documents_in(42)[0];
    assert_eq!(doc.message_id, id);
    assert_eq!(doc.file_name, "out.txt");
    assert_eq!(doc.bytes, bytes);
    assert_eq!(doc.caption.as_deref(), Some("done & ok"));
    assert_eq!(doc.caption_html.as_deref(), Some("<b>done</b> &amp; ok"));

    // A file larger than a web framework's default body limit, streamed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&path, &big).unwrap();
    let doc = Document {
        file_name: "big.txt".into(),
        caption: None,
        source: DocumentSource::File(path),
    };
    client.send_document(43, &doc).await.unwrap();
    let got = &tg.documents_in(43)[0];
    assert_eq!(got.bytes.len(), big.len());
    assert!(got.bytes == big);
    assert_eq!(got.caption, None);

    // What Telegram refuses is an API error.
    let empty = Document {
        file_name: "empty.txt".into(),
        caption: None,
        source: DocumentSource::Bytes(Vec::new()),
    };
    let err = client.send_document(44, &empty).await.unwrap_err();
    assert!(
        matches!(err, TelegramError::Api { code: 400, .. }),
        "{err:?}"
    );
    let long_caption = Document {
        caption: Some("x".repeat(MAX_CAPTION_CHARS + 1)),
        ..doc.clone()
    };
    let err = client.send_document(44, &long_caption).await.unwrap_err();
    assert!(err.to_string().contains("caption is too long"), "{err}");
    let missing = Document {
        source: DocumentSource::File(dir.path().join("nope.txt")),
        ..doc
    };
    let err = client.send_document(44, &missing).await.unwrap_err();
    assert!(matches!(err, TelegramError::Transport(_)), "{err:?}");
    assert!(tg.documents_in(44).is_empty());

    // Console mode prints it.
    let console = Telegram::console();
    let id = console.send_document(1, &empty).await.unwrap();
    assert!(id > 0);
}
