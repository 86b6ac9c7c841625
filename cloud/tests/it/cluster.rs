//! The cloud on a Redis Cluster (3 primaries, 3 replicas; a private one per
//! test, `testkit::RedisCluster`): agent users on every node and repaired
//! on a node that lost them or joined new, commands over sharded pub/sub,
//! the forwarder's sharded state and its takeover, the `/api/pair` limit
//! shared by two clouds, and files moved to another agent.

use crate::forwarder_support;
use crate::support;

use std::time::Duration;

use forwarder_support::*;
use redis::Value;
use remoteagent_cloud::bot::attachments::pending::{self, PendingFile, Readied};
use remoteagent_cloud::commands;
use remoteagent_cloud::db::agents;
use remoteagent_cloud::forwarder::keys;
use remoteagent_cloud::redis_acl::SENTINEL_USER;
use remoteagent_proto::events::{
    CommandEvent, DoneStatus, PairEvent, PairedPayload, UnpairedPayload,
};
use remoteagent_proto::files::Attachment;
use remoteagent_proto::{AgentId, names};
use remoteagent_rediskit::{Conn, Options, Target, conn, pubsub};
use remoteagent_testkit::RedisCluster;
use remoteagent_testkit::telegram::FakeTelegram;
use support::{Backend, TestApp, user_id};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longer than the user watch's period with room for a busy machine.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(45);

/// A new cluster, started off the async threads (it takes seconds).
async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap()
        .unwrap()
}

async fn admin(cluster: &RedisCluster) -> Conn {
    let target = Target::parse(&cluster.urls(), false).unwrap();
    conn::managed(&target, &Options::default()).await.unwrap()
}

async fn app_on(cluster: &RedisCluster) -> TestApp {
    TestApp::start_with(Backend::Sqlite, &[("REDIS_URL", &cluster.urls())]).await
}

/// Whether the node at `port` knows the ACL user `name` (asked directly).
async fn has_user(port: u16, name: &str) -> bool {
    let mut c = remoteagent_testkit::redis_conn(&format!("redis://127.0.0.1:{port}")).await;
    let v: Value = redis::cmd("ACL")
        .arg("GETUSER")
        .arg(name)
        .query_async(&mut c)
        .await
        .unwrap();
    !matches!(v, Value::Nil)
}

