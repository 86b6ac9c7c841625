//! Pairing end to end: `POST /api/pair`, then `/pair CODE` in the bot or the
//! `/connect` page's `POST /api/pair/confirm`, checked on Redis (events and
//! ACL rights) and in Telegram.

use crate::support;

use remoteagent_cloud::db::{agents, users};
use remoteagent_cloud::login_widget;
use remoteagent_proto::api::{ErrorBody, PairConfirmResponse};
use remoteagent_proto::events::PairEvent;
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::{AgentId, names, token};
use serde_json::{Value, json};
use support::{TestApp, client_as, next_pair_event, user_id};

async fn pairing_through_the_bot_gives_a_confined_agent(app: &TestApp) {
    let user = user_id();
    let (pair, paired) = app.pair_agent(user, "my-project").await;
    assert_eq!(paired.name, "my-project");
    assert_eq!(paired.cloud_public_key, pair.cloud_public_key);
    let key = CloudPublicKey::from_base64(&pair.cloud_public_key).unwrap();
    let claims = token::verify(&key, &paired.jwt).unwrap();
    assert_eq!(claims.sub, paired.agent_id);
    assert_eq!(claims.owner, user);
    app.expect_message(user, "Paired my-project on devbox")
        .await;

    // The agent's Redis user: its own channel yes, another agent's no.
    assert_eq!(
        paired.redis_username,
        names::agent_redis_user(&paired.agent_id)
    );
    let agent = client_as(&pair.redis.url, &paired.redis_username, &paired.jwt);
    let mut own = agent.get_async_pubsub().await.unwrap();
    own.subscribe(names::agent_channel(&paired.agent_id))
        .await
        .unwrap();
    let mut other = agent.get_async_pubsub().await.unwrap();
    let err = other
        .subscribe(names::agent_channel(&AgentId::generate()))
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
    let mut conn = agent
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let err = redis::cmd("GET")
        .arg("some-other-key")
        .query_async::<Option<String>>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");

    // The pairing's short-lived user is gone.
    let pairing_user = client_as(&pair.redis.url, &pair.redis.username, &pair.redis.password);
    assert!(
        pairing_user
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .is_err()
    );

    // The database keeps only the token's hash; the agent is current.
    let row = agents::get(&app.state.db, &paired.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.token_hash.as_deref(),
        Some(remoteagent_cloud::pairing::token_hash(&paired.jwt).as_str())
    );
    let owner = users::get(&app.state.db, user).await.unwrap().unwrap();
    assert_eq!(owner.current_agent.as_ref(), Some(&paired.agent_id));

    // A second project of the same name gets a suffix.
    let (_, second) = app.pair_agent(user, "my-project").await;
    assert_eq!(second.name, "my-project-2");
}

async fn the_pairing_user_may_only_listen_on_its_channel(app: &TestApp) {
    let pair = app.pair_request("p").await;
    assert_eq!(pair.code.len(), 7);
    assert!(
        pair.connect_url
            .ends_with(&format!("/connect?code={}", pair.code)),
        "{}",
        pair.connect_url
    );
    assert!(pair.expires_at_ms > remoteagent_proto::now_ms());
    let client = client_as(&pair.redis.url, &pair.redis.username, &pair.redis.password);
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    let err = pubsub.subscribe("pair:someone-else").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    assert!(
        redis::cmd("PUBLISH")
            .arg(names::pair_channel(&pair.pairing_id))
            .arg("x")
            .query_async::<i64>(&mut conn)
            .await
            .is_err()
    );
}

