//! The execution side against Redis misbehaving or locked down: a restart
//! in the middle of a session, and the agent confined to its ACL user.

use crate::execution_support;

use execution_support::*;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_proto::{AgentId, SessionId, names, token};
use remoteagent_testkit::wait_for;

#[tokio::test]
async fn redis_restarted_mid_session_loses_no_output() {
    let mut s = Setup::new().await;
    let agent = s.spawn(s.spec(vec![fixture("slow.sh"), "80".into()])).await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "x")).await;
    wait_for(WAIT, || async {
        chunk_text(&s.events(&sid).await)
            .contains("tick 10")
            .then_some(())
    })
    .await
    .expect("runner started");

    s.redis.restart().unwrap();
    // The admin connection was dropped too: make a fresh one.
    s.admin = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();

    let events = s.wait_done(&sid).await;
    // Strict: every seq exactly once, even if a batch was retried across
    // the restart (entry ids make retries idempotent).
    let text = chunk_text(&events);
    let count = |f: fn(&OutputEvent) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, OutputEvent::Started(_))), 1);
    assert_eq!(count(|e| matches!(e, OutputEvent::Done(_))), 1);
    let mut expected = String::new();
    for i in 0..80 {
        expected.push_str(&format!("tick {i}\n"));
    }
    expected.push_str("slow done\n");
    assert_eq!(text, expected);
    assert_eq!(done_of(&events).status, DoneStatus::Ok);

    // And it is subscribed again: a new command runs.
    let again = SessionId::generate();
    let back = wait_for(WAIT, || async {
        let token = s.sign(s.command(&again, "again"));
        (s.publish_raw(&token).await == 1).then_some(())
    })
    .await;
    assert!(back.is_some(), "never resubscribed");
    s.wait_done(&again).await;
    assert!(agent.online());
    agent.shutdown().await;
}

#[tokio::test]
async fn the_agent_works_within_its_acl_user_and_no_further() {
    let s = Setup::new().await;
    let (jwt, _) = token::issue(&s.key, &s.agent, 42, 3600).unwrap();
    let user = names::agent_redis_user(&s.agent);
    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER").arg(&user);
    for rule in names::agent_acl_rules(&s.agent) {
        acl.arg(rule);
    }
    acl.arg(format!(">{jwt}"));
    let mut admin = s.admin.clone();
    let _: () = acl.query_async(&mut admin).await.unwrap();

    let mut spec = s.spec(vec![fixture("stream.sh"), "{prompt}".into(), "2".into()]);
    spec.redis_username = user.clone();
    spec.jwt = jwt.clone().into();
    let agent = s.spawn(spec).await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "under acl")).await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    assert!(chunk_text(&events).contains("thinking about: under acl"));

    // The same credentials cannot read another agent's stream or channel.
    let other = AgentId::generate();
    let info = redis::IntoConnectionInfo::into_connection_info(s.redis.url().as_str()).unwrap();
    let settings = info
        .redis_settings()
        .clone()
        .set_username(&user)
        .set_password(&jwt);
    let client = redis::Client::open(info.set_redis_settings(settings)).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let denied: redis::RedisResult<redis::Value> = redis::cmd("XRANGE")
        .arg(names::output_stream(&other, &sid))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await;
    assert!(denied.is_err(), "read another agent's stream: {denied:?}");
    let denied: redis::RedisResult<redis::Value> = redis::cmd("PUBLISH")
        .arg(names::agent_channel(&s.agent))
        .arg("x")
        .query_async(&mut conn)
        .await;
    assert!(
        denied.is_err(),
        "an agent may not publish commands to itself"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn an_agent_started_while_redis_is_down_comes_online_later() {
    let mut s = Setup::new().await;
    s.redis.stop();
    // spawn() returns at once; the agent retries in the background.
    let agent = remoteagentd::agent::AgentHandle::spawn(
        s.spec(vec![fixture("slow.sh"), "3".into()]),
        s.settings.clone(),
        s.notices_tx.clone(),
    );
    assert_eq!(agent.id(), &s.agent);
    assert!(!agent.online());
    s.redis.restart().unwrap();
    let online = wait_for(WAIT, || async { agent.online().then_some(()) }).await;
    assert!(online.is_some(), "the agent never came online");
    s.admin = redis::Client::open(s.redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    let sid = SessionId::generate();
    s.send(s.command(&sid, "x")).await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    agent.shutdown().await;
}
