//! Forum topics in the fake: what Telegram accepts and how it keeps it
//! (the refusals themselves are rows of the rules table, checked in
//! `strict_fake.rs`).

use remoteagent_testkit::telegram::rules::{RuleId, rule};
use remoteagent_testkit::telegram::{FakeTelegram, MAX_TOPIC_NAME_CHARS, updates};
use serde_json::{Value, json};

const CHAT: i64 = 42;

async fn call(tg: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/bot{}/{method}", tg.api_base(), tg.token());
    let res = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the fake answers");
    let status = res.status().as_u16();
    (status, res.json().await.expect("a JSON answer"))
}

async fn create(tg: &FakeTelegram, chat: i64, name: &str) -> i64 {
    let (status, body) = call(
        tg,
        "createForumTopic",
        json!({"chat_id": chat, "name": name}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["result"]["message_thread_id"]
        .as_i64()
        .expect("a thread id")
}

#[tokio::test]
async fn get_me_tells_whether_private_chats_have_topics() {
    let tg = FakeTelegram::start().await;
    let (_, me) = call(&tg, "getMe", json!({})).await;
    assert_eq!(me["result"]["has_topics_enabled"], json!(false));
    tg.enable_private_topics();
    let (_, me) = call(&tg, "getMe", json!({})).await;
    assert_eq!(me["result"]["has_topics_enabled"], json!(true));
}

#[tokio::test]
async fn a_topic_is_created_named_and_sent_into() {
    let tg = FakeTelegram::start().await;
    tg.enable_private_topics();
    let (status, made) = call(
        &tg,
        "createForumTopic",
        json!({"chat_id": CHAT, "name": " hello "}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    // ForumTopic: message_thread_id, name (trimmed), icon_color.
    assert_eq!(made["result"]["name"], json!("hello"));
    assert!(made["result"]["icon_color"].as_i64().is_some());
    let thread = made["result"]["message_thread_id"].as_i64().unwrap();
    let (status, sent) = call(
        &tg,
        "sendMessage",
        json!({"chat_id": CHAT, "text": "in the topic", "message_thread_id": thread}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["result"]["message_thread_id"], json!(thread));
    assert_eq!(sent["result"]["is_topic_message"], json!(true));
    let (status, _) = call(
        &tg,
        "sendMessage",
        json!({"chat_id": CHAT, "text": "general"}),
    )
    .await;
    assert_eq!(status, 200);
    let in_topic = tg.messages_in_topic(CHAT, thread);
    assert_eq!(in_topic.len(), 1);
    assert_eq!(in_topic[0].text, "in the topic");
    assert_eq!(tg.messages(CHAT).len(), 2);
    // A name longer than 128 characters is cut there, as TDLib does.
    let long = "é".repeat(MAX_TOPIC_NAME_CHARS + 10);
    create(&tg, CHAT, &long).await;
    let topics = tg.topics(CHAT);
    assert_eq!(topics[1].name.chars().count(), MAX_TOPIC_NAME_CHARS);
    // Renamed once; the same name again is "not modified".
    let (status, body) = call(
        &tg,
        "editForumTopic",
        json!({"chat_id": CHAT, "message_thread_id": thread, "name": "hello2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tg.topics(CHAT)[0].name, "hello2");
    assert_eq!(tg.topics(CHAT)[0].renames, 1);
}

#[tokio::test]
async fn a_topic_the_user_deleted_is_not_found_any_more() {
    let tg = FakeTelegram::start().await;
    tg.enable_private_topics();
    let thread = create(&tg, CHAT, "hello").await;
    let (status, _) = call(
        &tg,
        "sendMessage",
        json!({"chat_id": CHAT, "text": "first", "message_thread_id": thread}),
    )
    .await;
    assert_eq!(status, 200);
    tg.user_deletes_topic(CHAT, thread);
    assert!(tg.messages(CHAT).is_empty(), "its messages go with it");
    let (status, body) = call(
        &tg,
        "sendMessage",
        json!({"chat_id": CHAT, "text": "again", "message_thread_id": thread}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        json!(rule(RuleId::ThreadNotFound).description)
    );
    let (status, body) = call(
        &tg,
        "deleteForumTopic",
        json!({"chat_id": CHAT, "message_thread_id": thread}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        json!(rule(RuleId::TopicIdInvalid).description)
    );
}

#[tokio::test]
async fn a_forum_group_needs_the_right_to_manage_topics_and_a_private_chat_the_mode() {
    let tg = FakeTelegram::start().await;
    let (status, body) = call(
        &tg,
        "createForumTopic",
        json!({"chat_id": CHAT, "name": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["description"].clone()),
        (400, json!(rule(RuleId::NotAForum).description))
    );
    // A supergroup that is no forum.
    let (status, body) = call(
        &tg,
        "createForumTopic",
        json!({"chat_id": -1_007, "name": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["description"].clone()),
        (400, json!(rule(RuleId::NotAForum).description))
    );
    tg.make_forum(-1_007, false);
    let (status, body) = call(
        &tg,
        "createForumTopic",
        json!({"chat_id": -1_007, "name": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["description"].clone()),
        (400, json!(rule(RuleId::TopicRightsMissing).description))
    );
    tg.make_forum(-1_007, true);
    let thread = create(&tg, -1_007, "x").await;
    // A topic of one chat is not a thread of another.
    tg.enable_private_topics();
    let (status, body) = call(
        &tg,
        "sendMessage",
        json!({"chat_id": CHAT, "text": "x", "message_thread_id": thread}),
    )
    .await;
    assert_eq!(
        (status, body["description"].clone()),
        (400, json!(rule(RuleId::ThreadNotFound).description))
    );
}

#[test]
fn updates_in_a_topic_carry_its_thread() {
    let u = updates::in_topic(updates::text(1, 42, 42, "hi"), 9, "hello");
    assert_eq!(u["message"]["message_thread_id"], json!(9));
    assert_eq!(u["message"]["is_topic_message"], json!(true));
    assert_eq!(u["message"]["chat"]["is_forum"], json!(true));
    assert_eq!(
        u["message"]["reply_to_message"]["forum_topic_created"]["name"],
        json!("hello")
    );
}
