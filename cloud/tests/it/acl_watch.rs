//! The cloud's watch over agents' Redis users: after a Redis restart that
//! lost them (no ACL file), active agents get their users back, revoked ones
//! do not, and a check where nothing was lost costs no database query.

use crate::support;

use remoteagent_cloud::db::agents;
use remoteagent_cloud::redis_acl::{self, SENTINEL_USER};
use remoteagent_proto::names;
use remoteagent_testkit::RedisServer;
use support::{Backend, TestApp, client_as, user_id};

async fn acl_users(app: &TestApp) -> Vec<String> {
    let mut conn = app
        .redis
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_users_of_active_agents_come_back_and_revoked_ones_stay_gone() {
    let mut redis = RedisServer::start().unwrap();
    let url = redis.url();
    let app = TestApp::start_with(Backend::Sqlite, &[("REDIS_URL", &url)]).await;
    let user = user_id();
    let (_, kept) = app.pair_agent(user, "kept").await;
    let (_, dropped) = app.pair_agent(user, "dropped").await;
    let kept_user = names::agent_redis_user(&kept.agent_id);
    let dropped_user = names::agent_redis_user(&dropped.agent_id);

    // One agent is revoked (in the database only, so that its user is
    // still there), then Redis restarts without its users.
    assert!(
        agents::revoke(&app.state.db, &dropped.agent_id)
            .await
            .unwrap()
    );
    redis.restart().unwrap();

    // The check (run here directly; the app's own watch may run it too,
    // which changes nothing but the count returned).
    let restored = remoteagent_testkit::wait_for(support::TIMEOUT, || async {
        redis_acl::restore_lost_users(&app.state.acl, &app.state.db)
            .await
            .ok()
    })
    .await;
    assert!(
        restored.is_some(),
        "the check kept failing after the restart"
    );
    let users = acl_users(&app).await;
    assert!(users.contains(&kept_user), "{users:?}");
    assert!(
        !users.contains(&dropped_user),
        "revoked agent restored: {users:?}"
    );
    assert!(users.contains(&SENTINEL_USER.to_string()), "{users:?}");

    // The restored user takes the agent's token, with the same rights.
    let mut conn = client_as(&app.redis_url, &kept.redis_username, &kept.jwt)
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let denied: redis::RedisResult<redis::Value> = redis::cmd("PUBLISH")
        .arg(names::agent_channel(&kept.agent_id))
        .arg("x")
        .query_async(&mut conn)
        .await;
    assert!(denied.is_err(), "an agent may not publish to its channel");
    // Nobody can log in as the sentinel.
    assert!(
        client_as(&app.redis_url, SENTINEL_USER, "")
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .is_err()
    );

    // Nothing lost since: the next check restores nothing.
    assert_eq!(
        redis_acl::restore_lost_users(&app.state.acl, &app.state.db)
            .await
            .unwrap(),
        0
    );
    app.finish().await;
}