async fn expired_and_used_codes_are_refused(app: &TestApp) {
    let user = user_id();
    // Expired: move the code's expiry into the past.
    let pair = app.pair_request("old").await;
    let mut sub = app.pair_subscriber(&pair).await;
    sqlx::query("UPDATE pairing_codes SET expires_at = $1 WHERE code = $2")
        .bind(remoteagent_cloud::db::now() - 1)
        .bind(pair.code.clone())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.say(user, &format!("/pair {}", pair.code)).await;
    app.expect_message(user, "expired").await;
    // Used: pair once, then try again from another account.
    let (used, _) = app.pair_agent(user, "fresh").await;
    let intruder = user_id();
    app.say(intruder, &format!("/pair {}", used.code)).await;
    app.expect_message(intruder, "already used").await;
    app.say(intruder, "/pair NOPE").await;
    app.expect_message(intruder, "not a pairing code").await;
    app.say(intruder, "/pair ZZZ-ZZZ").await;
    app.expect_message(intruder, "Unknown code").await;
    // The expired pairing's daemon got nothing: the next event on its
    // channel is the one this test publishes.
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    redis::cmd("PUBLISH")
        .arg(names::pair_channel(&pair.pairing_id))
        .arg(r#"{"event":"marker"}"#)
        .query_async::<i64>(&mut conn)
        .await
        .unwrap();
    assert_eq!(next_pair_event(&mut sub).await, PairEvent::Unknown);
}

async fn the_sixth_attempt_is_refused_even_with_the_right_code(app: &TestApp) {
    let user = user_id();
    let pair = app.pair_request("target").await;
    for i in 0..5 {
        app.say(
            user,
            &format!("/pair AAA-AA{}", ["B", "C", "D", "E", "F"][i]),
        )
        .await;
    }
    let found = app
        .tg
        .wait_for_messages(
            user,
            |m| m.iter().filter(|m| m.text.contains("Unknown code")).count() == 5,
            support::TIMEOUT,
        )
        .await;
    assert!(found);
    app.say(user, &format!("/pair {}", pair.code)).await;
    app.expect_message(user, "Too many wrong codes").await;
    // The code was not consumed: another account can still use it.
    let row = remoteagent_cloud::db::pairing::get(&app.state.db, &pair.code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.used_at, None);
    let other = user_id();
    let mut sub = app.pair_subscriber(&pair).await;
    app.say(other, &format!("/pair {}", pair.code)).await;
    assert!(matches!(
        next_pair_event(&mut sub).await,
        PairEvent::Paired(_)
    ));
}

async fn the_plan_limit_is_enforced_after_the_trial(app: &TestApp) {
    let user = user_id();
    app.pair_agent(user, "first").await;
    // During the trial there is no limit.
    app.pair_agent(user, "second").await;
    users::set_trial_ends_at(&app.state.db, user, remoteagent_cloud::db::now() - 1000)
        .await
        .unwrap();
    let pair = app.pair_request("third").await;
    let mut sub = app.pair_subscriber(&pair).await;
    app.say(user, &format!("/pair {}", pair.code)).await;
    match next_pair_event(&mut sub).await {
        PairEvent::PairFailed(f) => assert_eq!(f.reason, "plan_limit"),
        other => panic!("expected pair_failed, got {other:?}"),
    }
    app.expect_message(user, "Your plan allows 1 agent and you have reached it")
        .await;
    assert_eq!(agents::count_active(&app.state.db, user).await.unwrap(), 2);
    // Pro has no limit.
    users::set_plan(&app.state.db, user, users::Plan::Pro)
        .await
        .unwrap();
    app.pair_agent(user, "third").await;
}

async fn a_pairing_nobody_waits_for_leaves_no_agent(app: &TestApp) {
    let user = user_id();
    let pair = app.pair_request("ghost").await;
    app.say(user, &format!("/pair {}", pair.code)).await;
    app.expect_message(user, "no longer waiting").await;
    assert_eq!(agents::count_active(&app.state.db, user).await.unwrap(), 0);
}

fn widget_login(app: &TestApp, user: i64, age_secs: i64) -> Value {
    let mut fields = json!({
        "id": user,
        "first_name": "Ada",
        "username": "ada",
        "auth_date": remoteagent_proto::now_secs() as i64 - age_secs,
    })
    .as_object()
    .unwrap()
    .clone();
    let hash = login_widget::sign(&fields, &app.tg.token()).unwrap();
    fields.insert("hash".into(), json!(hash));
    Value::Object(fields)
}

async fn confirm(app: &TestApp, code: &str, login: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/pair/confirm"))
        .json(&json!({"code": code, "telegram": login}))
        .send()
        .await
        .unwrap()
}

async fn the_connect_page_checks_the_widget_signature(app: &TestApp) {
    let page = app.http.get(app.url("/connect")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("data-telegram-login=\"remoteagent_test_bot\""),
        "{html}"
    );
    assert!(
        html.contains(r#"value="""#),
        "no code, an empty field: {html}"
    );
    // The link `pair` prints fills the code in; anything else is dropped.
    let filled = app
        .http
        .get(app.url("/connect?code=xk9-4tz"))
        .send()
        .await
        .unwrap();
    assert!(filled.text().await.unwrap().contains(r#"value="XK9-4TZ""#));
    let hostile = app
        .http
        .get(app.url("/connect?code=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 200);
    let html = hostile.text().await.unwrap();
    assert!(
        !html.contains("alert(1)") && html.contains(r#"value="""#),
        "{html}"
    );

    let user = user_id();
    let pair = app.pair_request("web").await;
    let mut sub = app.pair_subscriber(&pair).await;

    // Forged: signed, then a field changed.
    let mut forged = widget_login(app, user, 10);
    forged["id"] = json!(user + 1);
    let response = confirm(app, &pair.code, &forged).await;
    assert_eq!(response.status(), 401);
    let err: ErrorBody = response.json().await.unwrap();
    assert!(
        err.error.message.contains("signature"),
        "{}",
        err.error.message
    );
    // Signed with another bot's token.
    let mut other_bot = widget_login(app, user, 10);
    let mut fields = other_bot.as_object().unwrap().clone();
    fields.remove("hash");
    other_bot["hash"] = json!(login_widget::sign(&fields, "1:other").unwrap());
    assert_eq!(confirm(app, &pair.code, &other_bot).await.status(), 401);
    // Stale: two days old.
    let stale = widget_login(app, user, 2 * 24 * 3600);
    let response = confirm(app, &pair.code, &stale).await;
    assert_eq!(response.status(), 401);
    let err: ErrorBody = response.json().await.unwrap();
    assert!(
        err.error.message.contains("too old"),
        "{}",
        err.error.message
    );
    // Dated an hour in the future: the device's clock is wrong, and the
    // answer says so instead of "too old".
    let future = widget_login(app, user, -3600);
    let response = confirm(app, &pair.code, &future).await;
    assert_eq!(response.status(), 401);
    let err: ErrorBody = response.json().await.unwrap();
    assert_eq!(
        err.error.message,
        "the Telegram login is dated in the future: check this device's clock, then log in again"
    );

    // Valid: paired, lower-case code accepted.
    let valid = widget_login(app, user, 10);
    let response = confirm(app, &pair.code.to_lowercase(), &valid).await;
    assert_eq!(response.status(), 200);
    let body: PairConfirmResponse = response.json().await.unwrap();
    assert_eq!(body.name, "web");
    match next_pair_event(&mut sub).await {
        PairEvent::Paired(p) => assert_eq!(p.agent_id, body.agent_id),
        other => panic!("expected paired, got {other:?}"),
    }
    app.expect_message(user, "Paired web").await;
    // Reusing the code through the page is refused.
    let response = confirm(app, &pair.code, &widget_login(app, user, 10)).await;
    assert_eq!(response.status(), 400);
}

both_backends!(
    pairing_through_the_bot_gives_a_confined_agent,
    the_pairing_user_may_only_listen_on_its_channel,
    expired_and_used_codes_are_refused,
    the_sixth_attempt_is_refused_even_with_the_right_code,
    the_plan_limit_is_enforced_after_the_trial,
    a_pairing_nobody_waits_for_leaves_no_agent,
    the_connect_page_checks_the_widget_signature,
);

async fn pairing_requests_are_validated_and_rate_limited(app: &TestApp) {
    for body in ["{", "{\"projectName\": 5}", "{\"hostname\": \"h\"}"] {
        let response = app
            .http
            .post(app.url("/api/pair"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let err: ErrorBody = response.json().await.unwrap();
        assert_eq!(err.error.code, "bad_request");
    }
    for _ in 0..10 {
        app.pair_request("many").await;
    }
    let response = app
        .http
        .post(app.url("/api/pair"))
        .json(&json!({"projectName": "one-more", "hostname": "h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let err: ErrorBody = response.json().await.unwrap();
    assert_eq!(err.error.code, "rate_limited");
}

async fn expired_pairing_users_are_swept(app: &TestApp) {
    let pair = app.pair_request("late").await;
    let client = client_as(&pair.redis.url, &pair.redis.username, &pair.redis.password);
    assert!(
        client
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .is_ok()
    );
    sqlx::query("UPDATE pairing_codes SET expires_at = $1 WHERE code = $2")
        .bind(remoteagent_cloud::db::now() - 1)
        .bind(pair.code.clone())
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    remoteagent_cloud::cron::housekeeping(&app.state)
        .await
        .unwrap();
    assert!(
        client
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .is_err()
    );
}

async fn a_start_deep_link_pairs(app: &TestApp) {
    let user = user_id();
    let pair = app.pair_request("linked").await;
    let mut sub = app.pair_subscriber(&pair).await;
    app.say(user, &format!("/start {}", pair.code.replace('-', "")))
        .await;
    assert!(matches!(
        next_pair_event(&mut sub).await,
        PairEvent::Paired(_)
    ));
    app.expect_message(user, "Paired linked").await;
    app.say(user, "/start").await;
    app.expect_message(user, "Welcome").await;
}

both_backends!(
    pairing_requests_are_validated_and_rate_limited,
    expired_pairing_users_are_swept,
    a_start_deep_link_pairs,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_acl_agents_use_the_default_user() {
    let app =
        support::TestApp::start_with(support::Backend::Sqlite, &[("REDIS_ACL", "false")]).await;
    let pair = app.pair_request("plain").await;
    assert_eq!(pair.redis.username, "");
    assert_eq!(pair.redis.password, "");
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "plain").await;
    assert_eq!(paired.redis_username, "");
    // No ACL user was created for it.
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let acl_user: Option<Vec<redis::Value>> = redis::cmd("ACL")
        .arg("GETUSER")
        .arg(names::agent_redis_user(&paired.agent_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(acl_user.is_none());
    app.finish().await;
}

async fn concurrent_pairings_never_exceed_the_plan(app: &TestApp) {
    let user = user_id();
    users::get_or_create(&app.state.db, user, 14).await.unwrap();
    users::set_trial_ends_at(&app.state.db, user, remoteagent_cloud::db::now() - 1000)
        .await
        .unwrap();
    let mut pairs = Vec::new();
    for i in 0..4 {
        let pair = app.pair_request(&format!("race{i}")).await;
        let sub = app.pair_subscriber(&pair).await;
        pairs.push((pair, sub));
    }
    // All four codes confirmed at once; the free plan allows one agent.
    let confirms = pairs
        .iter()
        .map(|(pair, _)| remoteagent_cloud::pairing::confirm(&app.state, user, &pair.code));
    let results = futures::future::join_all(confirms).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!(ok <= 1, "{results:?}");
    assert_eq!(
        agents::count_active(&app.state.db, user).await.unwrap(),
        ok as i64
    );
    for (_, sub) in &mut pairs {
        let _ = next_pair_event(sub).await;
    }
}

both_backends!(concurrent_pairings_never_exceed_the_plan);

/// Bidi overrides and zero-width characters never reach a stored name or
/// hostname, and both are capped.
async fn names_lose_invisible_characters(app: &TestApp) {
    let response = app
        .http
        .post(app.url("/api/pair"))
        .json(&json!({
            "projectName": "inv\u{202E}gnp.exe\u{200B}\u{2066}",
            "hostname": format!("dev\u{200D}box\u{FEFF}{}", "h".repeat(200)),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pair: remoteagent_proto::api::PairResponse = response.json().await.unwrap();
    let row = remoteagent_cloud::db::pairing::get(&app.state.db, &pair.code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.project_name, "invgnp.exe");
    assert_eq!(row.hostname, format!("devbox{}", "h".repeat(58)));
    let user = user_id();
    let mut sub = app.pair_subscriber(&pair).await;
    app.say(user, &format!("/pair {}", pair.code)).await;
    match next_pair_event(&mut sub).await {
        PairEvent::Paired(p) => assert_eq!(p.name, "invgnp.exe"),
        other => panic!("expected paired, got {other:?}"),
    }
    let agent = &agents::list_active(&app.state.db, user).await.unwrap()[0];
    assert_eq!(agent.name, "invgnp.exe");
    assert_eq!(agent.hostname.chars().count(), 64);
}

both_backends!(names_lose_invisible_characters);

async fn pair_status(app: &TestApp, forwarded_for: Option<&str>) -> u16 {
    let mut request = app
        .http
        .post(app.url("/api/pair"))
        .json(&json!({"projectName": "p", "hostname": "h"}));
    if let Some(xff) = forwarded_for {
        request = request.header("X-Forwarded-For", xff);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Two replicas on one Redis share the `/api/pair` limit; behind a trusted
/// proxy it is per client (the rightmost untrusted `X-Forwarded-For` hop),
/// and a client cannot escape it by forging the header's left part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pairing_limit_is_shared_and_per_client_behind_a_proxy() {
    let redis = remoteagent_testkit::RedisServer::start().unwrap();
    let url = redis.url();
    let extra = [
        ("REDIS_URL", url.as_str()),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    let a = TestApp::start_with(support::Backend::Sqlite, &extra).await;
    let b = TestApp::start_with(support::Backend::Sqlite, &extra).await;
    // Ten from one client, alternating replicas; the eleventh is refused by
    // either, whatever it puts left of the proxy's entry.
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            pair_status(app, Some("203.0.113.7")).await,
            200,
            "request {i}"
        );
    }
    assert_eq!(pair_status(&a, Some("203.0.113.7")).await, 429);
    assert_eq!(
        pair_status(&b, Some("198.51.100.1, 203.0.113.7")).await,
        429
    );
    // Another client behind the same proxy is not affected.
    assert_eq!(pair_status(&a, Some("203.0.113.8")).await, 200);
    assert_eq!(pair_status(&b, Some("2001:db8::1")).await, 200);
    a.finish().await;
    b.finish().await;

    // Without TRUSTED_PROXIES the header is ignored: every request counts
    // for the peer, 127.0.0.1.
    let plain = TestApp::start_with(support::Backend::Sqlite, &[]).await;
    for i in 0..10 {
        let xff = format!("203.0.113.{i}");
        assert_eq!(pair_status(&plain, Some(&xff)).await, 200, "request {i}");
    }
    assert_eq!(pair_status(&plain, Some("203.0.113.99")).await, 429);
    plain.finish().await;
}
