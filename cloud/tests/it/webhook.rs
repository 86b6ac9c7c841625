//! The webhook's gate: the secret token, malformed and oversized bodies, and
//! Telegram's retries of the same update.

use crate::support;

use remoteagent_proto::api::ErrorBody;
use remoteagent_testkit::telegram::updates;
use support::{SECRET, TestApp, user_id};

async fn forged_or_missing_secret_is_refused_and_nothing_processed(app: &TestApp) {
    let user = user_id();
    let update = updates::text(app.update_id(), user, user, "/help");
    for secret in [None, Some("wrong"), Some(&SECRET[..SECRET.len() - 1])] {
        let mut request = app.http.post(app.url("/api/telegram")).json(&update);
        if let Some(s) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: ErrorBody = response.json().await.unwrap();
        assert_eq!(body.error.code, "unauthorized");
    }
    // The same update with the right secret is then processed: the refused
    // attempts did not claim its id.
    assert_eq!(app.webhook(&update).await.status(), 200);
    app.expect_message(user, "/agents").await;
    assert_eq!(app.tg.calls_of("sendMessage").len(), 1);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("remoteagent_updates_rejected_total 3"),
        "{metrics}"
    );
}

async fn a_repeated_update_is_processed_once(app: &TestApp) {
    let user = user_id();
    let update = updates::text(app.update_id(), user, user, "/help");
    for _ in 0..3 {
        assert_eq!(app.webhook(&update).await.status(), 200);
    }
    // A later, different update is answered; by then the duplicates would
    // have been answered too if they had been processed.
    app.say(user, "/start").await;
    app.expect_message(user, "Welcome").await;
    app.expect_message(user, "/unpair").await;
    assert_eq!(app.count_messages(user, "Welcome"), 1);
    assert_eq!(app.tg.calls_of("sendMessage").len(), 2);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("remoteagent_updates_duplicate_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("remoteagent_updates_received_total 2"),
        "{metrics}"
    );
}

async fn malformed_json_is_a_json_400(app: &TestApp) {
    for body in ["{", "[]", "{\"update_id\": \"x\"}", ""] {
        let response = app
            .http
            .post(app.url("/api/telegram"))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
        let err: ErrorBody = response.json().await.unwrap();
        assert_eq!(err.error.code, "bad_request");
        assert!(
            err.error.message.contains("invalid JSON"),
            "{}",
            err.error.message
        );
    }
    // An update of a kind the bot ignores is accepted quietly.
    let response = app
        .webhook(&serde_json::json!({"update_id": app.update_id(), "poll": {"id": "1"}}))
        .await;
    assert_eq!(response.status(), 200);
}

async fn an_oversized_body_is_413(app: &TestApp) {
    let user = user_id();
    let big = "x".repeat(70 * 1024);
    let update = updates::text(app.update_id(), user, user, &big);
    let response = app.webhook(&update).await;
    assert_eq!(response.status(), 413);
    let err: ErrorBody = response.json().await.unwrap();
    assert_eq!(err.error.code, "payload_too_large");
    let response = app
        .http
        .post(app.url("/api/pair"))
        .header("content-type", "application/json")
        .body(format!("{{\"projectName\":\"{big}\",\"hostname\":\"h\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// Update ids are claimed in Redis: without Redis the webhook cannot tell a
/// retry from a new update, so it answers 5xx and Telegram delivers the
/// update again; once Redis is back it is processed, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_an_update_is_refused_with_5xx_and_processed_once_later() {
    let mut redis = remoteagent_testkit::RedisServer::start().unwrap();
    let url = redis.url();
    let app = TestApp::start_with(support::Backend::Sqlite, &[("REDIS_URL", &url)]).await;
    let user = user_id();
    let update = updates::text(app.update_id(), user, user, "/help");
    redis.stop();
    for _ in 0..2 {
        let status = app.webhook(&update).await.status();
        assert!(status.is_server_error(), "answered {status} without Redis");
    }
    redis.restart().unwrap();
    // Telegram's redeliveries: the first one that finds Redis back is
    // processed, the later ones are duplicates.
    let accepted = remoteagent_testkit::wait_for(support::TIMEOUT, || async {
        app.webhook(&update)
            .await
            .status()
            .is_success()
            .then_some(())
    })
    .await;
    assert!(accepted.is_some(), "never accepted after Redis came back");
    let again = app.webhook(&update).await;
    assert_eq!(again.status(), 200);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["duplicate"], true, "{body}");
    app.expect_message(user, "/agents").await;
    // Nothing else arrives for the duplicates.
    app.say(user, "/start").await;
    app.expect_message(user, "Welcome").await;
    assert_eq!(
        app.count_messages(user, "/agents"),
        2,
        "{:#?}",
        app.tg.messages(user)
    );
    app.finish().await;
}

both_backends!(
    forged_or_missing_secret_is_refused_and_nothing_processed,
    a_repeated_update_is_processed_once,
    malformed_json_is_a_json_400,
    an_oversized_body_is_413,
);
