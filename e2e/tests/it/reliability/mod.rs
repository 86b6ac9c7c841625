//! Reliability end to end (issue 11): the real cloud, daemon and CLI, a
//! private Redis with ACL users, the fake Bot API, and runner scripts from
//! `tests/fixtures`, through the failures a user meets: a long slow run, a
//! 2 MB and a 200 MB flood, Redis restarting with and without persistence,
//! the daemon and the cloud killed with SIGKILL.
//!
//! Every scenario ends with the same verdict ([`Verdict`]), taken from what
//! the user sees in the fake's message store:
//! - the session's status line is shown (in a message or the output file's
//!   caption);
//! - no message of the chat keeps a Stop button;
//! - every output line is shown in a message, or contained in the attached
//!   output file, or announced as lost ("⚠️ … lost" / "could not be shown");
//! - no Bot API call was refused (400) without the user being told.
//!
//! All problems of a scenario are collected and reported together, so that
//! one failing run says everything that is wrong. Figures (durations,
//! counts, memory) are printed with `eprintln!`: run with `--nocapture`.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use remoteagent_e2e::{Daemon, Stack, fixture};
use remoteagent_testkit::telegram::FakeMessage;
use remoteagent_testkit::{RedisServer, wait_for};

mod procs;
mod screen;
mod world;

use procs::*;
use screen::{Screen, Verdict};
use world::World;

const OWNER: i64 = 4004;
const WAIT: Duration = Duration::from_secs(30);
/// Hang guard for a session's end once nothing stands in its way.
const END: Duration = Duration::from_secs(120);
/// The filler after `L0000001` in `fixtures/numbered.sh`.
const NUMBERED_FILLER: &str = " the quick <brown> fox & é✓";
/// The filler after `L0000001` in `fixtures/flood.sh` (100-byte lines).
const FLOOD_FILLER: &str =
    " <flood> & é✓ xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
/// The beginnings of the status lines the forwarder shows at a session's end.
const STATUS_MARKS: [&str; 5] = [
    "✅ done in",
    "⏹ aborted",
    "❌ failed",
    "❌ error",
    "⚠️ rejected",
];
/// The daemon's per-session byte budget in Redis by default (issue 11:
/// "default 64 MB"); a little slack for the last chunk and the marker.
const BYTE_BUDGET: u64 = 64 * 1024 * 1024;
const BUDGET_SLACK: u64 = 1024 * 1024;
/// Issue 11: "An agent that drops mid-run is reported within 90 s". The
/// guard leaves room for a loaded machine; the figure is printed.
const OFFLINE_REPORT_GUARD: Duration = Duration::from_secs(150);

fn numbered_line(n: u64) -> String {
    format!("L{n:07}{NUMBERED_FILLER}")
}

fn flood_line(n: u64) -> String {
    format!("L{n:07}{FLOOD_FILLER}\n")
}

/// 600 short numbered lines at 20 lines/s (issue 11, case 1): pages turn
/// while the runner still writes, and the end still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_600_line_run_ends_with_its_status() {
    let w = World::start("numbered.sh", true).await;
    let mut v = Verdict::new("slow 600 lines");
    let t0 = Instant::now();
    w.say("600 20").await;
    // Page turns mid-run: two pages of output before the status.
    w.wait_screen(END, "on a second page before the end", |s| {
        s.output_pages() >= 2 || s.status().is_some()
    })
    .await;
    if w.screen().status().is_some() {
        v.problem("no page turned before the status arrived");
    }
    let took = w.wait_end(&mut v, END, t0).await;
    v.figure("prompt → status", format!("{took:?}"));
    v.figure("status", format!("{:?}", w.screen().status()));
    if !w.screen().mentions("✅ done in") {
        v.problem("the status is not \"done\"");
    }
    v.numbered_lines(&w, 600, true);
    v.nothing_lost(&w, 600);
    v.refusals_told(&w);
    v.finish(&w);
}

