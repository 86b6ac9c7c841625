//! Section "cluster" (issue 19): the cloud on a Redis Cluster (3 primaries
//! and 3 replicas, `remoteagent_testkit::RedisCluster`) beside the cloud on
//! one standalone Redis, measured in the same run, all on PostgreSQL:
//!
//! * webhook requests/s and p50/p99 at saturation (cloud_load's generator
//!   and update bodies): the cluster with 1 cloud replica and with 3
//!   replicas sharing one database (requests round-robin), each beside
//!   standalone Redis with as many replicas; turns of load alternate
//!   between the four, each waiting until the one before is quiet (the
//!   replies a webhook starts run after its 200);
//! * webhook update → the runner's text at the fake Telegram (latency.rs's
//!   method: a Machine, paired agents, prompts spaced out), with
//!   `STREAM_MODE=draft` so that the text is not held back by the outbox's
//!   1 request/s/chat pacing (which would make every setup read ≈ 1 s);
//! * Redis commands per webhook and per prompt (`total_commands_processed`
//!   summed over the primaries), and `redis-benchmark` on one node, for the
//!   ceiling a node sets.
//!
//! Each setup has a fresh Redis (or cluster) and database: the cloud's
//! pairing limit lives in Redis, and a load leaves thousands of queued
//! replies in the outbox, so the prompts run before the load.
//! Everything runs on this one machine: a cluster cannot be faster here,
//! the figures show its overhead and that it works.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use remoteagent_testkit::RedisCluster;
use remoteagent_testkit::telegram::{Call, FakeTelegram};
use tokio::time::Instant;

use crate::cloud_load::{self, Load};
use crate::latency::{self, BENCH_QUERIES};
use crate::report::Row;
use crate::stats::{ms, quantile};
use crate::world::{self, Cloud, Machine, Redis, WAIT};

pub struct Config {
    pub load: cloud_load::Config,
    /// Prompts per setup.
    pub prompts: usize,
    /// Telegram users (each with its own agent) taking turns.
    pub users: usize,
    /// Least time between two prompts of one chat (its run's messages
    /// take about 4 s at 1 request/s per chat).
    pub chat_gap: Duration,
    /// Prompts of 1000 output lines per setup (the cost per line).
    pub long_prompts: usize,
    /// The load comes in this many turns of `load.duration` per setup.
    pub load_rounds: usize,
    /// `redis-benchmark -n`.
    pub bench_requests: u32,
}

/// The methods that make a text visible (draft mode sends drafts).
const SHOWN_BY: [&str; 3] = ["sendMessage", "editMessageText", "sendMessageDraft"];

/// A standalone server or a cluster.
enum Backend {
    Standalone(Redis),
    Cluster(RedisCluster),
}

impl Backend {
    async fn start(cluster: bool) -> Result<Backend> {
        if !cluster {
            return Ok(Backend::Standalone(Redis::start()?));
        }
        // Blocking (it polls the nodes until they agree): off the runtime.
        let c = tokio::task::spawn_blocking(RedisCluster::start).await??;
        // The testkit's nodes fsync every write (for its durability tests);
        // the standalone server of the bench does not persist at all, so
        // neither do these: the comparison is of the cluster, not of fsync.
        for url in c.node_urls() {
            let mut conn = redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("appendonly")
                .arg("no")
                .query_async(&mut conn)
                .await
                .with_context(|| format!("CONFIG SET appendonly no on {url}"))?;
        }
        Ok(Backend::Cluster(c))
    }

    /// REDIS_URL for the cloud: one URL, or the cluster's comma list.
    fn redis_url(&self) -> String {
        match self {
            Backend::Standalone(r) => r.url(),
            Backend::Cluster(c) => c.urls(),
        }
    }

