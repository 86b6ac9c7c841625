//! The private Redis Cluster of `remoteagent_testkit::RedisCluster`: it
//! serves keys in every slot range, fails over on request and on a crash,
//! and grows a replica that syncs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use remoteagent_testkit::RedisCluster;

/// A cluster client with timeouts that hold on a busy machine.
fn client(cluster: &RedisCluster) -> ClusterConnection {
    ClusterClient::builder(cluster.node_urls())
        .connection_timeout(Duration::from_secs(15))
        .response_timeout(Duration::from_secs(15))
        .build()
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Polls `check` until it returns `Some` or 20 s pass.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "not after 20 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of `key` read through the cluster client (which may have to
/// follow a MOVED or reconnect after a failover: retried, not asserted once).
fn read_eventually(conn: &mut ClusterConnection, key: &str) -> String {
    eventually(&format!("reading {key} through the cluster"), || {
        redis::cmd("GET")
            .arg(key)
            .query::<Option<String>>(conn)
            .ok()
            .flatten()
    })
}

fn set(conn: &mut ClusterConnection, key: &str, value: &str) {
    let _: () = redis::cmd("SET").arg(key).arg(value).query(conn).unwrap();
}

#[test]
fn three_primaries_with_a_replica_each_serve_every_slot_range() {
    let cluster = RedisCluster::start().unwrap();
    assert_eq!(cluster.node_urls().len(), 6);
    assert_eq!(cluster.urls().split(',').count(), 6);
    assert_eq!(cluster.ports().len(), 6);

    // Keys until one lands on each primary.
    let mut keys = Vec::new();
    let mut primaries = BTreeSet::new();
    for i in 0..1000 {
        let key = format!("key-{i}");
        if primaries.insert(cluster.primary_for_key(&key).unwrap()) {
            keys.push(key);
        }
        if primaries.len() == 3 {
            break;
        }
    }
    assert_eq!(primaries.len(), 3, "keys on {primaries:?}");

    let mut all = primaries.clone();
    for key in &keys {
        let replicas = cluster.replicas_for_key(key).unwrap();
        assert_eq!(
            replicas.len(),
            1,
            "replicas of {key}'s primary: {replicas:?}"
        );
        all.extend(replicas);
    }
    assert_eq!(all, cluster.ports().into_iter().collect());

    let mut conn = client(&cluster);
    for key in &keys {
        set(&mut conn, key, &format!("value of {key}"));
    }
    for key in &keys {
        let value: Option<String> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
        assert_eq!(value, Some(format!("value of {key}")));
    }
}

#[test]
fn a_manual_failover_moves_the_slot_and_keeps_the_value() {
    let cluster = RedisCluster::start().unwrap();
    let key = "failover-key";
    let mut conn = client(&cluster);
    set(&mut conn, key, "before");
    let replicas = cluster.replicas_for_key(key).unwrap();

    let (old, new) = cluster.failover_for_key(key).unwrap();

    assert_ne!(old, new);
    assert!(replicas.contains(&new), "{new} was not among {replicas:?}");
    assert_eq!(cluster.primary_for_key(key).unwrap(), new);
    assert_eq!(read_eventually(&mut conn, key), "before");
    // The former primary follows the new one.
    eventually("the old primary becoming a replica", || {
        cluster
            .replicas_for_key(key)
            .unwrap()
            .contains(&old)
            .then_some(())
    });
}

#[test]
fn a_killed_primary_is_replaced_and_a_new_replica_syncs() {
    let mut cluster = RedisCluster::start().unwrap();
    let key = "crash-key";
    let mut conn = client(&cluster);
    set(&mut conn, key, "survives");
    // Replication is asynchronous: the replica must have it before the crash.
    cluster.wait_replicated(key).unwrap();
    let old = cluster.primary_for_key(key).unwrap();
    // An async client connected before the crash, as a long-running service's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut async_conn = rt.block_on(async {
        redis::cluster::ClusterClient::builder(cluster.node_urls())
            .connection_timeout(Duration::from_secs(15))
            .response_timeout(Duration::from_secs(15))
            .build()
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    });
    let async_get = |conn: &mut redis::cluster_async::ClusterConnection| {
        rt.block_on(async {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(conn)
                .await
        })
    };
    assert_eq!(
        async_get(&mut async_conn).unwrap().as_deref(),
        Some("survives")
    );

    let killed_at = Instant::now();
    cluster.kill(old).unwrap();
    cluster.wait_ok().unwrap();
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(25), "failover took {took:?}");
    let new = cluster.primary_for_key(key).unwrap();
    assert_ne!(new, old);
    assert_eq!(cluster.ports().len(), 5);
    assert!(!cluster.urls().contains(&format!(":{old}")));
    let value = eventually("reading through the async client after the crash", || {
        async_get(&mut async_conn).ok().flatten()
    });
    assert_eq!(value, "survives");
    // redis-rs's sync ClusterConnection keeps reconnecting to the dead
    // primary's address ("Connection refused") without refreshing its slot
    // map, so the sync one made before the crash is replaced by a new one.
    let mut conn = client(&cluster);
    assert_eq!(read_eventually(&mut conn, key), "survives");

    let added = cluster.add_replica(new).unwrap();
    assert!(cluster.replicas_for_key(key).unwrap().contains(&added));
    // Another node's table lists it as a replica of the new primary.
    let new_id = cluster
        .nodes()
        .iter()
        .find(|n| n.port() == new)
        .unwrap()
        .id()
        .to_string();
    let other = cluster
        .ports()
        .into_iter()
        .find(|&p| p != added && p != new)
        .unwrap();
    let mut other_conn = redis::Client::open(format!("redis://127.0.0.1:{other}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut other_conn)
        .unwrap();
    let line = nodes
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{added}@")))
        .unwrap_or_else(|| panic!("{added} not in CLUSTER NODES of {other}:\n{nodes}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields[2].contains("slave"), "{line}");
    assert_eq!(fields[3], new_id, "{line}");
    // It holds the key, read from it directly.
    let mut replica = redis::Client::open(format!("redis://127.0.0.1:{added}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("READONLY").query(&mut replica).unwrap();
    let value: Option<String> = redis::cmd("GET").arg(key).query(&mut replica).unwrap();
    assert_eq!(value.as_deref(), Some("survives"));

    // Forgetting the dead node removes it from every running node's table.
    cluster.forget(old).unwrap();
    assert!(cluster.nodes().iter().all(|n| n.port() != old));
    for port in cluster.ports() {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).unwrap();
        assert!(
            !nodes.contains(&format!(":{old}@")),
            "{port} still lists {old}:\n{nodes}"
        );
    }
    cluster.wait_ok().unwrap();
    assert_eq!(read_eventually(&mut conn, key), "survives");
}
