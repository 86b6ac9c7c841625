//! A private Redis Cluster per test (primaries with replicas, every node a
//! real `redis-server --cluster-enabled yes` on loopback), so a test can fail
//! over, kill or add nodes without touching anything shared.
//!
//! Everything here is synchronous (`std::process`, redis-rs's blocking
//! `Connection`), so sync and async tests use it alike, as with
//! [`crate::RedisServer`]. Queries use the default user without a password:
//! a test that locks the default user out of a node also locks this out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;
/// How long [`RedisCluster::wait_ok`] (and the other waits for the cluster
/// to settle) poll before giving up.
const SETTLE: Duration = Duration::from_secs(30);
/// A new cluster settles slower: six fresh nodes gossip their way to one
/// view, on a machine that may be busy with the rest of the suite.
const START_SETTLE: Duration = Duration::from_secs(60);
/// How long one `redis-cli --cluster` command may run (it waits for the
/// cluster to join without a deadline of its own).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Connect and reply timeouts of the management connections; generous, as
/// redis-rs's defaults fail on a busy 2-core machine.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// A node whose port was taken between the probe and the bind is retried on
/// another port this many times.
const SPAWN_ATTEMPTS: usize = 5;
/// Whole-cluster creation attempts (a failed `--cluster create` leaves nodes
/// half-joined, so it starts over with fresh nodes).
const START_ATTEMPTS: usize = 3;
/// A manual failover that has not happened after this long is asked again
/// (Redis abandons one after 5 s).
const FAILOVER_RETRY: Duration = Duration::from_secs(8);

/// One `redis-server` of a [`RedisCluster`], running or killed.
pub struct ClusterNode {
    port: u16,
    /// `None` once killed.
    process: Option<Child>,
    dir: PathBuf,
    /// The node's cluster id (`CLUSTER MYID`), fixed for its life.
    id: String,
}

impl ClusterNode {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's cluster id, as in `CLUSTER NODES`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its working directory (nodes.conf, the AOF, redis.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process still runs (false after [`RedisCluster::kill`]).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of private nodes in a temporary directory. Every process
/// is killed and the directory removed on drop.
pub struct RedisCluster {
    // Declared before `dir`: the processes die before their files go.
    nodes: Vec<ClusterNode>,
    dir: tempfile::TempDir,
    /// Nodes spawned so far, to name each node's directory uniquely.
    spawned: usize,
}

impl RedisCluster {
    /// 3 primaries with one replica each, settled: every node reports
    /// `cluster_state:ok`, all agree on who serves which slots, and every
    /// replica is in sync with its primary.
    pub fn start() -> anyhow::Result<RedisCluster> {
        Self::start_with(3, 1)
    }

    /// Like [`RedisCluster::start`] with `primaries` primaries (at least 3,
    /// as `redis-cli --cluster create` demands) and `replicas_per_primary`
    /// replicas of each.
    pub fn start_with(
        primaries: usize,
        replicas_per_primary: usize,
    ) -> anyhow::Result<RedisCluster> {
        if primaries < 3 {
            bail!("redis-cli --cluster create needs at least 3 primaries, asked for {primaries}");
        }
        let mut last = None;
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(primaries, replicas_per_primary) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => {
                    if attempt < START_ATTEMPTS {
                        eprintln!("redis cluster: attempt {attempt} failed, starting over: {e:#}");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!(
                "starting a redis cluster ({START_ATTEMPTS} attempts)"
            )))
    }

    fn try_start(primaries: usize, replicas_per_primary: usize) -> anyhow::Result<RedisCluster> {
        let dir = tempfile::Builder::new()
            .prefix("redis-cluster-")
            .tempdir()
            .context("creating the cluster's temporary directory")?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
            spawned: 0,
        };
        for _ in 0..primaries * (1 + replicas_per_primary) {
            let node = cluster.spawn_node()?;
            cluster.nodes.push(node);
        }
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        args.extend([
            "--cluster-replicas".into(),
            replicas_per_primary.to_string(),
            "--cluster-yes".into(),
        ]);
        cluster.redis_cli(&args)?;
        poll(START_SETTLE, "the new cluster settling", || {
            cluster.settled_view(true)
        })?;
        Ok(cluster)
    }

