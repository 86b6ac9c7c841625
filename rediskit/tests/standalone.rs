//! `rediskit` on one standalone server: the default, unchanged behaviour.

use std::time::Duration;

use remoteagent_rediskit::{Options, Target, conn, nodes, pubsub};
use remoteagent_testkit::RedisServer;

#[tokio::test]
async fn one_url_is_a_standalone_connection_with_classic_pubsub() {
    let server = RedisServer::start_ephemeral().unwrap();
    let target = Target::parse(&server.url(), false).unwrap();
    assert!(!target.is_cluster());

    let (sub, mut rx) = pubsub::subscriber(&target, "agent:one").await.unwrap();
    assert!(!sub.is_cluster());

    let mut publisher = conn::dedicated(&target, &Options::default()).await.unwrap();
    let cmd = publisher.publish_cmd("agent:one", b"hi");
    assert!(cmd.get_packed_command().windows(7).any(|w| w == b"PUBLISH"));
    let receivers: i64 = cmd.query_async(&mut publisher).await.unwrap();
    assert_eq!(receivers, 1);
    let msg = remoteagent_testkit::pushes::next_message(&mut rx, Duration::from_secs(10)).await;
    assert_eq!(msg.get_payload_bytes(), b"hi");

    let answers = nodes::each_node(&mut publisher, &redis::cmd("PING"))
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0, nodes::STANDALONE);
    let pong: String = nodes::on_node(&mut publisher, nodes::STANDALONE, &redis::cmd("PING"))
        .await
        .unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn a_blocking_read_on_a_dedicated_connection_holds_up_no_one_else() {
    let server = RedisServer::start_ephemeral().unwrap();
    let target = Target::parse(&server.url(), false).unwrap();
    let mut blocked = conn::dedicated(&target, &Options::default()).await.unwrap();
    let reader = tokio::spawn(async move {
        let v: redis::Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg("s")
            .arg("0-0")
            .query_async(&mut blocked)
            .await
            .unwrap();
        v
    });
    let mut other = conn::managed(&target, &Options::default()).await.unwrap();
    // Answered while the read waits (for ever, until an entry exists): it
    // has its own socket.
    let pong: String = tokio::time::timeout(
        Duration::from_secs(10),
        redis::cmd("PING").query_async(&mut other),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(pong, "PONG");
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("*")
        .arg("f")
        .arg("v")
        .query_async(&mut other)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(got, redis::Value::Nil);
}
