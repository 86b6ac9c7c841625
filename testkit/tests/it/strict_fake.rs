//! The fake Telegram refuses what Telegram refuses: one request per row of
//! the rules table, sent over real HTTP, answered with the row's code and
//! exact description. Plus what it accepts at the limits, how it stores
//! texts, the blocked user, and the call log's ordering under load.

use std::sync::Arc;
use std::time::Duration;

use remoteagent_testkit::telegram::rules::{RuleId, rule};
use remoteagent_testkit::telegram::{FakeTelegram, RULES};
use serde_json::{Value, json};

const CHAT: i64 = 42;

/// One HTTP answer of the fake.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn description(&self) -> &str {
        self.body["description"].as_str().unwrap_or("")
    }
}

async fn post(tg: &FakeTelegram, token: &str, method: &str, body: Value) -> Answer {
    let url = format!("{}/bot{token}/{method}", tg.api_base());
    let res = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the fake answers");
    let status = res.status().as_u16();
    let body = res.json().await.expect("a JSON answer");
    Answer { status, body }
}

async fn call(tg: &FakeTelegram, method: &str, body: Value) -> Answer {
    post(tg, &tg.token(), method, body).await
}

async fn send_document(tg: &FakeTelegram, bytes: Vec<u8>, caption: Option<&str>) -> Answer {
    let url = format!("{}/bot{}/sendDocument", tg.api_base(), tg.token());
    let mut form = reqwest::multipart::Form::new()
        .text("chat_id", CHAT.to_string())
        .text("parse_mode", "HTML")
        .part(
            "document",
            reqwest::multipart::Part::bytes(bytes).file_name("out.txt"),
        );
    if let Some(caption) = caption {
        form = form.text("caption", caption.to_string());
    }
    let res = reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await
        .expect("the fake answers");
    let status = res.status().as_u16();
    let body = res.json().await.expect("a JSON answer");
    Answer { status, body }
}

fn send(text: &str) -> Value {
    json!({"chat_id": CHAT, "text": text, "parse_mode": "HTML"})
}

fn with_button(button: Value) -> Value {
    json!({"chat_id": CHAT, "text": "pick", "reply_markup": {"inline_keyboard": [[button]]}})
}

