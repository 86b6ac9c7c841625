//! The agent API (`DELETE /api/agents/{id}`, `POST /api/agents/{id}/token`)
//! and unpairing from the bot, checked down to the agent's Redis access.

use crate::support;

use futures::StreamExt;
use remoteagent_cloud::db::agents;
use remoteagent_proto::api::{ErrorBody, TokenResponse};
use remoteagent_proto::events::{CommandEvent, PairedPayload};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{envelope, names, token};
use remoteagent_testkit::RedisServer;
use support::{TIMEOUT, TestApp, client_as, next_message, user_id};

fn agent_client(app: &TestApp, paired: &PairedPayload, jwt: &str) -> redis::Client {
    client_as(&app.redis_url, &paired.redis_username, jwt)
}

/// The agent's own subscription, as its daemon holds it.
async fn agent_connection(app: &TestApp, paired: &PairedPayload, jwt: &str) -> redis::aio::PubSub {
    let mut pubsub = agent_client(app, paired, jwt)
        .get_async_pubsub()
        .await
        .unwrap();
    pubsub
        .subscribe(names::agent_channel(&paired.agent_id))
        .await
        .unwrap();
    pubsub
}

async fn delete(app: &TestApp, id: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut req = app.http.delete(app.url(&format!("/api/agents/{id}")));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap()
}

async fn refresh(app: &TestApp, id: &str, bearer: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/agents/{id}/token")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

async fn bad_bearers_are_401(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "guarded").await;
    let (_, other) = app.pair_agent(user, "neighbour").await;
    let id = paired.agent_id.as_str();
    let forged = token::issue(&CloudSigningKey::generate(), &paired.agent_id, user, 3600)
        .unwrap()
        .0;
    // Well signed and current, but not the token this agent holds.
    let stale_copy = token::issue(&app.state.key, &paired.agent_id, user, 3600)
        .unwrap()
        .0;
    let cases: [(&str, Option<&str>); 5] = [
        ("none", None),
        ("garbage", Some("not-a-jwt")),
        ("forged", Some(&forged)),
        ("another agent's", Some(&other.jwt)),
        ("not the stored one", Some(&stale_copy)),
    ];
    for (what, bearer) in cases {
        let response = delete(app, id, bearer).await;
        assert_eq!(response.status(), 401, "{what}");
        let body: ErrorBody = response.json().await.unwrap();
        assert_eq!(body.error.code, "unauthorized", "{what}");
    }
    assert!(
        agents::get(&app.state.db, &paired.agent_id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );

    // The right token unpairs; afterwards the same token is refused.
    let response = delete(app, id, Some(&paired.jwt)).await;
    assert_eq!(response.status(), 204);
    assert_eq!(delete(app, id, Some(&paired.jwt)).await.status(), 401);
    assert_eq!(refresh(app, id, &paired.jwt).await.status(), 401);
    let row = agents::get(&app.state.db, &paired.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "revoked");
    assert_eq!(row.token_hash, None);
    app.expect_message(user, "guarded was unpaired").await;
}

async fn unpairing_from_the_bot_revokes_redis_access(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "doomed").await;
    let mut daemon = agent_connection(app, &paired, &paired.jwt).await;
    app.say(user, "/unpair Doomed").await;
    // The daemon hears a signed `unpaired` first…
    let token = next_message(&mut daemon).await;
    let claims = envelope::verify(&app.state.key.public_key(), &paired.agent_id, &token).unwrap();
    assert!(matches!(claims.command, CommandEvent::Unpaired(_)));
    // …then Redis drops its connection, and it cannot log in again.
    let ended = tokio::time::timeout(TIMEOUT, async {
        while daemon.on_message().next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the agent's connection stayed open");
    let err = agent_client(app, &paired, &paired.jwt)
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("auth") || err.to_string().contains("WRONGPASS"),
        "{err}"
    );
    app.expect_message(user, "doomed was unpaired").await;
    assert_eq!(
        delete(app, paired.agent_id.as_str(), Some(&paired.jwt))
            .await
            .status(),
        401
    );
    // The user has no current agent any more.
    app.say(user, "hello?").await;
    app.expect_message(user, "no paired agents").await;
}

async fn token_refresh_rotates_the_credential(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "rotating").await;
    let id = paired.agent_id.as_str();
    let response = refresh(app, id, &paired.jwt).await;
    assert_eq!(response.status(), 200);
    let fresh: TokenResponse = response.json().await.unwrap();
    assert_ne!(fresh.jwt, paired.jwt);
    let claims = token::verify(&app.state.key.public_key(), &fresh.jwt).unwrap();
    assert_eq!(claims.sub, paired.agent_id);
    assert_eq!(claims.exp, fresh.expires_at);
    // The old token no longer authenticates anywhere; the new one does.
    assert_eq!(refresh(app, id, &paired.jwt).await.status(), 401);
    assert!(
        agent_client(app, &paired, &paired.jwt)
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .is_err()
    );
    let _ = agent_connection(app, &paired, &fresh.jwt).await;
    let again: TokenResponse = refresh(app, id, &fresh.jwt).await.json().await.unwrap();
    assert_eq!(delete(app, id, Some(&again.jwt)).await.status(), 204);
}

