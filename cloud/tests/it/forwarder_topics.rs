//! A session's forum topic is part of the forwarder's state: a replica that
//! takes a session over keeps sending its pages and ping into the topic.

use crate::forwarder_support;

use std::time::Duration;

use forwarder_support::*;
use remoteagent_cloud::telegram::Telegram;
use remoteagent_proto::events::DoneStatus;
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::FakeTelegram;
use tokio_util::sync::CancellationToken;

const FAST: Duration = Duration::from_millis(100);
const PAGE: usize = 200;

#[tokio::test]
async fn a_replica_that_takes_over_keeps_sending_into_the_topic() {
    let server = RedisServer::start().unwrap();
    let tg = FakeTelegram::start().await;
    tg.enable_private_topics();
    let mut conn = connect(&server.url()).await;
    let ids = Ids::new();
    let thread = Telegram::api(&tg.api_base(), &tg.token())
        .create_forum_topic(ids.chat, "claude")
        .await
        .unwrap()
        .expect("a topic");

    let (a, _rx_a) = forwarder(&tg, &server.url(), "replica-a", FAST, options(PAGE));
    let shutdown_a = CancellationToken::new();
    a.spawn_resumer(shutdown_a.clone());
    let mut start_in_topic = ids.start("claude");
    start_in_topic.thread = Some(thread);
    start(&a, &tg, start_in_topic).await;
    // A page and a half, then replica A stops.
    let part1: String = (0..30).map(|i| format!("a{i:02}<&>é中\n")).collect();
    let n = write_chunks(&mut conn, &ids, &part1, 7, 0).await;
    assert!(
        tg.wait_for_messages(ids.chat, |ms| ms.len() >= 2, TIMEOUT)
            .await
    );
    shutdown_a.cancel();

    let part2: String = (0..10).map(|i| format!("b{i:02} & <done>\n")).collect();
    write_chunks(&mut conn, &ids, &part2, 9, n).await;
    xadd(&mut conn, &ids, &done(DoneStatus::Ok, Some(0), 4_200, None)).await;
    let (b, mut rx_b) = forwarder(&tg, &server.url(), "replica-b", FAST, options(PAGE));
    let shutdown_b = CancellationToken::new();
    b.spawn_resumer(shutdown_b.clone());
    assert_eq!(finished(&mut rx_b).await.session_id, ids.session);

    let (messages, ping) = output_and_ping(&tg, ids.chat, "claude");
    let (body, _) = body_and_status(&messages);
    assert_shows(&body, &format!("{part1}{part2}"));
    // Every page and the ping, from either replica, are in the topic.
    assert!(messages.len() >= 3, "{messages:#?}");
    for m in messages.iter().chain([&ping]) {
        assert_eq!(m.thread, Some(thread), "{m:#?}");
    }
    // No send was refused (a resumed page's repeated edit may be "not
    // modified", which counts as done).
    let refused: Vec<_> = tg
        .refused_calls()
        .into_iter()
        .filter(|c| c.method != "editMessageText")
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    shutdown_b.cancel();
}
