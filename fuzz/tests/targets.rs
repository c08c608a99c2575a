//! The fuzz targets (see `fuzz/README.md`): every parser and decision that reads input someone
//! else controls. Each target asserts "no panic" and what must hold of whatever is accepted.
//!
//! `cargo test -p fedstate-fuzz` runs one batch of each; `FEDSTATE_FUZZ_SECONDS=N` runs each for
//! N seconds (`scripts/test-all.sh fuzz`).

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::SchedulerResult;
use fedstate_api::hostconf::{HostConf, HostEntry};
use fedstate_api::limits::{MAX_MEMBER_INDEX, MAX_MEMBERS, MAX_PRIORITY, MAX_VOTERS};
use fedstate_api::quantity::{MAX_MILLIS, parse_millis};
use fedstate_fuzz::{JSON_TOKENS, NUMBER_TOKENS, bytes, fuzz, hex, seed_lines, text};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// `schedulerResult`: the scheduler's previous placement and the manager's input. Whatever
/// parses stays within MongoDB's limits, reads back identically, and the manager assigns members
/// for it without panicking and within the limits.
#[test]
fn annotation() {
    let seeds = seed_lines(include_str!("../seeds/annotation.txt"));
    fuzz("annotation", text(seeds, JSON_TOKENS), |s| {
        let Ok(r) = SchedulerResult::parse(&s) else {
            return Ok(());
        };
        let total = r.total_data_members();
        prop_assert!((0..=i64::from(MAX_MEMBERS)).contains(&total));
        let votes: i64 = r
            .clusters
            .iter()
            .filter_map(|c| c.votes)
            .map(i64::from)
            .sum();
        prop_assert!(votes <= i64::from(MAX_VOTERS));
        for c in &r.clusters {
            prop_assert!((0..=i32::from(MAX_MEMBERS)).contains(&c.replicaset));
            prop_assert!(
                c.priority
                    .is_none_or(|p| (0..=i32::from(MAX_PRIORITY)).contains(&p))
            );
        }
        let back = SchedulerResult::parse(&r.to_annotation());
        prop_assert_eq!(back.as_ref(), Ok(&r));
        let sum = i32::try_from(total).unwrap();
        prop_assert!(SchedulerResult::parse_for(&s, sum, |_| true).is_ok());
        let _ = r.summary();
        if let Ok(a) = fedstate_manager::members::assign(&[], &r) {
            let voters = a.members.iter().filter(|m| m.votes > 0).count();
            prop_assert!(voters <= usize::from(MAX_VOTERS));
            let data = a.members.iter().filter(|m| !m.arbiter).count();
            prop_assert_eq!(i64::try_from(data).unwrap(), total);
            for m in &a.members {
                prop_assert!((0..=i32::from(MAX_MEMBER_INDEX)).contains(&m.index));
            }
        }
        Ok(())
    });
}

/// Kubernetes quantities (requests, capacities, allocations): within Kubernetes' bound when
/// accepted, exact for plain integers with a suffix.
#[test]
fn quantity() {
    let seeds = seed_lines(include_str!("../seeds/quantity.txt"));
    let exact = (any::<i64>(), 0usize..6).prop_map(|(n, i)| {
        let suffix = ["m", "", "k", "Ki", "Mi", "Gi"][i];
        (format!("{n}{suffix}"), Some((n, i)))
    });
    let strategy = prop_oneof![
        4 => text(seeds, NUMBER_TOKENS).prop_map(|s| (s, None)),
        1 => exact,
    ];
    fuzz("quantity", strategy, |(s, exact)| {
        let parsed = parse_millis(&s);
        if let Ok(v) = &parsed {
            prop_assert!(v.abs() <= MAX_MILLIS, "{s} -> {v}");
        }
        if let Some((n, i)) = exact {
            let factor: i128 = [
                1,
                1000,
                1_000_000,
                1_024_000,
                1_048_576_000,
                1_073_741_824_000,
            ][i];
            let want = i128::from(n) * factor;
            if want.abs() <= MAX_MILLIS {
                prop_assert_eq!(parsed, Ok(want));
            } else {
                prop_assert!(parsed.is_err());
            }
        }
        Ok(())
    });
}

