//! The writer against a real Redis: batching, entry ids, the byte budget,
//! retries.

use super::*;
use redis::aio::ConnectionManager;
use remoteagent_testkit::RedisServer;

#[test]
fn entry_ids_only_grow() {
    assert_eq!(EntryId(0, 0).next(100), EntryId(100, 0));
    assert_eq!(EntryId(100, 0).next(100), EntryId(100, 1));
    // The clock went back: the id still grows.
    assert_eq!(EntryId(100, 1).next(7), EntryId(100, 2));
    assert_eq!(EntryId(100, 2).to_string(), "100-2");
}

async fn xlen(conn: &mut ConnectionManager, key: &str) -> usize {
    redis::cmd("XLEN").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn a_batch_sent_again_after_a_lost_reply_is_not_duplicated() {
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = ConnectionManager::new(client).await.unwrap();
    let key = "output:a:s";
    let entry =
        |key: &str, id: EntryId, json: &str| stream::xadd(key, &id.to_string(), json.into());
    let entries: Vec<stream::Command> = (0..3)
        .map(|i| entry(key, EntryId(1000, i), &format!("{{\"n\":{i}}}")))
        .collect();
    assert_eq!(send_entries(&mut conn, &entries).await.unwrap(), 3);
    // The same batch again, as after a reply that never arrived.
    assert_eq!(send_entries(&mut conn, &entries).await.unwrap(), 3);
    assert_eq!(xlen(&mut conn, key).await, 3);
    // A retry whose first part was written and whose rest was not.
    let mut more = entries[2..].to_vec();
    more.push(entry(key, EntryId(1000, 3), "{}"));
    more.push(entry(key, EntryId(1001, 0), "{}"));
    assert_eq!(send_entries(&mut conn, &more).await.unwrap(), 3);
    assert_eq!(xlen(&mut conn, key).await, 5);
    // A real failure is reported, not taken for success.
    let () = redis::cmd("SET")
        .arg("not-a-stream")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        send_entries(&mut conn, &[entry("not-a-stream", EntryId(1000, 0), "{}")])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_writer_keeps_seq_and_ids_in_order_across_flushes() {
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = ConnectionManager::new(client).await.unwrap();
    let key = "output:a:s2".to_string();
    let mut writer = OutputWriter::new(conn.clone(), key.clone(), CancellationToken::new());
    for i in 0..50 {
        writer
            .push_text(StreamKind::Stdout, &format!("line {i}\n"))
            .await
            .unwrap();
        writer.flush().await.unwrap();
    }
    writer
        .finish(DonePayload {
            status: remoteagent_proto::events::DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 1,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        })
        .await
        .unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(reply.ids.len(), 51);
    let mut text = String::new();
    for (i, entry) in reply.ids.iter().enumerate() {
        let json: String = entry.get(names::STREAM_FIELD).unwrap();
        match serde_json::from_str::<OutputEvent>(&json).unwrap() {
            OutputEvent::Chunk(c) => {
                assert_eq!(c.seq, i as u64);
                text.push_str(&c.text);
            }
            OutputEvent::Done(d) => assert_eq!(d.chunks, 50),
            other => panic!("{other:?}"),
        }
    }
    let expected: String = (0..50).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text, expected);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_batched_and_arrives_whole_and_in_order() {
    let server = RedisServer::start().unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = ConnectionManager::new(client).await.unwrap();
    let key = "output:a:flood".to_string();
    let mut writer = OutputWriter::new(conn.clone(), key.clone(), CancellationToken::new());
    // 3 MB in pipe-sized pieces with lines of varying length and
    // multi-byte characters, so chunk cuts fall anywhere.
    let mut expected = String::new();
    let mut piece = String::new();
    for i in 0..40_000 {
        piece.push_str(&format!("line {i} {}é\n", "x".repeat(i % 120)));
        if piece.len() >= 60_000 {
            writer.push_text(StreamKind::Stdout, &piece).await.unwrap();
            expected.push_str(&piece);
            piece.clear();
        }
    }
    writer.push_text(StreamKind::Stdout, &piece).await.unwrap();
    expected.push_str(&piece);
    writer
        .push_text(StreamKind::Stderr, "warning\n")
        .await
        .unwrap();
    writer
        .finish(DonePayload {
            status: remoteagent_proto::events::DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 1,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        })
        .await
        .unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut next_seq = 0;
    let mut done = None;
    for entry in &reply.ids {
        let json: String = entry.get(names::STREAM_FIELD).unwrap();
        match serde_json::from_str::<OutputEvent>(&json).unwrap() {
            OutputEvent::Chunk(c) => {
                assert_eq!(c.seq, next_seq, "seq out of order");
                assert!(c.text.len() <= MAX_CHUNK_BYTES);
                next_seq += 1;
                match c.stream {
                    StreamKind::Stdout => stdout.push_str(&c.text),
                    StreamKind::Stderr => stderr.push_str(&c.text),
                }
            }
            OutputEvent::Done(d) => done = Some(d),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stdout, expected);
    assert_eq!(stderr, "warning\n");
    assert_eq!(done.unwrap().chunks, next_seq);
    assert!(matches!(
        serde_json::from_str::<OutputEvent>(
            &reply
                .ids
                .last()
                .unwrap()
                .get::<String>(names::STREAM_FIELD)
                .unwrap()
        )
        .unwrap(),
        OutputEvent::Done(_)
    ));
    // Batched: far fewer round trips than chunks.
    assert!(
        writer.flushes * 2 < next_seq,
        "{} round trips for {next_seq} chunks",
        writer.flushes
    );
}

#[test]
fn the_budget_cuts_on_a_character_and_counts_the_rest() {
    let mut budget = Budget {
        limit: 4,
        used: 0,
        withheld: 0,
        where_to_find: "remoteagentctl logs proj".into(),
        notice_queued: false,
    };
    assert_eq!(budget.take("ab"), "ab");
    // "é" is two bytes: one byte of room left after "c" cannot hold it.
    assert_eq!(budget.take("cé🦀"), "c");
    assert_eq!((budget.used, budget.withheld), (3, 6));
    assert_eq!(budget.take("de"), "d");
    assert_eq!(budget.take("f"), "");
    assert_eq!((budget.used, budget.withheld), (4, 8));
    assert!(budget.notice().ends_with(
        "4 bytes is not sent to Telegram; the whole output is in this computer's log: remoteagentctl logs proj"
    ));
    budget.limit = 64 * 1024 * 1024;
    assert!(
        budget
            .notice()
            .starts_with("⚠️ Output past 64 MB is not sent")
    );
}
