//! Redis channel and key names (ARCHITECTURE.md, Contracts: "Redis keys and channels"). Built only
//! here so the cloud, the daemon and the ACL rules can never disagree.

use crate::{AgentId, PairingId, SessionId};

/// Pub/sub channel of signed commands, cloud → daemon.
pub fn agent_channel(agent: &AgentId) -> String {
    format!("agent:{agent}")
}

/// Stream of a session's output, daemon → forwarder.
pub fn output_stream(agent: &AgentId, session: &SessionId) -> String {
    format!("output:{agent}:{session}")
}

/// Key pattern (ACL `~pattern`) covering all of an agent's output streams.
pub fn output_stream_pattern(agent: &AgentId) -> String {
    format!("output:{agent}:*")
}

/// A blob key: the bytes of one file between the cloud and an agent
/// (`crate::files`). `blob_id` is chosen by the writer (random hex).
pub fn blob_key(agent: &AgentId, blob_id: &str) -> String {
    format!("blob:{agent}:{blob_id}")
}

/// Key pattern (ACL `~pattern`) covering all of an agent's blobs.
pub fn blob_pattern(agent: &AgentId) -> String {
    format!("blob:{agent}:*")
}

/// Whether `key` is one of `agent`'s blob keys, with an id of 1..=64 ASCII
/// letters, digits, `-` or `_` (so a key from an event cannot name another
/// agent's blob or smuggle a pattern).
pub fn is_blob_key_of(agent: &AgentId, key: &str) -> bool {
    let prefix = format!("blob:{agent}:");
    key.strip_prefix(&prefix).is_some_and(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Pub/sub channel on which the cloud announces the outcome of a pairing.
pub fn pair_channel(pairing: &PairingId) -> String {
    format!("pair:{pairing}")
}

/// Key whose existence (with a TTL refreshed by heartbeats) means "online".
pub fn presence_key(agent: &AgentId) -> String {
    format!("presence:{agent}")
}

/// Redis ACL user of a paired agent.
pub fn agent_redis_user(agent: &AgentId) -> String {
    format!("ra-agent-{agent}")
}

/// Short-lived Redis ACL user of a pairing attempt.
pub fn pairing_redis_user(pairing: &PairingId) -> String {
    format!("ra-pair-{pairing}")
}

// `CLIENT SETINFO` (sent by client libraries on connect) is not granted: it
// only exists from Redis 7.2 on, an ACL naming it fails on 7.0, and clients
// ignore its refusal.

/// The Redis ACL rules of an agent's user, without the password rule
/// (`>{jwt}`), which the cloud adds. The agent may only read its own command
/// channel, write its own output streams (and read their last entry) and
/// presence key, read and write its own blobs (files to and from the
/// phone), and nothing else.
pub fn agent_acl_rules(agent: &AgentId) -> Vec<String> {
    let mut rules: Vec<String> = ["on", "resetkeys", "resetchannels", "-@all"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    rules.push(format!("~{}", output_stream_pattern(agent)));
    rules.push(format!("~{}", presence_key(agent)));
    rules.push(format!("~{}", blob_pattern(agent)));
    rules.push(format!("&{}", agent_channel(agent)));
    for cmd in [
        "+subscribe",
        "+unsubscribe",
        // Sharded pub/sub and the slot map: a daemon on a Redis Cluster
        // (`SSUBSCRIBE`, where only the channel's shard carries commands).
        "+ssubscribe",
        "+sunsubscribe",
        "+cluster|slots",
        "+ping",
        "+hello",
        "+auth",
        "+client|setname",
        "+client|id",
        "+xadd",
        // To see whether a stream already ended before finishing a session
        // an earlier daemon process left unfinished (own streams only).
        "+xrevrange",
        "+expire",
        "+set",
        "+del",
        "+exists",
        // Attachments from the phone (own blob keys only).
        "+get",
    ] {
        rules.push(cmd.to_string());
    }
    rules
}

/// The Redis ACL rules of a pairing attempt's short-lived user (without the
/// password rule): it may only SUBSCRIBE (or SSUBSCRIBE, on a cluster) to
/// `pair:{pairingId}`.
pub fn pairing_acl_rules(pairing: &PairingId) -> Vec<String> {
    let mut rules: Vec<String> = ["on", "resetkeys", "resetchannels", "-@all"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    rules.push(format!("&{}", pair_channel(pairing)));
    for cmd in [
        "+subscribe",
        "+unsubscribe",
        "+ssubscribe",
        "+sunsubscribe",
        "+cluster|slots",
        "+ping",
        "+hello",
        "+auth",
        "+client|setname",
    ] {
        rules.push(cmd.to_string());
    }
    rules
}

/// How long a presence key lives without a heartbeat.
pub const PRESENCE_TTL_SECS: u64 = 20;
/// How often the daemon refreshes its presence keys.
pub const HEARTBEAT_SECS: u64 = 7;
/// Approximate cap on entries kept in one output stream (`XADD MAXLEN ~`).
pub const OUTPUT_STREAM_MAXLEN: usize = 10_000;
/// How long a finished session's stream is kept for late readers.
pub const OUTPUT_STREAM_TTL_SECS: u64 = 24 * 3600;
/// The field of a stream entry that carries the JSON [`crate::events::OutputEvent`].
pub const STREAM_FIELD: &str = "event";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let a = AgentId::parse("a1").unwrap();
        let s = SessionId::parse("s1").unwrap();
        let p = PairingId::parse("p1").unwrap();
        assert_eq!(agent_channel(&a), "agent:a1");
        assert_eq!(output_stream(&a, &s), "output:a1:s1");
        assert_eq!(output_stream_pattern(&a), "output:a1:*");
        assert_eq!(pair_channel(&p), "pair:p1");
        assert_eq!(presence_key(&a), "presence:a1");
        assert_eq!(blob_key(&a, "b1"), "blob:a1:b1");
        assert_eq!(blob_pattern(&a), "blob:a1:*");
    }

    #[test]
    fn blob_keys_belong_to_one_agent() {
        let a = AgentId::parse("a1").unwrap();
        assert!(is_blob_key_of(&a, "blob:a1:0f3a-x_9"));
        assert!(!is_blob_key_of(&a, "blob:a2:0f3a"));
        assert!(!is_blob_key_of(&a, "blob:a1:"));
        assert!(!is_blob_key_of(&a, "blob:a1:*"));
        assert!(!is_blob_key_of(&a, "blob:a1:x:y"));
        assert!(!is_blob_key_of(&a, "output:a1:s1"));
    }
}
