//! Redis Cluster end to end (issue 19): three real cloud replicas on one
//! PostgreSQL database and one private Redis Cluster (3 primaries, 3
//! replicas; `REDIS_URL` is the comma list of its nodes), the fake Bot API,
//! and real daemons in homes of their own. Webhook updates go to replicas
//! picked at random (the seed is printed), as a load balancer would spread
//! them; then replicas are killed, slots fail over and nodes are replaced
//! while runs stream, and each test ends with what the user sees: every
//! line once, in order, in the right chat, one status, nothing twice.
//!
//! Every wait is a hang guard on a condition; the guards are generous, as
//! the suite runs on a busy 2-core machine with nine servers per test.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use remoteagent_e2e::{Cloud, Daemon, Home, PgDatabase, fixture};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{AgentId, SessionId, names};
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram, updates};
use remoteagent_testkit::{RedisCluster, wait_for};
use serde_json::json;
use tokio::task::block_in_place;

mod world;

use world::{Agent, ClusterWorld, fwd_lock_key};

/// The owners of the agents a world pairs, in order; each one's private
/// chat with the bot has the same id.
const USERS: [i64; 2] = [5101, 5202];
const WAIT: Duration = Duration::from_secs(60);
/// Hang guard for a run's end once nothing stands in its way, takeovers
/// (a 15 s lock to expire) and failovers included.
const END: Duration = Duration::from_secs(240);
/// The filler after `L0000001` in `fixtures/numbered.sh`.
const NUMBERED_FILLER: &str = " the quick <brown> fox & é✓";
/// The status lines the forwarder ends a run's output with.
const STATUS_MARKS: [&str; 5] = [
    "✅ done in",
    "⏹ aborted",
    "❌ failed",
    "❌ error",
    "⚠️ rejected",
];

fn numbered_line(n: u64) -> String {
    format!("L{n:07}{NUMBERED_FILLER}")
}

/// What `fixtures/answer.sh` prints for `prompt`.
fn expected_answer(prompt: &str) -> String {
    format!(
        "Looking at the project for: {prompt}\nFound 3 files.\nPlan:\n  1. read <main.rs> & tests\n  2. fix — done ✓\nFinished."
    )
}

/// Every message's text in chat order, joined without separators, so that
/// a line cut by a page break reads whole again.
fn joined(messages: &[FakeMessage]) -> String {
    messages.iter().map(|m| m.text.as_str()).collect()
}

/// Messages whose text holds a status line.
fn statuses(messages: &[FakeMessage]) -> Vec<&FakeMessage> {
    messages
        .iter()
        .filter(|m| STATUS_MARKS.iter().any(|s| m.text.contains(s)))
        .collect()
}

fn stop_buttons(messages: &[FakeMessage]) -> Vec<i64> {
    messages
        .iter()
        .filter(|m| {
            m.reply_markup
                .as_ref()
                .is_some_and(|k| k.to_string().contains("\"stop:"))
        })
        .map(|m| m.message_id)
        .collect()
}

/// Messages that are the same message sent twice: same text, replying to
/// the same message.
fn duplicates(messages: &[FakeMessage]) -> Vec<String> {
    let mut seen: HashMap<(&str, Option<i64>), usize> = HashMap::new();
    for m in messages {
        *seen.entry((m.text.as_str(), m.reply_to)).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((text, _), n)| format!("{n}× {text:?}"))
        .collect()
}

/// Lines telling the user that output was lost or could not be shown.
fn loss_notices(messages: &[FakeMessage]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.text.lines())
        .filter(|l| l.contains("⚠️") && (l.contains("lost") || l.contains("could not be shown")))
        .map(str::to_string)
        .collect()
}

