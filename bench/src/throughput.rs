//! Section 2, throughput: a runner writing N bytes as fast as it can, read back
//! from the output stream by the bench (bytes lost, MB/s daemon → Redis) and
//! watched at the fake Telegram (calls made by the forwarder). Baselines:
//! the runner's own pipe rate to /dev/null, and raw XADD from this process
//! with the same chunk sizes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::AsyncCommands;
use redis::streams::{StreamMaxlen, StreamReadOptions, StreamReadReply};
use remoteagent_testkit::telegram::FakeTelegram;
use tokio::time::Instant;

use crate::report::Row;
use crate::stats::status_mib;
use crate::world::{self, Machine, Redis};

const USER: i64 = 20_001;
const MB: f64 = 1_000_000.0;

pub async fn run(bytes: u64, watch: Duration) -> Result<Vec<Row>> {
    let redis = Redis::start()?;
    let tmp = tempfile::tempdir()?;
    // 100-byte lines, like a chatty CLI; `yes` is far faster than the daemon.
    let line = "a".repeat(99);
    let runner = world::script(
        tmp.path(),
        "flood.sh",
        &format!("yes {line} | head -c {bytes}"),
    )?;

    eprintln!("throughput: runner to /dev/null");
    let t0 = std::time::Instant::now();
    let st = std::process::Command::new(&runner)
        .arg("x")
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        bail!("runner failed");
    }
    let pipe_rate = bytes as f64 / MB / t0.elapsed().as_secs_f64();

    let tg = FakeTelegram::start().await;
    let cloud = world::start_cloud(&redis.url(), &tg, None).await?;
    let machine = Machine::start(&cloud.url).await?;
    let http = reqwest::Client::new();
    machine
        .pair(&http, &cloud.url, "flood", &runner, USER)
        .await?;
    let pid = machine.daemon.pid().context("daemon exited")?;
    let rss_before = status_mib(pid, "VmRSS").unwrap_or(0.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls_before = tg.calls().len();

    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let before: Vec<String> = conn.keys("output:*").await?;
    eprintln!("throughput: {} MB through the system", bytes as f64 / MB);
    let posted = Instant::now();
    let status = world::post_update(&http, &cloud.url, &world::text_update(USER, "flood")).await?;
    if status != 200 {
        bail!("webhook answered {status}");
    }
    let key = loop {
        let now: Vec<String> = conn.keys("output:*").await?;
        if let Some(k) = now.into_iter().find(|k| !before.contains(k)) {
            break k;
        }
        if posted.elapsed() > Duration::from_secs(30) {
            bail!("no output stream appeared:\n{}", cloud.proc.tail(20));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };

    // Read the stream as a forwarder does, counting text and checking `seq`.
    let mut reader = client.get_multiplexed_async_connection().await?;
    let mut last = "0-0".to_string();
    let mut received: u64 = 0;
    let mut next_seq: u64 = 0;
    let mut gaps: u64 = 0;
    let mut chunks: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut peak_hwm: f64 = 0.0;
    let hard_stop = Instant::now() + Duration::from_secs(600);
    let done_at = 'read: loop {
        if Instant::now() > hard_stop {
            bail!("the flood did not finish within 10 minutes");
        }
        let opts = StreamReadOptions::default().block(5_000).count(2_000);
        let reply: StreamReadReply = reader.xread_options(&[&key], &[&last], &opts).await?;
        if let Some(v) = status_mib(pid, "VmHWM") {
            peak_hwm = peak_hwm.max(v);
        }
        for k in reply.keys {
            for e in k.ids {
                last = e.id.clone();
                let json: String = e
                    .get(remoteagent_proto::names::STREAM_FIELD)
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                match v["event"].as_str() {
                    Some("chunk") => {
                        first.get_or_insert_with(Instant::now);
                        let seq = v["payload"]["seq"].as_u64().unwrap_or(0);
                        if seq != next_seq {
                            gaps += seq.saturating_sub(next_seq);
                        }
                        next_seq = seq + 1;
                        chunks += 1;
                        received += v["payload"]["text"].as_str().map_or(0, |t| t.len() as u64);
                    }
                    Some("done") => break 'read Instant::now(),
                    _ => {}
                }
            }
        }
    };
    let first = first.unwrap_or(done_at);
    let secs = (done_at - first).as_secs_f64().max(1e-6);
    let rate = received as f64 / MB / secs;
    let lost = bytes.saturating_sub(received);
    let avg_chunk = received.checked_div(chunks).unwrap_or(0);

    // The forwarder: Telegram allows about one request a second per chat,
    // so it cannot keep up with a flood; watch it for a bounded window and
    // report how much of the text reached the chat.
    tokio::time::sleep_until(done_at + watch).await;
    let calls = tg.calls();
    let tg_calls = calls.len() - calls_before;
    let watched = posted.elapsed();
    let delivered: usize = tg.messages(USER).iter().map(|m| m.text.len()).sum();
    let fwd_rate = delivered as f64 / MB / watched.as_secs_f64();
    let fwd_lag = cloud_lag(&mut conn, &key).await;

    drop(machine);
    eprintln!("throughput: raw XADD baseline ({avg_chunk}-byte chunks)");
    let raw_rate = raw_xadd(&redis.url(), bytes, avg_chunk.max(1) as usize).await?;

    let ok_rate = rate >= 100.0;
    Ok(vec![
        Row::new(
            format!(
                "throughput: daemon → Redis → reader, {} MB",
                bytes as f64 / MB
            ),
            format!("{rate:.1} MB/s"),
        )
        .baseline(
            format!("raw XADD {raw_rate:.1} MB/s"),
            Some(rate / raw_rate.max(1e-6)),
        )
        .goal("≥ 100 MB/s", ok_rate),
        Row::new(
            "throughput: runner's own pipe rate to /dev/null",
            format!("{pipe_rate:.0} MB/s"),
        ),
        Row::new(
            "throughput: bytes lost (seq gaps)",
            format!("{lost} ({gaps} chunks of {chunks}, avg chunk {avg_chunk} B)"),
        )
        .goal("0", lost == 0 && gaps == 0),
        Row::new(
            "throughput: daemon peak RSS (VmHWM)",
            format!("{peak_hwm:.1} MiB"),
        )
        .baseline(
            format!("idle {rss_before:.1} MiB"),
            Some(peak_hwm / rss_before.max(1e-6)),
        )
        .goal("< 64 MiB", peak_hwm < 64.0),
        Row::new(
            format!(
                "throughput: forwarder → fake Telegram, first {:.0} s",
                watched.as_secs_f64()
            ),
            format!(
                "{tg_calls} calls, {:.3} MB shown ({fwd_rate:.4} MB/s{fwd_lag})",
                delivered as f64 / MB
            ),
        )
        .baseline("Telegram limit ≈ 1 req/s/chat", None),
    ])
}

