//! Forwarding survives replicas: a stopped or dead replica's sessions are
//! resumed by another from the last delivered stream entry, losing nothing
//! and duplicating nothing; a Redis restart is ridden out. Each test has its
//! own Redis server, since resumers claim every unlocked session they see.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use redis::AsyncCommands;
use remoteagent_cloud::telegram::Telegram;
use remoteagent_proto::events::DoneStatus;
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::FakeTelegram;
use tokio_util::sync::CancellationToken;

const FAST: Duration = Duration::from_millis(100);
const PAGE: usize = 200;

/// The text of a chat's messages, concatenated.
fn shown(tg: &FakeTelegram, chat: i64) -> String {
    tg.messages(chat).iter().map(|m| m.text.as_str()).collect()
}

#[tokio::test]
async fn a_stopped_replica_hands_its_session_to_another() {
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&server.url()).await;
    let ids = Ids::new();

    let (a, mut rx_a) = forwarder(&tg, &server.url(), "replica-a", FAST, options(PAGE));
    let shutdown_a = CancellationToken::new();
    a.spawn_resumer(shutdown_a.clone());
    start(&a, &tg, ids.start("claude")).await;

    // 330 characters: the first page is full and the second begun.
    let part1: String = (0..30).map(|i| format!("a{i:02}<&>é中\n")).collect();
    let n = write_chunks(&mut conn, &ids, &part1, 7, 0).await;
    assert!(tg.wait_for_messages(ids.chat, |_| true, TIMEOUT).await);
    assert!(
        tg.wait_for(
            |_| visible(&shown(&tg, ids.chat)) == visible(&part1),
            TIMEOUT
        )
        .await
            || visible(&shown(&tg, ids.chat)) == visible(&part1),
        "part 1 not shown: {:?}",
        shown(&tg, ids.chat)
    );
    shutdown_a.cancel();

    let part2: String = (0..10).map(|i| format!("b{i:02} & <done>\n")).collect();
    write_chunks(&mut conn, &ids, &part2, 9, n).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 4_200, None)).await;

    let (b, mut rx_b) = forwarder(&tg, &server.url(), "replica-b", FAST, options(PAGE));
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
    // Exactly the pages the text needs and the ping: nothing was sent
    // twice.
    let sends = tg.calls_of("sendMessage").len();
    assert_eq!(sends, messages.len() + 1);
    assert!(
        messages
            .iter()
            .all(|m| m.text.encode_utf16().count() <= PAGE)
    );
    assert!(messages.iter().all(|m| m.reply_markup.is_none()));
    shutdown_b.cancel();
}

#[tokio::test]
async fn a_dead_replica_is_taken_over_after_its_lock_lapses() {
    // A replica died after finishing page 1 in the middle of a chunk: its
    // progress says "the next entry's first 200 bytes are shown", and its
    // lock is still held for a moment.
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&server.url()).await;
    let ids = Ids::new();
    let text = "A".repeat(200) + &"B".repeat(50);
    write_chunks(&mut conn, &ids, &text, 1000, 0).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 100, None)).await;
    let page1 = Telegram::api(&tg.api_base(), &tg.token())
        .send_message(ids.chat, &"A".repeat(200), None)
        .await
        .unwrap();

    let state_key = remoteagent_cloud::forwarder::keys::state_key(&ids.session);
    let fields: Vec<(&str, String)> = vec![
        ("agent", ids.agent.to_string()),
        ("session", ids.session.to_string()),
        ("chat", ids.chat.to_string()),
        ("name", "claude".into()),
        ("msg", "0".into()),
        ("html", String::new()),
        ("chars", "0".into()),
        ("last_id", "0-0".into()),
        ("skip", "200".into()),
    ];
    let _: () = conn.hset_multiple(&state_key, &fields).await.unwrap();
    let _: () = conn
        .sadd(
            remoteagent_cloud::forwarder::keys::active_key_of(&ids.session),
            ids.session.as_str(),
        )
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(remoteagent_cloud::forwarder::keys::lock_key(&ids.session))
        .arg("dead-replica:1")
        .arg("PX")
        .arg(1500)
        .query_async(&mut conn)
        .await
        .unwrap();

    let (b, mut rx) = forwarder(&tg, &server.url(), "replica-b", FAST, options(PAGE));
    b.spawn_resumer(CancellationToken::new());
    finished(&mut rx).await;

    let messages = output_of(&tg, ids.chat, "claude");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].message_id, page1);
    let (body, status) = body_and_status(&messages);
    assert_shows(&body, &text);
    assert_eq!(status, "✅ done in 0.1 s");
    let exists: bool = conn.exists(&state_key).await.unwrap();
    assert!(!exists);
    b.shutdown();
}

#[tokio::test]
async fn forwarding_rides_out_a_redis_restart() {
    let mut server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &server.url(), "r1", FAST, options(PAGE));
    fwd.spawn_resumer(CancellationToken::new());
    start(&fwd, &tg, ids.start("a")).await;

    let part1: String = (0..20).map(|i| format!("line {i}\n")).collect();
    let n = {
        let mut conn = connect(&server.url()).await;
        let n = write_chunks(&mut conn, &ids, &part1, 5, 0).await;
        assert_eq!(n, part1.len().div_ceil(5) as u64);
        n
    };
    assert!(
        tg.wait_for(
            |_| visible(&shown(&tg, ids.chat)) == visible(&part1),
            TIMEOUT
        )
        .await
    );

    server.restart().unwrap();
    let part2: String = (20..40).map(|i| format!("line {i}\n")).collect();
    let mut conn = connect(&server.url()).await;
    // `seq` goes on where it stopped, as the daemon's does (a jump would be
    // reported as lost output).
    write_chunks(&mut conn, &ids, &part2, 5, n).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 1, None)).await;
    finished(&mut rx).await;
    let (body, _) = body_and_status(&output_of(&tg, ids.chat, "a"));
    assert_shows(&body, &format!("{part1}{part2}"));
    // Pages and the ping, each sent once.
    assert_eq!(
        tg.calls_of("sendMessage").len(),
        tg.messages(ids.chat).len()
    );
    fwd.shutdown();
}

