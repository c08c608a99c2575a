//! The assumed-workload ledger: members we placed that the estimators cannot see yet are
//! subtracted from capacity, so two objects scheduled back to back cannot both take the last room
//! (Karmada issues #6783, #1385).
//!
//! An entry lives until [`AssumedLedger::release`] (the caller saw the members created) or its
//! time to live passes, whichever comes first. Until then it is subtracted even if the estimator
//! already counts the members: erring towards "full" is the safe side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use fedstate_api::quantity::parse_quantity;
use tokio::time::Instant;

use crate::metrics::LEDGER_ENTRIES;
use crate::shape::{MemberShape, ShapeId};

#[derive(Clone, Debug)]
struct Assumed {
    object: String,
    shape: ShapeId,
    /// Requests in milli-units (unparseable ones are left out).
    requests: BTreeMap<String, i128>,
    members: u32,
    expires: Instant,
}

/// Placements not yet visible to the estimators, per cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AssumedLedger {
    entries: Arc<DashMap<Arc<str>, Vec<Assumed>>>,
    /// Entries recorded, expired ones included until dropped; never below the true count
    /// (raised before an entry is added, lowered after one is removed), so a lookup that reads
    /// zero can skip the map — the common case on the capacity hot path.
    recorded: Arc<AtomicUsize>,
    ttl: Duration,
}

fn millis(shape: &MemberShape) -> BTreeMap<String, i128> {
    shape
        .requirements()
        .resource_request
        .iter()
        .filter_map(|(k, q)| Some((k.clone(), parse_quantity(q).ok()?)))
        .collect()
}

/// How many members of shape `to` the assumed `usage` (requests summed over every assumed
/// member, in milli-units) takes the room of: the most over `to`'s requested resources of
/// `usage / request`, rounded up once. Usage is summed before rounding, so many small placements
/// count by what they really request (300 replicas of 10m take three 1-CPU slots, not 300), and a
/// resource `to` does not request takes none of its room.
pub fn displaced(usage: &BTreeMap<String, i128>, to: &BTreeMap<String, i128>) -> u32 {
    let mut most: u128 = 0;
    for (resource, &want) in to {
        let Some(&used) = usage.get(resource) else {
            continue;
        };
        if want <= 0 || used <= 0 {
            continue;
        }
        let n = (used + want - 1) / want;
        most = most.max(n.unsigned_abs());
    }
    u32::try_from(most).unwrap_or(u32::MAX)
}

