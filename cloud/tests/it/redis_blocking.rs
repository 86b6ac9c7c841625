//! Why the forwarder's blocking reads run on connections of their own
//! (`cloud/src/forwarder/own_conn.rs`): on the real Redis, a plain command
//! sent on a multiplexed connection while an `XREAD … BLOCK` waits on it
//! (any clone of it: one socket) is answered only when the read returns,
//! whereas a connection of its own answers at once.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use remoteagent_testkit::wait_for;
use tokio::time::Instant;

/// How long the read blocks: "held up" is measured against it (a lower
/// bound, which load cannot break).
const BLOCK: Duration = Duration::from_secs(5);
/// Far longer than a command takes: "answered while the read still waits"
/// needs no clock, only the read still being there.
const LONG_BLOCK: Duration = Duration::from_secs(120);
const TIMEOUT: Duration = Duration::from_secs(30);

async fn connect(client: &redis::Client) -> MultiplexedConnection {
    // The response timeout must outlast the block.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(15)))
        .set_response_timeout(Some(LONG_BLOCK + Duration::from_secs(15)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// Starts an `XREAD BLOCK` on `conn` for a stream nobody writes and waits
/// until Redis shows that connection blocked.
async fn block_on(
    conn: &MultiplexedConnection,
    probe: &MultiplexedConnection,
    block: Duration,
) -> (i64, tokio::task::JoinHandle<Duration>) {
    let mut reader = conn.clone();
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut reader)
        .await
        .unwrap();
    let key = format!("ra:test:never-written:{}", uuid::Uuid::new_v4().simple());
    let read = tokio::spawn(async move {
        let started = Instant::now();
        let opts = StreamReadOptions::default().block(block.as_millis() as usize);
        let reply: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(&mut reader, &[&key], &["$"], &opts)
                .await
                .unwrap();
        assert!(reply.is_none(), "nobody writes {key}");
        started.elapsed()
    });
    let blocked = wait_for(TIMEOUT, || {
        let mut probe = probe.clone();
        async move {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .arg("ID")
                .arg(id)
                .query_async(&mut probe)
                .await
                .unwrap();
            (list.contains("cmd=xread") && list.contains("flags=b")).then_some(())
        }
    })
    .await;
    assert!(blocked.is_some(), "the XREAD never blocked");
    (id, read)
}

/// Whether client `id` still waits in a blocking command.
async fn still_blocked(probe: &mut MultiplexedConnection, id: i64) -> bool {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(id)
        .query_async(probe)
        .await
        .unwrap();
    list.contains("cmd=xread") && list.contains("flags=b")
}

async fn timed_exists(conn: &mut MultiplexedConnection) -> Duration {
    let started = Instant::now();
    let _: i64 = redis::cmd("EXISTS")
        .arg("ra:test:anything")
        .query_async(conn)
        .await
        .unwrap();
    started.elapsed()
}

#[tokio::test]
async fn a_blocking_read_holds_up_every_command_on_its_connection() {
    let client = redis::Client::open(remoteagent_testkit::redis_url()).unwrap();
    let shared = connect(&client).await;
    let probe = connect(&client).await;
    let (_, read) = block_on(&shared, &probe, BLOCK).await;

    // A plain command on a clone of the reading connection waits for the
    // read: Redis answers a connection's commands in order.
    let held = timed_exists(&mut shared.clone()).await;
    let read_took = read.await.unwrap();
    assert!(read_took >= BLOCK, "the read returned early: {read_took:?}");
    assert!(
        held >= BLOCK / 2,
        "EXISTS behind a pending XREAD BLOCK took only {held:?}"
    );
}

#[tokio::test]
async fn a_connection_of_its_own_answers_while_another_blocks() {
    let client = redis::Client::open(remoteagent_testkit::redis_url()).unwrap();
    let reading = connect(&client).await;
    let probe = connect(&client).await;
    let (id, read) = block_on(&reading, &probe, LONG_BLOCK).await;

    let mut own = connect(&client).await;
    let _: i64 = tokio::time::timeout(
        TIMEOUT,
        redis::cmd("EXISTS")
            .arg("ra:test:anything")
            .query_async(&mut own),
    )
    .await
    .expect("EXISTS on its own connection waited for the other's read")
    .unwrap();
    assert!(!read.is_finished(), "the read ended before the command");
    assert!(
        still_blocked(&mut probe.clone(), id).await,
        "the read no longer waits"
    );
    read.abort();
    // Redis keeps the read until its connection goes: unblock it.
    let _: () = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .query_async(&mut probe.clone())
        .await
        .map(|_: i64| ())
        .unwrap();
}