    /// Every node, running or killed (until [`RedisCluster::forget`]).
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// The running nodes' URLs, comma-separated: the form REDIS_URL takes for
    /// a cluster.
    pub fn urls(&self) -> String {
        self.node_urls().join(",")
    }

    /// One `redis://` URL per running node.
    pub fn node_urls(&self) -> Vec<String> {
        self.running().map(ClusterNode::url).collect()
    }

    /// The running nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.running().map(|n| n.port).collect()
    }

    /// The port of the primary serving `key`'s slot, in the view of the
    /// first running node that answers.
    pub fn primary_for_key(&self, key: &str) -> anyhow::Result<u16> {
        let (slot, nodes) = self.slot_and_nodes(key)?;
        owner_of(&nodes, slot)
            .map(|n| n.port)
            .ok_or_else(|| anyhow!("no primary serves slot {slot} (key {key:?})"))
    }

    /// The running, healthy replicas of the primary serving `key`'s slot.
    pub fn replicas_for_key(&self, key: &str) -> anyhow::Result<Vec<u16>> {
        let (slot, nodes) = self.slot_and_nodes(key)?;
        let primary =
            owner_of(&nodes, slot).ok_or_else(|| anyhow!("no primary serves slot {slot}"))?;
        let running: BTreeSet<u16> = self.ports().into_iter().collect();
        Ok(nodes
            .iter()
            .filter(|n| n.primary_id.as_deref() == Some(primary.id.as_str()))
            .filter(|n| n.is_healthy() && running.contains(&n.port))
            .map(|n| n.port)
            .collect())
    }

    /// Waits until every running replica of the primary serving `key`'s
    /// slot has received everything that primary had written when called.
    /// Replication is asynchronous: without this, a write just before a
    /// [`RedisCluster::kill`] of the primary may be lost with it.
    pub fn wait_replicated(&self, key: &str) -> anyhow::Result<()> {
        let primary = self.primary_for_key(key)?;
        let replicas = self.replicas_for_key(key)?;
        let info = query_info(primary, "replication")?;
        let offset: u64 = field(&info, "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("node {primary}: no master_repl_offset in INFO"))?;
        poll(SETTLE, "the replicas catching up", || {
            for &replica in &replicas {
                let info = query_info(replica, "replication")?;
                let at: u64 = field(&info, "slave_repl_offset")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if field(&info, "master_link_status") != Some("up") || at < offset {
                    bail!("replica {replica} at offset {at}, primary {primary} at {offset}");
                }
            }
            Ok(())
        })
    }

    /// `CLUSTER FAILOVER` on a replica of the primary serving `key`'s slot;
    /// waits until that replica serves the slot in every node's view and the
    /// cluster is ok. Returns (old primary port, new primary port).
    pub fn failover_for_key(&self, key: &str) -> anyhow::Result<(u16, u16)> {
        let old = self.primary_for_key(key)?;
        let replicas = self.replicas_for_key(key)?;
        if replicas.is_empty() {
            bail!("primary {old} (serving {key:?}) has no running replica to fail over to");
        }
        // A replica whose link is up: a manual failover needs the primary.
        let new = poll(SETTLE, "a replica in sync to fail over to", || {
            for &replica in &replicas {
                let info = query_info(replica, "replication")?;
                if field(&info, "master_link_status") == Some("up") {
                    return Ok(replica);
                }
            }
            bail!("no replica of {old} ({replicas:?}) has its link up")
        })?;
        let slot = self.keyslot(key)?;
        let mut asked: Option<Instant> = None;
        poll(SETTLE, "the manual failover", || {
            if asked.is_none_or(|at| at.elapsed() > FAILOVER_RETRY)
                && field(&query_info(new, "replication")?, "role") == Some("slave")
            {
                let reply: String = query(new, redis::cmd("CLUSTER").arg("FAILOVER"))
                    .with_context(|| format!("CLUSTER FAILOVER on {new}"))?;
                if reply != "OK" {
                    bail!("CLUSTER FAILOVER on {new} answered {reply}");
                }
                asked = Some(Instant::now());
            }
            let view = self.settled_view(false)?;
            match serving(&view, slot) {
                Some(port) if port == new => Ok(()),
                owner => bail!("slot {slot} still served by {owner:?}, not {new}"),
            }
        })?;
        Ok((old, new))
    }

    /// Kills the node (SIGKILL, like a crash). It stays in
    /// [`RedisCluster::nodes`] as not running until [`RedisCluster::forget`].
    pub fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self.node_mut(port)?;
        if !node.is_running() {
            bail!("node {port} is already dead");
        }
        node.stop();
        Ok(())
    }

    /// Starts a new empty node (new port and directory, no data, no ACL
    /// users) and adds it as a replica of the primary at `primary_port`;
    /// waits until it is in sync and every node sees it. Returns its port.
    pub fn add_replica(&mut self, primary_port: u16) -> anyhow::Result<u16> {
        let primary = self.node_mut(primary_port)?;
        if !primary.is_running() {
            bail!("node {primary_port} is dead; a replica needs a running primary");
        }
        let primary_id = primary.id.clone();
        let node = self.spawn_node()?;
        let port = node.port;
        self.nodes.push(node);
        let added = self
            .redis_cli(&[
                "--cluster".into(),
                "add-node".into(),
                format!("127.0.0.1:{port}"),
                format!("127.0.0.1:{primary_port}"),
                "--cluster-slave".into(),
                "--cluster-master-id".into(),
                primary_id,
            ])
            .and_then(|_| {
                poll(SETTLE, "the new replica syncing", || {
                    let info = query_info(port, "replication")?;
                    let ok = field(&info, "role") == Some("slave")
                        && field(&info, "master_port") == Some(&primary_port.to_string())
                        && field(&info, "master_link_status") == Some("up");
                    if !ok {
                        bail!("node {port} is not yet a replica of {primary_port} in sync");
                    }
                    Ok(())
                })
            })
            .and_then(|_| {
                poll(SETTLE, "the cluster meeting the new replica", || {
                    self.settled_view(true)
                })
            });
        if let Err(e) = added {
            // A half-added node would keep the cluster from settling.
            self.nodes.retain(|n| n.port != port);
            return Err(e.context(format!("adding a replica of {primary_port}")));
        }
        Ok(port)
    }

    /// Makes every running node forget the killed node at `port`
    /// (`CLUSTER FORGET`) and drops it from [`RedisCluster::nodes`].
    pub fn forget(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self.node_mut(port)?;
        if node.is_running() {
            bail!("node {port} is running; kill it before forgetting it");
        }
        let id = node.id.clone();
        for live in self.ports() {
            let forgot: redis::RedisResult<String> = connect(live)
                .and_then(|mut c| redis::cmd("CLUSTER").arg("FORGET").arg(&id).query(&mut c));
            match forgot {
                Ok(_) => {}
                // Already gone from this node's table: the goal holds.
                Err(e) if e.to_string().contains("Unknown node") => {}
                Err(e) => {
                    return Err(anyhow!(e))
                        .with_context(|| format!("CLUSTER FORGET {port} ({id}) on node {live}"));
                }
            }
        }
        self.nodes.retain(|n| n.port != port);
        Ok(())
    }

    /// Waits (up to 30 s) until every running node reports
    /// `cluster_state:ok`, and — so that a wait right after a kill does not
    /// pass before the nodes notice — every running node sees exactly the
    /// running nodes as healthy and all agree on who serves every slot.
    pub fn wait_ok(&self) -> anyhow::Result<()> {
        poll(SETTLE, "the cluster settling", || self.settled_view(false)).map(|_| ())
    }

    fn running(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    fn node_mut(&mut self, port: u16) -> anyhow::Result<&mut ClusterNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .ok_or_else(|| anyhow!("no node of this cluster on port {port}"))
    }

    /// Starts one node on a free port whose bus port (+10000) is free too,
    /// retrying on another port if someone else took it meanwhile.
    fn spawn_node(&mut self) -> anyhow::Result<ClusterNode> {
        let mut last = None;
        for _ in 0..SPAWN_ATTEMPTS {
            self.spawned += 1;
            let port = free_port_pair()?;
            let dir = self
                .dir
                .path()
                .join(format!("node-{}-{port}", self.spawned));
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            match try_spawn(port, dir) {
                Ok(node) => return Ok(node),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!(
                "starting a cluster node ({SPAWN_ATTEMPTS} ports tried)"
            )))
    }

    /// Runs `redis-cli ARGS` with a deadline; its output goes to a file in the
    /// cluster's directory and into the error if it fails.
    fn redis_cli(&self, args: &[String]) -> anyhow::Result<()> {
        let log = self
            .dir
            .path()
            .join(format!("redis-cli-{}.log", self.spawned));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new("redis-cli")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting redis-cli (is it installed?)")?;
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "redis-cli {} did not finish in {CLI_TIMEOUT:?}: {}",
                    args.join(" "),
                    tail(&log)
                );
            }
            std::thread::sleep(POLL);
        };
        if !status.success() {
            bail!(
                "redis-cli {} failed ({status}): {}",
                args.join(" "),
                tail(&log)
            );
        }
        Ok(())
    }

    fn keyslot(&self, key: &str) -> anyhow::Result<usize> {
        self.slot_and_nodes(key).map(|(slot, _)| slot)
    }

    /// `key`'s slot and the node table, from the first running node that
    /// answers.
    fn slot_and_nodes(&self, key: &str) -> anyhow::Result<(usize, Vec<NodeLine>)> {
        let mut last = anyhow!("no node of the cluster is running");
        for port in self.ports() {
            let answer = (|| -> anyhow::Result<(usize, Vec<NodeLine>)> {
                let mut conn = connect(port)?;
                let slot: usize = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query(&mut conn)?;
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn)?;
                Ok((slot, parse_nodes(&nodes)?))
            })();
            match answer {
                Ok(found) => return Ok(found),
                Err(e) => last = e.context(format!("asking node {port}")),
            }
        }
        Err(last)
    }

    /// The view every running node agrees on, or why there is none yet:
    /// every running node says `cluster_state:ok`, sees exactly the running
    /// nodes as healthy, sees every slot served, and (with
    /// `require_synced`) every replica's link to its primary is up.
    fn settled_view(&self, require_synced: bool) -> anyhow::Result<View> {
        let running: BTreeSet<u16> = self.ports().into_iter().collect();
        let mut agreed: Option<(u16, View)> = None;
        for &port in &running {
            let mut conn = connect(port).with_context(|| format!("connecting to node {port}"))?;
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn)?;
            let state = field(&info, "cluster_state");
            if state != Some("ok") {
                bail!("node {port}: cluster_state is {state:?}");
            }
            let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn)?;
            let view = view_of(&parse_nodes(&nodes)?);
            let seen: BTreeSet<u16> = view.keys().copied().collect();
            if seen != running {
                bail!("node {port} sees {seen:?} as healthy; running are {running:?}");
            }
            check_coverage(&view).with_context(|| format!("in node {port}'s view"))?;
            if require_synced && view.get(&port).is_some_and(|n| n.primary.is_some()) {
                let info: String = redis::cmd("INFO").arg("replication").query(&mut conn)?;
                let link = field(&info, "master_link_status");
                if link != Some("up") {
                    bail!("replica {port}: master_link_status is {link:?}");
                }
            }
            match &agreed {
                None => agreed = Some((port, view)),
                Some((first, first_view)) if *first_view != view => {
                    bail!("nodes {first} and {port} disagree: {first_view:?} vs {view:?}")
                }
                Some(_) => {}
            }
        }
        agreed
            .map(|(_, view)| view)
            .ok_or_else(|| anyhow!("no node of the cluster is running"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }
}

