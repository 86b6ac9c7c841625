//! The agent's Redis connection after Redis lost the agent's ACL user (a
//! restart without an ACL file): while the user is missing every reconnect
//! fails authentication; once the cloud re-creates it, the agent must log in
//! again, resubscribe, and finish the session that was running, whatever
//! state its connection manager gave up in meanwhile.

use crate::execution_support;

use execution_support::*;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::{SessionId, names, token};
use remoteagent_testkit::wait_for;

/// Creates (or re-creates) the agent's ACL user the way the cloud does.
async fn set_acl_user(s: &Setup, jwt: &str) {
    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER")
        .arg(names::agent_redis_user(&s.agent))
        .arg("reset");
    for rule in names::agent_acl_rules(&s.agent) {
        acl.arg(rule);
    }
    acl.arg(format!(">{jwt}"));
    let mut admin = s.admin.clone();
    let _: () = acl.query_async(&mut admin).await.unwrap();
}

/// How many failed logins Redis recorded for `user` (`ACL LOG`).
async fn failed_logins(s: &Setup, user: &str) -> i64 {
    let mut admin = s.admin.clone();
    let log: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .unwrap_or_default();
    let mut count = 0;
    for entry in log {
        let fields: std::collections::HashMap<String, redis::Value> =
            redis::from_redis_value(entry).unwrap_or_default();
        let is_user = fields
            .get("username")
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .is_some_and(|u| u == user);
        let is_auth = fields
            .get("reason")
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .is_some_and(|r| r == "auth");
        if is_user && is_auth {
            count += fields
                .get("count")
                .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
                .unwrap_or(0);
        }
    }
    count
}

#[tokio::test]
async fn the_agent_logs_in_again_once_its_lost_acl_user_is_restored() {
    let mut s = Setup::new().await;
    let (jwt, _) = token::issue(&s.key, &s.agent, 42, 3600).unwrap();
    let user = names::agent_redis_user(&s.agent);
    set_acl_user(&s, &jwt).await;
    let mut spec = s.spec(vec![fixture("slow.sh"), "60".into()]);
    spec.redis_username = user.clone();
    spec.jwt = jwt.clone().into();
    let agent = s.spawn(spec).await;

    // A session is running when Redis goes.
    let sid = SessionId::generate();
    s.send(s.command(&sid, "x")).await;
    wait_for(WAIT, || async {
        chunk_text(&s.events(&sid).await)
            .contains("tick 5")
            .then_some(())
    })
    .await
    .expect("runner started");

    // Killed and restarted: the stream survives (AOF), the ACL user not.
    s.redis.restart().unwrap();
    s.admin = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut s.admin.clone())
        .await
        .unwrap();
    assert!(!users.contains(&user), "the ACL user survived: {users:?}");

    // Let the agent fail to log in until a connection manager has surely
    // given up with an authentication error before the user comes back:
    // one manager makes 4 attempts (1 + 3 retries, link.rs), so 9 refused
    // logins are more than two managers' worth, whichever way the link's
    // rebuilds interleave them. Counted in Redis's ACL LOG, not timed.
    const REFUSED: i64 = 9;
    let failed = wait_for(std::time::Duration::from_secs(120), || async {
        (failed_logins(&s, &user).await >= REFUSED).then_some(())
    })
    .await;
    assert!(
        failed.is_some(),
        "the agent did not keep trying to log in ({} failed logins)",
        failed_logins(&s, &user).await
    );
    assert!(!agent.online(), "online without a Redis user");

    // The cloud's housekeeping re-creates the user.
    set_acl_user(&s, &jwt).await;

    // The running session's output arrives whole, exactly once.
    let events = s.wait_done(&sid).await;
    let mut expected = String::new();
    for i in 0..60 {
        expected.push_str(&format!("tick {i}\n"));
    }
    expected.push_str("slow done\n");
    assert_eq!(chunk_text(&events), expected);
    let count = |f: fn(&OutputEvent) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, OutputEvent::Started(_))), 1);
    assert_eq!(count(|e| matches!(e, OutputEvent::Done(_))), 1);
    assert_eq!(done_of(&events).status, DoneStatus::Ok);

    // Subscribed again, as its own user: a new command runs.
    let again = SessionId::generate();
    let back = wait_for(WAIT, || async {
        let token = s.sign(s.command(&again, "again"));
        (s.publish_raw(&token).await == 1).then_some(())
    })
    .await;
    assert!(back.is_some(), "never resubscribed");
    assert_eq!(done_of(&s.wait_done(&again).await).status, DoneStatus::Ok);
    let online = wait_for(WAIT, || async { agent.online().then_some(()) }).await;
    assert!(online.is_some(), "the handle does not report it online");
    agent.shutdown().await;
}