/// Redis loses everything mid-session (a restart without persistence, here
/// a FLUSHALL): the forwarder's state, its lock and the stream. The replica
/// that owned the session stores its state again (a missing key is not a
/// takeover), announces the chunks that never reached it, and shows the
/// status, with no Stop button left behind.
#[tokio::test]
async fn a_redis_that_lost_everything_strands_nothing() {
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let ids = Ids::new();
    let (fwd, mut rx) = forwarder(&tg, &server.url(), "r1", FAST, options(PAGE));
    fwd.spawn_resumer(CancellationToken::new());
    start(&fwd, &tg, ids.start("a")).await;

    let part1: String = (0..20).map(|i| format!("line {i}\n")).collect();
    let mut conn = connect(&server.url()).await;
    let n = write_chunks(&mut conn, &ids, &part1, 5, 0).await;
    assert!(
        tg.wait_for(
            |_| visible(&shown(&tg, ids.chat)) == visible(&part1),
            TIMEOUT
        )
        .await
    );

    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    // The forwarder notices the missing state on its next lock refresh.
    let state_key = remoteagent_cloud::forwarder::keys::state_key(&ids.session);
    let restored = tokio::time::timeout(TIMEOUT, async {
        loop {
            let exists: bool = conn.exists(&state_key).await.unwrap();
            if exists {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        restored.is_ok(),
        "the forwarder did not store its state again"
    );

    // Three chunks were lost with the stream; the daemon goes on.
    let part2: String = (20..30).map(|i| format!("line {i}\n")).collect();
    let m = write_chunks(&mut conn, &ids, &part2, 5, n + 3).await;
    let mut end = done(DoneStatus::Ok, Some(0), 1, None);
    if let remoteagent_proto::events::OutputEvent::Done(d) = &mut end {
        d.chunks = n + 3 + m;
    }
    xadd(&mut conn, &ids, &end).await;
    let fin = finished(&mut rx).await;
    assert_eq!(fin.status, DoneStatus::Ok);

    let messages = output_of(&tg, ids.chat, "a");
    let all: String = messages.iter().map(|m| m.text.as_str()).collect();
    assert!(all.contains("⚠️ 3 chunks of output were lost"), "{all}");
    assert!(visible(&all).contains(&visible(&part2)), "{all}");
    let (_, status) = body_and_status(&messages);
    assert_eq!(status, "✅ done in 0.0 s");
    assert!(
        messages.iter().all(|m| m.reply_markup.is_none()),
        "a Stop button outlived its session: {messages:?}"
    );
    assert!(tg.calls().iter().all(|c| c.ok()), "{:?}", tg.calls());
    fwd.shutdown();
}

/// An upgrade: a release before the shards left a session unfinished in
/// `ra:fwd:active` (its state under `ra:fwd:{sid}`, no lock: its replica is
/// gone). The new forwarder moves it into its shard and finishes it.
#[tokio::test]
async fn a_session_left_by_a_release_before_the_shards_is_moved_and_finished() {
    use remoteagent_cloud::forwarder::keys;
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    let mut conn = connect(&server.url()).await;
    let ids = Ids::new();
    let text = "line one\nline two\n";
    write_chunks(&mut conn, &ids, text, 1000, 0).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 100, None)).await;

    let fields: Vec<(&str, String)> = vec![
        ("agent", ids.agent.to_string()),
        ("session", ids.session.to_string()),
        ("chat", ids.chat.to_string()),
        ("name", "claude".into()),
        ("msg", "0".into()),
        ("html", String::new()),
        ("chars", "0".into()),
        ("last_id", "0-0".into()),
        ("skip", "0".into()),
    ];
    let legacy_state = keys::legacy::state_key(&ids.session);
    let _: () = conn.hset_multiple(&legacy_state, &fields).await.unwrap();
    let _: () = conn
        .sadd(keys::LEGACY_ACTIVE_KEY, ids.session.as_str())
        .await
        .unwrap();

    let (b, mut rx) = forwarder(&tg, &server.url(), "replica-new", FAST, options(PAGE));
    b.spawn_resumer(CancellationToken::new());
    finished(&mut rx).await;

    let (body, status) = body_and_status(&output_of(&tg, ids.chat, "claude"));
    assert_shows(&body, text);
    assert_eq!(status, "✅ done in 0.1 s");
    // Nothing is left in the old layout, and the session is finished in
    // the new one.
    let legacy: Vec<String> = conn.smembers(keys::LEGACY_ACTIVE_KEY).await.unwrap();
    assert!(legacy.is_empty(), "{legacy:?}");
    let old_state: bool = conn.exists(&legacy_state).await.unwrap();
    assert!(!old_state);
    let done_mark: bool = conn.exists(keys::done_key(&ids.session)).await.unwrap();
    assert!(done_mark, "the finished session has its tombstone");
    b.shutdown();
}