/// The problems of a numbered run of `count` lines as `chat` shows it:
/// lines missing (unless `loss_told` and a loss was announced), shown
/// twice or out of order.
fn numbered_problems(messages: &[FakeMessage], count: u64, allow_told_loss: bool) -> Vec<String> {
    let text = joined(messages);
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    let mut repeated = Vec::new();
    let mut disordered = Vec::new();
    let mut last = 0;
    for n in 1..=count {
        let line = numbered_line(n);
        match text.matches(&line).count() {
            0 => missing.push(n),
            1 => {
                let at = text.find(&line).unwrap_or(0);
                if at < last {
                    disordered.push(n);
                }
                last = at;
            }
            k => repeated.push((n, k)),
        }
    }
    let notices = loss_notices(messages);
    let told = allow_told_loss && !notices.is_empty();
    if !missing.is_empty() && !told {
        problems.push(format!(
            "{} line(s) missing (first {:?}, last {:?}), loss notices {notices:?}",
            missing.len(),
            missing.first(),
            missing.last()
        ));
    }
    if !missing.is_empty() {
        eprintln!(
            "[cluster] {} line(s) not shown; loss notices {notices:?}",
            missing.len()
        );
    }
    if !repeated.is_empty() {
        problems.push(format!(
            "{} line(s) shown more than once, e.g. {:?}",
            repeated.len(),
            &repeated[..repeated.len().min(5)]
        ));
    }
    if !disordered.is_empty() {
        problems.push(format!(
            "{} line(s) out of order, e.g. {:?}",
            disordered.len(),
            &disordered[..disordered.len().min(5)]
        ));
    }
    problems
}

/// The end of one run as the user must see it: exactly one status, one
/// ping naming the agent, no Stop button left, no message twice.
fn end_problems(messages: &[FakeMessage], agent: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = statuses(messages);
    if shown.len() != 1 {
        problems.push(format!("{} status message(s), expected 1", shown.len()));
    }
    let pings = messages
        .iter()
        .filter(|m| m.text.starts_with(&format!("✅ {agent} finished in")))
        .count();
    if pings != 1 {
        problems.push(format!("{pings} ping(s), expected 1"));
    }
    let left = stop_buttons(messages);
    if !left.is_empty() {
        problems.push(format!("Stop button left on message(s) {left:?}"));
    }
    let dups = duplicates(messages);
    if !dups.is_empty() {
        problems.push(format!("messages sent twice: {dups:?}"));
    }
    problems
}

fn assert_no_problems(w: &ClusterWorld, chat: i64, what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n- {}\nmessages: {:#?}\n{}",
        problems.len(),
        problems.join("\n- "),
        w.texts(chat),
        w.logs()
    );
}

/// Waits for a numbered run's status in `chat`, then for its ping and for
/// the Stop button to go (they may come a few calls after the status).
async fn wait_numbered_end(w: &ClusterWorld, agent: &Agent) {
    w.wait_chat(agent.user, END, "with the run's status", |m| {
        !statuses(m).is_empty()
    })
    .await;
    let ping = format!("✅ {} finished in", agent.name);
    w.wait_chat(agent.user, WAIT, "with the ping and no Stop button", |m| {
        m.iter().any(|m| m.text.starts_with(&ping)) && stop_buttons(m).is_empty()
    })
    .await;
}

/// A run of `lines` numbered lines (10 ms apart) asked of the first
/// agent, waited for until line `shown` is on screen: the opening of every
/// test that breaks something while a run streams. Returns the replica the
/// prompt went to, the session id and its output stream's key.
async fn start_numbered_run(w: &ClusterWorld, lines: u64, shown: u64) -> (usize, String, String) {
    let agent = &w.agents[0];
    let to = w.say(agent.user, &format!("{lines} 10")).await;
    let sid = w.wait_session(agent).await;
    w.wait_chat(agent.user, WAIT, &format!("showing line {shown}"), |m| {
        joined(m).contains(&numbered_line(shown))
    })
    .await;
    let stream = names::output_stream(
        &AgentId::parse(agent.id.as_str()).expect("an agent id"),
        &SessionId::parse(sid.as_str()).expect("a session id"),
    );
    (to, sid, stream)
}

/// Waits for the end of the first agent's numbered run of `lines` and
/// asserts what its chat shows: every line once and in order (or a loss
/// told in words, where `allow_told_loss`), one status and, where
/// `want_done`, that status is "done".
async fn assert_numbered_run(
    w: &ClusterWorld,
    lines: u64,
    allow_told_loss: bool,
    want_done: bool,
    what: &str,
) {
    let agent = &w.agents[0];
    wait_numbered_end(w, agent).await;
    let messages = w.tg.messages(agent.user);
    let mut problems = numbered_problems(&messages, lines, allow_told_loss);
    problems.extend(end_problems(&messages, &agent.name));
    if want_done && !messages.iter().any(|m| m.text.contains("✅ done in")) {
        problems.push("the status is not \"done\"".into());
    }
    assert_no_problems(w, agent.user, what, problems);
}