/// The `<name>-hostconf` list every agent reads: whatever parses is within MongoDB's limits and
/// renders back to itself.
#[test]
fn hostconf() {
    let seeds = seed_lines(include_str!("../seeds/hostconf.txt"));
    fuzz("hostconf", text(seeds, JSON_TOKENS), |s| {
        let Ok(conf) = HostConf::parse(&s) else {
            return Ok(());
        };
        prop_assert!(conf.hosts.len() <= usize::from(MAX_MEMBERS));
        prop_assert!(conf.voters() <= usize::from(MAX_VOTERS));
        for h in &conf.hosts {
            prop_assert!((0..=i32::from(MAX_MEMBER_INDEX)).contains(&h.member_index));
            prop_assert!((0..=i32::from(MAX_PRIORITY)).contains(&h.priority));
        }
        let again = HostConf::parse(&conf.render()).unwrap();
        prop_assert_eq!(again.render(), conf.render());
        Ok(())
    });
}

mod planner {
    use super::*;
    use fedstate_mongo_agent::planner::{
        Desired, ForceOptIn, HostProbe, InitDecision, MemberState, Observed, RsConfig, RsMember,
        ServerFacts, Step, decide_init, ever_had, next_step,
    };

    const POOL: u8 = 10;

    fn host(i: u8) -> String {
        format!("10.0.0.{i}:27017")
    }

    /// Mostly small values, sometimes the extremes, sometimes anything.
    fn small_or_any_i32(small: std::ops::RangeInclusive<i32>) -> BoxedStrategy<i32> {
        prop_oneof![
            8 => small,
            1 => prop_oneof![Just(i32::MAX), Just(i32::MIN), Just(-1)],
            1 => any::<i32>(),
        ]
        .boxed()
    }

    fn member() -> impl Strategy<Value = RsMember> {
        (
            0..POOL,
            small_or_any_i32(0..=20),
            small_or_any_i32(0..=1),
            small_or_any_i32(0..=3),
            any::<bool>(),
        )
            .prop_map(|(h, id, votes, priority, arbiter_only)| RsMember {
                id,
                host: host(h),
                votes,
                priority,
                arbiter_only,
            })
    }

