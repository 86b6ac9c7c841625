//! Publishing to an agent's channel.
//!
//! On a cluster, classic `PUBLISH` is broadcast over the cluster bus to
//! every node; sharded `SPUBLISH` goes only to the shard owning the
//! channel's slot, where the agent's `SSUBSCRIBE` is. Both return how many
//! subscribers received the message, which the cloud reads as "the agent
//! is online" (0: say so at once).

use redis::Cmd;

/// `PUBLISH` (standalone) or `SPUBLISH` (cluster) of `payload` on `channel`.
pub fn publish_cmd(cluster: bool, channel: &str, payload: &[u8]) -> Cmd {
    let mut cmd = redis::cmd(if cluster { "SPUBLISH" } else { "PUBLISH" });
    cmd.arg(channel).arg(payload);
    cmd
}
