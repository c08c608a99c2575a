//! The assumed-workload ledger: members we placed that the estimators cannot see yet are
//! subtracted from capacity, so two objects scheduled back to back cannot both take the last room
//! (Karmada issues #6783, #1385).
//!
//! An entry lives until [`AssumedLedger::release`] (the caller saw the members created) or its
//! time to live passes, whichever comes first. Until then it is subtracted even if the estimator
//! already counts the members: erring towards "full" is the safe side.

use std::collections::{BTreeMap, HashMap};
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
    shape: ShapeId,
    /// Requests of one member in milli-units (unparseable ones are left out).
    requests: Arc<BTreeMap<String, i128>>,
    members: u32,
    expires: Instant,
}

impl Assumed {
    fn usage(&self, resource: &str) -> i128 {
        self.requests
            .get(resource)
            .map_or(0, |q| q.saturating_mul(i128::from(self.members)))
    }
}

/// One cluster's placements, with their sums kept up to date so that a lookup costs the same
/// whatever the number of placements: members per shape and requests summed over every member.
#[derive(Debug, Default)]
struct ClusterLedger {
    by_object: HashMap<String, Assumed>,
    members_by_shape: HashMap<ShapeId, u64>,
    /// Requests × members, summed over every entry, per resource.
    usage: BTreeMap<String, i128>,
    /// Members of all entries.
    members: u64,
    /// The earliest expiry among the entries (entries are dropped lazily past it).
    next_expiry: Option<Instant>,
}

impl ClusterLedger {
    fn add(&mut self, object: &str, a: Assumed) {
        *self.members_by_shape.entry(a.shape).or_default() += u64::from(a.members);
        self.members += u64::from(a.members);
        for r in a.requests.keys() {
            let u = self.usage.entry(r.clone()).or_default();
            *u = u.saturating_add(a.usage(r));
        }
        self.next_expiry = Some(self.next_expiry.map_or(a.expires, |e| e.min(a.expires)));
        self.by_object.insert(object.to_owned(), a);
    }

    /// Removes `object`'s entry; true if it had one.
    fn remove(&mut self, object: &str) -> bool {
        let Some(a) = self.by_object.remove(object) else {
            return false;
        };
        self.subtract(&a);
        true
    }

    fn subtract(&mut self, a: &Assumed) {
        if let Some(m) = self.members_by_shape.get_mut(&a.shape) {
            *m = m.saturating_sub(u64::from(a.members));
            if *m == 0 {
                self.members_by_shape.remove(&a.shape);
            }
        }
        self.members = self.members.saturating_sub(u64::from(a.members));
        for r in a.requests.keys() {
            if let Some(u) = self.usage.get_mut(r) {
                *u = u.saturating_sub(a.usage(r));
                if *u <= 0 {
                    self.usage.remove(r);
                }
            }
        }
    }

    /// Drops the entries expired at `now`; returns how many.
    fn expire(&mut self, now: Instant) -> usize {
        if self.next_expiry.is_none_or(|e| e > now) {
            return 0;
        }
        let expired: Vec<String> = self
            .by_object
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(o, _)| o.clone())
            .collect();
        for o in &expired {
            self.remove(o);
        }
        self.next_expiry = self.by_object.values().map(|a| a.expires).min();
        expired.len()
    }
}

/// Placements not yet visible to the estimators, per cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AssumedLedger {
    entries: Arc<DashMap<Arc<str>, ClusterLedger>>,
    /// The clusters each object has entries in, so that releasing an object visits only those.
    clusters_of: Arc<DashMap<String, Vec<Arc<str>>>>,
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
        // Rounded up without `used + want - 1`, which overflows for a saturated usage.
        let n = used / want + i128::from(used % want != 0);
        most = most.max(n.unsigned_abs());
    }
    u32::try_from(most).unwrap_or(u32::MAX)
}

