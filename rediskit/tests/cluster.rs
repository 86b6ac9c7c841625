//! `rediskit` against a real Redis Cluster (3 primaries, 3 replicas) and a
//! standalone server: the same calls work on both.

use std::time::Duration;

use redis::Value;
use remoteagent_rediskit::{Conn, Options, Target, conn, nodes, pubsub};
use remoteagent_testkit::RedisCluster;
use remoteagent_testkit::pushes::next_message;

/// A private cluster, started off the async runtime (it blocks).
async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap()
        .unwrap()
}

async fn admin(target: &Target) -> Conn {
    conn::managed(target, &Options::default()).await.unwrap()
}

#[tokio::test]
async fn commands_scripts_and_pipelines_reach_the_slot_owner() {
    let cluster = start_cluster().await;
    let target = Target::parse(&cluster.urls(), false).unwrap();
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
    let cluster = start_cluster().await;
    // One seed marked `cluster=true` is enough: the client learns the rest.
    let seed = format!("{}?cluster=true", cluster.node_urls()[0]);
    let target = Target::parse(&seed, false).unwrap();
    assert!(target.is_cluster());
    let (_sub, mut rx) = pubsub::subscriber(&target, "agent:pubsub-1").await.unwrap();
    let mut publisher = admin(&target).await;
    let receivers: i64 = publisher
        .publish_cmd("agent:pubsub-1", b"hello")
        .query_async(&mut publisher)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let msg = next_message(&mut rx, Duration::from_secs(10)).await;
    assert_eq!(msg.get_channel_name(), "agent:pubsub-1");
    assert_eq!(msg.get_payload_bytes(), b"hello");
}

#[tokio::test]
async fn a_command_on_every_node_answers_per_node() {
    let cluster = start_cluster().await;
    let target = Target::parse(&cluster.urls(), false).unwrap();
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

    // A node that joins later, empty, is listed at once (it has no user
    // yet: what the cloud's watch repairs).
    let primary = cluster.primary_for_key("k:1").unwrap();
    let mut cluster = cluster;
    let fresh = tokio::task::spawn_blocking(move || {
        let port = cluster.add_replica(primary).unwrap();
        (cluster, port)
    })
    .await
    .unwrap();
    let (cluster, port) = fresh;
    let mut getuser = redis::cmd("ACL");
    getuser.arg("GETUSER").arg("rediskit-test");
    let answers = nodes::each_node(&mut c, &getuser).await.unwrap();
    assert_eq!(answers.len(), 7, "{answers:?}");
    let (_, on_fresh) = answers
        .iter()
        .find(|(addr, _)| addr.ends_with(&format!(":{port}")))
        .expect("the new node is listed");
    assert_eq!(on_fresh.as_ref().unwrap(), &Value::Nil);
    drop(cluster);
}

/// A failover of the shard that owns a subscribed channel unsubscribes
/// the subscriber (an `SUnsubscribe` push from the old primary); the
/// subscriber's repair, as the daemon does it, is a new connection and a
/// new subscription. A publisher whose slot map is out of date sends its
/// `SPUBLISH` to the old primary: the message arrives but the answer says
/// 0; `pubsub::publish` counts the shard's subscribers instead, and the
/// message arrives once.
#[tokio::test]
async fn after_a_failover_a_stale_publisher_still_counts_the_subscriber() {
    let cluster = start_cluster().await;
    let target = Target::parse(&cluster.urls(), false).unwrap();
    let channel = "agent:failover-1";
    let (sub, mut rx) = pubsub::subscriber(&target, channel).await.unwrap();
    // A publisher that sends nothing more before the failover.
    let mut stale = admin(&target).await;
    assert_eq!(
        remoteagent_rediskit::pubsub::publish(&mut stale, channel, b"before")
            .await
            .unwrap(),
        1
    );

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.failover_for_key(channel).unwrap();
        cluster
    })
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let push = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("no SUnsubscribe after the failover")
            .unwrap();
        if push.kind == redis::PushKind::SUnsubscribe {
            break;
        }
    }
    drop(sub);
    let (sub, mut rx) = pubsub::subscriber(&target, channel).await.unwrap();
    let mut fresh = admin(&target).await;
    assert_eq!(
        remoteagent_rediskit::pubsub::shard_subscribers(&mut fresh, channel)
            .await
            .unwrap(),
        1
    );

    let plain: i64 = stale
        .publish_cmd(channel, b"one")
        .query_async(&mut stale)
        .await
        .unwrap();
    assert_eq!(plain, 0, "the old primary counts nobody");
    let counted = remoteagent_rediskit::pubsub::publish(&mut stale, channel, b"two")
        .await
        .unwrap();
    assert_eq!(counted, 1);
    let mut got = Vec::new();
    for _ in 0..2 {
        let msg = next_message(&mut rx, Duration::from_secs(30)).await;
        got.push(msg.get_payload_bytes().to_vec());
    }
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    // And nothing more (each arrived once).
    let mut probe = admin(&target).await;
    let _ = remoteagent_rediskit::pubsub::publish(&mut probe, channel, b"end").await;
    let msg = next_message(&mut rx, Duration::from_secs(30)).await;
    assert_eq!(msg.get_payload_bytes(), b"end");
    drop((sub, cluster));
}

/// A dedicated cluster connection can wait in `XREAD BLOCK` while another
/// connection writes (the forwarder's way of reading a stream).
#[tokio::test]
async fn a_blocking_read_waits_on_its_own_cluster_connection() {
    let cluster = start_cluster().await;
    let target = Target::parse(&cluster.urls(), false).unwrap();
    let mut blocked = conn::dedicated(&target, &Options::default()).await.unwrap();
    let reader = tokio::spawn(async move {
        let v: Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(0)
            .arg("STREAMS")
            .arg("output:a:s")
            .arg("0-0")
            .query_async(&mut blocked)
            .await
            .unwrap();
        v
    });
    let mut writer = admin(&target).await;
    let _: String = redis::cmd("XADD")
        .arg("output:a:s")
        .arg("*")
        .arg("event")
        .arg("x")
        .query_async(&mut writer)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(got, Value::Nil);
}