/// One node as a healthy node sees it: its primary's port (`None` for a
/// primary) and the slot ranges it serves.
#[derive(Debug, PartialEq)]
struct NodeView {
    primary: Option<u16>,
    slots: Vec<(usize, usize)>,
}

/// Port → role and slots, of the nodes a node sees as healthy.
type View = BTreeMap<u16, NodeView>;

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    /// The id of its primary, for a replica.
    primary_id: Option<String>,
    /// Inclusive slot ranges it serves (importing/migrating markers skipped).
    slots: Vec<(usize, usize)>,
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn is_primary(&self) -> bool {
        self.has_flag("master")
    }

    /// Not failed, not even suspected, and fully known.
    fn is_healthy(&self) -> bool {
        !["fail", "fail?", "handshake", "noaddr"]
            .iter()
            .any(|f| self.has_flag(f))
    }
}

/// Parses `CLUSTER NODES`: `id ip:port@bus[,host] flags primary ping pong
/// epoch link slot...`.
fn parse_nodes(text: &str) -> anyhow::Result<Vec<NodeLine>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let parse = || -> Option<NodeLine> {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let addr = fields.get(1)?.split('@').next()?;
                let port = addr.rsplit(':').next()?.parse().ok()?;
                let primary_id = match *fields.get(3)? {
                    "-" => None,
                    id => Some(id.to_string()),
                };
                let slots = fields
                    .iter()
                    .skip(8)
                    .filter(|s| !s.starts_with('['))
                    .map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|a| (a, a)),
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(NodeLine {
                    id: fields.first()?.to_string(),
                    port,
                    flags: fields.get(2)?.split(',').map(String::from).collect(),
                    primary_id,
                    slots,
                })
            };
            parse().ok_or_else(|| anyhow!("unexpected CLUSTER NODES line: {line:?}"))
        })
        .collect()
}