    fn config() -> impl Strategy<Value = RsConfig> {
        (
            prop_oneof![
                8 => 1i64..100,
                1 => prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(-1)],
                1 => any::<i64>(),
            ],
            proptest::collection::vec(member(), 0..12),
        )
            .prop_map(|(version, members)| RsConfig {
                name: "rs".into(),
                version,
                members,
            })
    }

    fn state() -> impl Strategy<Value = MemberState> {
        prop_oneof![
            Just(MemberState::Primary),
            Just(MemberState::Secondary),
            Just(MemberState::Arbiter),
            Just(MemberState::Syncing),
            Just(MemberState::Down),
        ]
    }

    fn observed() -> impl Strategy<Value = Observed> {
        (
            proptest::option::weighted(0.9, config()),
            any::<bool>(),
            proptest::collection::btree_map((0..POOL).prop_map(host), state(), 0..12),
            proptest::option::of((0u32..10, 0u32..10)),
            any::<bool>(),
        )
            .prop_map(|(config, committed, states, version, global)| Observed {
                config,
                committed,
                states,
                server: ServerFacts {
                    version,
                    global_write_concern: global,
                },
            })
    }

    /// A host list as the agent gets it: one the manager rendered, so it passes
    /// `HostConf::validate` (the agent refuses any other).
    fn desired() -> impl Strategy<Value = Desired> {
        (
            proptest::collection::btree_map(
                0..POOL,
                (0..=1i32, 0..=3i32, proptest::bool::weighted(0.1)),
                0..9,
            ),
            proptest::collection::btree_set(0..POOL, 0..10),
            proptest::collection::btree_set(0..POOL, 0..10),
        )
            .prop_map(|(entries, own, ready)| {
                let mut voters = 0;
                let hosts = entries
                    .into_iter()
                    .enumerate()
                    .map(|(index, (h, (votes, priority, arbiter)))| {
                        let votes = if voters < MAX_VOTERS && (votes == 1 || arbiter) {
                            voters += 1;
                            1
                        } else {
                            0
                        };
                        let arbiter_only = arbiter && votes == 1;
                        HostEntry {
                            host: host(h),
                            member_index: i32::try_from(index).unwrap(),
                            votes,
                            priority: if votes == 1 && !arbiter_only {
                                priority
                            } else {
                                0
                            },
                            arbiter_only,
                            cluster: if h % 2 == 0 { "a" } else { "b" }.into(),
                        }
                    })
                    .collect();
                Desired {
                    hosts,
                    own: own.into_iter().map(host).collect(),
                    ready: ready.into_iter().map(host).collect(),
                }
            })
    }

    /// What MongoDB itself guarantees of a config it reports.
    fn mongodb_valid(c: &RsConfig) -> bool {
        let hosts: BTreeSet<&str> = c.members.iter().map(|m| m.host.as_str()).collect();
        let ids: BTreeSet<i32> = c.members.iter().map(|m| m.id).collect();
        hosts.len() == c.members.len()
            && ids.len() == c.members.len()
            && c.members.len() <= usize::from(MAX_MEMBERS)
            && c.voters() <= usize::from(MAX_VOTERS)
            && (0..i64::MAX).contains(&c.version)
            && c.members.iter().all(|m| {
                (0..=255).contains(&m.id)
                    && (0..=1).contains(&m.votes)
                    && (0..=i32::from(MAX_PRIORITY)).contains(&m.priority)
            })
    }

    fn voters(c: &RsConfig) -> BTreeSet<&str> {
        c.members
            .iter()
            .filter(|m| m.is_voter())
            .map(|m| m.host.as_str())
            .collect()
    }

    fn check_step(
        desired: &Desired,
        observed: &Observed,
        force: bool,
    ) -> Result<(), TestCaseError> {
        // The opt-in, when given, names the observed config's version (as the user's would).
        let opt_in = force.then(|| observed.config.as_ref().map(|c| c.version));
        let step = next_step(desired, observed, ForceOptIn(opt_in.flatten()));
        let Some(before) = &observed.config else {
            return Ok(());
        };
        match &step {
            Step::Reconfig { config, .. } if mongodb_valid(before) => {
                prop_assert!(config.version > before.version, "{step:?}");
                prop_assert!(
                    voters(before).symmetric_difference(&voters(config)).count() <= 1,
                    "more than one voting change: {before:?} -> {step:?}"
                );
                prop_assert!(config.voters() <= usize::from(MAX_VOTERS), "{step:?}");
                prop_assert!(config.members.len() <= usize::from(MAX_MEMBERS), "{step:?}");
            }
            Step::ForceReconfig { .. } => prop_assert!(force, "forced without the opt-in"),
            _ => {}
        }
        Ok(())
    }

    /// The agent's planner on arbitrary observations: never a panic; on configs MongoDB could
    /// report, at most one voting change per reconfig, never above 7 voters, never `force`
    /// without the opt-in.
    #[test]
    fn planner() {
        let probes = proptest::collection::btree_map(
            (0..POOL).prop_map(host),
            prop_oneof![
                Just(HostProbe::Unreachable),
                Just(HostProbe::Uninitiated),
                prop_oneof![Just("rs"), Just("other")].prop_map(|s| HostProbe::InSet {
                    set_name: s.to_owned()
                }),
            ],
            0..10,
        );
        let known = proptest::collection::btree_set((0..POOL).prop_map(host), 0..4);
        let strategy = (
            desired(),
            observed(),
            any::<bool>(),
            probes,
            any::<bool>(),
            known,
        );
        fuzz(
            "planner",
            strategy,
            |(desired, observed, force, probes, rs_init, known)| {
                check_step(&desired, &observed, force)?;
                let probes: BTreeMap<String, HostProbe> = probes;
                let known: BTreeSet<String> = known;
                if let InitDecision::Initiate { on, config } =
                    decide_init("rs", rs_init, &desired, &known, &probes)
                {
                    prop_assert!(rs_init);
                    prop_assert!(desired.own.contains(&on));
                    prop_assert!(config.voters() <= usize::from(MAX_VOTERS));
                    // Initiate once: every host the set ever had answered "in no set".
                    for h in ever_had(&desired, &known).keys() {
                        prop_assert_eq!(probes.get(*h), Some(&HostProbe::Uninitiated));
                    }
                }
                Ok(())
            },
        );
    }
}

mod estimator {
    use super::*;
    use fedstate_api::karmada::ResourceSummary;
    use fedstate_estimator_client::ledger::displaced;
    use fedstate_estimator_client::plugin::{
        Estimate, PluginAnswer, estimate_from_max_replicas, general_estimate, merge,
    };
    use fedstate_estimator_client::proto::pb;
    use fedstate_estimator_client::{MemberRequirements, MemberShape};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use prost::Message;

    fn quantities() -> impl Strategy<Value = BTreeMap<String, Quantity>> {
        let seeds = seed_lines(include_str!("../seeds/quantity.txt"));
        proptest::collection::btree_map(
            prop_oneof![
                Just("cpu"),
                Just("memory"),
                Just("pods"),
                Just("nvidia.com/gpu")
            ]
            .prop_map(str::to_owned),
            text(seeds, NUMBER_TOKENS).prop_map(Quantity),
            0..4,
        )
    }

    fn answer() -> impl Strategy<Value = PluginAnswer> {
        (
            prop_oneof![
                any::<i32>().prop_map(estimate_from_max_replicas),
                Just(Estimate::Failed("x".into())),
            ],
            any::<bool>(),
        )
            .prop_map(|(estimate, counts_hosted_members)| PluginAnswer {
                plugin: "p",
                estimate,
                counts_hosted_members,
            })
    }