/// Twelve prompts, six per agent, each update to a random replica (a
/// prompt for a busy agent waits in the shared queue and is started by
/// whichever replica records the end before it): each runner's answer
/// appears exactly once, whole, with its status, in its owner's chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_spread_over_replicas_are_answered_exactly() {
    let w = ClusterWorld::start(&[("alpha", "answer.sh"), ("beta", "answer.sh")]).await;
    let per_agent = 6;
    let mut sent: Vec<(usize, String)> = Vec::new();
    for round in 0..per_agent {
        for (a, agent) in w.agents.iter().enumerate() {
            let prompt = format!("q{round:02}-{}", agent.name);
            let replica = w.say(agent.user, &prompt).await;
            eprintln!("[cluster] {prompt:?} → replica {replica}");
            sent.push((a, prompt));
        }
    }
    for agent in &w.agents {
        let ping = format!("✅ {} finished in", agent.name);
        w.wait_chat(agent.user, END, "with every run's ping", |m| {
            m.iter().filter(|m| m.text.starts_with(&ping)).count() >= per_agent
        })
        .await;
    }
    for (a, agent) in w.agents.iter().enumerate() {
        let messages = w.tg.messages(agent.user);
        let mut problems = Vec::new();
        for (owner, prompt) in &sent {
            let head = format!("Looking at the project for: {prompt}\n");
            let holding: Vec<&FakeMessage> =
                messages.iter().filter(|m| m.text.contains(&head)).collect();
            if *owner != a {
                if !holding.is_empty() {
                    problems.push(format!("{prompt:?}'s answer is in the wrong chat"));
                }
                continue;
            }
            match holding.as_slice() {
                [m] => {
                    if !m.text.contains(&expected_answer(prompt)) {
                        problems.push(format!("{prompt:?}'s answer is not whole: {:?}", m.text));
                    }
                    if !m.text.contains("✅ done in") {
                        problems.push(format!("{prompt:?}'s answer has no status: {:?}", m.text));
                    }
                    if m.reply_markup.is_some() {
                        problems.push(format!("{prompt:?}'s answer keeps its buttons"));
                    }
                }
                other => problems.push(format!(
                    "{prompt:?}'s answer is in {} messages, expected 1",
                    other.len()
                )),
            }
        }
        // One ping per run, each replying to an answer of its own.
        let ping = format!("✅ {} finished in", agent.name);
        let pinged: Vec<Option<i64>> = messages
            .iter()
            .filter(|m| m.text.starts_with(&ping))
            .map(|m| m.reply_to)
            .collect();
        if pinged.len() != per_agent {
            problems.push(format!("{} pings, expected {per_agent}", pinged.len()));
        }
        let mut targets = pinged.clone();
        targets.sort();
        targets.dedup();
        if targets.len() != pinged.len() || targets.contains(&None) {
            problems.push(format!("pings do not each reply to a run: {pinged:?}"));
        }
        let dups = duplicates(&messages);
        if !dups.is_empty() {
            problems.push(format!("messages sent twice: {dups:?}"));
        }
        let left = stop_buttons(&messages);
        if !left.is_empty() {
            problems.push(format!("Stop button left on message(s) {left:?}"));
        }
        // The daemon ran each prompt once: one local log per session.
        let runs = agent.session_ids().len();
        if runs != per_agent {
            problems.push(format!(
                "the daemon ran {runs} sessions, expected {per_agent}"
            ));
        }
        assert_no_problems(&w, agent.user, &agent.name, problems);
    }
}

