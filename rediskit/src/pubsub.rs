//! Publishing to an agent's channel.
//!
//! On a cluster, classic `PUBLISH` is broadcast over the cluster bus to
//! every node; sharded `SPUBLISH` goes only to the shard owning the
//! channel's slot, where the agent's `SSUBSCRIBE` is. Both return how many
//! subscribers received the message, which the cloud reads as "the agent
//! is online" (0: say so at once).

use redis::{Cmd, Value};

use crate::conn::Conn;
use crate::nodes;

/// `PUBLISH` (standalone) or `SPUBLISH` (cluster) of `payload` on `channel`.
pub fn publish_cmd(cluster: bool, channel: &str, payload: &[u8]) -> Cmd {
    let mut cmd = redis::cmd(if cluster { "SPUBLISH" } else { "PUBLISH" });
    cmd.arg(channel).arg(payload);
    cmd
}

/// Whether a subscription to `channel` is where publishers find it: on a
/// standalone server always (`None`: nothing to check); on a cluster,
/// how many subscribers the primary owning the channel's slot has
/// (`PUBSUB SHARDNUMSUB` there).
///
/// Why it matters: a failover turns the old primary into a replica and
/// unsubscribes its shard-channel clients (an `SUnsubscribe` push);
/// redis-rs forgets the subscription and a new `SSUBSCRIBE` may still go
/// to the old node by a stale slot map, where replicas accept it. The
/// subscriber then receives messages (replicated to it) but `SPUBLISH`
/// on the primary counts 0 receivers, which the cloud reads as "the agent
/// is offline". A subscriber that finds 0 here builds a new connection
/// (a fresh slot map) and subscribes again.
pub async fn primary_subscribers(
    conn: &mut Conn,
    channel: &str,
) -> redis::RedisResult<Option<i64>> {
    let Conn::Cluster(c) = conn else {
        return Ok(None);
    };
    let slot = crate::slot::key_slot(channel);
    let slots: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(c.inner())
        .await?;
    let Some(primary) = primary_of(&slots, slot) else {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "no primary serves the channel's slot",
        )));
    };
    let answer: Value = nodes::on_node(
        conn,
        &primary,
        redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel),
    )
    .await?;
    // [channel, count]
    let counts: Vec<Value> = match answer {
        Value::Array(v) => v,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    match counts.get(1) {
        Some(Value::Int(n)) => Ok(Some(*n)),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "PUBSUB SHARDNUMSUB gave no count",
        ))),
    }
}

/// `host:port` of the primary serving `slot` in a `CLUSTER SLOTS` answer.
fn primary_of(slots: &Value, slot: u16) -> Option<String> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(fields) = range else {
            return None;
        };
        let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(node))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        if !(*lo..=*hi).contains(&i64::from(slot)) {
            return None;
        }
        let host = match node.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let Value::Int(port) = node.get(1)? else {
            return None;
        };
        Some(format!("{host}:{port}"))
    })
}