fn view_of(nodes: &[NodeLine]) -> View {
    let port_of = |id: &str| nodes.iter().find(|n| n.id == id).map(|n| n.port);
    nodes
        .iter()
        .filter(|n| n.is_healthy())
        .map(|n| {
            let primary = if n.is_primary() {
                None
            } else {
                // A replica of a node missing from the table: port 0, which
                // no running node has, so such a view never settles.
                Some(n.primary_id.as_deref().and_then(port_of).unwrap_or(0))
            };
            let mut slots = n.slots.clone();
            slots.sort_unstable();
            (n.port, NodeView { primary, slots })
        })
        .collect()
}

/// Every slot served by exactly one primary of the view.
fn check_coverage(view: &View) -> anyhow::Result<()> {
    let mut owner: Vec<Option<u16>> = vec![None; SLOTS];
    for (&port, node) in view.iter().filter(|(_, n)| n.primary.is_none()) {
        for &(from, to) in &node.slots {
            let range = owner.get_mut(from..=to.min(SLOTS - 1)).unwrap_or_default();
            for (slot, served_by) in (from..).zip(range) {
                if let Some(other) = served_by.replace(port) {
                    bail!("slot {slot} served by both {other} and {port}");
                }
            }
        }
    }
    match owner.iter().position(Option::is_none) {
        Some(slot) => bail!("slot {slot} is served by no healthy primary"),
        None => Ok(()),
    }
}

