//! Our own objects as triggers: a second writer's edit of something the manager created — the
//! member template, a Propagation- or OverridePolicy — reconciles its owner at once, so the
//! manager's server-side apply puts back the fields it owns, and a deleted one is created again.
//!
//! Only what matters triggers ([`SpecOrGone`], pure): a spec change (the object's `generation`
//! moved) or a deletion. A status write (Karmada aggregates the members' status into the
//! template; the manager sees it through the binding already) or a metadata-only change
//! (Karmada labels every policy it claims) triggers nothing, and neither does a relist after a
//! watch restart that found everything as it was — else every watch reconnect would reconcile
//! every object, polling in disguise. Objects are watched by our `managed-by` label only.

use std::collections::{HashMap, HashSet};

use futures::{Stream, StreamExt, stream};
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

/// The generation last seen of each of our objects (by UID), and during a relist the UIDs it
/// has listed so far.
#[derive(Debug)]
pub struct SpecOrGone<K> {
    seen: HashMap<String, (Option<i64>, K)>,
    relisted: Option<HashSet<String>>,
}

impl<K> Default for SpecOrGone<K> {
    fn default() -> Self {
        Self {
            seen: HashMap::new(),
            relisted: None,
        }
    }
}

impl<K: Resource + Clone> SpecOrGone<K> {
    /// The objects whose owner to reconcile after `event`: new ones, ones whose generation
    /// changed, deleted ones (a deletion event, or gone from a relist).
    pub fn on(&mut self, event: Event<K>) -> Vec<K> {
        match event {
            Event::Init => {
                self.relisted = Some(HashSet::new());
                Vec::new()
            }
            Event::InitApply(obj) | Event::Apply(obj) => {
                let Some(uid) = obj.meta().uid.clone() else {
                    return Vec::new();
                };
                if let Some(listed) = &mut self.relisted {
                    listed.insert(uid.clone());
                }
                let generation = obj.meta().generation;
                let changed = self.seen.get(&uid).map(|(g, _)| *g) != Some(generation);
                self.seen.insert(uid, (generation, obj.clone()));
                if changed { vec![obj] } else { Vec::new() }
            }
            Event::Delete(obj) => {
                if let Some(uid) = &obj.meta().uid {
                    self.seen.remove(uid);
                }
                vec![obj]
            }
            Event::InitDone => {
                let Some(listed) = self.relisted.take() else {
                    return Vec::new();
                };
                let gone: Vec<String> = self
                    .seen
                    .keys()
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                gone.iter()
                    .filter_map(|uid| self.seen.remove(uid).map(|(_, obj)| obj))
                    .collect()
            }
        }
    }

    /// How many objects are remembered (one per live object of ours).
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

/// The watch of our objects of one kind (by `config`'s label selector), as a trigger stream of
/// the objects whose owner to reconcile ([`SpecOrGone`]). Watch errors pass through: the
/// controller counts them, the watcher backs off and retries.
pub fn spec_or_gone<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut filter = SpecOrGone::default();
    watcher::watcher(api, config)
        .backoff(fedstate_runtime::watch::WatchBackoff::default())
        .flat_map(move |event| {
            let out: Vec<Result<K, watcher::Error>> = match event {
                Ok(event) => filter.on(event).into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(out)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn obj(uid: &str, generation: i64) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{uid}")),
                uid: Some(uid.to_owned()),
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn names(v: &[ConfigMap]) -> Vec<&str> {
        v.iter()
            .filter_map(|o| o.metadata.name.as_deref())
            .collect()
    }

    #[test]
    fn spec_changes_and_deletions_trigger_status_writes_and_quiet_relists_do_not() {
        let mut f = SpecOrGone::default();
        // The first list: everything is new (the controller reconciles every owner then anyway).
        assert!(f.on(Event::Init).is_empty());
        assert_eq!(names(&f.on(Event::InitApply(obj("a", 1)))), ["cm-a"]);
        assert_eq!(names(&f.on(Event::InitApply(obj("b", 1)))), ["cm-b"]);
        assert!(f.on(Event::InitDone).is_empty());
        // A status or metadata write: same generation, nothing.
        assert!(f.on(Event::Apply(obj("a", 1))).is_empty());
        // A second writer edits the spec: its owner is reconciled.
        assert_eq!(names(&f.on(Event::Apply(obj("a", 2)))), ["cm-a"]);
        // ... or deletes it.
        assert_eq!(names(&f.on(Event::Delete(obj("b", 1)))), ["cm-b"]);
        assert_eq!(f.tracked(), 1);
        // The watch restarts and relists: nothing changed, nothing triggers.
        f.on(Event::Init);
        assert!(f.on(Event::InitApply(obj("a", 2))).is_empty());
        assert!(f.on(Event::InitDone).is_empty());
        // A relist after a change missed while the watch was down: the edited object and the
        // one deleted meanwhile (no deletion event was ever seen for it) trigger.
        assert_eq!(names(&f.on(Event::Apply(obj("c", 1)))), ["cm-c"]);
        f.on(Event::Init);
        assert_eq!(names(&f.on(Event::InitApply(obj("a", 3)))), ["cm-a"]);
        assert_eq!(names(&f.on(Event::InitDone)), ["cm-c"]);
        assert_eq!(f.tracked(), 1, "the deleted object is forgotten");
    }

    #[test]
    fn a_recreated_object_of_the_same_name_is_a_new_object() {
        let mut f = SpecOrGone::default();
        f.on(Event::Apply(obj("a", 1)));
        // Same name, new UID (deleted and created again with generation 1): it triggers.
        let mut again = obj("a2", 1);
        again.metadata.name = Some("cm-a".to_owned());
        assert_eq!(names(&f.on(Event::Apply(again))), ["cm-a"]);
    }
}
