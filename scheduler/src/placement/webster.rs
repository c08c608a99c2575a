//! Webster/Sainte-Laguë apportionment, and the brute-force definition the engine is checked
//! against.
//!
//! The engine apportions by the sequential highest-averages rule (each seat to the largest
//! `w/(2s+1)` among parties with room), which is Webster's divisor method. [`is_webster`] checks
//! the divisor-method characterisation directly: an allocation is Webster iff no seat could move
//! from one party to another and raise the receiver's quotient above the giver's, i.e.
//! `max_i w_i/(2s_i+1) ≤ min_j w_j/(2s_j−1)` over parties with room / with seats.

/// Sequential Sainte-Laguë: `seats` seats over `weights`, each party capped by `caps`.
/// Ties go to the lower index. Returns `None` when the caps cannot hold all seats, or when
/// `weights` and `caps` differ in length.
#[allow(
    clippy::indexing_slicing,
    reason = "i and b < weights.len() == caps.len() == s.len() (checked first)"
)]
pub fn apportion(weights: &[u64], caps: &[u32], seats: u32) -> Option<Vec<u32>> {
    if weights.len() != caps.len() {
        return None;
    }
    let room: u64 = caps.iter().map(|c| u64::from(*c)).sum();
    if room < u64::from(seats) {
        return None;
    }
    let mut s = vec![0u32; weights.len()];
    for _ in 0..seats {
        let mut best: Option<usize> = None;
        for i in 0..weights.len() {
            if s[i] >= caps[i] {
                continue;
            }
            if best.is_none_or(|b| {
                u128::from(weights[i]) * u128::from(2 * s[b] + 1)
                    > u128::from(weights[b]) * u128::from(2 * s[i] + 1)
            }) {
                best = Some(i);
            }
        }
        s[best?] += 1;
    }
    Some(s)
}

/// The divisor-method condition for Webster with caps (see the module docs); false when the
/// three slices differ in length.
#[allow(
    clippy::indexing_slicing,
    reason = "i and j < s.len() == weights.len() == caps.len() (checked first)"
)]
pub fn is_webster(weights: &[u64], caps: &[u32], s: &[u32]) -> bool {
    if weights.len() != s.len() || caps.len() != s.len() {
        return false;
    }
    for i in 0..s.len() {
        if s[i] >= caps[i] {
            continue;
        }
        for j in 0..s.len() {
            if i == j || s[j] == 0 {
                continue;
            }
            // Moving a seat j → i would give i a strictly stronger claim than j's last seat.
            if u128::from(weights[i]) * u128::from(2 * s[j] - 1)
                > u128::from(weights[j]) * u128::from(2 * s[i] + 1)
            {
                return false;
            }
        }
    }
    true
}

/// Every allocation of `seats` within `caps` that satisfies [`is_webster`] (exhaustive; small
/// inputs only); none when `weights` and `caps` differ in length.
pub fn brute_force(weights: &[u64], caps: &[u32], seats: u32) -> Vec<Vec<u32>> {
    #[allow(
        clippy::indexing_slicing,
        reason = "i < w.len() == caps.len() (brute_force checks before the first call; i == w.len() returns)"
    )]
    fn rec(
        i: usize,
        left: u32,
        cur: &mut Vec<u32>,
        w: &[u64],
        caps: &[u32],
        out: &mut Vec<Vec<u32>>,
    ) {
        if i == w.len() {
            if left == 0 && is_webster(w, caps, cur) {
                out.push(cur.clone());
            }
            return;
        }
        for k in 0..=left.min(caps[i]) {
            cur.push(k);
            rec(i + 1, left - k, cur, w, caps, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if weights.len() != caps.len() {
        return out;
    }
    rec(0, seats, &mut Vec::new(), weights, caps, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slices_of_different_lengths_are_refused_not_a_panic() {
        assert_eq!(apportion(&[1, 2], &[1], 1), None);
        assert_eq!(apportion(&[1], &[1, 5], 1), None);
        assert!(!is_webster(&[1, 2], &[1], &[0, 1]));
        assert!(!is_webster(&[1], &[1], &[0, 1]));
        assert!(brute_force(&[1, 2], &[1], 1).is_empty());
    }

    #[test]
    fn textbook_example() {
        // Sainte-Laguë, 7 seats, votes 53/24/23: quotients give 4/2/1... (53, 17.7, 10.6 …)
        assert_eq!(
            apportion(&[53, 24, 23], &[9, 9, 9], 7).unwrap(),
            vec![3, 2, 2]
        );
        assert_eq!(apportion(&[10, 10], &[1, 5], 4).unwrap(), vec![1, 3]);
        assert_eq!(apportion(&[1, 1], &[1, 1], 3), None);
    }

    proptest! {
        #[test]
        fn sequential_rule_matches_the_brute_force_definition(
            parties in proptest::collection::vec((0u64..40, 0u32..6), 1..5),
            seats in 0u32..9,
        ) {
            let w: Vec<u64> = parties.iter().map(|p| p.0).collect();
            let caps: Vec<u32> = parties.iter().map(|p| p.1).collect();
            let all = brute_force(&w, &caps, seats);
            match apportion(&w, &caps, seats) {
                Some(s) => prop_assert!(all.contains(&s), "{s:?} not in {all:?}"),
                None => prop_assert!(all.is_empty()),
            }
        }
    }
}