/// The primary serving `slot`, preferring a healthy one.
fn owner_of(nodes: &[NodeLine], slot: usize) -> Option<&NodeLine> {
    let serves =
        |n: &&NodeLine| n.is_primary() && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b);
    nodes
        .iter()
        .filter(serves)
        .find(|n| n.is_healthy())
        .or_else(|| nodes.iter().find(serves))
}

fn serving(view: &View, slot: usize) -> Option<u16> {
    view.iter()
        .find(|(_, n)| n.primary.is_none() && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
        .map(|(&port, _)| port)
}

fn try_spawn(port: u16, dir: PathBuf) -> anyhow::Result<ClusterNode> {
    let log = dir.join("redis.log");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
        // Short, so a killed primary's replica takes over in a few seconds.
        .args(["--cluster-node-timeout", "2000"])
        // A replica may always take over, however long its link was down.
        .args(["--cluster-replica-validity-factor", "0"])
        .args(["--cluster-allow-reads-when-down", "no"])
        // Every write fsynced, so what a test wrote is on disk and replicated.
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .args([
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server (is it installed?)")?;
    let pid = child.id();
    let mut node = ClusterNode {
        port,
        process: Some(child),
        dir,
        id: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(child) = node.process.as_mut()
            && let Some(status) = child.try_wait()?
        {
            node.process = None;
            bail!(
                "redis-server on port {port} exited ({status}): {}",
                tail(&log)
            );
        }
        // Ours, not another test's server that got the port first.
        match own_id(port, pid) {
            Ok(id) => {
                node.id = id;
                return Ok(node);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "redis-server on port {port} did not start: {}",
                    tail(&log)
                )));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The cluster id of the node on `port` if that node is process `pid`.
fn own_id(port: u16, pid: u32) -> anyhow::Result<String> {
    let mut conn = connect(port)?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    if field(&info, "process_id") != Some(&pid.to_string()) {
        bail!("port {port} is served by another process");
    }
    Ok(redis::cmd("CLUSTER").arg("MYID").query(&mut conn)?)
}

/// A loopback port that is free, and whose cluster bus port (+10000) is
/// free too, both probed by binding.
fn free_port_pair() -> anyhow::Result<u16> {
    for _ in 0..1000 {
        let probe = TcpListener::bind(("127.0.0.1", 0)).context("binding a loopback port")?;
        let port = probe.local_addr()?.port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return Ok(port);
        }
    }
    bail!("found no free loopback port whose port+10000 is free too")
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> anyhow::Result<T> {
    let mut conn = connect(port).with_context(|| format!("connecting to node {port}"))?;
    cmd.query(&mut conn)
        .with_context(|| format!("querying node {port}"))
}

fn query_info(port: u16, section: &str) -> anyhow::Result<String> {
    query(port, redis::cmd("INFO").arg(section))
}

/// The value of `name:` in an INFO-style reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(15);
            format!("{}: …\n{}", path.display(), lines[start..].join("\n"))
        }
        Err(e) => format!("(no {}: {e})", path.display()),
    }
}

/// Calls `check` every 50 ms until it succeeds or `timeout` passes; then the
/// last reason it gave is the error.
fn poll<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("waiting for {what}: not after {timeout:?}")));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host master - 0 1426238316232 2 connected 5461-10922 [5461->-e7d1]
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 16383
6ec2 127.0.0.1:30005@40005 master,fail - 1426238316232 1426238316232 5 disconnected
";
        let nodes = parse_nodes(text).unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].primary_id.as_deref(), Some("e7d1"));
        assert_eq!(nodes[1].port, 30002);
        assert_eq!(nodes[1].slots, vec![(5461, 10922)]);
        assert_eq!(nodes[2].slots, vec![(0, 5460), (16383, 16383)]);
        let view = view_of(&nodes);
        assert_eq!(
            view.keys().copied().collect::<Vec<_>>(),
            [30001, 30002, 30004]
        );
        assert_eq!(view[&30004].primary, Some(30001));
        assert_eq!(serving(&view, 6000), Some(30002));
        assert!(check_coverage(&view).is_err());
        assert_eq!(owner_of(&nodes, 16383).map(|n| n.port), Some(30001));
    }
}