/// Sends the request that breaks `id` (after any setup it needs) and gives
/// the method it called and the answer.
async fn break_rule(tg: &FakeTelegram, id: RuleId) -> (&'static str, Answer) {
    use RuleId::*;
    let sm = "sendMessage";
    match id {
        TextMissing => (sm, call(tg, sm, send("")).await),
        RawTextTooLong => (sm, call(tg, sm, send(&"a".repeat(32_769))).await),
        UnsupportedParseMode => {
            let body = json!({"chat_id": CHAT, "text": "a", "parse_mode": "Shouting"});
            (sm, call(tg, sm, body).await)
        }
        CantParseEntities => (sm, call(tg, sm, send("a < b")).await),
        TextEmptyAfterTrim => (sm, call(tg, sm, send("\n")).await),
        // 2049 rockets: 2049 chars, 4098 UTF-16 code units.
        MessageTooLong => (sm, call(tg, sm, send(&"🚀".repeat(2049))).await),
        CaptionTooLong => (
            "sendDocument",
            send_document(tg, b"x".to_vec(), Some(&"🚀".repeat(513))).await,
        ),
        MarkupNotJson => {
            let body =
                json!({"chat_id": CHAT, "text": "a", "reply_markup": "{\"inline_keyboard\""});
            (sm, call(tg, sm, body).await)
        }
        MarkupNotObject => {
            let body = json!({"chat_id": CHAT, "text": "a", "reply_markup": []});
            (sm, call(tg, sm, body).await)
        }
        InlineKeyboardNotArrays => {
            let body =
                json!({"chat_id": CHAT, "text": "a", "reply_markup": {"inline_keyboard": [1]}});
            (sm, call(tg, sm, body).await)
        }
        ButtonNotObject => (sm, call(tg, sm, with_button(json!("Stop"))).await),
        ButtonWithoutText => (
            sm,
            call(tg, sm, with_button(json!({"callback_data": "stop:1"}))).await,
        ),
        ButtonWithoutAction => (
            sm,
            call(
                tg,
                sm,
                with_button(json!({"text": "Stop", "callback_data": ""})),
            )
            .await,
        ),
        ButtonDataInvalid => {
            let data = "x".repeat(65);
            let button = json!({"text": "Stop", "callback_data": data});
            (sm, call(tg, sm, with_button(button)).await)
        }
        ReplyParametersNotJson => {
            let body = json!({"chat_id": CHAT, "text": "a", "reply_parameters": "{\"message_id\""});
            (sm, call(tg, sm, body).await)
        }
        ReplyParametersNotObject => {
            let body = json!({"chat_id": CHAT, "text": "a", "reply_parameters": 5});
            (sm, call(tg, sm, body).await)
        }
        ChatMissing => (sm, call(tg, sm, json!({"text": "a"})).await),
        MessageIdMissing => {
            let body = json!({"chat_id": CHAT, "text": "a"});
            ("editMessageText", call(tg, "editMessageText", body).await)
        }
        EditTargetNotFound => {
            let body = json!({"chat_id": CHAT, "message_id": 999, "text": "a"});
            ("editMessageText", call(tg, "editMessageText", body).await)
        }
        NotModified => {
            let sent = call(tg, sm, send("<b>a</b>")).await;
            assert_eq!(sent.status, 200);
            let id = sent.body["result"]["message_id"].clone();
            // Other HTML, same bold "a" once parsed and trimmed.
            let body = json!({"chat_id": CHAT, "message_id": id, "text": "<strong>a</strong>\n", "parse_mode": "HTML"});
            ("editMessageText", call(tg, "editMessageText", body).await)
        }
        ReplyTargetNotFound => {
            let body =
                json!({"chat_id": CHAT, "text": "a", "reply_parameters": {"message_id": 999}});
            (sm, call(tg, sm, body).await)
        }
        DeleteTargetNotFound => {
            let body = json!({"chat_id": CHAT, "message_id": 999});
            ("deleteMessage", call(tg, "deleteMessage", body).await)
        }
        BotBlocked => {
            tg.block_chat(CHAT);
            (sm, call(tg, sm, send("hello")).await)
        }
        TooManyRequests => {
            tg.fail_next(sm, 1, 7);
            (sm, call(tg, sm, send("hello")).await)
        }
        DocumentMissing => (
            "sendDocument",
            call(tg, "sendDocument", json!({"chat_id": CHAT})).await,
        ),
        FileEmpty => ("sendDocument", send_document(tg, Vec::new(), None).await),
        FileTooLarge => (
            "sendDocument",
            send_document(tg, vec![b'x'; 50_000_001], None).await,
        ),
        CallbackQueryInvalid => (
            "answerCallbackQuery",
            call(tg, "answerCallbackQuery", json!({})).await,
        ),
        InvalidFileId => (
            "getFile",
            call(tg, "getFile", json!({"file_id": "AgACAgIAAxkBAAInope"})).await,
        ),
        FileTooBigToDownload => {
            let big = tg.add_file(vec![0; 20_000_001], "documents", "bin");
            (
                "getFile",
                call(tg, "getFile", json!({"file_id": big.file_id})).await,
            )
        }
        WebhookActive => {
            let set = call(tg, "setWebhook", json!({"url": "https://ra.example/hook"})).await;
            assert_eq!(set.status, 200);
            ("getUpdates", call(tg, "getUpdates", json!({})).await)
        }
        TerminatedByOtherPoll => {
            // The first poll waits; a second one ends it.
            let first = call(tg, "getUpdates", json!({"timeout": 30}));
            let second = async {
                assert!(
                    tg.wait_for(|_| tg.waiting_polls() == 1, Duration::from_secs(30))
                        .await
                );
                call(tg, "getUpdates", json!({"timeout": 0})).await
            };
            let (first, second) = tokio::join!(first, second);
            assert_eq!(second.status, 200, "{}", second.body);
            ("getUpdates", first)
        }
        Unauthorized => (sm, post(tg, "123:wrong", sm, send("hello")).await),
        // Forum topics (`topics.rs` of the fake; more in `topics_fake.rs`).
        NotAForum => (
            "createForumTopic",
            call(
                tg,
                "createForumTopic",
                json!({"chat_id": CHAT, "name": "hello"}),
            )
            .await,
        ),
        TopicRightsMissing => {
            tg.make_forum(-10_042, false);
            (
                "createForumTopic",
                call(
                    tg,
                    "createForumTopic",
                    json!({"chat_id": -10_042, "name": "hello"}),
                )
                .await,
            )
        }
        TopicTitleEmpty => {
            tg.enable_private_topics();
            (
                "createForumTopic",
                call(
                    tg,
                    "createForumTopic",
                    json!({"chat_id": CHAT, "name": "  "}),
                )
                .await,
            )
        }
        ThreadNotFound => (
            sm,
            call(
                tg,
                sm,
                json!({"chat_id": CHAT, "text": "hi", "message_thread_id": 777}),
            )
            .await,
        ),
        TopicClosed => {
            let thread = new_topic(tg, "hello").await;
            let closed = call(tg, "closeForumTopic", topic_body(thread)).await;
            assert_eq!(closed.status, 200, "{}", closed.body);
            (
                sm,
                call(
                    tg,
                    sm,
                    json!({"chat_id": CHAT, "text": "hi", "message_thread_id": thread}),
                )
                .await,
            )
        }
        TopicIdInvalid => {
            tg.enable_private_topics();
            (
                "closeForumTopic",
                call(tg, "closeForumTopic", topic_body(777)).await,
            )
        }
        TopicNotModified => {
            let thread = new_topic(tg, "hello").await;
            let mut body = topic_body(thread);
            body["name"] = json!("hello");
            ("editForumTopic", call(tg, "editForumTopic", body).await)
        }
        DraftPeerInvalid => {
            let body = json!({"chat_id": -100_123, "draft_id": 1, "text": "a"});
            ("sendMessageDraft", call(tg, "sendMessageDraft", body).await)
        }
        DraftIdInvalid => {
            let body = json!({"chat_id": CHAT, "draft_id": 0, "text": "a"});
            ("sendMessageDraft", call(tg, "sendMessageDraft", body).await)
        }
    }
}

