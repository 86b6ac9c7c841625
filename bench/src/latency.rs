//! Section 1, latency: webhook update → first runner output, against the raw
//! two-hop Redis round trip (PUBLISH→SUBSCRIBE, then XADD→XREAD BLOCK) and
//! the cost of spawning the runner, all measured in this run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use remoteagent_testkit::telegram::FakeTelegram;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::report::Row;
use crate::stats::{ms, quantile};
use crate::world::{self, Machine, Redis, WAIT};

pub struct Config {
    pub prompts: usize,
    /// How many Telegram users (each with its own paired agent) take turns.
    pub users: usize,
    pub baseline_rounds: usize,
    /// Least time between two prompts (any chat), so that the outbox's
    /// global pacing (≈ 30 requests/s to Telegram) is not what is measured.
    pub spacing: Duration,
}

/// The raw two hops with the bench as cloud, daemon and forwarder.
async fn redis_two_hops(url: &str, rounds: usize) -> Result<Vec<Duration>> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe("bench:cmd").await?;
    let mut writer = client.get_multiplexed_async_connection().await?;
    // The "daemon": every command received becomes one stream entry.
    let relay = tokio::spawn(async move {
        let mut msgs = pubsub.on_message();
        while let Some(msg) = msgs.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            let r: redis::RedisResult<String> =
                writer.xadd("bench:out", "*", &[("event", payload)]).await;
            if r.is_err() {
                break;
            }
        }
    });
    let mut publisher = client.get_multiplexed_async_connection().await?;
    let mut reader = client.get_multiplexed_async_connection().await?;
    let payload = serde_json::json!({"event": "chunk", "payload": {"seq": 0, "stream": "stdout", "text": "pong p1x\n"}}).to_string();
    let mut last = "0-0".to_string();
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let read = {
            let mut reader = reader.clone();
            let last = last.clone();
            tokio::spawn(async move {
                let opts = StreamReadOptions::default().block(10_000).count(1);
                let r: redis::RedisResult<StreamReadReply> =
                    reader.xread_options(&["bench:out"], &[last], &opts).await;
                (r, Instant::now())
            })
        };
        // Let the XREAD reach the server first, as a forwarder's would.
        tokio::task::yield_now().await;
        let t0 = Instant::now();
        let _: i64 = publisher.publish("bench:cmd", &payload).await?;
        let (reply, t1) = read.await?;
        let reply = reply?;
        let id = reply
            .keys
            .first()
            .and_then(|k| k.ids.first())
            .map(|e| e.id.clone())
            .context("XREAD returned nothing")?;
        last = id;
        samples.push(t1 - t0);
    }
    relay.abort();
    let _: () = reader.del("bench:out").await?;
    drop(reader);
    Ok(samples)
}

/// Spawn + exit of the runner script itself, from this process.
fn spawn_cost(runner: &std::path::Path, rounds: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = std::time::Instant::now();
        let out = std::process::Command::new(runner).arg("p0x").output()?;
        if !out.status.success() {
            bail!("runner failed");
        }
        samples.push(t0.elapsed());
    }
    Ok(samples)
}

/// XADDs seen through keyspace notifications: (stream key, when).
pub(crate) async fn watch_xadds(url: &str) -> Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    watch_xadds_on(&[url.to_string()]).await
}