/// 2 MB in one burst (issue 11, case 2): past the page budget the output is
/// attached as a file whose bytes are the output, with the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2mb_flood_is_attached_whole() {
    let w = World::start("flood.sh", false).await;
    let mut v = Verdict::new("2 MB flood");
    let lines = 20_000;
    let t0 = Instant::now();
    w.say(&lines.to_string()).await;
    let took = w.wait_end(&mut v, END, t0).await;
    v.figure("prompt → status", format!("{took:?}"));
    v.figure("status", format!("{:?}", w.screen().status()));
    let docs = w.tg.documents_in(OWNER);
    v.figure("files attached", docs.len());
    let expected: String = (1..=lines).map(flood_line).collect();
    match docs.as_slice() {
        [doc] => {
            v.figure("file bytes", doc.bytes.len());
            if doc.bytes != expected.as_bytes() {
                let at = doc
                    .bytes
                    .iter()
                    .zip(expected.as_bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(doc.bytes.len().min(expected.len()));
                v.problem(format!(
                    "the file's {} bytes are not the output's {} (first difference at byte {at})",
                    doc.bytes.len(),
                    expected.len()
                ));
            }
            let caption = doc.caption.clone().unwrap_or_default();
            if !STATUS_MARKS.iter().any(|m| caption.contains(m)) {
                v.problem(format!("the file's caption has no status: {caption:?}"));
            }
        }
        other => v.problem(format!("expected one output file, got {}", other.len())),
    }
    if !w.screen().mentions("✅ done in") {
        v.problem("the status is not \"done\"");
    }
    v.refusals_told(&w);
    v.finish(&w);
}

/// 200 MB in one burst: the daemon's byte budget keeps the stream at 64 MB;
/// the file holds what the stream holds, the user is told where the rest
/// is (`remoteagentctl logs`), and the local log has every line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200mb_flood_stays_within_the_byte_budget() {
    // Without persistence: the flood measures the budget, not fsync.
    let w = World::start("flood.sh", false).await;
    let mut v = Verdict::new("200 MB flood");
    let lines: u64 = 2_000_000;
    let redis_before = redis_used_memory(&w.redis.url()).await.unwrap_or(0);
    let cloud_pid = w.cloud.proc.pid().unwrap();
    let cloud_idle = proc_status_mib(cloud_pid, "VmRSS").unwrap_or(0.0);
    let t0 = Instant::now();
    w.say(&lines.to_string()).await;
    let took = w.wait_end(&mut v, Duration::from_secs(300), t0).await;
    v.figure("prompt → status", format!("{took:?}"));
    v.figure("status", format!("{:?}", w.screen().status()));
    let redis_after = redis_used_memory(&w.redis.url()).await.unwrap_or(0);
    v.figure(
        "Redis used_memory added",
        format!(
            "{:.1} MiB",
            redis_after.saturating_sub(redis_before) as f64 / 1048576.0
        ),
    );
    v.figure(
        "cloud RSS idle / peak (VmHWM, debug build)",
        format!(
            "{cloud_idle:.1} / {:.1} MiB",
            proc_status_mib(cloud_pid, "VmHWM").unwrap_or(0.0)
        ),
    );

    // The stream keeps at most the budget.
    let stream_bytes = stream_text_bytes(&w).await;
    v.figure("output bytes in the stream", stream_bytes);
    if stream_bytes > BYTE_BUDGET + BUDGET_SLACK {
        v.problem(format!(
            "the stream holds {stream_bytes} bytes of output, over the {BYTE_BUDGET}-byte budget"
        ));
    }

    // The file: a prefix of the output (what the stream holds, cut at
    // Telegram's 50 MB at most), perhaps followed by a short marker.
    let docs = w.tg.documents_in(OWNER);
    v.figure("files attached", docs.len());
    match docs.as_slice() {
        [doc] => {
            let matched = matching_prefix(&doc.bytes, flood_line);
            v.figure(
                "file bytes / matching the output",
                format!("{} / {matched}", doc.bytes.len()),
            );
            let rest = &doc.bytes[matched..];
            if matched < 1_000_000 || rest.len() > 4096 {
                v.problem(format!(
                    "the file is not the stream's output: {} bytes, the first {matched} match",
                    doc.bytes.len()
                ));
            }
            if matched as u64 > stream_bytes {
                v.problem(format!(
                    "the file holds {matched} bytes of output, the stream only {stream_bytes}"
                ));
            }
        }
        other => v.problem(format!("expected one output file, got {}", other.len())),
    }
    if !w.screen().mentions("remoteagentctl logs") {
        v.problem("the user is not told where the rest is (`remoteagentctl logs`)");
    }

    // The local log has every line, in order.
    match w.session_log() {
        Some(path) => {
            let (found, in_order) = log_lines(&path, lines);
            v.figure(
                "local log",
                format!(
                    "{} bytes, {found} output lines ({})",
                    std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    if in_order { "in order" } else { "NOT in order" }
                ),
            );
            if found != lines || !in_order {
                v.problem(format!(
                    "the local log holds {found} of {lines} lines{}",
                    if in_order { "" } else { ", not all as written" }
                ));
            }
        }
        None => v.problem("no local session log"),
    }
    v.refusals_told(&w);
    v.finish(&w);
}

