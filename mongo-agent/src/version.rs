//! MongoDB versions and the feature compatibility version (FCV), pure: which image the members
//! may run now, and which `setFeatureCompatibilityVersion` comes first. MongoDB's upgrade pages
//! ("Upgrade a Replica Set to 5.0 … 8.0") and `setFeatureCompatibilityVersion`:
//! * a binary of series N runs with FCV N or N−1 only (a mongod started on data whose FCV is
//!   older or newer refuses to start), so a replica set moves one major series at a time
//!   (4.4 → 5.0 → 6.0 → 7.0 → 8.0);
//! * before the binaries move up from N, the set's FCV must be N; once every member runs N+1,
//!   the FCV is raised to N+1;
//! * downgrading: the FCV comes down first, then the binaries; from 7.0 on, a binary downgrade
//!   needs MongoDB support ("Downgrade Policy Changes in MongoDB 7.0"), so the agent refuses it
//!   once the FCV is 7.0 or later.
//!
//! A refused change keeps the members on the image they run and says what to do instead.

use std::collections::BTreeMap;

use fedstate_api::v1alpha1::image_version;

/// The release series the agent manages, oldest first.
pub const SERIES: [(u32, u32); 5] = [(4, 4), (5, 0), (6, 0), (7, 0), (8, 0)];

/// The series of a version: 4.4, or `X.0` for 5 and later (rapid releases belong to their
/// major); `None` outside [`SERIES`].
pub fn series((major, minor): (u32, u32)) -> Option<usize> {
    let key = if major >= 5 {
        (major, 0)
    } else {
        (major, minor)
    };
    SERIES.iter().position(|s| *s == key)
}

// Every index into SERIES here and below is a position `series` returned, or one step from such a
// position towards another one.
#[allow(
    clippy::indexing_slicing,
    reason = "i is a position in SERIES (see above)"
)]
fn name(i: usize) -> String {
    let (a, b) = SERIES[i];
    format!("{a}.{b}")
}

/// What runs now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Running {
    /// `buildInfo` `(major, minor)` of each member that answered, by host.
    pub binaries: BTreeMap<String, (u32, u32)>,
    /// The set's FCV (`getParameter: {featureCompatibilityVersion: 1}`), when known.
    pub fcv: Option<(u32, u32)>,
    /// The image this cluster's StatefulSets have now (`None`: no member yet).
    pub image: Option<String>,
}

/// Where a version change stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing to change (or a version the tag does not say: not checked).
    Current,
    /// A change under way: what happens now.
    Changing(String),
    /// A change MongoDB does not support: what to do instead. The members keep their image.
    Refused(String),
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionPlan {
    /// The image for the StatefulSets.
    pub image: String,
    /// The FCV to set on the primary once the set is otherwise converged.
    pub fcv: Option<(u32, u32)>,
    pub progress: Progress,
}

/// Decide for `desired` (`spec.image`) given what runs.
pub fn plan(desired: &str, running: &Running) -> VersionPlan {
    let keep = running.image.clone().unwrap_or_else(|| desired.to_owned());
    let hold = |progress: Progress| VersionPlan {
        image: keep.clone(),
        fcv: None,
        progress,
    };
    let go = |fcv: Option<usize>, progress: Progress| VersionPlan {
        image: desired.to_owned(),
        fcv: fcv.and_then(|i| SERIES.get(i).copied()),
        progress,
    };
    let Some(target) = image_version(desired).and_then(|v| series((v.major, v.minor))) else {
        return go(None, Progress::Current);
    };
    let binaries: Vec<usize> = running
        .binaries
        .values()
        .filter_map(|v| series(*v))
        .collect();
    let (Some(&low), Some(&high)) = (binaries.iter().min(), binaries.iter().max()) else {
        // No member answers: a new set starts on the desired image; an existing one waits.
        return match &running.image {
            Some(img) if img != desired => hold(Progress::Changing(format!(
                "waiting for the members to answer before moving from {img} to {desired}"
            ))),
            _ => go(None, Progress::Current),
        };
    };
    let fcv = running.fcv.and_then(series);
    let skip = |from: usize| {
        let step = if target > from { from + 1 } else { from - 1 };
        Progress::Refused(format!(
            "spec.image {desired} is MongoDB {}, the members run {}: MongoDB changes one major version at a time; set spec.image to a {} image first and wait for condition VersionUpgrade to report featureCompatibilityVersion {}, then to {desired}",
            name(target),
            name(from),
            name(step),
            name(step),
        ))
    };
    if target > high || (target == high && low < high) {
        // Upgrade (or one under way).
        if target > low + 1 {
            return hold(skip(low));
        }
        if low == high && fcv.is_some_and(|f| f < low) {
            return hold(Progress::Changing(format!(
                "setting featureCompatibilityVersion {} before the members move to {}",
                name(low),
                name(target)
            )))
            .with_fcv(low);
        }
        return go(
            None,
            Progress::Changing(format!("rolling the members to {}", name(target))),
        );
    }
    if target < low || (target == low && low < high) {
        // Downgrade (or one under way).
        if high > target + 1 {
            return hold(skip(high));
        }
        if fcv.is_some_and(|f| f >= 3 && f > target) {
            return hold(Progress::Refused(format!(
                "spec.image {desired} is MongoDB {}, but featureCompatibilityVersion is {}: from 7.0 on MongoDB supports no binary downgrade without MongoDB support; set spec.image back to a {} image",
                name(target),
                fcv.map(name).unwrap_or_default(),
                name(high)
            )));
        }
        if fcv.is_some_and(|f| f > target) {
            return hold(Progress::Changing(format!(
                "setting featureCompatibilityVersion {} before the members move back to it",
                name(target)
            )))
            .with_fcv(target);
        }
        return go(
            None,
            Progress::Changing(format!("rolling the members back to {}", name(target))),
        );
    }
    // Every member runs the target series.
    match fcv {
        Some(f) if f + 1 == target => go(
            Some(target),
            Progress::Changing(format!(
                "every member runs {}: setting featureCompatibilityVersion {}",
                name(target),
                name(target)
            )),
        ),
        _ => go(None, Progress::Current),
    }
}

