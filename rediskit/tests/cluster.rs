//! `rediskit` against a real Redis Cluster (3 primaries, 3 replicas) and a
//! standalone server: the same calls work on both.

use std::time::Duration;

use redis::Value;
use remoteagent_rediskit::{Conn, Options, Target, conn, nodes};
use tokio::sync::mpsc;

fn cluster_urls() -> String {
    std::env::var("REDISKIT_CLUSTER").expect("REDISKIT_CLUSTER")
}

async fn admin(target: &Target) -> Conn {
    conn::managed(target, &Options::default()).await.unwrap()
}

#[tokio::test]
async fn commands_scripts_and_pipelines_reach_the_slot_owner() {
    let target = Target::parse(&cluster_urls(), false).unwrap();
    let mut c = admin(&target).await;
    assert!(c.is_cluster());
    for key in ["a", "b", "c", "d", "e", "f"] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    for key in ["a", "b", "c", "d", "e", "f"] {
        let v: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(v, key);
    }
    let n: i64 = redis::Script::new(
        "redis.call('set', KEYS[1], ARGV[1]); return redis.call('sadd', KEYS[2], ARGV[1])",
    )
    .key("x:{t1}:a")
    .key("x:{t1}:set")
    .arg("v")
    .invoke_async(&mut c)
    .await
    .unwrap();
    assert!(n <= 1);
    let (a, b): (String, i64) = redis::pipe()
        .atomic()
        .cmd("GET")
        .arg("x:{t1}:a")
        .cmd("SCARD")
        .arg("x:{t1}:set")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b), ("v", 1));
}

#[tokio::test]
async fn sharded_pubsub_carries_a_message_and_counts_the_receiver() {
    let target = Target::parse(&cluster_urls(), false).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sub = conn::managed(
        &target,
        &Options {
            push: Some(tx),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    sub.subscribe("agent:pubsub-1").await.unwrap();
    let mut publisher = admin(&target).await;
    let receivers: i64 = publisher
        .publish_cmd("agent:pubsub-1", b"hello")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let push = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Some(msg) = redis::Msg::from_push_info(push) {
            assert_eq!(msg.get_channel_name(), "agent:pubsub-1");
            assert_eq!(msg.get_payload_bytes(), b"hello");
            break;
        }
    }
}

#[tokio::test]
async fn a_command_on_every_node_answers_per_node() {
    let target = Target::parse(&cluster_urls(), false).unwrap();
    let mut c = admin(&target).await;
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("rediskit-test")
        .arg("on")
        .arg(">pw")
        .arg("~k:*")
        .arg("+get")
        .arg("+hello")
        .arg("+auth")
        .arg("+cluster|slots")
        .arg("+ping");
    let answers = nodes::each_node(&mut c, &setuser).await.unwrap();
    assert_eq!(answers.len(), 6, "{answers:?}");
    assert!(answers.iter().all(|(_, v)| v.is_ok()), "{answers:?}");
    for (addr, _) in &answers {
        let user: Value = nodes::on_node(
            &mut c,
            addr,
            redis::cmd("ACL").arg("GETUSER").arg("rediskit-test"),
        )
        .await
        .unwrap();
        assert_ne!(user, Value::Nil, "{addr}");
    }
    // That user logs in through the cluster client.
    let mut as_user = conn::managed(
        &target.with_login("rediskit-test", "pw"),
        &Options::default(),
    )
    .await
    .unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg("k:1")
        .query_async(&mut as_user)
        .await
        .unwrap();
    assert_eq!(v, None);
}