/// The replica forwarding a run is killed with SIGKILL mid-stream (found
/// by the value of the session's forwarder lock); another replica takes
/// the session over once the lock expires and finishes it: every line
/// shown exactly once and in order, one status, nothing sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_stream_is_taken_over_with_nothing_lost() {
    let mut w = ClusterWorld::start(&[("alpha", "numbered.sh")]).await;
    let lines = 400;
    let chat = w.agents[0].user;
    let (to, sid, _) = start_numbered_run(&w, lines, 30).await;
    let owner = w.wait_forwarding_replica(&sid).await;
    eprintln!("[cluster] prompt to replica {to}; replica {owner} forwards {sid}: kill -9");
    w.replicas[owner].proc.kill();
    // The run is still streaming when its forwarder dies.
    assert!(
        !joined(&w.tg.messages(chat)).contains(&numbered_line(lines)),
        "the run ended before its forwarder was killed; make it longer"
    );
    // Who takes over, for the record (the lock is gone once the run ends).
    let taken = wait_for(END, || async {
        if !statuses(&w.tg.messages(chat)).is_empty() {
            return Some(None);
        }
        w.forwarding_replica(&sid)
            .await
            .filter(|r| *r != owner)
            .map(Some)
    })
    .await;
    eprintln!("[cluster] taken over by replica {taken:?}");
    assert_numbered_run(&w, lines, false, true, "takeover after kill -9").await;
}

/// A manual `CLUSTER FAILOVER` of the slot of the run's output stream,
/// then of the slot of its forwarder state, while the run streams: the
/// daemon's writes and the forwarder's reads follow the slot to its new
/// primary and the run finishes. A coordinated failover loses no write, so
/// every line is expected; a loss would have to be announced in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_sessions_slot_mid_stream_finishes_the_session() {
    let mut w = ClusterWorld::start(&[("alpha", "numbered.sh")]).await;
    let lines = 400;
    let chat = w.agents[0].user;
    let (_, sid, stream) = start_numbered_run(&w, lines, 20).await;
    let (old, new) = w
        .manage(|c| c.failover_for_key(&stream))
        .unwrap_or_else(|e| panic!("failover of {stream}'s slot: {e:#}"));
    eprintln!("[cluster] {stream}: primary {old} → {new}");
    let lock = fwd_lock_key(&sid);
    let (old, new) = w
        .manage(|c| c.failover_for_key(&lock))
        .unwrap_or_else(|e| panic!("failover of {lock}'s slot: {e:#}"));
    eprintln!("[cluster] {lock}: primary {old} → {new}");
    assert!(
        !joined(&w.tg.messages(chat)).contains(&numbered_line(lines)),
        "the run ended before the failovers were done; make it longer"
    );
    assert_numbered_run(&w, lines, true, true, "failover mid-stream").await;
}

async fn pair_status(url: &str, forwarded_for: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/api/pair"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"projectName": "p", "hostname": "h"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `/api/pair` from one client, spread over the three replicas behind a
/// trusted proxy, meets the shared limit (10 a minute), not three times
/// it; another client still gets codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pairing_limit_holds_across_replicas() {
    let w = ClusterWorld::start(&[]).await;
    let client = "203.0.113.7";
    for i in 0..10 {
        let url = &w.replicas[i % 3].url;
        assert_eq!(
            pair_status(url, client).await,
            200,
            "request {i} (replica {})\n{}",
            i % 3,
            w.logs()
        );
    }
    for (i, replica) in w.replicas.iter().enumerate() {
        assert_eq!(
            pair_status(&replica.url, client).await,
            429,
            "replica {i} let an 11th request through\n{}",
            w.logs()
        );
    }
    assert_eq!(
        pair_status(&w.replicas[1].url, &format!("6.6.6.6, {client}")).await,
        429
    );
    assert_eq!(pair_status(&w.replicas[2].url, "203.0.113.8").await, 200);
}