/// [`watch_xadds`] on several servers (a cluster's primaries: a keyspace
/// notification is published only on the node that holds the key).
pub(crate) async fn watch_xadds_on(
    urls: &[String],
) -> Result<mpsc::UnboundedReceiver<(String, Instant)>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for url in urls {
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("Kt")
            .query_async(&mut conn)
            .await?;
        let mut pubsub = client.get_async_pubsub().await?;
        // `*output:*`: a cluster build may put a hash tag in front.
        pubsub.psubscribe("__keyspace@0__:*output:*").await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut msgs = pubsub.on_message();
            while let Some(msg) = msgs.next().await {
                let at = Instant::now();
                let event: String = msg.get_payload().unwrap_or_default();
                if event != "xadd" {
                    continue;
                }
                let key = msg
                    .get_channel_name()
                    .trim_start_matches("__keyspace@0__:")
                    .to_string();
                if tx.send((key, at)).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// XRANGEs this bench sent itself (to subtract from a server's command count).
pub(crate) static BENCH_QUERIES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// The `event` names of a stream's entries, in order.
async fn stream_events<C>(conn: &mut C, key: &str) -> Result<Vec<String>>
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    BENCH_QUERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(key).await?;
    Ok(reply
        .ids
        .iter()
        .map(|e| {
            e.get::<String>(remoteagent_proto::names::STREAM_FIELD)
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
                .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_default()
        })
        .collect())
}

pub async fn run(cfg: &Config) -> Result<Vec<Row>> {
    let redis = Redis::start()?;
    let tmp = tempfile::tempdir()?;
    let runner = world::script(tmp.path(), "pong.sh", "echo \"pong $1\"")?;

    eprintln!(
        "latency: raw Redis two-hop baseline ({} rounds)",
        cfg.baseline_rounds
    );
    let mut raw = redis_two_hops(&redis.url(), cfg.baseline_rounds).await?;
    eprintln!(
        "latency: runner spawn cost ({} rounds)",
        cfg.baseline_rounds.min(500)
    );
    let mut spawn = spawn_cost(&runner, cfg.baseline_rounds.min(500))?;

    let tg = FakeTelegram::start().await;
    let cloud = world::start_cloud(&redis.url(), &tg, None).await?;
    let machine = Machine::start(&cloud.url).await?;
    let http = reqwest::Client::new();
    let users: Vec<i64> = (0..cfg.users as i64).map(|i| 10_000 + i).collect();
    eprintln!("latency: pairing {} agents", users.len());
    for (i, user) in users.iter().enumerate() {
        machine
            .pair(&http, &cloud.url, &format!("lat{i}"), &runner, *user)
            .await?;
    }
    let mut xadds = watch_xadds(&redis.url()).await?;
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    // Let the pairing confirmations drain from the paced outbox.
    tokio::time::sleep(Duration::from_secs(2)).await;

    eprintln!("latency: {} prompts", cfg.prompts);
    // Each chat is given time for its placeholder, text and status edits
    // (≈ 1 request/s per chat in the outbox) before its next prompt, so that
    // the Redis-side figure does not include Telegram pacing.
    let gap = Duration::from_millis(3_100);
    let mut last_prompt: HashMap<i64, Instant> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut to_chunk = Vec::with_capacity(cfg.prompts);
    let mut to_started = Vec::with_capacity(cfg.prompts);
    let mut posted: Vec<(i64, String, Instant)> = Vec::with_capacity(cfg.prompts);
    let mut failures = 0usize;
    let mut last_any: Option<Instant> = None;
    for i in 0..cfg.prompts {
        let user = users[i % users.len()];
        if let Some(t) = last_prompt.get(&user) {
            let ready = *t + gap;
            tokio::time::sleep_until(ready).await;
        }
        if let Some(prev) = last_any {
            tokio::time::sleep_until(prev + cfg.spacing).await;
        }
        while xadds.try_recv().is_ok() {}
        let prompt = format!("p{i}x");
        let t0 = Instant::now();
        last_prompt.insert(user, t0);
        last_any = Some(t0);
        let status =
            world::post_update(&http, &cloud.url, &world::text_update(user, &prompt)).await?;
        if status != 200 {
            failures += 1;
            continue;
        }
        posted.push((user, prompt, t0));
        match first_chunk(&mut xadds, &mut conn, &mut seen, t0).await {
            Ok((started, chunk)) => {
                to_started.push(started);
                to_chunk.push(chunk);
            }
            Err(e) => {
                failures += 1;
                eprintln!("latency: prompt {i}: {e:#}");
            }
        }
    }

    // What the user sees: the first Bot API call carrying the runner's text.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = tg.calls();
    let mut to_telegram = Vec::with_capacity(posted.len());
    let mut to_placeholder = Vec::with_capacity(posted.len());
    for (user, prompt, t0) in &posted {
        if let Some(c) = calls
            .iter()
            .find(|c| c.chat_id() == Some(*user) && c.method == "sendMessage" && c.at >= *t0)
        {
            to_placeholder.push(c.at.saturating_duration_since(*t0));
        }
        let marker = format!("pong {prompt}");
        if let Some(c) = calls.iter().find(|c| {
            c.chat_id() == Some(*user) && c.ok() && c.text().is_some_and(|t| t.contains(&marker))
        }) {
            to_telegram.push(c.at.saturating_duration_since(*t0));
        }
    }

    let raw50 = quantile(&mut raw, 0.5);
    let raw99 = quantile(&mut raw, 0.99);
    let sp50 = quantile(&mut spawn, 0.5);
    let sp99 = quantile(&mut spawn, 0.99);
    let e50 = quantile(&mut to_chunk, 0.5);
    let e99 = quantile(&mut to_chunk, 0.99);
    let ex50 = e50.saturating_sub(sp50);
    let t50 = quantile(&mut to_telegram, 0.5);
    let t99 = quantile(&mut to_telegram, 0.99);
    let ratio = ms(ex50) / ms(raw50).max(1e-6);
    let ph50 = quantile(&mut to_placeholder, 0.5);
    let st50 = quantile(&mut to_started, 0.5);
    Ok(vec![
        Row::new(
            format!(
                "latency: webhook → first chunk XADDed, p50 (n={})",
                to_chunk.len()
            ),
            format!("{:.2} ms", ms(e50)),
        )
        .baseline(
            format!("raw 2-hop {:.3} ms", ms(raw50)),
            Some(ms(e50) / ms(raw50).max(1e-6)),
        ),
        Row::new(
            "latency: webhook → first chunk XADDed, p99",
            format!("{:.2} ms", ms(e99)),
        )
        .baseline(
            format!("raw 2-hop {:.3} ms", ms(raw99)),
            Some(ms(e99) / ms(raw99).max(1e-6)),
        ),
        Row::new(
            "latency: breakdown p50: webhook → placeholder sent / → `started` XADDed",
            format!("{:.2} / {:.2} ms", ms(ph50), ms(st50)),
        ),
        Row::new(
            "latency: runner spawn+exit (sh script), p50 / p99",
            format!("{:.2} / {:.2} ms", ms(sp50), ms(sp99)),
        ),
        Row::new(
            "latency: p50 minus runner spawn",
            format!("{:.2} ms", ms(ex50)),
        )
        .baseline(format!("raw 2-hop {:.3} ms", ms(raw50)), Some(ratio))
        .goal("≤ 3× raw", ratio <= 3.0),
        Row::new(
            format!(
                "latency: webhook → runner text at fake Telegram, p50 / p99 (n={})",
                to_telegram.len()
            ),
            format!("{:.0} / {:.0} ms", ms(t50), ms(t99)),
        )
        .baseline("outbox pacing 1 req/s/chat", None),
        Row::new("latency: prompts failed", failures.to_string()).goal("0", failures == 0),
    ])
}

/// Waits for the stream of the session just started; returns the times from
/// `t0` to the notifications of its first entry (`started`) and of its first
/// `chunk` entry.
pub(crate) async fn first_chunk<C>(
    xadds: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    conn: &mut C,
    seen: &mut HashSet<String>,
    t0: Instant,
) -> Result<(Duration, Duration)>
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    let deadline = Instant::now() + WAIT;
    let mut key: Option<String> = None;
    let mut times: Vec<Instant> = Vec::new();
    loop {
        let (k, at) = tokio::time::timeout_at(deadline, xadds.recv())
            .await
            .context("no output within 30 s")?
            .context("notification stream ended")?;
        match &key {
            None if !seen.contains(&k) => {
                seen.insert(k.clone());
                key = Some(k);
            }
            Some(ours) if *ours == k => {}
            _ => continue,
        }
        times.push(at);
        let Some(k) = &key else { continue };
        let events = stream_events(conn, k).await?;
        if let Some(idx) = events.iter().position(|e| e == "chunk")
            && let Some(at) = times.get(idx)
            && events.iter().any(|e| e == "done")
        {
            let started = times.first().unwrap_or(at);
            return Ok((
                started.saturating_duration_since(t0),
                at.saturating_duration_since(t0),
            ));
        }
        if events.iter().any(|e| e == "done") && !events.iter().any(|e| e == "chunk") {
            bail!("session ended without output: {events:?}");
        }
    }
}