    /// The pids of its `redis-server` processes (replicas too: replication
    /// is part of what a cluster costs). A server names itself
    /// `redis-server 127.0.0.1:PORT` in its command line.
    fn pids(&self) -> Vec<u32> {
        let ports = match self {
            Backend::Standalone(r) => vec![r.port],
            Backend::Cluster(c) => c.ports(),
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = cmd.replace('\0', " ");
            let ours = cmd.starts_with("redis-server")
                && ports.iter().any(|p| {
                    cmd.contains(&format!("127.0.0.1:{p} "))
                        || cmd.trim_end().ends_with(&format!("127.0.0.1:{p}"))
                });
            ours.then_some(pid)
        })
        .collect()
    }

    /// Every server, primaries and replicas.
    fn nodes(&self) -> Vec<String> {
        match self {
            Backend::Standalone(r) => vec![r.url()],
            Backend::Cluster(c) => c.node_urls(),
        }
    }

    /// The servers that take writes (a keyspace notification and a
    /// command count are per node).
    async fn primaries(&self) -> Result<Vec<String>> {
        match self {
            Backend::Standalone(r) => Ok(vec![r.url()]),
            Backend::Cluster(c) => {
                let mut out = Vec::new();
                for url in c.node_urls() {
                    let mut conn = redis::Client::open(url.as_str())?
                        .get_multiplexed_async_connection()
                        .await?;
                    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
                    if matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master")
                        || matches!(role.first(), Some(redis::Value::SimpleString(s)) if s == "master")
                    {
                        out.push(url);
                    }
                }
                if out.is_empty() {
                    bail!("no node of the cluster says it is a primary");
                }
                Ok(out)
            }
        }
    }
}

/// `total_commands_processed` summed over `urls`.
async fn commands(urls: &[String]) -> Result<u64> {
    let mut sum = 0;
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await?;
        let n: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no total_commands_processed from {url}"))?;
        sum += n;
    }
    Ok(sum)
}

/// Clients logged in as an agent's ACL user (the daemon's connections),
/// summed over `urls`.
async fn agent_connections(urls: &[String]) -> Result<usize> {
    let mut sum = 0;
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await?;
        sum += list
            .lines()
            .filter(|l| l.contains(" user=ra-agent-"))
            .count();
    }
    Ok(sum)
}

/// Waits until the command rate over the primaries is back near `idle`
/// (per second): the forwarders have read what the runs wrote.
async fn settle(primaries: &[String], idle: f64) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    let mut prev = commands(primaries).await?;
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = commands(primaries).await?;
        let rate = now.saturating_sub(prev) as f64 / at.elapsed().as_secs_f64();
        if rate <= idle * 1.5 + 20.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!("cluster: Redis still busy ({rate:.0} commands/s) 30 s after the runs");
            return Ok(());
        }
        prev = now;
        at = Instant::now();
    }
}

/// The release cloud, `replicas` of it on one Redis and one database,
/// started one after the other (the first one migrates the database).
async fn start_clouds(
    replicas: usize,
    redis_url: &str,
    tg: &FakeTelegram,
    database_url: &str,
) -> Result<Vec<Cloud>> {
    // Replicas share one signing key (daemons pin it at pairing); each
    // would generate its own in its data dir otherwise.
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    let key = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, seed);
    let mut clouds = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        clouds.push(
            Cloud::start_binary_env(
                &world::bin("remoteagent-cloud")?,
                "warn",
                redis_url,
                &tg.api_base(),
                &tg.token(),
                Some(database_url),
                &[("STREAM_MODE", "draft"), ("REMOTEAGENT_SIGNING_KEY", &key)],
            )
            .await?,
        );
    }
    Ok(clouds)
}

/// One setup's figures.
struct Setup {
    name: &'static str,
    replicas: usize,
    to_telegram: Vec<Duration>,
    to_chunk: Vec<Duration>,
    failed: usize,
    /// Redis commands of a one-line prompt, background subtracted.
    commands_per_prompt: f64,
    /// Extra commands per output line (1000-line prompts minus one-line).
    commands_per_line: f64,
    /// The daemon's Redis connections per paired agent, all nodes.
    connections_per_agent: f64,
}

