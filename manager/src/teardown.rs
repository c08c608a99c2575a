//! Ordered deletion of one `MultiCloudMongoDB` (pure): the `MongoDB` template goes first, so
//! Karmada deletes the member objects and each agent tears its members down; then we wait until
//! Karmada reports no Work of that template left in any reachable cluster; only then do the
//! policies, Services, ConfigMaps and Secrets go (the agents may need them while they tear down),
//! and the finalizer is released once nothing of ours is left.

/// What is left, as the controller found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TeardownView {
    /// The `MongoDB` template still exists in the Karmada apiserver.
    pub template_exists: bool,
    /// Reachable clusters where a Work of the template remains (member object not deleted yet).
    pub works_in_reachable_clusters: Vec<String>,
    /// Unreachable clusters where a Work remains: not waited for (they may never come back);
    /// Karmada deletes the member objects when they return.
    pub works_in_unreachable_clusters: Vec<String>,
    /// Our other objects (policies, Services, ConfigMaps, Secrets) still present.
    pub owned_left: Vec<String>,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TeardownStep {
    DeleteTemplate,
    WaitForMembers { clusters: Vec<String> },
    DeleteOwned { objects: Vec<String> },
    Done,
}

pub fn next_step(v: &TeardownView) -> TeardownStep {
    if v.template_exists {
        TeardownStep::DeleteTemplate
    } else if !v.works_in_reachable_clusters.is_empty() {
        TeardownStep::WaitForMembers {
            clusters: v.works_in_reachable_clusters.clone(),
        }
    } else if !v.owned_left.is_empty() {
        TeardownStep::DeleteOwned {
            objects: v.owned_left.clone(),
        }
    } else {
        TeardownStep::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_go_before_what_they_need_and_lost_clusters_do_not_block() {
        let mut v = TeardownView {
            template_exists: true,
            works_in_reachable_clusters: vec!["a".into()],
            works_in_unreachable_clusters: vec!["b".into()],
            owned_left: vec!["Secret/demo-keyfile".into()],
        };
        assert_eq!(next_step(&v), TeardownStep::DeleteTemplate);
        v.template_exists = false;
        assert_eq!(
            next_step(&v),
            TeardownStep::WaitForMembers {
                clusters: vec!["a".into()]
            }
        );
        v.works_in_reachable_clusters.clear();
        assert_eq!(
            next_step(&v),
            TeardownStep::DeleteOwned {
                objects: vec!["Secret/demo-keyfile".into()]
            }
        );
        v.owned_left.clear();
        assert_eq!(next_step(&v), TeardownStep::Done);
    }
}
