//! A session's byte budget in Redis: a runner printing 5 MB under a 1 MB
//! budget, with a real Redis and a real script. The stream gets the first
//! megabyte in chunks with unbroken `seq`s, one notice saying where the
//! rest is, and a `done` that counts what was kept back; the local log
//! keeps all of it, byte for byte.

use crate::execution_support;

use std::sync::Arc;

use execution_support::*;
use remoteagent_proto::SessionId;
use remoteagent_proto::events::{DoneStatus, OutputEvent};
use remoteagent_testkit::wait_for;
use remoteagentd::agent::AgentSettings;

const BUDGET: u64 = 1024 * 1024;
/// Lines of 100 bytes `flood.sh` prints: 5 MB.
const LINES: usize = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_budget_stays_in_the_local_log_and_is_counted() {
    let mut s = Setup::new().await;
    s.settings = Arc::new(AgentSettings {
        stream_budget: BUDGET,
        ..(*s.settings).clone()
    });
    let _agent = s
        .spawn(s.spec(vec![fixture("flood.sh"), LINES.to_string()]))
        .await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "flood")).await;
    let events = s.wait_done(&sid).await;

    let expected: String = format!("{}\n", "0".repeat(99)).repeat(LINES);
    let streamed = chunk_text(&events);
    assert_eq!(streamed.len() as u64, BUDGET, "the stream holds the budget");
    assert!(expected.starts_with(&streamed));

    let notices: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Notice(n) => Some(&n.text),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("1 MB")
            && notices[0].contains(&format!("remoteagentctl logs proj --run {sid}"))
            && notices[0].contains(&format!("{sid}.log")),
        "{}",
        notices[0]
    );
    // The notice comes right after the last chunk.
    let last_chunk = events
        .iter()
        .rposition(|e| matches!(e, OutputEvent::Chunk(_)))
        .unwrap();
    assert!(matches!(events[last_chunk + 1], OutputEvent::Notice(_)));

    let done = done_of(&events);
    assert_eq!(done.status, DoneStatus::Ok);
    let chunks = events
        .iter()
        .filter(|e| matches!(e, OutputEvent::Chunk(_)))
        .count() as u64;
    assert_eq!(done.chunks, chunks, "withheld text takes no seq");
    assert_eq!(
        done.withheld_bytes,
        (expected.len() - streamed.len()) as u64
    );

    // The local log: start record, runner record, the whole output, end
    // record (written just after the stream's `done`: waited for).
    let log = wait_for(WAIT, || async {
        let log = std::fs::read_to_string(s.log_path(&sid)).unwrap_or_default();
        log.contains("\n# done ").then_some(log)
    })
    .await
    .expect("the log's end record");
    let mut parts = log.splitn(3, '\n');
    assert!(parts.next().unwrap().starts_with("# session "));
    assert!(parts.next().unwrap().starts_with("# runner pid "));
    let rest = parts.next().unwrap();
    let end = rest.rfind("\n# done ok ").expect("the end record");
    assert!(rest[..end] == expected, "the local log lost output");
}