/// The prompts of one setup: (webhook → text at Telegram, webhook → first
/// chunk XADDed, failures).
#[allow(clippy::too_many_arguments)]
async fn prompts<C>(
    cfg: &Config,
    count: usize,
    clouds: &[Cloud],
    tg: &FakeTelegram,
    primaries: &[String],
    conn: &mut C,
    users: &[i64],
    tag: &str,
) -> Result<(Vec<Duration>, Vec<Duration>, usize)>
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    let http = reqwest::Client::new();
    let mut xadds = latency::watch_xadds_on(primaries).await?;
    let mut seen = HashSet::new();
    let mut to_chunk = Vec::with_capacity(count);
    let mut posted: Vec<(i64, String, Instant)> = Vec::with_capacity(count);
    let mut last: std::collections::HashMap<i64, Instant> = Default::default();
    let mut failures = 0;
    for i in 0..count {
        let user = users[i % users.len()];
        if let Some(t) = last.get(&user) {
            tokio::time::sleep_until(*t + cfg.chat_gap).await;
        }
        // Spread over the replicas as a round-robin balancer would.
        let cloud = &clouds[i % clouds.len()];
        let prompt = format!("{tag}{i}x");
        while xadds.try_recv().is_ok() {}
        let t0 = Instant::now();
        last.insert(user, t0);
        let status =
            world::post_update(&http, &cloud.url, &world::text_update(user, &prompt)).await?;
        if status != 200 {
            failures += 1;
            eprintln!("cluster: prompt {i} answered {status}");
            continue;
        }
        posted.push((user, prompt, t0));
        match latency::first_chunk(&mut xadds, conn, &mut seen, t0).await {
            Ok((_, chunk)) => to_chunk.push(chunk),
            Err(e) => eprintln!("cluster: prompt {i}: no chunk seen in Redis: {e:#}"),
        }
        // Spread the chats' prompts out, as users would.
        tokio::time::sleep(cfg.chat_gap / users.len().max(1) as u32).await;
    }
    let shown = |calls: &[Call], user: i64, prompt: &str, t0: Instant| -> Option<Duration> {
        let marker = format!("pong {prompt}");
        calls
            .iter()
            .find(|c| {
                c.chat_id() == Some(user)
                    && c.ok()
                    && c.at >= t0
                    && SHOWN_BY.contains(&c.method.as_str())
                    && c.text().is_some_and(|t| t.contains(&marker))
            })
            .map(|c| c.at.saturating_duration_since(t0))
    };
    tg.wait_for(
        |calls| {
            posted
                .iter()
                .all(|(u, p, t0)| shown(calls, *u, p, *t0).is_some())
        },
        WAIT,
    )
    .await;
    let calls = tg.calls();
    let mut to_telegram = Vec::with_capacity(posted.len());
    for (user, prompt, t0) in &posted {
        match shown(&calls, *user, prompt, *t0) {
            Some(d) => to_telegram.push(d),
            None => {
                failures += 1;
                eprintln!("cluster: {prompt:?} never shown at the fake Telegram");
            }
        }
    }
    Ok((to_telegram, to_chunk, failures))
}