/// How far the forwarder got, if it kept state we can see (context only).
async fn cloud_lag(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> String {
    let len: redis::RedisResult<u64> = conn.xlen(key).await;
    match len {
        Ok(n) => format!("; stream holds {n} entries"),
        Err(_) => String::new(),
    }
}

/// XADD `bytes` of chunk events of `chunk` bytes from this process,
/// pipelined 64 at a time, with the daemon's MAXLEN.
async fn raw_xadd(url: &str, bytes: u64, chunk: usize) -> Result<f64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let text = "a".repeat(chunk);
    let n = bytes / chunk as u64;
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < n {
        let mut pipe = redis::pipe();
        for _ in 0..64.min(n - seq) {
            let ev = serde_json::json!({"event": "chunk", "payload": {"seq": seq, "stream": "stdout", "text": text}})
                .to_string();
            pipe.xadd_maxlen(
                "bench:raw",
                StreamMaxlen::Approx(remoteagent_proto::names::OUTPUT_STREAM_MAXLEN),
                "*",
                &[(remoteagent_proto::names::STREAM_FIELD, ev)],
            )
            .ignore();
            seq += 1;
        }
        let _: () = pipe.query_async(&mut conn).await?;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-6);
    let _: () = conn.del("bench:raw").await?;
    Ok((n * chunk as u64) as f64 / MB / secs)
}
