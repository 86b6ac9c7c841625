//! Publishing to an agent's channel.
//!
//! On a cluster, classic `PUBLISH` is broadcast over the cluster bus to
//! every node; sharded `SPUBLISH` goes only to the shard owning the
//! channel's slot, where the agent's `SSUBSCRIBE` is. Both return how many
//! subscribers received the message, which the cloud reads as "the agent
//! is online" (0: say so at once).

use redis::{Cmd, PushInfo, Value};
use tokio::sync::mpsc;

use crate::conn::{self, Conn, Options};
use crate::nodes;
use crate::target::Target;

impl Conn {
    /// The command that publishes `payload` on `channel` for this kind of
    /// connection ([`publish_cmd`]). Its answer on a cluster may count
    /// too few: [`publish`] checks it.
    pub fn publish_cmd(&self, channel: &str, payload: &[u8]) -> Cmd {
        publish_cmd(self.is_cluster(), channel, payload)
    }
}

/// A managed connection subscribed to `channel` ([`Conn::subscribe`]), its
/// messages (and the server's other pushes) on the receiver.
pub async fn subscriber(
    target: &Target,
    channel: &str,
) -> redis::RedisResult<(Conn, mpsc::UnboundedReceiver<PushInfo>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let options = Options {
        push: Some(tx),
        ..Options::default()
    };
    let mut sub = conn::managed(target, &options).await?;
    sub.subscribe(channel).await?;
    Ok((sub, rx))
}

/// `PUBLISH` (standalone) or `SPUBLISH` (cluster) of `payload` on `channel`.
pub fn publish_cmd(cluster: bool, channel: &str, payload: &[u8]) -> Cmd {
    let mut cmd = redis::cmd(if cluster { "SPUBLISH" } else { "PUBLISH" });
    cmd.arg(channel).arg(payload);
    cmd
}

/// Publishes `payload` on `channel` and returns how many subscribers got
/// it.
///
/// On a cluster, `SPUBLISH` reaches the subscribers of every node of the
/// channel's shard (over the cluster bus), but its answer counts only the
/// subscribers of the node that ran it. After a failover, a connection
/// whose slot map is out of date sends it to the old primary, a replica
/// of the same shard now, which accepts it: the message arrives, the
/// answer says 0, and the cloud would tell the user the agent is offline
/// while it runs the prompt. So a 0 on a cluster is checked, never
/// published again (that would deliver twice): the answer is the number
/// of subscribers on all the shard's nodes (`PUBSUB SHARDNUMSUB` on each).
/// A subscriber that joined or left in the instant between the two is
/// the one case this can count wrong.
pub async fn publish(conn: &mut Conn, channel: &str, payload: &[u8]) -> redis::RedisResult<i64> {
    let receivers: i64 = conn.publish_cmd(channel, payload).query_async(conn).await?;
    if receivers > 0 || !conn.is_cluster() {
        return Ok(receivers);
    }
    shard_subscribers(conn, channel).await
}

/// The subscribers of `channel` on every node of its shard (a cluster), or
/// on the server (`PUBSUB NUMSUB`, standalone).
pub async fn shard_subscribers(conn: &mut Conn, channel: &str) -> redis::RedisResult<i64> {
    if !conn.is_cluster() {
        let answer: Value = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(conn)
            .await?;
        return count_of(answer);
    }
    let slot = crate::slot::key_slot(channel);
    let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?;
    let shard = shard_of(&slots, slot).ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Io, "no node serves the channel's slot"))
    })?;
    let mut total = 0;
    let mut cmd = redis::cmd("PUBSUB");
    cmd.arg("SHARDNUMSUB").arg(channel);
    for node in shard {
        total += count_of(nodes::on_node(conn, &node, &cmd).await?)?;
    }
    Ok(total)
}

/// The count in a `PUBSUB …NUMSUB` answer: `[channel, count]`.
fn count_of(answer: Value) -> redis::RedisResult<i64> {
    let fields: Vec<Value> = match answer {
        Value::Array(v) => v,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    match fields.get(1) {
        Some(Value::Int(n)) => Ok(*n),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "PUBSUB NUMSUB gave no count",
        ))),
    }
}

/// `host:port` of every node (the primary first, then its replicas) that
/// serves `slot`, in a `CLUSTER SLOTS` answer.
fn shard_of(slots: &Value, slot: u16) -> Option<Vec<String>> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(lo)), Some(Value::Int(hi))) = (fields.first(), fields.get(1)) else {
            return None;
        };
        if !(*lo..=*hi).contains(&i64::from(slot)) {
            return None;
        }
        let nodes: Vec<String> = fields[2..].iter().filter_map(node_addr).collect();
        (!nodes.is_empty()).then_some(nodes)
    })
}

/// `host:port` of one node entry `[host, port, id, …]`.
fn node_addr(node: &Value) -> Option<String> {
    let Value::Array(node) = node else {
        return None;
    };
    let host = match node.first()? {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let Value::Int(port) = node.get(1)? else {
        return None;
    };
    Some(format!("{host}:{port}"))
}