/// One setup from scratch: Redis or a cluster, a database, `replicas`
/// clouds; pairing, prompts, then the load.
async fn setup(
    name: &'static str,
    cluster: bool,
    replicas: usize,
    cfg: &Config,
    runner: &std::path::Path,
    first_user: i64,
) -> Result<(Setup, Stack)> {
    eprintln!("cluster: [{name}] starting");
    let backend = Backend::start(cluster).await?;
    let primaries = backend.primaries().await?;
    let tg = FakeTelegram::start().await;
    let pg = remoteagent_e2e::PgDatabase::create()?;
    let clouds = start_clouds(replicas, &backend.redis_url(), &tg, &pg.url).await?;
    let machine = Machine::start(&clouds[0].url).await?;
    let http = reqwest::Client::new();
    let users: Vec<i64> = (0..cfg.users as i64).map(|i| first_user + i).collect();
    eprintln!("cluster: [{name}] pairing {} agents", users.len());
    for (i, user) in users.iter().enumerate() {
        // Pairing spread too: any replica may take the `/pair` update.
        let cloud = &clouds[i % clouds.len()];
        machine
            .pair(&http, &cloud.url, &format!("cl{i}"), runner, *user)
            .await
            .with_context(|| format!("pairing agent {i} through replica {}", i % clouds.len()))?;
    }
    // Let the pairing confirmations drain from the paced outbox.
    tokio::time::sleep(cfg.chat_gap).await;

    let connections_per_agent =
        agent_connections(&backend.nodes()).await? as f64 / users.len().max(1) as f64;
    // The background (housekeeping, presence, the ACL check), per second.
    let c0 = commands(&primaries).await?;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = commands(&primaries).await?.saturating_sub(c0) as f64 / t.elapsed().as_secs_f64();

    let mut conn = match &backend {
        Backend::Standalone(r) => AnyConn::One(
            redis::Client::open(r.url())?
                .get_multiplexed_async_connection()
                .await?,
        ),
        Backend::Cluster(c) => AnyConn::Cluster(
            redis::cluster::ClusterClient::new(c.node_urls())?
                .get_async_connection()
                .await?,
        ),
    };
    // Redis commands of `count` prompts tagged `tag` (their own
    // commands: the bench's reads and the background taken out), and the
    // prompts' figures.
    let mut phase = async |count: usize,
                           tag: &str|
           -> Result<(f64, Vec<Duration>, Vec<Duration>, usize)> {
        let before = commands(&primaries).await?;
        let own_before = BENCH_QUERIES.load(Ordering::Relaxed);
        let t = Instant::now();
        let res = match &mut conn {
            AnyConn::One(c) => {
                prompts(cfg, count, &clouds, &tg, &primaries, c, &users, tag).await?
            }
            AnyConn::Cluster(c) => {
                prompts(cfg, count, &clouds, &tg, &primaries, c, &users, tag).await?
            }
        };
        settle(&primaries, idle).await?;
        let own = BENCH_QUERIES.load(Ordering::Relaxed) - own_before;
        let after = commands(&primaries).await?;
        let background = idle * t.elapsed().as_secs_f64();
        let per = (after.saturating_sub(before).saturating_sub(own) as f64 - background).max(0.0)
            / count.max(1) as f64;
        Ok((per, res.0, res.1, res.2))
    };
    eprintln!("cluster: [{name}] {} prompts", cfg.prompts);
    let tag = format!("c{first_user}p");
    let (commands_per_prompt, to_telegram, to_chunk, failed) = phase(cfg.prompts, &tag).await?;
    eprintln!(
        "cluster: [{name}] {} prompts of 1000 lines",
        cfg.long_prompts
    );
    let tag = format!("c{first_user}lines");
    let (per_long, _, _, long_failed) = phase(cfg.long_prompts, &tag).await?;
    if long_failed > 0 {
        eprintln!("cluster: [{name}] {long_failed} 1000-line prompts not shown");
    }
    let commands_per_line = (per_long - commands_per_prompt) / 1000.0;
    drop(conn);
    drop(machine);
    let setup = Setup {
        name,
        replicas,
        to_telegram,
        to_chunk,
        failed,
        commands_per_prompt,
        commands_per_line,
        connections_per_agent,
    };
    Ok((
        setup,
        Stack {
            clouds,
            _tg: tg,
            _pg: pg,
            primaries,
            backend,
        },
    ))
}

/// What stays up for the load, in drop order (clouds before their
/// database and Redis).
struct Stack {
    clouds: Vec<Cloud>,
    _tg: FakeTelegram,
    _pg: remoteagent_e2e::PgDatabase,
    primaries: Vec<String>,
    backend: Backend,
}

/// One load figure from several rounds.
struct LoadFigures {
    load: Load,
    commands_per_webhook: f64,
    /// CPU time per 1000 webhooks: the clouds, the Redis servers.
    cloud_cpu_ms: f64,
    redis_cpu_ms: f64,
    redis_procs: usize,
}

/// CPU ticks of `pids`, summed (a process gone counts 0).
fn ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| crate::stats::cpu_ticks(*p))
        .sum()
}

/// Waits until `cloud_pids` and `redis_pids` together use less than a
/// tenth of a core (over 300 ms), at most 30 s.
async fn quiet(cloud_pids: &[u32], redis_pids: &[u32]) {
    let per_sec = crate::stats::ticks_per_sec();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut prev = ticks(cloud_pids) + ticks(redis_pids);
    loop {
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = ticks(cloud_pids) + ticks(redis_pids);
        let cores = now.saturating_sub(prev) as f64 / per_sec / t.elapsed().as_secs_f64();
        if cores < 0.1 {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("cluster: still busy ({cores:.2} cores) 30 s after a load turn");
            return;
        }
        prev = now;
    }
}