/// `{chat_id, message_thread_id}` of a topic of [`CHAT`].
fn topic_body(thread: i64) -> Value {
    json!({"chat_id": CHAT, "message_thread_id": thread})
}

/// Turns on the bot's topics in private chats and creates one in [`CHAT`].
async fn new_topic(tg: &FakeTelegram, name: &str) -> i64 {
    tg.enable_private_topics();
    let made = call(
        tg,
        "createForumTopic",
        json!({"chat_id": CHAT, "name": name}),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    made.body["result"]["message_thread_id"]
        .as_i64()
        .expect("a thread id")
}

/// The description a row's request must get, where it is not the row's
/// text alone.
fn expected_description(id: RuleId) -> String {
    match id {
        RuleId::CantParseEntities => format!(
            "{}Unsupported start tag \"\" at byte offset 2",
            rule(id).description
        ),
        RuleId::TooManyRequests => format!("{}7", rule(id).description),
        _ => rule(id).description.to_string(),
    }
}

#[tokio::test]
async fn every_rule_of_the_table_is_enforced_with_telegrams_answer() {
    for row in RULES {
        let tg = FakeTelegram::start().await;
        let (method, answer) = break_rule(&tg, row.id).await;
        let context = format!("rule {:?} ({method})", row.id);
        assert!(
            row.methods.contains(&method) || row.methods == ["*"],
            "{context}: the row does not list {method}"
        );
        assert_eq!(answer.status, row.code, "{context}: {}", answer.body);
        assert_eq!(answer.body["ok"], json!(false), "{context}");
        assert_eq!(answer.body["error_code"], json!(row.code), "{context}");
        assert_eq!(
            answer.description(),
            expected_description(row.id),
            "{context}"
        );
        if row.id == RuleId::TooManyRequests {
            assert_eq!(answer.body["parameters"]["retry_after"], json!(7));
        }
        // The refusal is in the call log, and nothing was stored.
        let logged = tg.calls_of(method);
        let last = logged.last().expect("the call is logged");
        assert_eq!(last.status, row.code, "{context}");
        let refused = tg.refused_calls();
        assert_eq!(refused.len(), 1, "{context}: {refused:#?}");
        assert_eq!(refused[0].description(), Some(answer.description()));
        if method == "sendMessage" {
            assert!(tg.messages(CHAT).is_empty(), "{context}: stored anyway");
        }
        if method == "sendDocument" {
            assert!(tg.documents().is_empty(), "{context}: stored anyway");
        }
    }
}

#[tokio::test]
async fn what_is_just_within_the_limits_is_accepted() {
    let tg = FakeTelegram::start().await;
    // 4096 UTF-16 code units, after parsing and trimming.
    let text = format!("\n<b>{}</b>\n\n", "🚀".repeat(2048));
    assert_eq!(call(&tg, "sendMessage", send(&text)).await.status, 200);
    let escaped = "&lt;".repeat(4096);
    assert_eq!(call(&tg, "sendMessage", send(&escaped)).await.status, 200);
    let button = json!({"text": "Stop", "callback_data": "é".repeat(32)});
    assert_eq!(
        call(&tg, "sendMessage", with_button(button)).await.status,
        200
    );
    let caption = "🚀".repeat(512);
    let doc = send_document(&tg, b"x".to_vec(), Some(&caption)).await;
    assert_eq!(doc.status, 200, "{}", doc.body);
    assert_eq!(tg.documents_in(CHAT)[0].caption.as_deref(), Some(&*caption));
    // A whitespace caption is no caption.
    let doc = send_document(&tg, b"x".to_vec(), Some(" \n")).await;
    assert_eq!(doc.status, 200);
    assert_eq!(tg.documents_in(CHAT)[1].caption, None);
    assert!(tg.refused_calls().is_empty(), "{:#?}", tg.refused_calls());
}

/// Replies as Telegram makes them: to a message of the chat (text or
/// document), shown as `reply_to_message`; a reply to a message that is
/// gone is refused unless `allow_sending_without_reply`, which sends it as
/// an ordinary message (never for another chat's message); the older
/// `reply_to_message_id` still works.
#[tokio::test]
async fn a_reply_needs_its_message_unless_sent_without_it() {
    let tg = FakeTelegram::start().await;
    let sm = "sendMessage";
    let first = call(&tg, sm, send("<b>output</b>")).await;
    let first_id = first.body["result"]["message_id"].as_i64().unwrap();
    let reply = |to: Value| json!({"chat_id": CHAT, "text": "done", "reply_parameters": to});

    let answer = call(&tg, sm, reply(json!({"message_id": first_id}))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["result"]["reply_to_message"]["message_id"],
        first_id
    );
    assert_eq!(answer.body["result"]["reply_to_message"]["text"], "output");
    let stored = tg.messages(CHAT).pop().unwrap();
    assert_eq!(stored.reply_to, Some(first_id));
    assert_eq!(tg.calls_of(sm)[1].reply_to_message_id(), Some(first_id));
    // The same as a form body's text, and the older parameter.
    let answer = call(
        &tg,
        sm,
        reply(json!(format!("{{\"message_id\":{first_id}}}"))),
    )
    .await;
    assert_eq!(
        answer.body["result"]["reply_to_message"]["message_id"],
        first_id
    );
    let old = json!({"chat_id": CHAT, "text": "done", "reply_to_message_id": first_id});
    let answer = call(&tg, sm, old).await;
    assert_eq!(
        answer.body["result"]["reply_to_message"]["message_id"],
        first_id
    );

    // The user deletes the message: a reply to it is refused…
    let deleted = call(
        &tg,
        "deleteMessage",
        json!({"chat_id": CHAT, "message_id": first_id}),
    )
    .await;
    assert_eq!(deleted.status, 200);
    let before = tg.messages(CHAT).len();
    let refused = call(&tg, sm, reply(json!({"message_id": first_id}))).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.description(),
        "Bad Request: message to be replied not found"
    );
    let old = json!({"chat_id": CHAT, "text": "done", "reply_to_message_id": first_id});
    assert_eq!(call(&tg, sm, old).await.status, 400);
    assert_eq!(tg.messages(CHAT).len(), before, "stored anyway");
    // …unless it may go without: then it is an ordinary message.
    let answer = call(
        &tg,
        sm,
        reply(json!({"message_id": first_id, "allow_sending_without_reply": true})),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body["result"].get("reply_to_message").is_none());
    assert_eq!(tg.messages(CHAT).pop().unwrap().reply_to, None);
    // Never for a reply to another chat's message.
    let elsewhere = call(
        &tg,
        sm,
        reply(json!({"message_id": 1, "chat_id": CHAT + 1, "allow_sending_without_reply": true})),
    )
    .await;
    assert_eq!(
        elsewhere.description(),
        "Bad Request: message to be replied not found"
    );

    // A document can be replied to as well.
    let doc = send_document(&tg, b"x".to_vec(), Some("✅ done")).await;
    let doc_id = doc.body["result"]["message_id"].as_i64().unwrap();
    let answer = call(&tg, sm, reply(json!({"message_id": doc_id}))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["result"]["reply_to_message"]["caption"],
        "✅ done"
    );
    assert_eq!(tg.messages(CHAT).pop().unwrap().reply_to, Some(doc_id));
}