/// Bytes of `chunk` text in the session's output stream, read in batches.
async fn stream_text_bytes(w: &World) -> u64 {
    let mut conn = remoteagent_testkit::redis_conn(&w.redis.url()).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("output:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut total = 0u64;
    for key in keys {
        let mut start = "-".to_string();
        loop {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .unwrap();
            let Some(last) = reply.ids.last() else { break };
            start = format!("({}", last.id);
            for e in &reply.ids {
                let json: String = e
                    .get(remoteagent_proto::names::STREAM_FIELD)
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                if v["event"] == "chunk" {
                    total += v["payload"]["text"].as_str().map_or(0, |t| t.len() as u64);
                }
            }
        }
    }
    total
}

/// How many leading bytes of `bytes` equal the output made of `line(1)`,
/// `line(2)`, … (generated as it goes: the output may be 200 MB).
fn matching_prefix(bytes: &[u8], line: impl Fn(u64) -> String) -> usize {
    let mut at = 0;
    let mut n = 1;
    while at < bytes.len() {
        let l = line(n);
        let l = l.as_bytes();
        let end = (at + l.len()).min(bytes.len());
        let common = bytes[at..end]
            .iter()
            .zip(l)
            .take_while(|(a, b)| a == b)
            .count();
        at += common;
        if common < l.len() {
            break;
        }
        n += 1;
    }
    at
}

/// Output lines of `flood.sh` in the session log at `path`: how many, and
/// whether they are 1, 2, 3, … in order. The daemon's own records are
/// written as `\n# …\n` wherever the output stands (even mid-line), so
/// both newlines around a record are not output: the pieces on either side
/// join again.
fn log_lines(path: &std::path::Path, expected: u64) -> (u64, bool) {
    let Ok(file) = std::fs::File::open(path) else {
        return (0, false);
    };
    let mut found = 0u64;
    let mut in_order = true;
    let mut check = |line: &[u8]| {
        if line.is_empty() {
            return;
        }
        found += 1;
        let want = flood_line(found);
        if found > expected || line != want.trim_end_matches('\n').as_bytes() {
            in_order = false;
        }
    };
    let mut pending: Option<Vec<u8>> = None;
    let mut join_next = false;
    for piece in std::io::BufReader::new(file).split(b'\n') {
        let Ok(piece) = piece else { break };
        if piece.starts_with(b"# ") {
            join_next = true;
            continue;
        }
        match pending.as_mut() {
            Some(p) if join_next => p.extend_from_slice(&piece),
            _ => {
                if let Some(done) = pending.replace(piece) {
                    check(&done);
                }
            }
        }
        join_next = false;
    }
    if let Some(last) = pending {
        check(&last);
    }
    (found, in_order)
}

/// A Redis restart 10 s into a run, with AOF: nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_loses_nothing() {
    redis_restart_mid_run(true).await;
}

