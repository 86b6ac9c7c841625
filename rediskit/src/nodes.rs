//! A command on every node of a cluster, or on the one standalone server.
//!
//! Redis Cluster does not replicate `ACL SETUSER`: users must be set on
//! every primary and every replica, and a node that restarts without its
//! ACL file, or joins new, has none. The cloud uses [`each_node`] to see
//! which node lacks a user and [`on_node`] to set users there.
//!
//! The nodes come from `CLUSTER NODES`, not from redis-rs's slot map:
//! `CLUSTER SLOTS` (which the map is built from) leaves out a replica that
//! has not received any data yet, such as every replica of a new cluster
//! and a replica just added, and those are exactly the nodes that need
//! their users. Each node is reached over a connection of its own, kept
//! for the next call.

use redis::aio::MultiplexedConnection;
use redis::{Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue, Value};

use crate::conn::{ClusterConn, Conn};

/// `"host:port"` of a node, or `"standalone"` for a single server.
pub type NodeAddr = String;

/// The name [`each_node`] gives a standalone server.
pub const STANDALONE: &str = "standalone";

/// How long a node may take to accept a direct connection or answer.
const NODE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `cmd` on every node (primaries and replicas), all at once, and
/// returns each node's answer. On a standalone server, one answer named
/// [`STANDALONE`]. A node that cannot be reached, or does not answer
/// within 5 s, is an error for that node only; failing to list the nodes
/// is an error for the call.
pub async fn each_node(
    conn: &mut Conn,
    cmd: &Cmd,
) -> redis::RedisResult<Vec<(NodeAddr, redis::RedisResult<Value>)>> {
    match conn {
        Conn::Cluster(c) => {
            let addrs = addresses(c).await?;
            let c = &*c;
            let asks = addrs.into_iter().map(|addr| async move {
                let answer = direct(c, &addr, cmd).await;
                (addr, answer)
            });
            Ok(futures::future::join_all(asks).await)
        }
        other => Ok(vec![(STANDALONE.to_string(), standalone(other, cmd).await)]),
    }
}

/// Runs `cmd` on the node `addr` (as [`each_node`] named it).
pub async fn on_node<T: FromRedisValue>(
    conn: &mut Conn,
    addr: &str,
    cmd: &Cmd,
) -> redis::RedisResult<T> {
    let value = match conn {
        Conn::Cluster(c) => direct(c, addr, cmd).await?,
        other => standalone(other, cmd).await?,
    };
    T::from_redis_value(value).map_err(Into::into)
}

/// The nodes `CLUSTER NODES` lists as reachable members (not failed nor
/// suspected, not in handshake, with an address); on a standalone server,
/// [`STANDALONE`].
pub async fn list(conn: &mut Conn) -> redis::RedisResult<Vec<NodeAddr>> {
    match conn {
        Conn::Cluster(c) => addresses(c).await,
        _ => Ok(vec![STANDALONE.to_string()]),
    }
}

async fn addresses(c: &mut ClusterConn) -> redis::RedisResult<Vec<NodeAddr>> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut c.conn)
        .await?;
    Ok(parse_nodes(&text).into_iter().map(|n| n.addr).collect())
}

/// `cmd` on the standalone server, and once more if the first try met a
/// dead connection: after a Redis restart the manager reconnects only once
/// a call has failed on the old socket, and that call should not be the
/// one that fails. Every command sent through here is idempotent.
async fn standalone(conn: &mut Conn, cmd: &Cmd) -> redis::RedisResult<Value> {
    let answer = match cmd.query_async::<Value>(conn).await {
        Err(e) if e.is_io_error() || e.is_connection_dropped() => cmd.query_async(conn).await,
        other => other,
    };
    match answer {
        Ok(Value::ServerError(e)) => Err(e.into()),
        other => other,
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub addr: NodeAddr,
    pub primary: bool,
    /// Slot ranges a primary serves.
    pub slots: Vec<(u16, u16)>,
}

/// The live members of a `CLUSTER NODES` answer.
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let flags = fields[2];
            // A suspected node (`fail?`) is left out too: it is asked
            // again at the next call, once it is back or forgotten.
            if flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "handshake" | "noaddr"))
            {
                return None;
            }
            // `ip:port@cport[,hostname]`
            let addr = fields[1].split(['@', ',']).next()?.to_string();
            if addr.starts_with(':') || addr.is_empty() {
                return None;
            }
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                id: fields[0].to_string(),
                addr,
                primary: flags.split(',').any(|f| f == "master"),
                slots,
            })
        })
        .collect()
}

/// `cmd` on `addr` within [`NODE_TIMEOUT`], over the cached direct
/// connection, opened if needed; a connection that failed is dropped, so
/// the next call opens a new one.
async fn direct(c: &ClusterConn, addr: &str, cmd: &Cmd) -> redis::RedisResult<Value> {
    let asked = async {
        let cached = c.nodes.direct.lock().await.get(addr).cloned();
        let mut node = match cached {
            Some(conn) => conn,
            None => {
                let conn = open(c, addr).await?;
                c.nodes
                    .direct
                    .lock()
                    .await
                    .insert(addr.to_string(), conn.clone());
                conn
            }
        };
        cmd.query_async::<Value>(&mut node).await
    };
    let answer = match tokio::time::timeout(NODE_TIMEOUT, asked).await {
        Ok(answer) => answer,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "no answer",
            format!(
                "node {addr} did not answer within {} s",
                NODE_TIMEOUT.as_secs()
            ),
        ))),
    };
    match answer {
        Ok(Value::ServerError(e)) => Err(e.into()),
        Err(e) => {
            if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                c.nodes.direct.lock().await.remove(addr);
            }
            Err(e)
        }
        ok => ok,
    }
}

/// A connection to the node `addr` with the seed's login and TLS.
async fn open(c: &ClusterConn, addr: &str) -> redis::RedisResult<MultiplexedConnection> {
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
    let node_addr = match c.nodes.seed.addr() {
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
    let info: ConnectionInfo = c.nodes.seed.clone().set_addr(node_addr);
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(NODE_TIMEOUT))
        .set_response_timeout(Some(NODE_TIMEOUT));
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_members_with_their_slots() {
        let text = "\
ee36 127.0.0.1:31002@41002 master - 0 1796 3 connected 10923-16383
ae19 127.0.0.1:31001@41001 myself,master - 0 1796 2 connected 5461-10922 [5000->-abc]
ab68 127.0.0.1:31003@41003,node-4 slave ee36 0 1796 3 connected
dead 127.0.0.1:31009@41009 slave,fail ee36 0 1796 3 disconnected
susp 127.0.0.1:31008@41008 slave,fail? ee36 0 1796 3 connected
hand :0@0 handshake,noaddr - 0 0 0 disconnected
";
        let nodes = parse_nodes(text);
        assert_eq!(
            nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>(),
            ["127.0.0.1:31002", "127.0.0.1:31001", "127.0.0.1:31003"]
        );
        assert_eq!(nodes[0].slots, [(10923, 16383)]);
        assert_eq!(nodes[1].slots, [(5461, 10922)]);
        assert!(nodes[1].primary && !nodes[2].primary);
    }
}
