//! The fake serves `getUpdates` with Telegram's semantics: an offset
//! confirms (forgets) the updates before it, `limit` is clamped to 1..=100,
//! a long poll answers as soon as an update arrives, and it refuses with
//! Telegram's 409s what Telegram refuses: polling while a webhook is set,
//! and a poll overtaken by another.

use std::time::{Duration, Instant};

use remoteagent_testkit::telegram::{FakeTelegram, updates};
use serde_json::{Value, json};

const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const OVERTAKEN: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

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

/// The `update_id`s of a successful `getUpdates`.
async fn poll(tg: &FakeTelegram, body: Value) -> Vec<i64> {
    let (status, answer) = call(tg, "getUpdates", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"]
        .as_array()
        .expect("an array of updates")
        .iter()
        .map(|u| u["update_id"].as_i64().expect("an update_id"))
        .collect()
}

fn push_text(tg: &FakeTelegram, text: &str) -> i64 {
    tg.push_update(updates::text(0, 7, 7, text))
}

#[tokio::test]
async fn an_offset_confirms_the_updates_before_it() {
    let tg = FakeTelegram::start().await;
    let ids: Vec<i64> = (0..3).map(|i| push_text(&tg, &format!("m{i}"))).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    // Without an offset, every unconfirmed update; asking again repeats them.
    assert_eq!(poll(&tg, json!({})).await, ids);
    assert_eq!(poll(&tg, json!({})).await, ids);
    // The offset of the second confirms the first, for good.
    assert_eq!(poll(&tg, json!({"offset": ids[1]})).await, ids[1..]);
    assert_eq!(poll(&tg, json!({})).await, ids[1..]);
    assert_eq!(tg.pending_updates().len(), 2);
    // Past the last: nothing left.
    assert!(poll(&tg, json!({"offset": ids[2] + 1})).await.is_empty());
    assert!(tg.pending_updates().is_empty());
    // The text pushed is the text served.
    let id = push_text(&tg, "hello");
    let (_, answer) = call(&tg, "getUpdates", json!({"offset": id})).await;
    assert_eq!(answer["result"][0]["message"]["text"], json!("hello"));
}

#[tokio::test]
async fn a_negative_offset_keeps_only_the_newest() {
    let tg = FakeTelegram::start().await;
    let ids: Vec<i64> = (0..5).map(|i| push_text(&tg, &format!("m{i}"))).collect();
    assert_eq!(poll(&tg, json!({"offset": -2})).await, ids[3..]);
    assert_eq!(
        poll(&tg, json!({})).await,
        ids[3..],
        "the others are forgotten"
    );
}

#[tokio::test]
async fn limit_is_clamped_to_1_through_100_as_telegram_does() {
    let tg = FakeTelegram::start().await;
    let ids: Vec<i64> = (0..105).map(|i| push_text(&tg, &format!("m{i}"))).collect();
    assert_eq!(poll(&tg, json!({})).await, ids[..100], "the default is 100");
    assert_eq!(poll(&tg, json!({"limit": 1000})).await, ids[..100]);
    assert_eq!(poll(&tg, json!({"limit": 0})).await, ids[..1]);
    assert_eq!(poll(&tg, json!({"limit": -3})).await, ids[..1]);
    assert_eq!(poll(&tg, json!({"limit": "2"})).await, ids[..2]);
    assert!(
        tg.refused_calls().is_empty(),
        "Telegram refuses none of these"
    );
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_an_update_arrives() {
    let tg = FakeTelegram::start().await;
    let started = Instant::now();
    let waiting = poll(&tg, json!({"timeout": 30}));
    let push = async {
        assert!(
            tg.wait_for(|_| tg.waiting_polls() == 1, Duration::from_secs(30))
                .await
        );
        push_text(&tg, "now")
    };
    let (got, pushed) = tokio::join!(waiting, push);
    assert_eq!(got, [pushed]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it waited out its timeout"
    );
    assert_eq!(tg.waiting_polls(), 0);
    // With nothing to give, it answers [] once its timeout has passed.
    let started = Instant::now();
    assert!(
        poll(&tg, json!({"offset": pushed + 1, "timeout": 1}))
            .await
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn polling_is_refused_while_a_webhook_is_set() {
    let tg = FakeTelegram::start().await;
    let id = push_text(&tg, "kept");
    let (status, _) = call(
        &tg,
        "setWebhook",
        json!({"url": "https://ra.example/api/telegram"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, answer) = call(&tg, "getUpdates", json!({"timeout": 5})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["ok"], json!(false));
    assert_eq!(answer["error_code"], json!(409));
    assert_eq!(answer["description"], json!(WEBHOOK_ACTIVE));
    assert_eq!(tg.refused_calls().len(), 1);
    // deleteWebhook keeps the pending updates unless asked to drop them.
    let (status, _) = call(&tg, "deleteWebhook", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(poll(&tg, json!({})).await, [id]);
    tg.set_webhook("https://ra.example/api/telegram");
    let (status, _) = call(&tg, "getUpdates", json!({})).await;
    assert_eq!(status, 409);
    let (status, _) = call(&tg, "deleteWebhook", json!({"drop_pending_updates": true})).await;
    assert_eq!(status, 200);
    assert!(poll(&tg, json!({})).await.is_empty());
}

#[tokio::test]
async fn a_second_poll_ends_the_waiting_one_with_409() {
    let tg = FakeTelegram::start().await;
    let first = call(&tg, "getUpdates", json!({"timeout": 30}));
    let second = async {
        assert!(
            tg.wait_for(|_| tg.waiting_polls() == 1, Duration::from_secs(30))
                .await
        );
        poll(&tg, json!({})).await
    };
    let ((status, answer), got) = tokio::join!(first, second);
    assert!(got.is_empty());
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error_code"], json!(409));
    assert_eq!(answer["description"], json!(OVERTAKEN));
    assert_eq!(tg.refused_calls().len(), 1);
    // The second poll stands: an update reaches the one polling now.
    let id = push_text(&tg, "after");
    assert_eq!(poll(&tg, json!({"timeout": 5})).await, [id]);
}