/// A Redis restart 10 s into a run, without persistence (issue 11, case 3):
/// the session still ends with its status, and lost output is announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_ends_the_session_and_says_what_was_lost() {
    redis_restart_mid_run(false).await;
}

async fn redis_restart_mid_run(persistent: bool) {
    let mut w = World::start("numbered.sh", persistent).await;
    let mut v = Verdict::new(if persistent {
        "Redis restart (AOF)"
    } else {
        "Redis restart (no persistence)"
    });
    let t0 = Instant::now();
    w.say("600 20").await;
    // About 10 s in (200 lines at 20 lines/s), while the runner writes.
    w.wait_line(200).await;
    v.figure("restart at", format!("{:?} after the prompt", t0.elapsed()));
    w.redis.restart().unwrap();
    let restarted = Instant::now();
    let took = w.wait_end(&mut v, END, t0).await;
    v.figure("restart → status", format!("{:?}", restarted.elapsed()));
    v.figure("prompt → status", format!("{took:?}"));
    v.figure("status", format!("{:?}", w.screen().status()));
    v.numbered_lines(&w, 600, false);
    if persistent {
        v.nothing_lost(&w, 600);
        if !w.screen().mentions("✅ done in") {
            v.problem("the status is not \"done\"");
        }
    }
    v.refusals_told(&w);
    v.finish(&w);
}

/// `kill -9` of the daemon while its runner is silent, then the daemon
/// again (issue 11, case 4): the restarted daemon ends the session, whose
/// status is shown, and the old runner is gone (not beside the next one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_and_restarted_ends_its_session_and_its_runner() {
    let mut w = World::start("numbered.sh", true).await;
    let mut v = Verdict::new("daemon kill -9, restarted");
    let t0 = Instant::now();
    w.say("100 100 600").await;
    let pid = w.runner_pid().await;
    let _group = GroupGuard(pid);
    w.wait_line(100).await;
    w.daemon.proc.signal(Signal::SIGKILL);
    w.daemon.proc.wait(WAIT).await.unwrap();
    let killed = Instant::now();
    w.daemon = Daemon::start(&w.home).await.unwrap();
    v.figure("daemon back after", format!("{:?}", killed.elapsed()));
    let took = w.wait_end(&mut v, END, killed).await;
    v.figure("kill → status", format!("{took:?}"));
    v.figure("prompt → status", format!("{:?}", t0.elapsed()));
    v.figure("status", format!("{:?}", w.screen().status()));
    let gone = wait_for(WAIT, || async move { (!alive(pid)).then_some(()) }).await;
    match gone {
        Some(()) => v.figure("runner gone after", format!("{:?}", killed.elapsed())),
        None => v.problem(format!(
            "the runner (PID {pid}) outlived its daemon and the restart"
        )),
    }
    // No process of its group is left either (its `sleep`).
    let left = group_members(pid);
    if !left.is_empty() {
        v.problem(format!(
            "processes {left:?} of the runner's group {pid} outlived the restart"
        ));
    }
    v.numbered_lines(&w, 100, false);
    v.nothing_lost(&w, 100);
    v.refusals_told(&w);
    v.finish(&w);
}

