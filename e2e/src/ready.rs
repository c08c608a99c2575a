//! What our control plane reports about an object, judged as a user would (pure): shared by
//! the e2e suites and the soak benchmark.

use fedstate_api::v1alpha1::ServiceState;
use fedstate_api::{MultiCloudMongoDB, SchedulerResult, names};

/// Why `obj` is not yet a healthy set of `members`, or `Ok`: the scheduler's placement for
/// `members`, the manager's status of this generation says `Health`, and the clusters report
/// `members` running in all.
pub fn mcm_ready(obj: &MultiCloudMongoDB, members: i32) -> Result<(), String> {
    let annotation = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::SCHEDULER_RESULT_ANNOTATION))
        .ok_or("not placed (no schedulerResult annotation)")?;
    let placed = SchedulerResult::parse(annotation)
        .map_err(|e| format!("unparseable schedulerResult: {e}"))?;
    let placed_members: i64 = placed
        .clusters
        .iter()
        .map(|c| i64::from(c.replicaset))
        .sum();
    if placed_members != i64::from(members) {
        return Err(format!(
            "placed {placed_members} of {members} members ({annotation})"
        ));
    }
    let status = obj.status.as_ref().ok_or("no status yet")?;
    if status.observed_generation != obj.metadata.generation {
        return Err(format!(
            "status of generation {:?}, object is at {:?}",
            status.observed_generation, obj.metadata.generation
        ));
    }
    let running: i64 = status
        .result
        .iter()
        .map(|t| i64::from(t.replicaset_status.unwrap_or(0)))
        .sum();
    if status.state != Some(ServiceState::Health) || running != i64::from(members) {
        // What each cluster reports and the conditions that are not True, so a failure names
        // what blocks (the soak keeps only this message of an object that missed its bound).
        let clusters: Vec<String> = status
            .result
            .iter()
            .map(|t| {
                format!(
                    "{}: {}/{} running, state {}, roles {:?}",
                    t.cluster.as_deref().unwrap_or("?"),
                    t.replicaset_status.unwrap_or(0),
                    t.replicaset_spec.unwrap_or(0),
                    t.state.as_deref().unwrap_or("-"),
                    t.connect_addr_with_role.clone().unwrap_or_default()
                )
            })
            .collect();
        let conditions: Vec<String> = status
            .conditions
            .iter()
            .filter(|c| !c.is_true())
            .map(describe_condition)
            .collect();
        return Err(format!(
            "state {:?}, {running} of {members} members running; clusters [{}]; conditions not True [{}]",
            status.state,
            clusters.join("; "),
            conditions.join("; ")
        ));
    }
    Ok(())
}

/// `Type=Status Reason: message`, for a failure message.
pub fn describe_condition(c: &fedstate_api::Condition) -> String {
    format!(
        "{}={:?} {}: {}",
        c.type_,
        c.status,
        c.reason.as_deref().unwrap_or_default(),
        c.message.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn mcm(
        generation: i64,
        observed: i64,
        state: &str,
        running: &[i32],
        placed: &str,
    ) -> MultiCloudMongoDB {
        let result: Vec<_> = running
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"cluster": format!("member{}", i + 1), "replicasetStatus": r}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": fedstate_api::API_VERSION, "kind": "MultiCloudMongoDB",
            "metadata": {"name": "db", "namespace": "ns", "generation": generation,
                         "annotations": {names::SCHEDULER_RESULT_ANNOTATION: placed}},
            "spec": {"replicaset": 5},
            "status": {"state": state, "observedGeneration": observed, "result": result}
        }))
        .unwrap()
    }

    #[test]
    fn a_multicloudmongodb_is_ready_when_placed_healthy_and_all_members_run() {
        let five = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":2},{"cluster":"member2","replicaset":2},{"cluster":"member3","replicaset":1}]}"#;
        let three = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":1},{"cluster":"member2","replicaset":1},{"cluster":"member3","replicaset":1}]}"#;
        assert_eq!(mcm_ready(&mcm(2, 2, "Health", &[2, 2, 1], five), 5), Ok(()));
        let unplaced = mcm_ready(&mcm(2, 2, "Health", &[1, 1, 1], three), 5).unwrap_err();
        assert!(unplaced.contains("placed 3 of 5"), "{unplaced}");
        let old = mcm_ready(&mcm(2, 1, "Health", &[2, 2, 1], five), 5).unwrap_err();
        assert!(old.contains("generation"), "{old}");
        let starting = mcm_ready(&mcm(2, 2, "SubHealth", &[2, 1, 1], five), 5).unwrap_err();
        assert!(starting.contains("4 of 5"), "{starting}");
    }
}