#[tokio::test]
async fn messages_are_stored_as_telegram_shows_them() {
    let tg = FakeTelegram::start().await;
    let raw = "\n\n  <b>hi</b> &amp; bye\t\r\n";
    let answer = call(&tg, "sendMessage", send(raw)).await;
    assert_eq!(answer.status, 200);
    let m = &tg.messages(CHAT)[0];
    assert_eq!(m.text, "hi & bye");
    assert_eq!(m.html, raw);
    assert_eq!(m.entities.len(), 1);
    assert_eq!(
        (
            m.entities[0].kind,
            m.entities[0].offset,
            m.entities[0].length
        ),
        ("bold", 0, 2)
    );
    assert_eq!(answer.body["result"]["text"], json!("hi & bye"));
    assert_eq!(
        answer.body["result"]["entities"],
        json!([{"type": "bold", "offset": 0, "length": 2}])
    );
}

#[tokio::test]
async fn an_edit_is_modified_when_what_is_shown_changes() {
    let tg = FakeTelegram::start().await;
    let kb = json!({"inline_keyboard": [[{"text": "Stop", "callback_data": "stop:1"}]]});
    let body =
        json!({"chat_id": CHAT, "text": "<b>a</b>", "parse_mode": "HTML", "reply_markup": kb});
    let id = call(&tg, "sendMessage", body).await.body["result"]["message_id"].clone();
    let edit = |text: &str, markup: Option<&Value>| {
        let mut body =
            json!({"chat_id": CHAT, "message_id": id, "text": text, "parse_mode": "HTML"});
        if let Some(m) = markup {
            body["reply_markup"] = m.clone();
        }
        body
    };
    let not_modified = rule(RuleId::NotModified).description;
    // Same text, keyboard dropped: modified.
    let a = call(&tg, "editMessageText", edit("<b>a</b>", None)).await;
    assert_eq!(a.status, 200);
    // Italic instead of bold: modified.
    let a = call(&tg, "editMessageText", edit("<i>a</i>", None)).await;
    assert_eq!(a.status, 200);
    // Same italic "a", written otherwise: not modified.
    let a = call(&tg, "editMessageText", edit("<em>a</em>\n\n", None)).await;
    assert_eq!((a.status, a.description()), (400, not_modified));
    // The keyboard back with editMessageReplyMarkup, then again: refused.
    let markup = json!({"chat_id": CHAT, "message_id": id, "reply_markup": kb});
    assert_eq!(
        call(&tg, "editMessageReplyMarkup", markup.clone())
            .await
            .status,
        200
    );
    let a = call(&tg, "editMessageReplyMarkup", markup).await;
    assert_eq!((a.status, a.description()), (400, not_modified));
    assert_eq!(tg.message(CHAT, 1).unwrap().edits, 3);
}

