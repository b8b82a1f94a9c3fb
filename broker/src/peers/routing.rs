//! Who owns what: the one ownership function.
//!
//! A channel is owned by `owner_of(topic, channel)`: a stable hash (FNV-1a,
//! fixed so it never changes between builds or runs) of both names, so the
//! channels of one topic spread over the cores. Topic parts have no owner:
//! every shard holds one.

/// The shard that owns channel `channel` of topic `topic`.
pub fn owner_of(topic: &str, channel: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.bytes().chain([b'/']).chain(channel.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        assert_eq!(owner_of("t", "c", 1), 0);
        let a = owner_of("topic", "chan", 4);
        assert_eq!(a, owner_of("topic", "chan", 4));
        assert!(a < 4);
        // Channels of one topic spread over shards.
        let owners: std::collections::HashSet<usize> = (0..64)
            .map(|i| owner_of("t", &format!("c{i}"), 4))
            .collect();
        assert_eq!(owners.len(), 4);
    }
}