/// A Redis replica node dies for good and a fresh, empty node takes its
/// place and then the primary's role: the cloud's watch gives the fresh
/// node the agents' ACL users (Redis Cluster does not replicate them), so
/// a daemon restarted afterwards logs in and a prompt still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_and_replaced_keeps_agents_logged_in() {
    let mut w = ClusterWorld::start(&[("alpha", "answer.sh")]).await;
    let agent_id = w.agents[0].id.clone();
    let presence = format!("presence:{agent_id}");
    let (primary, replicas) = w.manage(|c| {
        (
            c.primary_for_key(&presence).unwrap(),
            c.replicas_for_key(&presence).unwrap(),
        )
    });
    let dead = replicas[0];
    w.manage(|c| {
        c.kill(dead)?;
        c.forget(dead)?;
        c.wait_ok()
    })
    .unwrap_or_else(|e| panic!("killing and forgetting node {dead}: {e:#}"));
    let fresh = w
        .manage(|c| c.add_replica(primary))
        .unwrap_or_else(|e| panic!("adding a replica of {primary}: {e:#}"));
    eprintln!("[cluster] node {dead} killed; fresh node {fresh} replicates {primary}");
    // The cloud's ACL watch notices the node without the sentinel user and
    // creates every agent's user there.
    let user = format!("ra-agent-{agent_id}");
    let url = format!("redis://127.0.0.1:{fresh}");
    let made = wait_for(WAIT * 2, || {
        let (url, user) = (url.clone(), user.clone());
        async move {
            let mut conn = redis::Client::open(url)
                .ok()?
                .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
                .await
                .ok()?;
            let found: redis::Value = redis::cmd("ACL")
                .arg("GETUSER")
                .arg(&user)
                .query_async(&mut conn)
                .await
                .ok()?;
            (found != redis::Value::Nil).then_some(())
        }
    })
    .await;
    assert!(
        made.is_some(),
        "no replica re-created {user} on the fresh node {fresh}\n{}",
        w.logs()
    );
    // The fresh node becomes the primary of the agent's presence key.
    let (old, new) = w
        .manage(|c| c.failover_for_key(&presence))
        .unwrap_or_else(|e| panic!("failover of {presence}'s slot: {e:#}"));
    eprintln!("[cluster] {presence}: primary {old} → {new}");
    // The daemon starts again and logs in.
    {
        let agent = &mut w.agents[0];
        agent.daemon.proc.stop().await.unwrap();
        agent.daemon = Daemon::start(&agent.home).await.unwrap();
    }
    // Its old presence key may outlive the stop by up to 20 s: wait for
    // the new daemon's own login in its list instead, then the key.
    let agent = &w.agents[0];
    let online = wait_for(WAIT * 2, || {
        let out = agent.home.ctl(&["list", "--json"]).ok();
        async move {
            let v: serde_json::Value = serde_json::from_slice(&out?.stdout).ok()?;
            (v[0]["online"] == true).then_some(())
        }
    })
    .await;
    assert!(
        online.is_some(),
        "the restarted daemon did not log in:\n{}\n{}",
        agent.daemon.proc.tail(40),
        w.logs()
    );
    w.wait_online(agent).await;
    let prompt = "after the node swap";
    w.say(agent.user, prompt).await;
    w.wait_chat(agent.user, END, "with the answer and its ping", |m| {
        m.iter().any(|m| m.text.contains(&expected_answer(prompt)))
            && m.iter().any(|m| {
                m.text
                    .starts_with(&format!("✅ {} finished in", agent.name))
            })
    })
    .await;
}

/// The primary serving the run's output stream is killed with SIGKILL
/// mid-stream: its replica is promoted by the cluster itself (no
/// coordination, so the last writes before the crash may be gone), the
/// daemon's writes and the forwarder's reads follow the slot, and the run
/// ends with its status; a line that did not survive is announced as lost,
/// none is shown twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_stream_ends_the_session_and_tells_any_loss() {
    let mut w = ClusterWorld::start(&[("alpha", "numbered.sh")]).await;
    let lines = 400;
    let (_, _, stream) = start_numbered_run(&w, lines, 20).await;
    let primary = w
        .manage(|c| c.primary_for_key(&stream))
        .unwrap_or_else(|e| panic!("the primary of {stream}: {e:#}"));
    w.manage(|c| c.kill(primary))
        .unwrap_or_else(|e| panic!("killing {primary}: {e:#}"));
    w.manage(|c| c.wait_ok())
        .unwrap_or_else(|e| panic!("the cluster after killing {primary}: {e:#}"));
    let promoted = w.manage(|c| c.primary_for_key(&stream)).unwrap();
    eprintln!("[cluster] {stream}: primary {primary} killed, {promoted} promoted");
    assert_numbered_run(&w, lines, true, false, "primary killed mid-stream").await;
}