#[tokio::test]
async fn a_blocked_user_gets_nothing_until_unblocked() {
    let tg = FakeTelegram::start().await;
    assert_eq!(call(&tg, "sendMessage", send("before")).await.status, 200);
    tg.block_chat(CHAT);
    let forbidden = rule(RuleId::BotBlocked).description;
    let edit = json!({"chat_id": CHAT, "message_id": 1, "text": "edited"});
    let markup = json!({"chat_id": CHAT, "message_id": 1, "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "x"}]]}});
    for (method, body) in [
        ("sendMessage", send("hello")),
        ("editMessageText", edit.clone()),
        ("editMessageReplyMarkup", markup),
    ] {
        let a = call(&tg, method, body).await;
        assert_eq!((a.status, a.description()), (403, forbidden), "{method}");
    }
    let a = send_document(&tg, b"x".to_vec(), None).await;
    assert_eq!((a.status, a.description()), (403, forbidden));
    // Another chat is not affected.
    let other = json!({"chat_id": CHAT + 1, "text": "hi"});
    assert_eq!(call(&tg, "sendMessage", other).await.status, 200);
    assert_eq!(tg.messages(CHAT).len(), 1);
    assert_eq!(tg.messages(CHAT)[0].text, "before");

    tg.unblock_chat(CHAT);
    assert_eq!(call(&tg, "editMessageText", edit).await.status, 200);
    assert_eq!(tg.messages(CHAT)[0].text, "edited");
}

/// Issue 11 item 7: a test saw a message and then a call log without the
/// `sendMessage` that made it. Senders and watchers run at once; whenever a
/// watcher sees n messages in a chat, the log must hold n accepted calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whoever_sees_a_message_sees_its_call() {
    const CHATS: i64 = 4;
    const PER_CHAT: usize = 60;
    let tg = Arc::new(FakeTelegram::start().await);
    let senders: Vec<_> = (0..CHATS)
        .map(|chat| {
            let tg = tg.clone();
            tokio::spawn(async move {
                for i in 0..PER_CHAT {
                    let body = json!({"chat_id": chat, "text": format!("m{i}")});
                    assert_eq!(call(&tg, "sendMessage", body).await.status, 200);
                }
            })
        })
        .collect();
    let watchers: Vec<_> = (0..CHATS)
        .map(|chat| {
            let tg = tg.clone();
            tokio::task::spawn_blocking(move || {
                let mut checks = 0u64;
                loop {
                    let seen = tg.messages(chat).len();
                    let logged = tg
                        .calls_of("sendMessage")
                        .iter()
                        .filter(|c| c.ok() && c.chat_id() == Some(chat))
                        .count();
                    assert!(
                        logged >= seen,
                        "chat {chat}: {seen} messages seen, {logged} calls logged"
                    );
                    checks += 1;
                    if seen == PER_CHAT {
                        return checks;
                    }
                }
            })
        })
        .collect();
    for s in senders {
        tokio::time::timeout(Duration::from_secs(120), s)
            .await
            .expect("senders finish")
            .expect("sender ok");
    }
    for w in watchers {
        let checks = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("watchers finish")
            .expect("watcher ok");
        assert!(checks > 0);
    }
    // And the way tests read it: once a message is seen, its call is there.
    for i in 0..20 {
        let tg2 = tg.clone();
        let sender = tokio::spawn(async move {
            let body = json!({"chat_id": 99, "text": format!("w{i}")});
            call(&tg2, "sendMessage", body).await.status
        });
        assert!(
            tg.wait_for_messages(99, |m| m.len() > i, Duration::from_secs(30))
                .await
        );
        let logged = tg
            .calls_of("sendMessage")
            .iter()
            .filter(|c| c.chat_id() == Some(99))
            .count();
        assert_eq!(logged, i + 1);
        assert_eq!(sender.await.unwrap(), 200);
    }
}

async fn download(tg: &FakeTelegram, token: &str, path: &str) -> (u16, Vec<u8>) {
    let url = format!("{}/file/bot{token}/{path}", tg.api_base());
    let res = reqwest::get(url).await.expect("the fake answers");
    let status = res.status().as_u16();
    (status, res.bytes().await.expect("a body").to_vec())
}

#[tokio::test]
async fn a_file_a_user_sent_is_fetched_with_get_file_then_downloaded() {
    let tg = FakeTelegram::start().await;
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let sizes = tg.add_photo(bytes.clone());
    assert_eq!(sizes.len(), 3);
    assert!(sizes[0].file_size < sizes[2].file_size, "smallest first");
    let largest = &sizes[2];

    let got = call(&tg, "getFile", json!({"file_id": largest.file_id})).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let path = got.body["result"]["file_path"]
        .as_str()
        .expect("a file_path");
    assert_eq!(got.body["result"]["file_size"], json!(5000));
    let (status, body) = download(&tg, &tg.token(), path).await;
    assert_eq!(status, 200);
    assert_eq!(body, bytes, "the bytes as uploaded");
    assert_eq!(tg.downloads(), vec![path.to_string()]);

    // Another token, or a path getFile never gave: 404, as JSON.
    let (status, body) = download(&tg, "123:wrong", path).await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["description"], "Not Found");
    assert_eq!(
        download(&tg, &tg.token(), "photos/file_99.jpg").await.0,
        404
    );
    // A file over the limit cannot be downloaded either.
    let big = tg.add_file(vec![1; 20_000_001], "documents", "bin");
    assert_eq!(download(&tg, &tg.token(), &big.file_path).await.0, 404);
    assert_eq!(tg.downloads().len(), 1, "only the good download counts");
}

