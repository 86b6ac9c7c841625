//! Where the forwarder's state lives in Redis, laid out for Redis Cluster.
//!
//! Every Lua script of [`super::store`] touches a session's lock, state and
//! tombstone together with the set of unfinished sessions, so all four must
//! sit in one hash slot. Sessions are therefore spread over [`SHARDS`]
//! shards, each with its own hash tag: a session's keys and its shard's set
//! of unfinished sessions share that tag, hence that slot. No single set is
//! touched by every session (the old `ra:fwd:active` was).
//!
//! Shard `i`'s tag is `fwd-NN-M`: the first `M` that puts it in the `i`-th
//! 32nd of the 16,384 slots, so the shards sit evenly along the slot range
//! and any even split of the slots among primaries (what `redis-cli
//! --cluster create` makes) gives each primary an even share; plain
//! `fwd-NN` tags fell 8/9/15 on three primaries. On a standalone server the
//! tags are just part of the names.
//!
//! | key | kind |
//! |---|---|
//! | `ra:{fwd-NN-M}:state:{sid}` | hash: a session's progress |
//! | `ra:{fwd-NN-M}:lock:{sid}` | string: the owning replica's token, with a TTL |
//! | `ra:{fwd-NN-M}:done:{sid}` | string: the tombstone of a finished session |
//! | `ra:{fwd-NN-M}:active` | set: the shard's unfinished session ids |

use std::sync::LazyLock;

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

/// Redis Cluster's hash slots.
const SLOTS: u32 = 16_384;

/// Every shard's key prefix `ra:{fwd-NN-M}`, computed once.
static PREFIXES: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..SHARDS)
        .map(|shard| {
            let range = (shard * SLOTS / SHARDS)..((shard + 1) * SLOTS / SHARDS);
            // A 512-slot range holds a given tag's slot once in 32 tries on
            // average; the search always ends (CRC16 reaches every slot).
            let tag = (0u32..)
                .map(|m| format!("fwd-{shard:02}-{m}"))
                .find(|tag| range.contains(&u32::from(slot_of_tag(tag))))
                .unwrap_or_default();
            format!("ra:{{{tag}}}")
        })
        .collect()
});

/// The slot of a hash tag's text: CRC16/XMODEM mod 16,384, as Redis
/// Cluster computes it (`CLUSTER KEYSLOT`).
pub fn slot_of_tag(tag: &str) -> u16 {
    let mut crc: u16 = 0;
    for byte in tag.as_bytes() {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS as u16
}

fn tag(shard: u32) -> &'static str {
    &PREFIXES[(shard % SHARDS) as usize]
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
        slot_of_tag(hashed)
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
        // Evenly along the slot range: shard i in the i-th 32nd, so three
        // primaries of an even split get 10 or 11 shards each.
        for shard in 0..SHARDS {
            let s = u32::from(slot(&active_key(shard)));
            assert_eq!(s * SHARDS / SLOTS, shard, "shard {shard} at slot {s}");
        }
        let per_primary = |lo: u32, hi: u32| {
            (0..SHARDS)
                .filter(|sh| (lo..hi).contains(&u32::from(slot(&active_key(*sh)))))
                .count()
        };
        // redis-cli --cluster create's split on 3 primaries.
        let thirds = [
            per_primary(0, 5461),
            per_primary(5461, 10923),
            per_primary(10923, 16384),
        ];
        assert!(thirds.iter().all(|n| (10..=11).contains(n)), "{thirds:?}");
        // The CRC matches Redis's own (CLUSTER KEYSLOT "123456789" = 12739).
        assert_eq!(slot("123456789"), 12739);
    }
}
