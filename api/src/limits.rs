//! MongoDB's replica-set limits, the one place every crate of ours reads them from.
//!
//! The values are `u8` so each user converts losslessly to the integer type it counts in
//! (`u32::from`, `i32::from`, `usize::from`). The CRDs' CEL rules spell 50 in their rule text
//! (an attribute needs a literal); the tests below check the generated schemas against these
//! constants.

/// At most 7 voting members in one replica set (arbiters included).
pub const MAX_VOTERS: u8 = 7;
/// At most 50 members in one replica set.
pub const MAX_MEMBERS: u8 = 50;
/// Highest set-wide data member index (`MemberRole.memberIndex` is `0..=49`).
pub const MAX_MEMBER_INDEX: u8 = MAX_MEMBERS - 1;
/// Highest member priority MongoDB accepts (`members[n].priority` is `0..=1000`).
pub const MAX_PRIORITY: u16 = 1000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{MongoDB, MultiCloudMongoDB};
    use kube::CustomResourceExt;

    #[test]
    fn the_crd_schemas_spell_the_same_limits() {
        let mcm = serde_json::to_string(&MultiCloudMongoDB::crd()).unwrap();
        assert!(
            mcm.contains(&format!("self <= {MAX_MEMBERS}")),
            "spec.replicaset rule"
        );
        let mdb = serde_json::to_value(MongoDB::crd()).unwrap();
        assert!(
            mdb.to_string().contains(&format!("self <= {MAX_MEMBERS}")),
            "spec.members rule"
        );
        let index = &mdb["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["memberRoles"]["items"]["properties"]["memberIndex"];
        assert_eq!(index["maximum"], f64::from(MAX_MEMBER_INDEX), "{index}");
    }
}