async fn del_user(port: u16, name: &str) {
    let mut c = remoteagent_testkit::redis_conn(&format!("redis://127.0.0.1:{port}")).await;
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(name)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// Waits until every node of `ports` has (or lacks) the user `name`.
async fn wait_user_everywhere(ports: &[u16], name: &str, present: bool) {
    let ok = remoteagent_testkit::wait_for(REPAIR_TIMEOUT, || async {
        for &port in ports {
            if has_user(port, name).await != present {
                return None;
            }
        }
        Some(())
    })
    .await;
    let mut seen = Vec::new();
    for &port in ports {
        seen.push((port, has_user(port, name).await));
    }
    assert!(
        ok.is_some(),
        "user {name} should be present={present} on every node: {seen:?}"
    );
}

/// A subscription the way a daemon makes one on a cluster (`SSUBSCRIBE`
/// through a cluster connection logged in as `user`).
async fn subscriber(
    url: &str,
    user: &str,
    password: &str,
    channel: &str,
) -> (Conn, mpsc::UnboundedReceiver<redis::PushInfo>) {
    let target = Target::parse(url, false)
        .unwrap()
        .with_login(user, password);
    assert!(target.is_cluster(), "{url} should name the cluster");
    pubsub::subscriber(&target, channel).await.unwrap()
}

async fn next_payload(rx: &mut mpsc::UnboundedReceiver<redis::PushInfo>) -> String {
    let msg = remoteagent_testkit::pushes::next_message(rx, support::TIMEOUT).await;
    String::from_utf8(msg.get_payload_bytes().to_vec()).unwrap()
}

/// Pairs `project` for `user` as a daemon on the cluster would.
async fn pair_on_cluster(app: &TestApp, user: i64, project: &str) -> PairedPayload {
    let pair = app.pair_request(project).await;
    let channel = names::pair_channel(&pair.pairing_id);
    let (_sub, mut rx) = subscriber(
        &pair.redis.url,
        &pair.redis.username,
        &pair.redis.password,
        &channel,
    )
    .await;
    app.say(user, &format!("/pair {}", pair.code)).await;
    match serde_json::from_str(&next_payload(&mut rx).await).unwrap() {
        PairEvent::Paired(p) => p,
        other => panic!("expected paired, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_users_are_made_and_deleted_on_every_node() {
    let cluster = start_cluster().await;
    let app = app_on(&cluster).await;
    let user = user_id();
    let paired = pair_on_cluster(&app, user, "clustered").await;
    let name = names::agent_redis_user(&paired.agent_id);
    let ports = cluster.ports();
    assert_eq!(ports.len(), 6);
    for &port in &ports {
        assert!(has_user(port, &name).await, "no {name} on node {port}");
    }

    // The daemon logs in to the whole cluster with its token and may write
    // its presence (routed to whichever node owns the key).
    let target = Target::parse(&cluster.urls(), false)
        .unwrap()
        .with_login(&paired.redis_username, &paired.jwt);
    let mut daemon = conn::managed(&target, &Options::default()).await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(names::presence_key(&paired.agent_id))
        .arg("{}")
        .arg("EX")
        .arg(20)
        .query_async(&mut daemon)
        .await
        .unwrap();

    let row = agents::get(&app.state.db, &paired.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        remoteagent_cloud::unpair::unpair(&app.state, &row)
            .await
            .unwrap()
    );
    for &port in &ports {
        assert!(!has_user(port, &name).await, "{name} left on node {port}");
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_users_or_joined_new_gets_them_back() {
    let mut cluster = start_cluster().await;
    let app = app_on(&cluster).await;
    let paired = pair_on_cluster(&app, user_id(), "kept").await;
    let name = names::agent_redis_user(&paired.agent_id);
    let ports = cluster.ports();
    wait_user_everywhere(&ports, SENTINEL_USER, true).await;

    // One node forgets its users, as a restart without an ACL file would.
    let victim = ports[4];
    del_user(victim, SENTINEL_USER).await;
    del_user(victim, &name).await;
    assert!(!has_user(victim, &name).await);
    wait_user_everywhere(&[victim], &name, true).await;
    wait_user_everywhere(&[victim], SENTINEL_USER, true).await;

    // A node that joins the cluster has no users at all (the watch may
    // well have given them by the time add_replica returns).
    let primary = cluster.primary_for_key("anything").unwrap();
    let added = tokio::task::block_in_place(|| cluster.add_replica(primary)).unwrap();
    wait_user_everywhere(&[added], &name, true).await;
    wait_user_everywhere(&[added], SENTINEL_USER, true).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_go_over_sharded_pubsub_and_offline_is_told() {
    let cluster = start_cluster().await;
    let app = app_on(&cluster).await;
    let user = user_id();
    let paired = pair_on_cluster(&app, user, "sharded").await;
    let agent = paired.agent_id.clone();

    // The agent listens with its own user, as its daemon does.
    let (sub, mut rx) = subscriber(
        &cluster.urls(),
        &paired.redis_username,
        &paired.jwt,
        &names::agent_channel(&agent),
    )
    .await;
    let unpaired = || CommandEvent::Unpaired(UnpairedPayload {});
    let n = commands::publish(&app.state.redis, &app.state.key, &agent, unpaired())
        .await
        .unwrap();
    assert_eq!(n, 1, "SPUBLISH should count the agent's SSUBSCRIBE");
    let token = next_payload(&mut rx).await;
    assert_eq!(token.split('.').count(), 3, "a signed envelope: {token}");
    drop(sub);

    // Nobody listens: 0, and a prompt says the agent is offline (its
    // presence key says online, so only the count tells).
    let gone = remoteagent_testkit::wait_for(support::TIMEOUT, || async {
        let n = commands::publish(&app.state.redis, &app.state.key, &agent, unpaired())
            .await
            .unwrap();
        (n == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the dropped subscriber still counted");
    let mut admin = admin(&cluster).await;
    let _: () = redis::cmd("SET")
        .arg(names::presence_key(&agent))
        .arg("{}")
        .arg("EX")
        .arg(120)
        .query_async(&mut admin)
        .await
        .unwrap();
    app.say(user, "hello there").await;
    app.expect_message(user, "is offline").await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_forwards_and_hands_over_a_session_on_a_cluster() {
    let cluster = start_cluster().await;
    let urls = cluster.urls();
    let tg = FakeTelegram::start().await;
    let mut conn = admin(&cluster).await;
    let ids = Ids::new();
    let fast = Duration::from_millis(100);
    let page = 200;

    let (a, mut rx_a) = forwarder(&tg, &urls, "replica-a", fast, options(page));
    let shutdown_a = CancellationToken::new();
    a.spawn_resumer(shutdown_a.clone());
    start(&a, &tg, ids.start("claude")).await;
    // The sharded state exists, in one slot with its shard's set.
    let exists: bool = redis::cmd("EXISTS")
        .arg(keys::state_key(&ids.session))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists);
    assert!(
        remoteagent_cloud::forwarder::is_forwarding(&mut conn, &ids.session)
            .await
            .unwrap()
    );

    let part1: String = (0..30).map(|i| format!("a{i:02} on a cluster\n")).collect();
    let n = write_chunks(&mut conn, &ids, &part1, 7, 0).await;
    let shown = |tg: &FakeTelegram| -> String {
        tg.messages(ids.chat)
            .iter()
            .map(|m| m.text.as_str())
            .collect()
    };
    assert!(
        tg.wait_for(|_| visible(&shown(&tg)) == visible(&part1), TIMEOUT)
            .await
            || visible(&shown(&tg)) == visible(&part1),
        "part 1 not shown: {:?}",
        shown(&tg)
    );
    // Replica A stops mid-stream; B takes the session over.
    shutdown_a.cancel();
    let part2: String = (0..10)
        .map(|i| format!("b{i:02} after the handover\n"))
        .collect();
    write_chunks(&mut conn, &ids, &part2, 9, n).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 4_200, None)).await;

    let (b, mut rx_b) = forwarder(&tg, &urls, "replica-b", fast, options(page));
    let shutdown_b = CancellationToken::new();
    b.spawn_resumer(shutdown_b.clone());
    let fin = finished(&mut rx_b).await;
    assert_eq!(fin.session_id, ids.session);
    assert!(
        rx_a.try_recv().is_err(),
        "the stopped replica reported the session"
    );

    let (messages, ping) = output_and_ping(&tg, ids.chat, "claude");
    let (body, status) = body_and_status(&messages);
    assert_shows(&body, &format!("{part1}{part2}"));
    assert_eq!(status, "✅ done in 4.2 s");
    assert_eq!(ping.text, "✅ claude finished in 4s");
    assert_eq!(tg.calls_of("sendMessage").len(), messages.len() + 1);

    // Finished: the state is gone, the tombstone there, the shard's set
    // no longer lists it.
    let (state, tomb): (bool, bool) = (
        redis::cmd("EXISTS")
            .arg(keys::state_key(&ids.session))
            .query_async(&mut conn)
            .await
            .unwrap(),
        redis::cmd("EXISTS")
            .arg(keys::done_key(&ids.session))
            .query_async(&mut conn)
            .await
            .unwrap(),
    );
    assert!(!state && tomb, "state {state}, tombstone {tomb}");
    assert!(
        !remoteagent_cloud::forwarder::is_forwarding(&mut conn, &ids.session)
            .await
            .unwrap()
    );
    shutdown_b.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pair_limit_holds_across_two_clouds() {
    let cluster = start_cluster().await;
    let one = app_on(&cluster).await;
    let two = app_on(&cluster).await;
    let post = |app: &TestApp| {
        app.http
            .post(app.url("/api/pair"))
            .json(&serde_json::json!({"projectName": "p", "hostname": "h"}))
            .send()
    };
    for i in 0..10 {
        let app = if i % 2 == 0 { &one } else { &two };
        let response = post(app).await.unwrap();
        let status = response.status();
        assert_eq!(
            status,
            200,
            "request {i}: {}",
            response.text().await.unwrap()
        );
    }
    for app in [&one, &two] {
        let response = post(app).await.unwrap();
        assert_eq!(response.status(), 429);
    }
    one.finish().await;
    two.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_move_to_another_agent_on_a_cluster() {
    let cluster = start_cluster().await;
    let app = app_on(&cluster).await;
    let mut conn = admin(&cluster).await;
    let (from, to) = (AgentId::generate(), AgentId::generate());
    let bytes = b"\x00\x01 the bytes of a photo \xff".to_vec();
    let mut files = Vec::new();
    for i in 0..4 {
        let key = names::blob_key(&from, &format!("{i:032x}"));
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&bytes)
            .arg("EX")
            .arg(600)
            .query_async(&mut conn)
            .await
            .unwrap();
        files.push(PendingFile {
            attachment: Attachment {
                key,
                name: format!("photo-{i}.jpg"),
                mime: "image/jpeg".into(),
                size: bytes.len() as u64,
                sha256: String::new(),
            },
            stored_at: pending::now(),
        });
    }
    // One was lost before the prompt: said so, the others still move.
    let _: i64 = redis::cmd("DEL")
        .arg(&files[3].attachment.key)
        .query_async(&mut conn)
        .await
        .unwrap();

    let readied = pending::ready_for(&app.state.redis, &to, &files, pending::now())
        .await
        .unwrap();
    assert_eq!(readied.len(), 4);
    for (i, r) in readied.iter().enumerate().take(3) {
        let Readied::Ready(a) = r else {
            panic!("file {i} not ready: {r:?}")
        };
        assert!(names::is_blob_key_of(&to, &a.key), "{}", a.key);
        let moved: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&a.key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(moved.as_deref(), Some(bytes.as_slice()));
        let ttl: i64 = redis::cmd("TTL")
            .arg(&a.key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "the moved blob must expire");
        let old: bool = redis::cmd("EXISTS")
            .arg(&files[i].attachment.key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!old, "the old blob {} stayed", files[i].attachment.key);
    }
    assert!(matches!(readied[3], Readied::Lost(_)), "{:?}", readied[3]);

    // Dropping files deletes blobs of many slots.
    let moved: Vec<PendingFile> = readied
        .iter()
        .take(3)
        .map(|r| match r {
            Readied::Ready(a) => PendingFile {
                attachment: a.clone(),
                stored_at: pending::now(),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    pending::delete_blobs(&app.state.redis, &moved)
        .await
        .unwrap();
    for f in &moved {
        let left: bool = redis::cmd("EXISTS")
            .arg(&f.attachment.key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!left);
    }
    app.finish().await;
}