/// The webhook load on every stack, in `rounds` turns (A, B, C, A, B, C,
/// …) so that whatever else the machine does falls on all of them alike.
async fn loads(stacks: &[Stack], cfg: &Config) -> Result<Vec<LoadFigures>> {
    let mut parts: Vec<Vec<Load>> = stacks.iter().map(|_| Vec::new()).collect();
    let mut cmds = vec![0u64; stacks.len()];
    let mut cloud_ticks = vec![0u64; stacks.len()];
    let mut redis_ticks = vec![0u64; stacks.len()];
    let pids: Vec<(Vec<u32>, Vec<u32>)> = stacks
        .iter()
        .map(|st| {
            (
                st.clouds.iter().filter_map(|c| c.proc.pid()).collect(),
                st.backend.pids(),
            )
        })
        .collect();
    for round in 0..cfg.load_rounds.max(1) {
        for (k, st) in stacks.iter().enumerate() {
            let (cloud_pids, redis_pids) = &pids[k];
            let (c0, r0) = (ticks(cloud_pids), ticks(redis_pids));
            let before = commands(&st.primaries).await?;
            let urls = st
                .clouds
                .iter()
                .map(|c| format!("{}/api/telegram", c.url))
                .collect();
            // Update ids never seen by that stack: a fresh claim each.
            let base = 100_000_000 * (k as u64 + 1) + 10_000_000 * round as u64;
            let load =
                cloud_load::generate_spread(urls, &cfg.load, cloud_load::webhook_body(base)).await;
            // What a webhook starts goes on after its 200 (the reply to
            // the user): wait for it, so that it is counted here and does
            // not fall on the next stack's turn.
            quiet(cloud_pids, redis_pids).await;
            cmds[k] += commands(&st.primaries).await?.saturating_sub(before);
            cloud_ticks[k] += ticks(cloud_pids).saturating_sub(c0);
            redis_ticks[k] += ticks(redis_pids).saturating_sub(r0);
            parts[k].push(load);
        }
    }
    let tick_ms = 1000.0 / crate::stats::ticks_per_sec();
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(k, p)| {
            let load = combine(p);
            let n = (load.ok + load.errors).max(1) as f64;
            LoadFigures {
                commands_per_webhook: cmds[k] as f64 / n,
                cloud_cpu_ms: cloud_ticks[k] as f64 * tick_ms / n * 1000.0,
                redis_cpu_ms: redis_ticks[k] as f64 * tick_ms / n * 1000.0,
                redis_procs: pids[k].1.len(),
                load,
            }
        })
        .collect())
}

/// Rounds of one load as one.
fn combine(parts: Vec<Load>) -> Load {
    let mut lat = Vec::new();
    let (mut ok, mut errors, mut secs) = (0, 0, 0.0);
    for p in parts {
        ok += p.ok;
        errors += p.errors;
        secs += p.secs;
        lat.extend(p.lat);
    }
    Load {
        rps: ok as f64 / f64::max(secs, 1e-6),
        p50: quantile(&mut lat, 0.5),
        p99: quantile(&mut lat, 0.99),
        errors,
        ok,
        lat,
        secs,
    }
}