impl AssumedLedger {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            clusters_of: Arc::new(DashMap::new()),
            recorded: Arc::new(AtomicUsize::new(0)),
            ttl,
        }
    }

    /// Records that `members` members of `object` of `shape` were placed on `cluster`
    /// (replacing what was recorded for that object and cluster).
    pub fn assume(&self, object: &str, cluster: &str, shape: &MemberShape, members: u32) {
        let entry = Assumed {
            shape: shape.id(),
            requests: Arc::new(millis(shape)),
            members,
            expires: Instant::now() + self.ttl,
        };
        let cluster: Arc<str> = match self.entries.get(cluster) {
            Some(e) => e.key().clone(),
            None => Arc::from(cluster),
        };
        if members > 0 {
            self.recorded.fetch_add(1, Ordering::SeqCst);
        }
        let removed = {
            let mut ledger = self.entries.entry(cluster.clone()).or_default();
            let removed = ledger.remove(object);
            if members > 0 {
                ledger.add(object, entry);
            }
            removed
        };
        if removed {
            self.recorded.fetch_sub(1, Ordering::SeqCst);
        }
        if members > 0 {
            let mut of = self.clusters_of.entry(object.to_owned()).or_default();
            if !of.contains(&cluster) {
                of.push(cluster);
            }
        } else {
            self.forget_cluster_of(object, &cluster);
        }
        self.publish();
    }

    fn forget_cluster_of(&self, object: &str, cluster: &str) {
        let empty = match self.clusters_of.get_mut(object) {
            Some(mut of) => {
                of.retain(|c| &**c != cluster);
                of.is_empty()
            }
            None => false,
        };
        if empty {
            self.clusters_of.remove_if(object, |_, v| v.is_empty());
        }
    }

    /// The members of `object` are visible to the estimators now (or it was deleted). Returns
    /// the clusters it had entries in.
    pub fn release(&self, object: &str) -> Vec<Arc<str>> {
        let Some((_, clusters)) = self.clusters_of.remove(object) else {
            return Vec::new();
        };
        let mut had = Vec::new();
        for c in clusters {
            let removed = self
                .entries
                .get_mut(&c)
                .is_some_and(|mut l| l.remove(object));
            if removed {
                self.recorded.fetch_sub(1, Ordering::SeqCst);
                had.push(c);
            }
        }
        self.publish();
        had
    }

    /// Members of `shape` to subtract on `cluster`, leaving out `object`'s own entries (its
    /// members count as hosted when it is re-planned).
    pub fn assumed_on(&self, cluster: &str, shape: &MemberShape, object: Option<&str>) -> u32 {
        if self.recorded.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        let now = Instant::now();
        let expired_past = self
            .entries
            .get(cluster)
            .is_some_and(|l| l.next_expiry.is_some_and(|e| e <= now));
        if expired_past && let Some(mut l) = self.entries.get_mut(cluster) {
            let n = l.expire(now);
            drop(l);
            self.recorded.fetch_sub(n, Ordering::SeqCst);
            if n > 0 {
                self.publish();
            }
        }
        let Some(ledger) = self.entries.get(cluster) else {
            return 0;
        };
        let own = object.and_then(|o| ledger.by_object.get(o));
        let id = shape.id();
        let own_members = own.map_or(0, |a| u64::from(a.members));
        let same_total = ledger.members_by_shape.get(&id).copied().unwrap_or(0);
        let own_same = if own.is_some_and(|a| a.shape == id) {
            own_members
        } else {
            0
        };
        let same = same_total.saturating_sub(own_same);
        let others = ledger
            .members
            .saturating_sub(same_total)
            .saturating_sub(own_members - own_same);
        let same_u32 = u32::try_from(same).unwrap_or(u32::MAX);
        if others == 0 {
            return same_u32;
        }
        // The same shape's members take their own slots; the others' usage is converted.
        let to = millis(shape);
        let usage: BTreeMap<String, i128> = to
            .keys()
            .filter_map(|r| {
                let total = ledger.usage.get(r).copied()?;
                let mine = own.map_or(0, |a| a.usage(r));
                Some((r.clone(), total.saturating_sub(mine)))
            })
            .collect();
        displaced(&usage, &to).max(same_u32)
    }

    /// Stops subtracting `object`'s members on `cluster` (they are visible there now, or the
    /// object left the cluster).
    pub fn release_cluster(&self, object: &str, cluster: &str) {
        if self.recorded.load(Ordering::SeqCst) == 0 {
            return;
        }
        let removed = self
            .entries
            .get_mut(cluster)
            .is_some_and(|mut l| l.remove(object));
        if removed {
            self.recorded.fetch_sub(1, Ordering::SeqCst);
            self.forget_cluster_of(object, cluster);
            self.publish();
        }
    }

    /// Drops expired entries; returns how many are left.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        for mut e in self.entries.iter_mut() {
            let n = e.expire(now);
            self.recorded.fetch_sub(n, Ordering::SeqCst);
        }
        self.entries.retain(|_, v| !v.by_object.is_empty());
        self.clusters_of.retain(|object, clusters| {
            clusters.retain(|c| {
                self.entries
                    .get(c)
                    .is_some_and(|l| l.by_object.contains_key(object))
            });
            !clusters.is_empty()
        });
        self.publish()
    }

    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.by_object.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries gauge, from the counter (no walk of the map).
    fn publish(&self) -> usize {
        let n = self.recorded.load(Ordering::SeqCst);
        metrics::gauge!(LEDGER_ENTRIES).set(n as f64);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_usage_displaces_the_most_without_overflowing() {
        // The usage is summed with saturation; `used + want - 1` overflowed at i128::MAX (found
        // by the estimator fuzz target).
        let usage = BTreeMap::from([("cpu".to_owned(), i128::MAX)]);
        let to = BTreeMap::from([("cpu".to_owned(), 1000)]);
        assert_eq!(displaced(&usage, &to), u32::MAX);
        let usage = BTreeMap::from([("cpu".to_owned(), 2001)]);
        assert_eq!(displaced(&usage, &to), 3, "rounded up");
    }

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

    /// The ledger as it was first written: one list per cluster, every lookup walks it. The
    /// kept sums must give the same answers.
    #[derive(Default)]
    struct Reference {
        entries: Vec<(usize, usize, usize, u32)>,
    }

    impl Reference {
        fn assume(&mut self, o: usize, c: usize, s: usize, m: u32) {
            self.entries.retain(|e| !(e.0 == o && e.1 == c));
            if m > 0 {
                self.entries.push((o, c, s, m));
            }
        }
        fn release(&mut self, o: usize) {
            self.entries.retain(|e| e.0 != o);
        }
        fn release_cluster(&mut self, o: usize, c: usize) {
            self.entries.retain(|e| !(e.0 == o && e.1 == c));
        }
        fn assumed_on(&self, c: usize, s: usize, o: Option<usize>, shapes: &[MemberShape]) -> u32 {
            let mut same = 0u32;
            let mut usage: BTreeMap<String, i128> = BTreeMap::new();
            for &(eo, ec, es, m) in &self.entries {
                if ec != c || Some(eo) == o {
                    continue;
                }
                if es == s {
                    same += m;
                } else {
                    for (r, q) in millis(&shapes[es]) {
                        *usage.entry(r).or_default() += q * i128::from(m);
                    }
                }
            }
            if usage.is_empty() {
                return same;
            }
            let to = millis(&shapes[s]);
            for (r, want) in &to {
                if let Some(u) = usage.get_mut(r) {
                    *u += want * i128::from(same);
                }
            }
            displaced(&usage, &to).max(same)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Assume(usize, usize, usize, u32),
        Release(usize),
        ReleaseCluster(usize, usize),
        Ask(usize, usize, Option<usize>),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..6usize, 0..3usize, 0..3usize, 0..5u32).prop_map(|(o, c, s, m)| Op::Assume(o, c, s, m)),
            1 => (0..6usize).prop_map(Op::Release),
            1 => (0..6usize, 0..3usize).prop_map(|(o, c)| Op::ReleaseCluster(o, c)),
            4 => (0..3usize, 0..3usize, proptest::option::of(0..6usize)).prop_map(|(c, s, o)| Op::Ask(c, s, o)),
        ]
    }

    proptest::proptest! {
        #[test]
        fn kept_sums_answer_as_walking_every_entry(ops in proptest::collection::vec(op(), 0..60)) {
            let shapes = [
                MemberShape::from_requests([("cpu", "1")]),
                MemberShape::from_requests([("cpu", "500m"), ("memory", "1Gi")]),
                MemberShape::from_requests([("memory", "2Gi")]),
            ];
            let ledger = AssumedLedger::new(Duration::from_secs(3600));
            let mut reference = Reference::default();
            let name = |o: usize| format!("ns/o{o}");
            let cluster = |c: usize| format!("m{c}");
            for op in ops {
                match op {
                    Op::Assume(o, c, s, m) => {
                        ledger.assume(&name(o), &cluster(c), &shapes[s], m);
                        reference.assume(o, c, s, m);
                    }
                    Op::Release(o) => {
                        ledger.release(&name(o));
                        reference.release(o);
                    }
                    Op::ReleaseCluster(o, c) => {
                        ledger.release_cluster(&name(o), &cluster(c));
                        reference.release_cluster(o, c);
                    }
                    Op::Ask(c, s, o) => {
                        let own = o.map(name);
                        proptest::prop_assert_eq!(
                            ledger.assumed_on(&cluster(c), &shapes[s], own.as_deref()),
                            reference.assumed_on(c, s, o, &shapes)
                        );
                    }
                }
                proptest::prop_assert_eq!(ledger.len(), reference.entries.len());
            }
        }
    }
}
