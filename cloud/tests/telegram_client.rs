//! The Bot API client against the fake Telegram server: request shape, error
//! mapping, secrecy of the token, console mode.

use remoteagent_cloud::telegram::{InlineKeyboard, Telegram, TelegramError, escape_html};
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
