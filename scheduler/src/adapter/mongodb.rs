//! MongoDB's side of the scheduler seam: a `MultiCloudMongoDB` as the scheduler sees it. Its
//! members are replica-set members (votes, arbiter, quorum policy), each needs a cluster with a
//! `vip` label (the member address), and one member pod is mongod plus the exporter sidecar
//! when enabled.

use fedstate_api::limits::MAX_MEMBERS;
use fedstate_api::placement::PlacementStatus;
use fedstate_api::{Condition, MultiCloudMongoDB};

use super::request::{RequestError, mode, object_uid, placement_rules};
use super::schedulable::{MemberSpec, Schedulable};
use crate::placement::{PlacementRequest, ReplicaSetRules};

impl Schedulable for MultiCloudMongoDB {
    const KIND: &'static str = "MultiCloudMongoDB";
    const QUEUE: &'static str = "multicloudmongodb";
    const LEDGER_PREFIX: &'static str = "mcm";

    fn scheduler_name(&self) -> &str {
        self.spec.scheduler_name()
    }

    fn placement_request(&self) -> Result<PlacementRequest, RequestError> {
        let spec = &self.spec;
        let replicas = u32::try_from(spec.replicaset)
            .ok()
            .filter(|r| (1..=u32::from(MAX_MEMBERS)).contains(r))
            .ok_or(RequestError::Replicas(spec.replicaset))?;
        let rules = placement_rules(
            spec.scheduler.as_ref(),
            "spec.scheduler",
            spec.spread_constraints.as_ref(),
            "spec.spreadConstraints",
        )?;
        Ok(PlacementRequest {
            uid: object_uid(&self.metadata),
            replicas,
            distribution: mode(spec.scheduler_mode()),
            replica_set: Some(ReplicaSetRules {
                arbiter: spec.arbiter(),
                quorum_policy: spec.quorum_policy(),
            }),
            filter: rules.filter,
            tolerations: rules.tolerations,
            spread: rules.spread,
            primary: rules.primary,
            require_vip: true,
        })
    }

    /// mongod's `spec.resource.requests` (the CRD's defaults when unset) plus the exporter
    /// sidecar's `spec.export.resource.requests` when enabled; the pods' `nodeSelect`.
    fn member(&self) -> MemberSpec {
        let spec = &self.spec;
        let mut requests = vec![("spec.resource.requests", spec.mongod_requests())];
        if let Some(r) = spec.exporter_requests() {
            requests.push(("spec.export.resource.requests", r.clone()));
        }
        MemberSpec {
            requests,
            node_selector: spec
                .spread_constraints
                .as_ref()
                .and_then(|s| s.node_select.clone())
                .unwrap_or_default(),
        }
    }

    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }

    fn placement_status(&self) -> Option<&PlacementStatus> {
        self.status.as_ref().and_then(|s| s.placement.as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::adapter::member_shape;
    use crate::placement::{Distribution, SpreadKey, SpreadRule};

    fn obj(yaml: &str) -> MultiCloudMongoDB {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_member_pod_requests_mongod_plus_the_enabled_exporter() {
        let o = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a}\nspec:\n  replicaset: 3\n  resource: {requests: {cpu: '1', memory: 512Mi}}\n  export: {enable: true, resource: {requests: {cpu: 200m, memory: 256Mi}}}\n",
        );
        let s = member_shape(&o).unwrap();
        assert_eq!(s.requests["cpu"], 1200);
        assert_eq!(s.requests["memory"], 768 * 1024 * 1024 * 1000);
        let o = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a}\nspec:\n  replicaset: 3\n  export: {enable: false, resource: {requests: {cpu: '9'}}}\n",
        );
        let s = member_shape(&o).unwrap();
        assert_eq!(
            s.requests["cpu"], 500,
            "the CRD default, no disabled exporter"
        );
    }

    #[test]
    fn spec_fields_become_the_request() {
        let o = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a, namespace: db, uid: u-1}\nspec:\n  replicaset: 5\n  config: {arbiter: true}\n  scheduler:\n    schedulerMode: Weighting\n    quorumPolicy: Required\n    affinity: {clusterNames: [m1, m2], exclude: [m3]}\n    tolerations: [{key: k, operator: Exists, effect: NoSchedule}]\n    primaryPreference: {clusterNames: [m2]}\n  spreadConstraints:\n    spreadConstraints: [{spreadByField: region, minGroups: 2, maxGroups: 3}]\n",
        );
        let r = o.placement_request().unwrap();
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.replicas, 5);
        assert_eq!(r.distribution, Distribution::Weighting);
        let rs = r.replica_set.unwrap();
        assert!(rs.arbiter);
        assert_eq!(rs.quorum_policy, crate::placement::QuorumPolicy::Required);
        assert_eq!(r.filter.names, vec!["m1", "m2"]);
        assert_eq!(r.filter.exclude, vec!["m3"]);
        assert!(r.tolerations[0].exists);
        assert_eq!(r.primary.names, vec!["m2"]);
        assert_eq!(
            r.spread[0],
            SpreadRule {
                key: SpreadKey::Region,
                min_groups: 2,
                max_groups: 3
            }
        );
        let bad = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a}\nspec:\n  replicaset: 3\n  spreadConstraints:\n    spreadConstraints: [{spreadByField: zone, minGroups: 4, maxGroups: 2}]\n",
        );
        let e = bad.placement_request().unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.spreadConstraints.spreadConstraints[0]: minGroups 4 is larger than maxGroups 2"
        );
    }
}