impl VersionPlan {
    fn with_fcv(mut self, i: usize) -> Self {
        self.fcv = SERIES.get(i).copied();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(binaries: &[(u32, u32)], fcv: Option<(u32, u32)>, image: &str) -> Running {
        Running {
            binaries: binaries
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("h:{i}"), *v))
                .collect(),
            fcv,
            image: Some(image.to_owned()),
        }
    }

    /// "Upgrade a Replica Set to 7.0": every member on 6.0 with FCV 6.0, then the binaries,
    /// then FCV 7.0; a set still on FCV 5.0 gets FCV 6.0 first.
    #[test]
    fn an_upgrade_goes_fcv_first_then_binaries_then_fcv() {
        let p = plan(
            "mongo:7.0",
            &running(&[(6, 0); 3], Some((5, 0)), "mongo:6.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:6.0", Some((6, 0))));
        let p = plan(
            "mongo:7.0",
            &running(&[(6, 0); 3], Some((6, 0)), "mongo:6.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:7.0", None));
        assert!(matches!(p.progress, Progress::Changing(_)));
        let p = plan(
            "mongo:7.0",
            &running(&[(7, 0), (6, 0), (6, 0)], Some((6, 0)), "mongo:7.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:7.0", None), "rolling");
        let p = plan(
            "mongo:7.0",
            &running(&[(7, 0); 3], Some((6, 0)), "mongo:7.0"),
        );
        assert_eq!(p.fcv, Some((7, 0)));
        let p = plan(
            "mongo:7.0",
            &running(&[(7, 0); 3], Some((7, 0)), "mongo:7.0"),
        );
        assert_eq!((p.fcv, p.progress), (None, Progress::Current));
    }

    /// A skipped major is refused with what to do; the members keep their image.
    #[test]
    fn a_skipped_major_is_refused_with_what_to_do() {
        let p = plan(
            "mongo:8.0",
            &running(&[(6, 0); 3], Some((6, 0)), "mongo:6.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:6.0", None));
        let Progress::Refused(why) = p.progress else {
            panic!("{:?}", p.progress)
        };
        assert!(why.contains("7.0 image first"), "{why}");
        let p = plan(
            "mongo:4.4",
            &running(&[(6, 0); 3], Some((6, 0)), "mongo:6.0"),
        );
        assert!(matches!(p.progress, Progress::Refused(_)));
        assert_eq!(p.image, "mongo:6.0");
    }

    /// Downgrades: the FCV first, then the binaries; from FCV 7.0 on, refused.
    #[test]
    fn a_downgrade_lowers_the_fcv_first_and_stops_at_7_0() {
        let p = plan(
            "mongo:5.0",
            &running(&[(6, 0); 3], Some((6, 0)), "mongo:6.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:6.0", Some((5, 0))));
        let p = plan(
            "mongo:5.0",
            &running(&[(6, 0); 3], Some((5, 0)), "mongo:6.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:5.0", None));
        let p = plan(
            "mongo:6.0",
            &running(&[(7, 0); 3], Some((7, 0)), "mongo:7.0"),
        );
        assert!(
            matches!(p.progress, Progress::Refused(m) if m.contains("without MongoDB support"))
        );
        assert_eq!(p.image, "mongo:7.0");
        // An upgrade to 7.0 that never raised the FCV may go back.
        let p = plan(
            "mongo:6.0",
            &running(&[(7, 0), (6, 0), (6, 0)], Some((6, 0)), "mongo:7.0"),
        );
        assert_eq!((p.image.as_str(), p.fcv), ("mongo:6.0", None));
    }

    /// Tags that name no version (latest, a digest) are not checked; a new set starts on the
    /// desired image; an existing set whose members do not answer waits.
    #[test]
    fn unknown_versions_and_new_sets() {
        let p = plan(
            "mongo:latest",
            &running(&[(6, 0); 3], Some((6, 0)), "mongo:6.0"),
        );
        assert_eq!(
            (p.image.as_str(), p.progress),
            ("mongo:latest", Progress::Current)
        );
        let p = plan("mongo:7.0", &Running::default());
        assert_eq!(
            (p.image.as_str(), p.progress),
            ("mongo:7.0", Progress::Current)
        );
        let p = plan("mongo:7.0", &running(&[], None, "mongo:6.0"));
        assert_eq!(p.image, "mongo:6.0");
        assert_eq!(series((7, 3)), Some(3));
        assert_eq!(series((4, 2)), None);
    }
}