    /// What comes back from estimators and Cluster status: the gRPC responses decoded from any
    /// bytes, the "no opinion" rule, the merge with the ledger, Karmada's general estimate from
    /// any `resourceSummary` (ours and the scheduler's copy agree), and the ledger's displacement
    /// arithmetic on any quantities.
    #[test]
    fn estimator() {
        let seeds = vec![
            pb::MaxAvailableReplicasResponse { max_replicas: 5 }.encode_to_vec(),
            pb::MaxAvailableReplicasResponse { max_replicas: -1 }.encode_to_vec(),
            pb::UnschedulableReplicasResponse {
                unschedulable_replicas: 3,
            }
            .encode_to_vec(),
        ];
        let strategy = (
            bytes(seeds),
            proptest::collection::vec(answer(), 0..4),
            any::<u32>(),
            any::<u32>(),
            (quantities(), quantities(), quantities()),
            quantities(),
            prop_oneof![any::<i128>(), Just(i128::MAX), 0i128..1_000_000],
        );
        fuzz(
            "estimator",
            strategy,
            |(
                wire,
                answers,
                hosted,
                assumed,
                (allocatable, allocated, allocating),
                requests,
                usage_cpu,
            )| {
                if let Ok(r) = pb::MaxAvailableReplicasResponse::decode(wire.as_slice()) {
                    match estimate_from_max_replicas(r.max_replicas) {
                        Estimate::NoOpinion => prop_assert!(r.max_replicas < 0),
                        Estimate::Replicas(n) => {
                            prop_assert_eq!(i64::from(n), i64::from(r.max_replicas))
                        }
                        Estimate::Failed(_) => prop_assert!(false, "a number is an answer"),
                    }
                }
                let _ = pb::UnschedulableReplicasResponse::decode(wire.as_slice());
                let _ = pb::MaxAvailableComponentSetsResponse::decode(wire.as_slice());

                let merged = merge(&answers, hosted, assumed);
                for a in &answers {
                    if let Estimate::Replicas(n) = a.estimate {
                        prop_assert!(merged.replicas.is_some_and(|m| m <= n));
                    }
                }

                let summary = ResourceSummary {
                    allocatable,
                    allocated,
                    allocating,
                };
                let shape = MemberShape::new(MemberRequirements {
                    resource_request: requests.clone(),
                    ..Default::default()
                });
                let ours = general_estimate(Some(&summary), &shape);
                let scheduler_shape =
                    fedstate_scheduler::adapter::MemberShape::from_requests("requests", &requests);
                // Both follow Karmada for what a cluster can report; they part only on negative
                // amounts (an allocation of -11 pods with no allocatable pods: Karmada's
                // arithmetic, which the estimator client follows, says 11 fit, the scheduler's
                // copy none); and on a request for `pods` itself, which the estimator client
                // ignores and the scheduler's copy divides by. No cluster reports negative
                // amounts and no pod template requests `pods`, so both are left alone.
                let negative = [
                    &summary.allocatable,
                    &summary.allocated,
                    &summary.allocating,
                ]
                .iter()
                .flat_map(|m| m.values())
                .any(|q| parse_millis(&q.0).is_ok_and(|v| v < 0));
                if !negative
                    && !requests.contains_key("pods")
                    && let (Ok(ours), Ok(shape)) = (&ours, &scheduler_shape)
                    && let Ok(theirs) =
                        fedstate_scheduler::adapter::general_estimate(Some(&summary), shape)
                {
                    prop_assert_eq!(*ours, theirs, "the scheduler's copy of the formula differs");
                }

                // The ledger sums requests × members with saturation, so any i128 can arrive.
                let millis = |q: &BTreeMap<String, Quantity>| -> BTreeMap<String, i128> {
                    q.iter()
                        .filter_map(|(k, v)| Some((k.clone(), parse_millis(&v.0).ok()?)))
                        .collect()
                };
                let mut usage = millis(&summary.allocated);
                usage.insert("cpu".into(), usage_cpu);
                let to = millis(&requests);
                let n = displaced(&usage, &to);
                if let (Some(&used), Some(&want)) = (usage.get("cpu"), to.get("cpu"))
                    && used > 0
                    && want > 0
                {
                    let at_least = u32::try_from((used - 1) / want + 1).unwrap_or(u32::MAX);
                    prop_assert!(n >= at_least, "{used} / {want} -> {n}");
                }
                Ok(())
            },
        );
    }
}

