//! Karmada's replica dispenser: Webster (Sainte-Laguë) seats by weight, ties broken by fewer seats
//! first and then by cluster name, ascending or descending as the parity of the FNV-32a hash of
//! the template's UID says — so equal templates do not all favour the same cluster, and our ties
//! resolve exactly as karmada-scheduler resolves them.

use std::cmp::Ordering;

use fedstate_api::karmada::binding_status::TargetCluster;

/// FNV-1a, 32 bits (Go's `hash/fnv` `New32a`).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Name order of ties for a template UID: descending when the hash is odd, ascending otherwise
/// (and ascending when the UID is empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieOrder {
    Ascending,
    Descending,
}

impl TieOrder {
    pub fn for_uid(uid: &str) -> Self {
        if !uid.is_empty() && fnv32a(uid.as_bytes()) & 1 == 1 {
            Self::Descending
        } else {
            Self::Ascending
        }
    }
}

#[derive(Clone, Debug)]
struct Party<'a> {
    name: &'a str,
    votes: i64,
    seats: i32,
}

/// `a` gets the next seat before `b`: the higher quotient `votes / (2·seats + 1)` (compared as
/// karmada-scheduler compares it, in `f64`), then the tie rule.
fn before(a: &Party<'_>, b: &Party<'_>, ties: TieOrder) -> bool {
    let qa = a.votes as f64 / f64::from(2 * a.seats + 1);
    let qb = b.votes as f64 / f64::from(2 * b.seats + 1);
    if qa != qb {
        return qa > qb;
    }
    if a.seats != b.seats {
        return a.seats < b.seats;
    }
    match ties {
        TieOrder::Ascending => a.name < b.name,
        TieOrder::Descending => a.name > b.name,
    }
}

/// Deals `seats` replicas over `(cluster, weight)` by Webster's method. Every cluster is
/// returned (sorted by name), with 0 where it got none.
pub fn allocate(seats: i32, weights: &[(&str, i64)], ties: TieOrder) -> Vec<TargetCluster> {
    let mut parties: Vec<Party<'_>> = Vec::with_capacity(weights.len());
    for (name, votes) in weights {
        // A cluster named twice keeps its last weight, as a map would.
        match parties.iter_mut().find(|p| p.name == *name) {
            Some(p) => p.votes = *votes,
            None => parties.push(Party {
                name,
                votes: *votes,
                seats: 0,
            }),
        }
    }
    if parties.is_empty() {
        return Vec::new();
    }
    // The comparison is a strict total order (names are unique), so picking the first party by
    // it each round is what Karmada's heap pops, whatever the heap's internal layout.
    for _ in 0..seats.max(0) {
        let mut best: Option<&mut Party<'_>> = None;
        for p in parties.iter_mut() {
            if best.as_deref().is_none_or(|b| before(p, b, ties)) {
                best = Some(p);
            }
        }
        if let Some(b) = best {
            b.seats += 1;
        }
    }
    parties.sort_by(|a, b| a.name.cmp(b.name));
    parties
        .into_iter()
        .map(|p| TargetCluster {
            name: p.name.to_owned(),
            replicas: p.seats,
        })
        .collect()
}

/// Orders target clusters by replicas, most first; for a stable sort, so equal ones keep their
/// order (Go sorts a list this short by insertion, which is stable too).
pub fn by_replicas_desc_stable(a: &TargetCluster, b: &TargetCluster) -> Ordering {
    b.replicas.cmp(&a.replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seats(r: &[TargetCluster]) -> Vec<(&str, i32)> {
        r.iter().map(|t| (t.name.as_str(), t.replicas)).collect()
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn webster_splits_by_weight() {
        let r = allocate(9, &[("a", 1), ("b", 2)], TieOrder::Ascending);
        assert_eq!(seats(&r), [("a", 3), ("b", 6)]);
        let r = allocate(9, &[("a", 1), ("b", 3)], TieOrder::Ascending);
        assert_eq!(seats(&r), [("a", 2), ("b", 7)]);
    }

    #[test]
    fn webster_ties_follow_the_uid_parity() {
        // Three equal clusters and one replica: the tie goes to the first name in the order the
        // UID's hash parity picks.
        let w = [("m1", 1), ("m2", 1), ("m3", 1)];
        assert_eq!(
            seats(&allocate(1, &w, TieOrder::Ascending)),
            [("m1", 1), ("m2", 0), ("m3", 0)]
        );
        assert_eq!(
            seats(&allocate(1, &w, TieOrder::Descending)),
            [("m1", 0), ("m2", 0), ("m3", 1)]
        );
        let odd = (0..100)
            .map(|i| format!("uid-{i}"))
            .find(|u| fnv32a(u.as_bytes()) & 1 == 1)
            .unwrap_or_default();
        assert_eq!(TieOrder::for_uid(&odd), TieOrder::Descending);
        assert_eq!(TieOrder::for_uid(""), TieOrder::Ascending);
    }

    #[test]
    fn webster_prefers_fewer_seats_on_equal_quotients() {
        // a: 3/(2·1+1) = 1 and b: 1/(2·0+1) = 1 tie on the quotient; b has fewer seats.
        let r = allocate(2, &[("a", 3), ("b", 1)], TieOrder::Descending);
        assert_eq!(seats(&r), [("a", 1), ("b", 1)]);
    }
}