/// The bench's own connection for XRANGE: one server or the cluster.
enum AnyConn {
    One(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// `redis-benchmark -p PORT -t set,get -q -n N`: (SET/s, GET/s).
fn redis_benchmark(port: u16, n: u32) -> Result<(f64, f64)> {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "set,get", "-q"])
        .args(["-n", &n.to_string()])
        .output()
        .context("running redis-benchmark (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` prints progress lines ending in '\r', then "SET: 91743.12
    // requests per second, p50=…".
    let rate = |cmd: &str| -> Option<f64> {
        text.split(['\r', '\n'])
            .filter_map(|l| l.trim().strip_prefix(&format!("{cmd}: ")))
            .filter(|l| l.contains("requests per second"))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .next_back()
    };
    match (rate("SET"), rate("GET")) {
        (Some(s), Some(g)) => Ok((s, g)),
        _ => bail!("could not read redis-benchmark's output: {text}"),
    }
}

/// redis-benchmark on the standalone server and on the primary that owns
/// redis-benchmark's key (without `-r` every request uses the one key
/// `key:__rand_int__`, so one node answers them all, no redirections).
async fn node_capacity(n: u32) -> Result<((f64, f64), (f64, f64))> {
    let standalone = Redis::start()?;
    let port = standalone.port;
    let alone = tokio::task::spawn_blocking(move || redis_benchmark(port, n)).await??;
    drop(standalone);
    let backend = Backend::start(true).await?;
    let Backend::Cluster(c) = &backend else {
        bail!("asked for a cluster");
    };
    let port = c.primary_for_key("key:__rand_int__")?;
    let node = tokio::task::spawn_blocking(move || redis_benchmark(port, n)).await??;
    drop(backend);
    Ok((alone, node))
}

fn load_value(l: &Load) -> String {
    format!(
        "{:.0} (p50 {:.2} / p99 {:.2} ms, errors {})",
        l.rps,
        ms(l.p50),
        ms(l.p99),
        l.errors
    )
}

pub async fn run(cfg: &Config) -> Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    // A line (and 1000 more, in 100 bursts of 10 lines 10 ms apart, when
    // the prompt says "lines": output that streams, not one write), then a
    // short wait: the draft shows the text while the run streams; the next
    // prompt waits for `done` in Redis.
    let runner = world::script(
        tmp.path(),
        "pong.sh",
        "echo \"pong $1\"\ncase \"$1\" in *lines*) for i in $(seq 100); do seq 10; sleep 0.01; done ;; esac\nsleep 0.3",
    )?;
    // Each cluster setup is compared with standalone Redis carrying as
    // many cloud replicas: three processes on two cores cost the same on
    // either, so only then does the ratio show the cluster's own overhead.
    let (mut s1, st_s1) =
        setup("standalone Redis, 1 cloud", false, 1, cfg, &runner, 40_000).await?;
    let (mut c1, st_c1) = setup("cluster, 1 cloud", true, 1, cfg, &runner, 41_000).await?;
    let (mut s3, st_s3) =
        setup("standalone Redis, 3 clouds", false, 3, cfg, &runner, 43_000).await?;
    let (mut c3, st_c3) = setup("cluster, 3 clouds", true, 3, cfg, &runner, 42_000).await?;
    eprintln!(
        "cluster: webhook load, {} connections, {} rounds of {:?} per setup, in turns",
        cfg.load.connections, cfg.load_rounds, cfg.load.duration
    );
    let stacks = [st_s1, st_c1, st_s3, st_c3];
    let figures = loads(&stacks, cfg).await?;
    drop(stacks);
    let [ls1, l1, ls3, l3] = <[LoadFigures; 4]>::try_from(figures)
        .map_err(|_| anyhow::anyhow!("expected four load figures"))?;
    eprintln!(
        "cluster: redis-benchmark -t set,get -n {} (standalone, one cluster node)",
        cfg.bench_requests
    );
    let capacity = node_capacity(cfg.bench_requests).await;

