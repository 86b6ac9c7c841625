//! A command on every node of a cluster, or on the one standalone server.
//!
//! Redis Cluster does not replicate `ACL SETUSER`: users must be set on
//! every primary and every replica, and a node that restarts without its
//! ACL file, or joins new, has none. The cloud uses [`each_node`] to see
//! which node lacks a user and [`on_node`] to set users there.

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Value};

use crate::conn::Conn;

/// `"host:port"` of a node, or `"standalone"` for a single server.
pub type NodeAddr = String;

/// The name [`each_node`] gives a standalone server.
pub const STANDALONE: &str = "standalone";

/// Runs `cmd` on every node (primaries and replicas) and returns each
/// node's answer. On a standalone server, one answer named
/// [`STANDALONE`]. A node that cannot be reached is an error for that
/// node only.
pub async fn each_node(
    conn: &mut Conn,
    cmd: &Cmd,
) -> redis::RedisResult<Vec<(NodeAddr, redis::RedisResult<Value>)>> {
    match conn {
        Conn::Cluster(c) => {
            let answer = c
                .route_command(
                    cmd.clone(),
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None)),
                )
                .await?;
            // Without a response policy redis-rs answers a map of node
            // address to that node's answer.
            let Value::Map(pairs) = answer else {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "a command on every node did not answer per node",
                )));
            };
            Ok(pairs
                .into_iter()
                .map(|(addr, value)| {
                    let addr = String::from_redis_value(addr)
                        .unwrap_or_else(|_| "unknown node".to_string());
                    let value = match value {
                        Value::ServerError(e) => Err(e.into()),
                        v => Ok(v),
                    };
                    (addr, value)
                })
                .collect())
        }
        other => {
            let value = cmd.query_async::<Value>(other).await;
            Ok(vec![(STANDALONE.to_string(), value)])
        }
    }
}

/// Runs `cmd` on the node `addr` (as [`each_node`] named it).
pub async fn on_node<T: FromRedisValue>(
    conn: &mut Conn,
    addr: &str,
    cmd: &Cmd,
) -> redis::RedisResult<T> {
    match conn {
        Conn::Cluster(c) => {
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
            let value = c
                .route_command(
                    cmd.clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                )
                .await?;
            T::from_redis_value(value).map_err(Into::into)
        }
        other => cmd.query_async(other).await,
    }
}
