//! Section 3, scale: one daemon holding many paired agents: RSS, CPU while idle,
//! Redis connections held, and the time until every agent is subscribed
//! again after Redis is killed and restarted. Baseline: the same daemon
//! holding one agent, measured before the others are paired.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use remoteagent_testkit::telegram::FakeTelegram;
use tokio::time::Instant;

use crate::report::Row;
use crate::stats::{cpu_ticks, status_mib, ticks_per_sec};
use remoteagent_proto::names;

use crate::world::{self, Machine, Redis};

pub struct Config {
    pub agents: usize,
    pub idle: Duration,
    /// How long to wait for the cloud to restore the ACL user of the agent
    /// it paired itself after the Redis restart (it checks every 5 s) and
    /// for that agent to log in again.
    pub cloud_restore_guard: Duration,
}

struct Snapshot {
    rss: f64,
    idle_cpu_pct: f64,
    conns: usize,
}

async fn snapshot(
    pid: u32,
    conn: &mut redis::aio::MultiplexedConnection,
    idle: Duration,
) -> Result<Snapshot> {
    let t0 = cpu_ticks(pid).context("daemon gone")?;
    let start = Instant::now();
    tokio::time::sleep(idle).await;
    let t1 = cpu_ticks(pid).context("daemon gone")?;
    let secs = start.elapsed().as_secs_f64();
    let idle_cpu_pct = (t1 - t0) as f64 / ticks_per_sec() / secs * 100.0;
    Ok(Snapshot {
        rss: status_mib(pid, "VmRSS").unwrap_or(0.0),
        idle_cpu_pct,
        conns: agent_connections(conn).await?,
    })
}

/// Clients authenticated as an agent's ACL user: the daemon's connections.
async fn agent_connections(conn: &mut redis::aio::MultiplexedConnection) -> Result<usize> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
    Ok(list
        .lines()
        .filter(|l| l.contains(" user=ra-agent-"))
        .count())
}

