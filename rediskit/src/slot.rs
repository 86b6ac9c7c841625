//! Redis Cluster's hash slot of a key or channel name.

/// The number of hash slots.
pub const SLOTS: u16 = 16_384;

/// The slot of `key` as Redis Cluster computes it (`CLUSTER KEYSLOT`):
/// CRC16/XMODEM of its hash tag (the text between the first `{` and the
/// next `}`, when not empty) or of the whole key, mod 16,384. Shard
/// channels (`SSUBSCRIBE`) hash the same way.
pub fn key_slot(key: &str) -> u16 {
    let hashed = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed.as_bytes()) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Figures from `redis-cli CLUSTER KEYSLOT …` on Redis 7.0.
        assert_eq!(key_slot("123456789"), 12739);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_ne!(key_slot("foo{}{bar}"), key_slot("bar"));
    }
}