mod wire {
    use super::*;
    use fedstate_rs_sim::wire::{encode_reply, read_request};

    /// The simulator's MongoDB wire decoder on any bytes: never a panic; what it reads, it can
    /// answer, and the answer reads back as the same command.
    #[test]
    fn wire() {
        let seeds: Vec<Vec<u8>> = seed_lines(include_str!("../seeds/wire.txt"))
            .into_iter()
            .map(hex)
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        fuzz("wire", bytes(seeds), |msg| {
            let read = runtime.block_on(read_request(&mut msg.as_slice()));
            if let Ok(Some(req)) = read {
                let reply = encode_reply(req.request_id, 0, &req.command).unwrap();
                let back = runtime
                    .block_on(read_request(&mut reply.as_slice()))
                    .unwrap()
                    .unwrap();
                // As bytes: a document holding a NaN is not equal to itself.
                prop_assert_eq!(
                    back.command.to_vec().unwrap(),
                    req.command.to_vec().unwrap()
                );
            }
            Ok(())
        });
    }
}

/// A placement that cannot be read back is no test of the parser: the ones the engine writes
/// parse (the scheduler's own proptests check the engine; this keeps the seed file honest).
#[test]
fn annotation_seeds_cover_accepted_and_refused_values() {
    let seeds = seed_lines(include_str!("../seeds/annotation.txt"));
    let accepted = seeds
        .iter()
        .filter(|s| SchedulerResult::parse(s).is_ok())
        .count();
    assert!(
        accepted >= 3 && accepted < seeds.len(),
        "{accepted} of {}",
        seeds.len()
    );
}

/// The placement engine on arbitrary Cluster lists, requests and previous placements (duplicate
/// names, capacities and counts up to `u32::MAX`, previous clusters that no longer exist): no
/// panic, an answer in bounded time, and whatever it places is a replica set MongoDB accepts
/// (≤ 50 members, ≤ 7 votes, ≤ 1 arbiter, only in clusters it was given).
#[test]
fn placement() {
    use fedstate_scheduler::placement::{
        ClusterCandidate, Distribution, PlacementRequest, PreviousPlacement, QuorumPolicy,
        ReplicaSetRules, place,
    };
    let count = prop_oneof![
        4 => 0u32..12,
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ];
    let name = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("")];
    let cluster = (
        name.clone(),
        count.clone(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
    )
        .prop_map(
            |(name, capacity, ready, has_vip, region)| ClusterCandidate {
                name: name.into(),
                ready,
                has_vip,
                capacity,
                region: Some(format!("r{region}")),
                ..Default::default()
            },
        );
    let previous = proptest::option::of((
        proptest::collection::vec((name.clone(), count.clone()), 0..6),
        proptest::option::of(name),
    ))
    .prop_map(|p| {
        p.map(|(members, arbiter)| PreviousPlacement {
            members: members.into_iter().map(|(n, c)| (n.into(), c)).collect(),
            arbiter: arbiter.map(Into::into),
        })
    });
    let mode = prop_oneof![
        Just(Distribution::Uniform),
        Just(Distribution::Weighting),
        Just(Distribution::Aggregated)
    ];
    let request = (count, mode, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(replicas, distribution, arbiter, required, require_vip)| PlacementRequest {
            uid: "fuzz".into(),
            replicas,
            distribution,
            replica_set: Some(ReplicaSetRules {
                arbiter,
                quorum_policy: if required {
                    QuorumPolicy::Required
                } else {
                    QuorumPolicy::Preferred
                },
            }),
            require_vip,
            ..Default::default()
        },
    );
    let world = (proptest::collection::vec(cluster, 0..8), request, previous);
    fuzz("placement", world, |(clusters, req, previous)| {
        let started = std::time::Instant::now();
        let plan = place(&req, &clusters, previous.as_ref());
        prop_assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "placement took {:?}",
            started.elapsed()
        );
        let Ok(plan) = plan else { return Ok(()) };
        let data: u64 = plan.clusters.iter().map(|c| u64::from(c.data)).sum();
        let votes: u64 = plan.clusters.iter().map(|c| u64::from(c.votes)).sum();
        let arbiters = plan.clusters.iter().filter(|c| c.arbiter).count();
        prop_assert!(data <= u64::from(MAX_MEMBERS), "{data} members");
        prop_assert!(votes <= u64::from(MAX_VOTERS), "{votes} votes");
        prop_assert!(arbiters <= 1, "{arbiters} arbiters");
        for c in &plan.clusters {
            prop_assert!(
                clusters.iter().any(|k| k.name == c.cluster),
                "placed in {:?}, not a given cluster",
                c.cluster
            );
        }
        Ok(())
    });
}