/// `kill -9` of the daemon, not restarted (issue 11, cases 4 and 5): the
/// runner dies with it, and the forwarder reports the agent offline within
/// 90 s (the cloud's defaults: no setting is shortened here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_for_good_is_reported_offline_within_90_s() {
    let mut w = World::start("numbered.sh", true).await;
    let mut v = Verdict::new("daemon kill -9, not restarted");
    w.say("100 100 600").await;
    let pid = w.runner_pid().await;
    let _group = GroupGuard(pid);
    w.wait_line(100).await;
    w.daemon.proc.signal(Signal::SIGKILL);
    w.daemon.proc.wait(WAIT).await.unwrap();
    let killed = Instant::now();
    let took = w.wait_end(&mut v, OFFLINE_REPORT_GUARD, killed).await;
    v.figure("kill → status", format!("{took:?}"));
    v.figure("status", format!("{:?}", w.screen().status()));
    if w.screen().status().is_some() && took > Duration::from_secs(90) {
        // Not a timed assertion of speed: the bound, with the
        // figure, for the lead to judge on a loaded machine.
        eprintln!("[{}] NOTE: reported after more than 90 s", v.name);
    }
    let gone = wait_for(WAIT, || async move { (!alive(pid)).then_some(()) }).await;
    match gone {
        Some(()) => v.figure("runner gone after", format!("{:?}", killed.elapsed())),
        None => v.problem(format!("the runner (PID {pid}) outlived its daemon")),
    }
    v.numbered_lines(&w, 100, false);
    v.nothing_lost(&w, 100);
    v.refusals_told(&w);
    v.finish(&w);
}

/// `kill -9` of the cloud mid-run, started again: another forwarder resumes
/// the session from what was delivered; every line is shown exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_killed_mid_run_resumes_and_shows_every_line_once() {
    let mut w = World::start("numbered.sh", true).await;
    let mut v = Verdict::new("cloud kill -9");
    let t0 = Instant::now();
    w.say("600 20").await;
    w.wait_line(200).await;
    let before: HashMap<i64, String> =
        w.tg.messages(OWNER)
            .into_iter()
            .map(|m| (m.message_id, m.text))
            .collect();
    let crashed = Instant::now();
    w.cloud.crash_and_restart().await.unwrap();
    v.figure(
        "cloud healthy again after",
        format!("{:?}", crashed.elapsed()),
    );
    let restarted = Instant::now();
    let took = w.wait_end(&mut v, END, t0).await;
    v.figure("restart → status", format!("{:?}", restarted.elapsed()));
    v.figure("prompt → status", format!("{took:?}"));
    v.figure("status", format!("{:?}", w.screen().status()));
    v.figure("messages before the crash", before.len());
    if !w.screen().mentions("✅ done in") {
        v.problem("the status is not \"done\"");
    }
    v.numbered_lines(&w, 600, true);
    v.nothing_lost(&w, 600);
    v.refusals_told(&w);
    v.finish(&w);
}

#[test]
fn the_expected_lines_match_the_fixtures() {
    // flood.sh writes 100-byte lines: 20000 are 2 MB, 2000000 are 200 MB.
    assert_eq!(flood_line(1).len(), 100);
    assert_eq!(flood_line(2_000_000).len(), 100);
    let out = std::process::Command::new(fixture("flood.sh"))
        .arg("3")
        .output()
        .unwrap();
    let expected: String = (1..=3).map(flood_line).collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(fixture("numbered.sh"))
        .arg("3 100")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let expected: String = (1..=3).map(|n| numbered_line(n) + "\n").collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert_eq!(
        matching_prefix(expected.as_bytes(), |n| numbered_line(n) + "\n"),
        expected.len()
    );
    // A session log: records around and inside the output.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("s.log");
    let second = flood_line(2);
    let (a, b) = second.split_at(40);
    std::fs::write(
        &log,
        format!(
            "# session s\n{}{a}\n# a note\n{b}\n# done ok exit 0 in 5 ms\n",
            flood_line(1)
        ),
    )
    .unwrap();
    assert_eq!(log_lines(&log, 2), (2, true));
    assert_eq!(log_lines(&log, 1), (2, false));
    assert_eq!(
        matching_prefix(b"L0000001 the qu!", |n| numbered_line(n) + "\n"),
        15
    );
}
