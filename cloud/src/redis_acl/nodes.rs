//! The nodes that must hold the ACL users, and an ACL command on each.
//!
//! A standalone server is one node ([`STANDALONE`]). Redis Cluster does
//! not replicate `ACL SETUSER`: every primary and every replica needs each
//! user, and a node that restarts without an ACL file, or joins new, has
//! none. Which nodes there are is asked of the cluster each time
//! (`CLUSTER NODES`): redis-rs's own view learns a new replica only when
//! its slot map is refreshed, which nothing else would make it do.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::{Cmd, ConnectionAddr, ConnectionInfo, RedisResult, Value};
use remoteagent_rediskit::nodes::{self, NodeAddr, STANDALONE};
use remoteagent_rediskit::{Conn, Options, Target, conn};
use tokio::sync::Mutex;

/// How long one node may take: a node that died but is not yet marked
/// failed must not hold up the others.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Each node's answer, named by its address (`host:port`, or
/// [`STANDALONE`]).
pub(super) type Answers = Vec<(NodeAddr, RedisResult<Value>)>;

/// The way to every node: the shared connection (a cluster connection, or
/// the standalone server's), and on a cluster a direct connection per
/// node. redis-rs's cluster connection reaches only the nodes of its slot
/// map, which leaves out a replica until the cluster reports its
/// replication offset (a fresh or new replica) and learns of new nodes only
/// when something makes it refresh: `CLUSTER NODES` and a connection of our
/// own reach every node.
pub(super) struct Nodes {
    conn: Conn,
    /// The first seed's connection details (credentials, TLS), for direct
    /// connections to the other nodes; `None` on a standalone server.
    seed: Option<ConnectionInfo>,
    direct: Mutex<HashMap<NodeAddr, Conn>>,
}

impl Nodes {
    pub(super) fn new(conn: Conn, target: &Target) -> Nodes {
        let seed = conn.is_cluster().then(|| target.first().clone());
        Nodes {
            conn,
            seed,
            direct: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        self.seed.is_some()
    }

    /// The nodes that must hold the users: the standalone server, or every
    /// primary and replica the cluster lists, but those flagged failed (or
    /// suspected: a node that stopped answering is tried again at the next
    /// check, once it is back or forgotten).
    pub(super) async fn list(&self) -> RedisResult<Vec<NodeAddr>> {
        if !self.conn.is_cluster() {
            return Ok(vec![STANDALONE.to_string()]);
        }
        let mut c = self.conn.clone();
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut c)
            .await?;
        Ok(parse_cluster_nodes(&text))
    }