impl AssumedLedger {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            recorded: Arc::new(AtomicUsize::new(0)),
            ttl,
        }
    }

    /// Records that `members` members of `object` of `shape` were placed on `cluster`
    /// (replacing what was recorded for that object and cluster).
    pub fn assume(&self, object: &str, cluster: &str, shape: &MemberShape, members: u32) {
        let entry = Assumed {
            object: object.to_owned(),
            shape: shape.id(),
            requests: millis(shape),
            members,
            expires: Instant::now() + self.ttl,
        };
        let mut list = self.entries.entry(Arc::from(cluster)).or_default();
        let before = list.len();
        list.retain(|a| a.object != object);
        let removed = before - list.len();
        if members > 0 {
            self.recorded.fetch_add(1, Ordering::SeqCst);
            list.push(entry);
        }
        drop(list);
        self.recorded.fetch_sub(removed, Ordering::SeqCst);
        self.publish();
    }

    /// The members of `object` are visible to the estimators now (or it was deleted). Returns
    /// the clusters it had entries in.
    pub fn release(&self, object: &str) -> Vec<Arc<str>> {
        let mut clusters = Vec::new();
        for mut e in self.entries.iter_mut() {
            let before = e.len();
            e.retain(|a| a.object != object);
            if e.len() != before {
                self.recorded.fetch_sub(before - e.len(), Ordering::SeqCst);
                clusters.push(e.key().clone());
            }
        }
        self.entries.retain(|_, v| !v.is_empty());
        self.publish();
        clusters
    }

    /// Members of `shape` to subtract on `cluster`, leaving out `object`'s own entries (its
    /// members count as hosted when it is re-planned).
    pub fn assumed_on(&self, cluster: &str, shape: &MemberShape, object: Option<&str>) -> u32 {
        if self.recorded.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        let Some(list) = self.entries.get(cluster) else {
            return 0;
        };
        let now = Instant::now();
        let mut same = 0u32;
        let mut usage: BTreeMap<String, i128> = BTreeMap::new();
        for a in list.iter() {
            if a.expires <= now || Some(a.object.as_str()) == object {
                continue;
            }
            if a.shape == shape.id() {
                same = same.saturating_add(a.members);
            } else {
                for (r, q) in &a.requests {
                    let u = usage.entry(r.clone()).or_default();
                    *u = u.saturating_add(q.saturating_mul(i128::from(a.members)));
                }
            }
        }
        if usage.is_empty() {
            return same;
        }
        // The same shape's members take their own slots; the others' usage is converted.
        let to = millis(shape);
        for (r, want) in &to {
            if let Some(u) = usage.get_mut(r) {
                *u = u.saturating_add(want.saturating_mul(i128::from(same)));
            }
        }
        displaced(&usage, &to).max(same)
    }

    /// Stops subtracting `object`'s members on `cluster` (they are visible there now, or the
    /// object left the cluster).
    pub fn release_cluster(&self, object: &str, cluster: &str) {
        if let Some(mut list) = self.entries.get_mut(cluster) {
            let before = list.len();
            list.retain(|a| a.object != object);
            self.recorded
                .fetch_sub(before - list.len(), Ordering::SeqCst);
        }
        self.entries.retain(|_, v| !v.is_empty());
        self.publish();
    }

    /// Drops expired entries; returns how many are left.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        for mut e in self.entries.iter_mut() {
            let before = e.len();
            e.retain(|a| a.expires > now);
            self.recorded.fetch_sub(before - e.len(), Ordering::SeqCst);
        }
        self.entries.retain(|_, v| !v.is_empty());
        self.publish()
    }

    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn publish(&self) -> usize {
        let n = self.len();
        metrics::gauge!(LEDGER_ENTRIES).set(n as f64);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displacement_of_other_shapes_rounds_up_per_resource() {
        let m = |v: &[(&str, i128)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        // Two 2-CPU members take the room of four 1-CPU members.
        assert_eq!(displaced(&m(&[("cpu", 4000)]), &m(&[("cpu", 1000)])), 4);
        // One 500m member takes one 1-CPU slot (rounded up).
        assert_eq!(displaced(&m(&[("cpu", 500)]), &m(&[("cpu", 1000)])), 1);
        // Memory decides when it is the tighter one.
        assert_eq!(
            displaced(
                &m(&[("cpu", 1000), ("memory", 8 << 30)]),
                &m(&[("cpu", 1000), ("memory", 2 << 30)])
            ),
            4
        );
        // Nothing in common: no room of this shape is taken.
        assert_eq!(displaced(&m(&[("gpu", 3000)]), &m(&[("cpu", 1000)])), 0);
    }

    #[test]
    fn hundreds_of_small_unrelated_placements_count_by_their_requests() {
        let ledger = AssumedLedger::new(Duration::from_secs(60));
        let tiny = MemberShape::from_requests([("cpu", "10m")]);
        for i in 0..300 {
            ledger.assume(&format!("ns/b{i}"), "m1", &tiny, 1);
        }
        let one_cpu = MemberShape::from_requests([("cpu", "1")]);
        // 300 × 10m = 3 CPUs: three 1-CPU replicas' room, not 300.
        assert_eq!(ledger.assumed_on("m1", &one_cpu, None), 3);
        assert_eq!(ledger.assumed_on("m1", &tiny, None), 300);
        ledger.release_cluster("ns/b0", "m1");
        assert_eq!(ledger.assumed_on("m1", &tiny, None), 299);
    }

    #[tokio::test]
    async fn placements_are_subtracted_until_released_or_expired() {
        let ledger = AssumedLedger::new(Duration::from_secs(60));
        let small = MemberShape::from_requests([("cpu", "1")]);
        let big = MemberShape::from_requests([("cpu", "2")]);
        ledger.assume("db/a", "m1", &small, 2);
        ledger.assume("db/b", "m1", &big, 1);
        assert_eq!(ledger.assumed_on("m1", &small, None), 4);
        assert_eq!(ledger.assumed_on("m2", &small, None), 0);
        // An object's own entries are not subtracted from its own capacity.
        assert_eq!(ledger.assumed_on("m1", &small, Some("db/a")), 2);
        // Re-assuming replaces.
        ledger.assume("db/a", "m1", &small, 1);
        assert_eq!(ledger.assumed_on("m1", &small, None), 3);
        assert_eq!(ledger.release("db/b"), vec![Arc::<str>::from("m1")]);
        assert_eq!(ledger.assumed_on("m1", &small, None), 1);
        assert_eq!(ledger.len(), 1);
        // Emptied and refilled: the fast path for an empty ledger must not hide new entries.
        ledger.release("db/a");
        assert_eq!(ledger.assumed_on("m1", &small, None), 0);
        ledger.assume("db/c", "m1", &small, 3);
        assert_eq!(ledger.assumed_on("m1", &small, None), 3);
        ledger.assume("db/c", "m1", &small, 0);
        assert_eq!(ledger.assumed_on("m1", &small, None), 0);
        ledger.assume("db/c", "m1", &small, 1);
        assert_eq!(ledger.assumed_on("m1", &small, None), 1);

        let short = AssumedLedger::new(Duration::ZERO);
        short.assume("db/a", "m1", &small, 2);
        assert_eq!(short.assumed_on("m1", &small, None), 0);
        assert_eq!(short.expire(), 0);
    }
}