both_backends!(
    bad_bearers_are_401,
    unpairing_from_the_bot_revokes_redis_access,
    token_refresh_rotates_the_credential,
);

async fn unpairing_closes_the_running_session(app: &TestApp) {
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "busy").await;
    app.set_presence(&paired.agent_id).await;
    let mut daemon = agent_connection(app, &paired, &paired.jwt).await;
    app.say(user, "long job").await;
    let token = next_message(&mut daemon).await;
    let claims = envelope::verify(&app.state.key.public_key(), &paired.agent_id, &token).unwrap();
    let CommandEvent::Command(cmd) = claims.command else {
        panic!("expected a command");
    };
    app.expect_message(user, "busy is working").await;
    assert_eq!(
        delete(app, paired.agent_id.as_str(), Some(&paired.jwt))
            .await
            .status(),
        204
    );
    app.expect_message(user, "aborted").await;
    let finished = remoteagent_testkit::wait_for(TIMEOUT, || async {
        let row = remoteagent_cloud::db::sessions::get(&app.state.db, &cmd.session_id)
            .await
            .unwrap()?;
        (row.status != "running").then_some(row.status)
    })
    .await;
    assert_eq!(finished.as_deref(), Some("aborted"));
}

both_backends!(unpairing_closes_the_running_session);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_users_come_back_after_redis_forgets_them() {
    let mut redis = RedisServer::start().unwrap();
    let url = redis.url();
    let app = TestApp::start_with(support::Backend::Sqlite, &[("REDIS_URL", &url)]).await;
    let user = user_id();
    let (_, paired) = app.pair_agent(user, "survivor").await;
    let _ = agent_connection(&app, &paired, &paired.jwt).await;
    // A Redis without an ACL file loses its users when it restarts.
    redis.stop();
    redis.restart().unwrap();
    assert!(
        agent_client(&app, &paired, &paired.jwt)
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .is_err()
    );
    let restored = remoteagent_testkit::wait_for(TIMEOUT, || async {
        remoteagent_cloud::cron::restore_redis_users(&app.state)
            .await
            .ok()
            .filter(|n| *n > 0)
    })
    .await;
    assert_eq!(restored, Some(1));
    // The same token works again, with the same confinement.
    let mut pubsub = agent_connection(&app, &paired, &paired.jwt).await;
    let err = pubsub.subscribe("agent:someone-else").await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
    // Running it again changes nothing.
    assert_eq!(
        remoteagent_cloud::cron::restore_redis_users(&app.state)
            .await
            .unwrap(),
        0
    );
    app.finish().await;
}