    let mut rows = Vec::new();
    for (b, lb, c, l) in [(&s1, &ls1, &c1, &l1), (&s3, &ls3, &c3, &l3)] {
        rows.push(
            Row::new(
                format!("cluster: webhook on {} (PostgreSQL), req/s", b.name),
                load_value(&lb.load),
            )
            .baseline("(the baseline)", None),
        );
        let ratio = l.load.rps / lb.load.rps.max(1e-6);
        rows.push(
            Row::new(
                format!("cluster: webhook on {} (round-robin), req/s", c.name),
                load_value(&l.load),
            )
            .baseline(format!("{} {:.0}", b.name, lb.load.rps), Some(ratio))
            .goal("≥ 0.7× standalone", ratio >= 0.7),
        );
    }
    let all = [
        (&ls1, "standalone 1 cloud"),
        (&l1, "cluster 1 cloud"),
        (&ls3, "standalone 3 clouds"),
        (&l3, "cluster 3 clouds"),
    ];
    rows.push(Row::new(
        "cluster: Redis commands per webhook (standalone 1 cloud / cluster 1 cloud / standalone 3 clouds / cluster 3 clouds)",
        all.iter()
            .map(|(l, _)| format!("{:.1}", l.commands_per_webhook))
            .collect::<Vec<_>>()
            .join(" / "),
    ));
    rows.push(Row::new(
        "cluster: CPU per 1000 webhooks, the clouds / the redis-servers, the reply included",
        all.iter()
            .map(|(l, name)| {
                format!(
                    "{name}: {:.0} / {:.0} ms ({} server{})",
                    l.cloud_cpu_ms,
                    l.redis_cpu_ms,
                    l.redis_procs,
                    if l.redis_procs == 1 { "" } else { "s" }
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    ));
    for (b, c) in [(&mut s1, &mut c1), (&mut s3, &mut c3)] {
        let s50 = quantile(&mut b.to_telegram, 0.5);
        let s99 = quantile(&mut b.to_telegram, 0.99);
        let spread = if c.replicas > 1 {
            " (prompts spread)"
        } else {
            ""
        };
        rows.push(
            Row::new(
                format!(
                    "cluster: webhook → runner text at fake Telegram (draft), {}{spread}, p50 / p99 (n={})",
                    b.name,
                    b.to_telegram.len()
                ),
                format!("{:.1} / {:.1} ms", ms(s50), ms(s99)),
            )
            .baseline("(the baseline)", None),
        );
        let p50 = quantile(&mut c.to_telegram, 0.5);
        let p99 = quantile(&mut c.to_telegram, 0.99);
        let ratio = ms(p50) / ms(s50).max(1e-6);
        rows.push(
            Row::new(
                format!(
                    "cluster: webhook → runner text at fake Telegram (draft), {}{spread}, p50 / p99 (n={})",
                    c.name,
                    c.to_telegram.len()
                ),
                format!("{:.1} / {:.1} ms", ms(p50), ms(p99)),
            )
            .baseline(
                format!("{} {:.1} / {:.1} ms", b.name, ms(s50), ms(s99)),
                Some(ratio),
            )
            .goal("≤ 1.5× standalone (p50)", ratio <= 1.5),
        );
        let sc50 = quantile(&mut b.to_chunk, 0.5);
        let sc99 = quantile(&mut b.to_chunk, 0.99);
        let p50 = quantile(&mut c.to_chunk, 0.5);
        let p99 = quantile(&mut c.to_chunk, 0.99);
        let ratio = ms(p50) / ms(sc50).max(1e-6);
        rows.push(
            Row::new(
                format!(
                    "cluster: webhook → first chunk XADDed, {}, p50 / p99",
                    c.name
                ),
                format!("{:.2} / {:.2} ms", ms(p50), ms(p99)),
            )
            .baseline(
                format!("{} {:.2} / {:.2} ms", b.name, ms(sc50), ms(sc99)),
                Some(ratio),
            )
            .goal("≤ 1.5× standalone (p50)", ratio <= 1.5),
        );
    }
    let setups = [&s1, &c1, &s3, &c3];
    let each = |f: &dyn Fn(&Setup) -> String| {
        setups
            .iter()
            .map(|x| format!("{}: {}", x.name, f(x)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    rows.push(Row::new(
        "cluster: Redis commands per one-line prompt / per further output line",
        each(&|x| format!("{:.0} / {:.2}", x.commands_per_prompt, x.commands_per_line)),
    ));
    rows.push(Row::new(
        "cluster: the daemon's Redis connections per agent, all nodes",
        each(&|x| format!("{:.1}", x.connections_per_agent)),
    ));
    let failed: usize = setups.iter().map(|x| x.failed).sum();
    rows.push(
        Row::new(
            "cluster: prompts failed or not shown",
            each(&|x| x.failed.to_string()),
        )
        .goal("0", failed == 0),
    );
    match capacity {
        Ok(((alone_set, alone_get), (node_set, node_get))) => {
            rows.push(
                Row::new(
                    "cluster: redis-benchmark on one cluster node (with its replica), SET / GET per s",
                    format!("{node_set:.0} / {node_get:.0}"),
                )
                .baseline(
                    format!("standalone {alone_set:.0} / {alone_get:.0}"),
                    Some(node_set / alone_set.max(1e-6)),
                ),
            );
            // R commands/s a node answers, C commands a webhook costs: a
            // node alone carries R/C webhooks/s; the webhook's keys hash to
            // any slot, so 3 primaries (each on its own core) carry ≈ 3R/C.
            let w = l1.commands_per_webhook.max(1e-6);
            let p = c1.commands_per_prompt.max(1e-6);
            rows.push(
                Row::new(
                    "cluster: ceiling Redis sets (estimate: a node's SET/s ÷ commands per webhook, per prompt)",
                    format!(
                        "≈ {:.0} webhooks/s or {:.0} one-line prompts/s per node; 3 primaries (a core each) ≈ 3×",
                        node_set / w,
                        node_set / p
                    ),
                )
                .baseline(
                    format!(
                        "{node_set:.0} SET/s; {:.1} commands per webhook, {:.0} per prompt",
                        l1.commands_per_webhook, c1.commands_per_prompt
                    ),
                    None,
                ),
            );
        }
        Err(e) => rows.push(
            Row::new(
                "cluster: redis-benchmark on one node",
                format!("{e:#}").replace('\n', " "),
            )
            .goal("runs", false),
        ),
    }
    Ok(rows)
}
