//! Agent users made by an older cloud (without the blob rules) are brought
//! up to date on the real Redis: the password hash stays, the agent's
//! subscribed connection stays, and the user may then read its blobs.

use crate::support;

use futures::StreamExt;
use remoteagent_proto::{AgentId, names};
use remoteagent_testkit::RedisServer;
use sha2::{Digest, Sha256};
use support::{Backend, TIMEOUT, TestApp, client_as, user_id};

/// The rules an agent user had before files from the phone existed.
fn old_rules(agent: &AgentId) -> Vec<String> {
    names::agent_acl_rules(agent)
        .into_iter()
        .filter(|r| *r != format!("~{}", names::blob_pattern(agent)) && r != "+get")
        .collect()
}

async fn admin(app: &TestApp) -> redis::aio::MultiplexedConnection {
    app.redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap()
}

/// The ids of the connections logged in as `user` with a subscription.
async fn subscribed_clients(app: &TestApp, user: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin(app).await)
        .await
        .unwrap();
    list.lines()
        .filter(|l| l.split(' ').any(|f| f == format!("user={user}")))
        .filter(|l| l.split(' ').any(|f| f == "sub=1"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_agent_user_gets_the_blob_rules_and_keeps_its_password_and_connections() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    let app = TestApp::start_with(Backend::Sqlite, &[("REDIS_URL", &url)]).await;
    let (_, paired) = app.pair_agent(user_id(), "old").await;
    let agent = paired.agent_id.clone();
    let user = names::agent_redis_user(&agent);
    let blob = names::blob_key(&agent, "b1");

    // As an older cloud left it: the same password, the old rules.
    let hash = hex::encode(Sha256::digest(paired.jwt.as_bytes()));
    let mut downgrade = redis::cmd("ACL");
    downgrade.arg("SETUSER").arg(&user).arg("reset");
    for rule in old_rules(&agent) {
        downgrade.arg(rule);
    }
    downgrade.arg(format!("#{hash}"));
    downgrade
        .query_async::<()>(&mut admin(&app).await)
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(&blob)
        .arg("bytes")
        .query_async::<()>(&mut admin(&app).await)
        .await
        .unwrap();

    // The agent's daemon is connected: subscribed, and a command connection.
    let agent_client = client_as(&url, &paired.redis_username, &paired.jwt);
    let mut sub = agent_client.get_async_pubsub().await.unwrap();
    sub.subscribe(names::agent_channel(&agent)).await.unwrap();
    let mut conn = agent_client
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let denied: redis::RedisResult<Option<String>> =
        redis::cmd("GET").arg(&blob).query_async(&mut conn).await;
    assert!(denied.is_err(), "the old rules allowed GET: {denied:?}");
    let before = subscribed_clients(&app, &user).await;
    assert_eq!(before.len(), 1, "{before:?}");

    assert_eq!(
        app.state
            .acl
            .update_agent_rules(std::slice::from_ref(&agent))
            .await
            .unwrap(),
        1
    );
    // Current rules are left alone.
    assert_eq!(
        app.state
            .acl
            .update_agent_rules(std::slice::from_ref(&agent))
            .await
            .unwrap(),
        0
    );

    // The same connections: the subscription still receives, and the
    // command connection may now read the blob.
    assert_eq!(subscribed_clients(&app, &user).await, before);
    redis::cmd("PUBLISH")
        .arg(names::agent_channel(&agent))
        .arg("still here")
        .query_async::<i64>(&mut admin(&app).await)
        .await
        .unwrap();
    let msg = tokio::time::timeout(TIMEOUT, sub.on_message().next())
        .await
        .expect("the subscription received nothing")
        .expect("the subscription ended");
    assert_eq!(msg.get_payload::<String>().unwrap(), "still here");
    let got: Option<String> = redis::cmd("GET")
        .arg(&blob)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("bytes"));
    // Another agent's blobs stay out of reach.
    let foreign = names::blob_key(&AgentId::generate(), "b1");
    let denied: redis::RedisResult<Option<String>> =
        redis::cmd("GET").arg(&foreign).query_async(&mut conn).await;
    assert!(denied.is_err());
    // The password is the same: a new login with the token works.
    let mut fresh = agent_client
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut fresh).await.unwrap();
    assert_eq!(pong, "PONG");
    app.finish().await;
}
