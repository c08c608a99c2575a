//! Deterministic tie-break hashes of (object UID, cluster name), rule 7.
//!
//! FNV-1a 64 with a SplitMix64 finaliser: tiny, fixed, identical on every machine and Rust
//! release (unlike `std`'s `DefaultHasher`, whose algorithm may change), and good enough to
//! scatter equal objects over equal clusters. It is not collision-resistant, and need not be.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a state after the object UID and a separator, reused for every cluster.
pub fn seed(uid: &str) -> u64 {
    let h = fnv(OFFSET, uid.as_bytes());
    // A byte that never occurs in UTF-8 text, so ("ab","c") and ("a","bc") differ.
    (h ^ 0xff).wrapping_mul(PRIME)
}

/// The tie-break hash of one cluster for this object.
pub fn cluster_hash(seed: u64, cluster: &str) -> u64 {
    mix(fnv(seed, cluster.as_bytes()))
}

/// A plain hash of a string (group ids of spread constraints).
pub fn string_hash(s: &str) -> u64 {
    mix(fnv(OFFSET, s.as_bytes()))
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(PRIME);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_pinned_so_placements_do_not_change_across_releases() {
        // If this value changes, every object's tie-breaks change: existing placements would
        // still be kept (rule 4) but new ones would differ from what older versions computed.
        assert_eq!(
            cluster_hash(seed("uid-1"), "member1"),
            0x646f_8639_ff58_c550
        );
        assert_ne!(cluster_hash(seed("ab"), "c"), cluster_hash(seed("a"), "bc"));
    }
}