#[tokio::test]
async fn media_updates_are_shaped_like_telegrams() {
    use remoteagent_testkit::telegram::updates;
    let tg = FakeTelegram::start().await;
    let sizes = tg.add_photo(vec![7; 300]);
    let u = updates::photo(1, 5, 5, &sizes, Some("what is this?"));
    let photos = u["message"]["photo"].as_array().expect("photo sizes");
    assert_eq!(photos.len(), 3);
    assert_eq!(photos[2]["file_id"], json!(sizes[2].file_id));
    assert_eq!(u["message"]["caption"], "what is this?");
    assert!(u["message"].get("text").is_none());

    let doc = tg.add_file(b"fn main() {}".to_vec(), "documents", "rs");
    let u = updates::document(2, 5, 5, &doc, "main.rs", "text/x-rust", None);
    assert_eq!(u["message"]["document"]["file_name"], "main.rs");
    assert!(u["message"].get("caption").is_none());

    let ogg = tg.add_file(vec![0x4f; 100], "voice", "oga");
    let u = updates::voice(3, 5, 5, &ogg, 3);
    assert_eq!(u["message"]["voice"]["mime_type"], "audio/ogg");
}

/// `sendMessageDraft` as Telegram has it: shown in private chats only, never
/// stored as a message, refused in a group (`TEXTDRAFT_PEER_INVALID`), with
/// a zero or missing `draft_id`, or with a text `sendMessage` would refuse
/// (but not an empty one: that is the "Thinking…" placeholder).
#[tokio::test]
async fn drafts_are_shown_in_private_chats_only_and_never_stored() {
    let tg = FakeTelegram::start().await;
    let draft = |chat: i64, id: Value, text: &str| json!({"chat_id": chat, "draft_id": id, "text": text, "parse_mode": "HTML"});
    let md = "sendMessageDraft";
    for text in ["<b>par</b>", "<b>partial</b> text", ""] {
        let a = call(&tg, md, draft(CHAT, json!(7), text)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["result"], json!(true));
    }
    let shown = tg.drafts(CHAT);
    let texts: Vec<&str> = shown.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, ["par", "partial text", ""]);
    assert!(shown.iter().all(|d| d.draft_id == 7));
    assert!(tg.messages(CHAT).is_empty(), "a draft is not a message");

    let group = -100_555;
    let refused = call(&tg, md, draft(group, json!(7), "hi")).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.description(), "Bad Request: TEXTDRAFT_PEER_INVALID");
    let small_group = -555;
    let refused = call(&tg, md, draft(small_group, json!(7), "hi")).await;
    assert_eq!(refused.description(), "Bad Request: TEXTDRAFT_PEER_INVALID");
    assert!(tg.drafts(group).is_empty() && tg.drafts(small_group).is_empty());

    let no_id = call(&tg, md, json!({"chat_id": CHAT, "text": "hi"})).await;
    assert_eq!(
        no_id.description(),
        "Bad Request: draft_id must be non-zero"
    );
    let long = call(&tg, md, draft(CHAT, json!(7), &"🚀".repeat(2049))).await;
    assert_eq!(long.description(), "Bad Request: message is too long");
    let bad_html = call(&tg, md, draft(CHAT, json!(7), "a < b")).await;
    assert!(
        bad_html
            .description()
            .starts_with("Bad Request: can't parse entities: "),
        "{}",
        bad_html.body
    );
    tg.block_chat(CHAT);
    let blocked = call(&tg, md, draft(CHAT, json!(7), "hi")).await;
    assert_eq!(blocked.status, 403);
    assert_eq!(
        blocked.description(),
        "Forbidden: bot was blocked by the user"
    );
    assert_eq!(tg.drafts(CHAT).len(), 3, "nothing refused was shown");
    // 429s apply to drafts as to every method.
    tg.unblock_chat(CHAT);
    tg.fail_next(md, 1, 3);
    let limited = call(&tg, md, draft(CHAT, json!(7), "hi")).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["parameters"]["retry_after"], json!(3));
}