    /// `cmd` on every node of [`Nodes::list`]: on a cluster through
    /// [`nodes::each_node`] (the nodes redis-rs knows), then directly on
    /// the listed nodes it did not reach (or all of them, when a dead node
    /// made the whole call fail). A node's failure is that node's answer;
    /// `Err` only when no node could be asked at all.
    pub(super) async fn on_every_node(&self, cmd: &Cmd) -> RedisResult<Answers> {
        if !self.conn.is_cluster() {
            return Ok(vec![(
                STANDALONE.to_string(),
                on_standalone(&self.conn, cmd).await,
            )]);
        }
        let listed = self.list().await;
        let mut c = self.conn.clone();
        let mut answers = match nodes::each_node(&mut c, cmd).await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::debug!(error = %e, "a command on every Redis node; asking them one by one");
                Vec::new()
            }
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) if answers.is_empty() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "listing the cluster's nodes");
                Vec::new()
            }
        };
        let answered: HashSet<NodeAddr> = answers.iter().map(|(a, _)| a.clone()).collect();
        let rest: Vec<NodeAddr> = listed
            .into_iter()
            .filter(|a| !answered.contains(a))
            .collect();
        answers.extend(self.on_nodes(&rest, cmd).await);
        Ok(answers)
    }

    /// `cmd` on each of `addrs` at once.
    pub(super) async fn on_nodes(&self, addrs: &[NodeAddr], cmd: &Cmd) -> Answers {
        let asks = addrs
            .iter()
            .map(|addr| async move { (addr.clone(), self.on_node(addr, cmd).await) });
        futures::future::join_all(asks).await
    }

    /// `cmd` on the node `addr`, within [`NODE_TIMEOUT`] (on a cluster over
    /// a direct connection to it, made on first use and dropped after an
    /// error).
    pub(super) async fn on_node(&self, addr: &str, cmd: &Cmd) -> RedisResult<Value> {
        let Some(seed) = &self.seed else {
            return on_standalone(&self.conn, cmd).await;
        };
        let asked = async {
            let mut c = self.direct_conn(seed, addr).await?;
            let answer = cmd.query_async::<Value>(&mut c).await;
            if let Err(e) = &answer
                && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
            {
                self.direct.lock().await.remove(addr);
            }
            answer
        };
        match tokio::time::timeout(NODE_TIMEOUT, asked).await {
            Ok(Ok(Value::ServerError(e))) => Err(e.into()),
            Ok(answer) => answer,
            Err(_) => {
                self.direct.lock().await.remove(addr);
                Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no answer",
                    format!(
                        "node {addr} did not answer within {} s",
                        NODE_TIMEOUT.as_secs()
                    ),
                )))
            }
        }
    }

    async fn direct_conn(&self, seed: &ConnectionInfo, addr: &str) -> RedisResult<Conn> {
        if let Some(c) = self.direct.lock().await.get(addr) {
            return Ok(c.clone());
        }
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "not a node address",
                    addr.to_string(),
                ))
            })?;
        let node_addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        let info = seed.clone().set_addr(node_addr);
        let options = Options {
            connection_timeout: Some(NODE_TIMEOUT),
            response_timeout: Some(NODE_TIMEOUT),
            ..Options::default()
        };
        let c = conn::dedicated(&Target::Standalone(info), &options).await?;
        self.direct.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

/// The live nodes' addresses in a `CLUSTER NODES` answer: `<id>
/// <ip:port@cport[,hostname]> <flags> …` per line.
fn parse_cluster_nodes(text: &str) -> Vec<NodeAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, addr, flags, ..] = fields.as_slice() else {
            continue;
        };
        let down = flags
            .split(',')
            .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"));
        let addr = addr.split(['@', ',']).next().unwrap_or_default();
        // A node that does not know its own address yet (":6379").
        if down || addr.starts_with(':') || addr.is_empty() {
            continue;
        }
        out.push(addr.to_string());
    }
    out
}

/// `cmd` on the standalone server, and once more if the first try met a
/// dead connection: after a Redis restart the manager reconnects only once
/// a call has failed on the old socket, and that call should not be the one
/// that fails. Every command sent here is idempotent.
async fn on_standalone(conn: &Conn, cmd: &Cmd) -> RedisResult<Value> {
    let mut c = conn.clone();
    let first = cmd.query_async::<Value>(&mut c).await;
    let answer = match first {
        Err(e) if e.is_io_error() || e.is_connection_dropped() => {
            tracing::debug!(error = %e, "Redis connection lost; trying again on a new one");
            cmd.query_async::<Value>(&mut c).await
        }
        other => other,
    };
    match answer {
        Ok(Value::ServerError(e)) => Err(e.into()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_nodes_are_read_from_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host-b master - 0 1426238316232 2 connected 5461-10922
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
6ec2 127.0.0.1:30005@40005 slave,fail 67ed 1426238316232 1426238316232 5 disconnected
824f 127.0.0.1:30006@40006 slave,fail? 67ed 0 0 5 connected
9d3b :0@0 handshake - 0 0 0 connected
";
        assert_eq!(
            parse_cluster_nodes(text),
            ["127.0.0.1:30004", "127.0.0.1:30002", "127.0.0.1:30001"]
        );
    }
}
