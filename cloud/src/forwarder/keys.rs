//! Where the forwarder's state lives in Redis, laid out for Redis Cluster.
//!
//! Every Lua script of [`super::store`] touches a session's lock, state and
//! tombstone together with the set of unfinished sessions, so all four must
//! sit in one hash slot. Sessions are therefore spread over [`SHARDS`]
//! shards, each with its own hash tag `{fwd-NN}`: a session's keys and its
//! shard's set of unfinished sessions share that tag, hence that slot. No
//! single set is touched by every session (the old `ra:fwd:active` was),
//! and the 32 slots spread over the cluster's primaries. On a standalone
//! server the tags are just part of the names.
//!
//! | key | kind |
//! |---|---|
//! | `ra:{fwd-NN}:state:{sid}` | hash: a session's progress |
//! | `ra:{fwd-NN}:lock:{sid}` | string: the owning replica's token, with a TTL |
//! | `ra:{fwd-NN}:done:{sid}` | string: the tombstone of a finished session |
//! | `ra:{fwd-NN}:active` | set: the shard's unfinished session ids |

use remoteagent_proto::SessionId;

/// How many shards (hash slots) the forwarder's state is spread over.
/// Changing it moves every session's keys: never change it without a
/// migration like [`LEGACY_ACTIVE_KEY`]'s.
pub const SHARDS: u32 = 32;

/// The one set of unfinished sessions of releases before the shards
/// (standalone Redis only); its sessions are moved into the shards when a
/// forwarder starts (`store::migrate_legacy`).
pub const LEGACY_ACTIVE_KEY: &str = "ra:fwd:active";

/// The shard of a session: FNV-1a of its id, so every replica and release
/// agrees without asking Redis.
pub fn shard(session: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in session.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

fn tag(shard: u32) -> String {
    format!("ra:{{fwd-{shard:02}}}")
}

/// A session's progress (hash).
pub fn state_key(session: &SessionId) -> String {
    format!("{}:state:{session}", tag(shard(session.as_str())))
}

/// The owning replica's token.
pub fn lock_key(session: &SessionId) -> String {
    format!("{}:lock:{session}", tag(shard(session.as_str())))
}

/// Set when a session was finished, for as long as its stream lives.
pub fn done_key(session: &SessionId) -> String {
    format!("{}:done:{session}", tag(shard(session.as_str())))
}

/// The unfinished sessions of `session`'s shard.
pub fn active_key_of(session: &SessionId) -> String {
    active_key(shard(session.as_str()))
}

/// The unfinished sessions of shard `shard`.
pub fn active_key(shard: u32) -> String {
    format!("{}:active", tag(shard))
}

/// The keys of releases before the shards, for the migration.
pub mod legacy {
    use remoteagent_proto::SessionId;

    pub fn state_key(session: &SessionId) -> String {
        format!("ra:fwd:{session}")
    }
    pub fn lock_key(session: &SessionId) -> String {
        format!("ra:fwd:lock:{session}")
    }
    pub fn done_key(session: &SessionId) -> String {
        format!("ra:fwd:done:{session}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster's slot of `key` (CRC16/XMODEM of the hash tag, mod
    /// 16384), to check the layout without a cluster.
    fn slot(key: &str) -> u16 {
        let hashed = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                _ => key,
            },
            None => key,
        };
        let mut crc: u16 = 0;
        for byte in hashed.as_bytes() {
            crc ^= u16::from(*byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn a_sessions_keys_and_its_shards_set_share_one_slot() {
        for n in 0..200 {
            let sid = SessionId::parse(format!("s{n:04}-{}", n * 7919)).unwrap();
            let slots = [
                slot(&state_key(&sid)),
                slot(&lock_key(&sid)),
                slot(&done_key(&sid)),
                slot(&active_key_of(&sid)),
            ];
            assert!(slots.iter().all(|s| *s == slots[0]), "{sid}: {slots:?}");
        }
    }

    #[test]
    fn sessions_spread_over_every_shard_and_many_slots() {
        let mut shards = std::collections::HashSet::new();
        for n in 0..2000 {
            shards.insert(shard(&format!("{n:x}-session")));
        }
        assert_eq!(shards.len(), SHARDS as usize);
        let slots: std::collections::HashSet<u16> =
            (0..SHARDS).map(|s| slot(&active_key(s))).collect();
        assert_eq!(slots.len(), SHARDS as usize, "two shards share a slot");
        // The CRC matches Redis's own (CLUSTER KEYSLOT "123456789" = 12739).
        assert_eq!(slot("123456789"), 12739);
    }
}