/// Agent ids of the daemon (`remoteagentctl list --json`).
fn agent_ids(m: &Machine) -> Result<Vec<String>> {
    let (ok, out) = m.ctl(&["list", "--json"])?;
    if !ok {
        bail!("list failed: {out}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).context("list --json output")?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// How many of `ids` have a subscriber on their command channel.
async fn subscribed(conn: &mut redis::aio::MultiplexedConnection, ids: &[String]) -> Result<usize> {
    let mut n = 0;
    for batch in ids.chunks(200) {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("NUMSUB");
        for id in batch {
            cmd.arg(format!("agent:{id}"));
        }
        let reply: Vec<redis::Value> = cmd.query_async(conn).await?;
        for pair in reply.chunks(2) {
            if let [_, redis::Value::Int(c)] = pair
                && *c > 0
            {
                n += 1;
            }
        }
    }
    Ok(n)
}

pub async fn run(cfg: &Config) -> Result<Vec<Row>> {
    let mut redis = Redis::start()?;
    let tmp = tempfile::tempdir()?;
    let runner = world::script(tmp.path(), "pong.sh", "echo \"pong $1\"")?;
    let tg = FakeTelegram::start().await;
    let cloud = world::start_cloud(&redis.url(), &tg, None).await?;
    let machine = Machine::start(&cloud.url).await?;
    let pid = machine.daemon.pid().context("daemon exited")?;
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;

    eprintln!("scale: baseline with one agent ({:?} idle)", cfg.idle);
    machine
        .pair(
            &reqwest::Client::new(),
            &cloud.url,
            "s-paired",
            &runner,
            40_000,
        )
        .await?;
    let one = snapshot(pid, &mut conn, cfg.idle).await?;

    // The cloud lets one address pair 10 agents a minute (a brake on
    // abuse), so the other agents are written the way pairing leaves them:
    // metadata and a file-store secret in the HOME, and a Redis ACL user
    // whose password is the agent's JWT (signed by a bench key: the daemon
    // never verifies its own token). The bench plays the cloud for them.
    eprintln!("scale: provisioning {} more agents", cfg.agents - 1);
    let synthetic = provision(&machine, &mut conn, cfg.agents - 1).await?;
    let t = Instant::now();
    let machine = machine.restart().await?;
    let pid = machine.daemon.pid().context("daemon exited")?;
    let ids = agent_ids(&machine)?;
    if ids.len() != cfg.agents {
        bail!("daemon lists {} agents, expected {}", ids.len(), cfg.agents);
    }
    let startup = wait_subscribed(&mut conn, &ids, t, Duration::from_secs(120)).await;
    eprintln!(
        "scale: {} agents subscribed; idle {:?}",
        cfg.agents, cfg.idle
    );
    // Let the first heartbeats settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let many = snapshot(pid, &mut conn, cfg.idle).await?;
    let subscribed_before = subscribed(&mut conn, &ids).await?;

    eprintln!("scale: killing and restarting Redis");
    redis.restart()?;
    let restarted = Instant::now();
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    // What the cloud's housekeeping does for the agents it knows.
    for (id, jwt) in &synthetic {
        set_acl_user(&mut conn, id, jwt).await?;
    }
    let synthetic_ids: Vec<String> = synthetic.iter().map(|(id, _)| id.to_string()).collect();
    let back_synthetic = wait_subscribed(
        &mut conn,
        &synthetic_ids,
        restarted,
        Duration::from_secs(120),
    )
    .await;
    let back_all = wait_subscribed(&mut conn, &ids, restarted, cfg.cloud_restore_guard).await;
    let conns_after = agent_connections(&mut conn).await.unwrap_or(0);
    if back_all.is_err() && cfg.cloud_restore_guard > Duration::from_secs(5) {
        eprintln!(
            "scale: the cloud-paired agent did not come back; cloud log:\n{}\ndaemon log:\n{}",
            cloud.proc.tail(15),
            machine.daemon.tail(15)
        );
    }

    let n = cfg.agents;
    let mut rows = vec![
        Row::new(
            format!("scale: daemon RSS with {n} agents"),
            format!("{:.1} MiB", many.rss),
        )
        .baseline(
            format!("1 agent {:.1} MiB", one.rss),
            Some(many.rss / one.rss.max(1e-6)),
        )
        .goal("< 50 MiB", many.rss < 50.0),
        Row::new(
            format!(
                "scale: daemon CPU idle over {} s, {n} agents",
                cfg.idle.as_secs()
            ),
            format!("{:.2} % of a core", many.idle_cpu_pct),
        )
        .baseline(format!("1 agent {:.2} %", one.idle_cpu_pct), None)
        .goal("near zero (< 1 %)", many.idle_cpu_pct < 1.0),
        Row::new(
            format!("scale: Redis connections of the daemon, {n} agents"),
            format!("{} ({} subscribed)", many.conns, subscribed_before),
        )
        .baseline(format!("1 agent {}", one.conns), None)
        .goal(format!("≤ {n}"), many.conns <= n && subscribed_before == n),
    ];
    rows.push(Row::new(
        format!("scale: daemon restart (SIGTERM, start) → all {n} subscribed"),
        describe(&startup, n),
    ));
    rows.push(
        Row::new(
            format!(
                "scale: Redis restart → {} ACL-restored agents subscribed again",
                n - 1
            ),
            describe(&back_synthetic, n - 1),
        )
        .goal("all back", back_synthetic.is_ok()),
    );
    rows.push(
        Row::new(
            format!("scale: Redis restart → all {n} incl. the cloud-paired one (its ACL user restored by the cloud)"),
            format!("{} ({conns_after} connections after)", describe(&back_all, n)),
        )
        .goal("all back", back_all.is_ok()),
    );
    drop(machine);
    drop(cloud);
    Ok(rows)
}

/// Waits until every id in `ids` has a subscriber; Ok(time since `since`),
/// or Err(how many had one) at the hang guard.
async fn wait_subscribed(
    conn: &mut redis::aio::MultiplexedConnection,
    ids: &[String],
    since: Instant,
    guard: Duration,
) -> Result<Duration, usize> {
    let mut back = 0;
    loop {
        back = subscribed(conn, ids).await.unwrap_or(back);
        if back == ids.len() {
            return Ok(since.elapsed());
        }
        if since.elapsed() > guard {
            return Err(back);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn describe(r: &Result<Duration, usize>, n: usize) -> String {
    match r {
        Ok(d) => format!("{:.2} s", d.as_secs_f64()),
        Err(back) => format!("NOT all: {back} of {n} at the hang guard"),
    }
}

async fn set_acl_user(
    conn: &mut redis::aio::MultiplexedConnection,
    id: &remoteagent_proto::AgentId,
    jwt: &str,
) -> Result<()> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(names::agent_redis_user(id))
        .arg("reset");
    for rule in names::agent_acl_rules(id) {
        cmd.arg(rule);
    }
    cmd.arg(format!(">{jwt}"));
    let _: () = cmd.query_async(conn).await?;
    Ok(())
}

/// Writes `count` agents like the one the real pairing left in the HOME.
async fn provision(
    m: &Machine,
    conn: &mut redis::aio::MultiplexedConnection,
    count: usize,
) -> Result<Vec<(remoteagent_proto::AgentId, String)>> {
    use std::os::unix::fs::OpenOptionsExt;
    let data = m.home.path().join("data/remoteagent");
    let agents_dir = data.join("agents");
    let template_path = std::fs::read_dir(&agents_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .context("no paired agent to copy")?;
    let template: serde_json::Value = serde_json::from_slice(&std::fs::read(&template_path)?)?;
    let key = remoteagent_proto::keys::CloudSigningKey::generate();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let id = remoteagent_proto::AgentId::generate();
        let (jwt, _) =
            remoteagent_proto::token::issue(&key, &id, 50_000 + i as i64, 30 * 24 * 3600)?;
        set_acl_user(conn, &id, &jwt).await?;
        let project = m.home.project(&format!("s{i}"))?;
        let mut meta = template.clone();
        meta["id"] = id.to_string().into();
        meta["name"] = format!("s{i}").into();
        meta["path"] = project.to_string_lossy().into_owned().into();
        meta["redisUsername"] = names::agent_redis_user(&id).into();
        let write = |path: std::path::PathBuf, bytes: &[u8]| -> Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(path)?;
            std::io::Write::write_all(&mut f, bytes)?;
            Ok(())
        };
        write(
            agents_dir.join(format!("{id}.json")),
            &serde_json::to_vec_pretty(&meta)?,
        )?;
        write(data.join("secrets").join(id.as_str()), jwt.as_bytes())?;
        out.push((id, jwt));
    }
    Ok(out)
}
