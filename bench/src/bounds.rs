//! Section 5, bounds (issue 11): one flood of N bytes through the whole
//! system, watching what it costs the cloud and Redis. Figures: the cloud's
//! peak RSS while it forwards the flood (VmHWM, and the highest VmRSS
//! sampled every 50 ms) beside its idle RSS in the same run, and the Redis
//! memory the flood leaves behind (`INFO memory` `used_memory` after the
//! session ended, minus before) beside the flood's size. Goals: cloud RSS
//! < 64 MB; Redis keeps at most the daemon's per-session byte budget
//! (64 MB by default) for the session's 24 h.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use remoteagent_testkit::telegram::FakeTelegram;
use tokio::time::Instant;

use crate::report::Row;
use crate::stats::status_mib;
use crate::world::{self, Machine, Redis};

const USER: i64 = 50_001;
const MIB: f64 = 1024.0 * 1024.0;
/// Issue 11: "Cloud RSS stays under 64 MB during a 200 MB flood".
const CLOUD_RSS_GOAL_MIB: f64 = 64.0;
/// The daemon's default per-session byte budget in Redis (issue 11), and
/// the overhead a stream adds to its text (entry ids, field names, JSON).
const BYTE_BUDGET_MIB: f64 = 64.0;
const STREAM_OVERHEAD: f64 = 1.25;
/// Hang guard for the flood's session to end (its `done` in the stream).
const GUARD: Duration = Duration::from_secs(900);
/// Hang guard for the end to be shown once the session ended.
const SHOWN_GUARD: Duration = Duration::from_secs(180);

pub async fn run(bytes: u64) -> Result<Vec<Row>> {
    let redis = Redis::start()?;
    let tmp = tempfile::tempdir()?;
    let line = "a".repeat(99);
    let runner = world::script(
        tmp.path(),
        "flood.sh",
        &format!("yes {line} | head -c {bytes}"),
    )?;
    let tg = FakeTelegram::start().await;
    let cloud = world::start_cloud(&redis.url(), &tg, None).await?;
    let machine = Machine::start(&cloud.url).await?;
    let http = reqwest::Client::new();
    machine
        .pair(&http, &cloud.url, "bounds", &runner, USER)
        .await?;
    let cloud_pid = cloud.proc.pid().context("the cloud exited")?;

    // Baselines: the cloud idle with one agent paired, Redis before.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = status_mib(cloud_pid, "VmRSS").unwrap_or(0.0);
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let redis_before = used_memory(&mut conn).await?;

    // The cloud's RSS, sampled while the flood runs.
    let peak_sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak_sampled.clone();
        tokio::spawn(async move {
            loop {
                if let Some(mib) = status_mib(cloud_pid, "VmRSS") {
                    peak.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    eprintln!(
        "bounds: {} MB flood, watching the cloud (PID {cloud_pid}) and Redis",
        bytes / 1_000_000
    );
    let posted = Instant::now();
    let status = world::post_update(&http, &cloud.url, &world::text_update(USER, "flood")).await?;
    if status != 200 {
        bail!("webhook answered {status}");
    }
    // The daemon's end: `done` in the session's stream.
    let done_at = loop {
        if stream_done(&mut conn).await? {
            break posted.elapsed();
        }
        if posted.elapsed() > GUARD {
            sampler.abort();
            bail!(
                "the flood's session did not end within {GUARD:?}:\n{}",
                machine.daemon.tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The end as the user sees it: the output file (past the page budget),
    // or a status line. A forwarder that went silent never shows it: the
    // figures are still taken, and the row says so.
    let shown_by = Instant::now() + SHOWN_GUARD;
    let shown = loop {
        let file = tg.calls_of("sendDocument").iter().any(|c| c.ok());
        let status = tg.messages(USER).iter().any(|m| {
            ["✅ done", "❌ failed", "❌ error", "⏹ aborted"]
                .iter()
                .any(|s| m.text.contains(s))
        });
        if file || status {
            break Some(posted.elapsed());
        }
        if Instant::now() > shown_by {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sampler.abort();
    let hwm = status_mib(cloud_pid, "VmHWM").unwrap_or(0.0);
    let sampled = peak_sampled.load(Ordering::Relaxed) as f64 / 1024.0;
    let after_rss = status_mib(cloud_pid, "VmRSS").unwrap_or(0.0);
    let redis_after = used_memory(&mut conn).await?;
    let added = redis_after.saturating_sub(redis_before) as f64 / MIB;
    let flood_mib = bytes as f64 / MIB;
    let redis_goal = BYTE_BUDGET_MIB * STREAM_OVERHEAD;

    Ok(vec![
        Row::new(
            format!(
                "bounds: {} MB flood → done in the stream / shown finished",
                bytes / 1_000_000
            ),
            format!(
                "{:.1} s / {}",
                done_at.as_secs_f64(),
                match shown {
                    Some(d) => format!("{:.1} s", d.as_secs_f64()),
                    None => format!("not within {SHOWN_GUARD:?} after done"),
                }
            ),
        )
        .goal("shown", shown.is_some()),
        Row::new(
            "bounds: cloud peak RSS during the flood (VmHWM / max VmRSS sampled)",
            format!("{hwm:.1} / {sampled:.1} MiB (after: {after_rss:.1} MiB)"),
        )
        .baseline(
            format!("idle {idle_rss:.1} MiB"),
            Some(hwm / idle_rss.max(1e-6)),
        )
        .goal(
            format!("< {CLOUD_RSS_GOAL_MIB:.0} MB"),
            hwm * MIB < CLOUD_RSS_GOAL_MIB * 1e6,
        ),
        Row::new(
            "bounds: Redis used_memory added by one flood",
            format!("{added:.1} MiB"),
        )
        .baseline(
            format!(
                "flood {flood_mib:.1} MiB; before {:.1} MiB",
                redis_before as f64 / MIB
            ),
            Some(added / flood_mib.max(1e-6)),
        )
        .goal(
            format!("≤ {BYTE_BUDGET_MIB:.0} MB byte budget (+25 % stream overhead)"),
            added <= redis_goal,
        ),
    ])
}

/// `used_memory` of `INFO memory`, in bytes.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO memory")
}

/// Whether the (only) output stream ends with its `done`.
async fn stream_done(conn: &mut redis::aio::MultiplexedConnection) -> Result<bool> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("output:*").query_async(conn).await?;
    for key in keys {
        let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        for e in last.ids {
            let json: String = e
                .get(remoteagent_proto::names::STREAM_FIELD)
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            if v["event"] == "done" {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
