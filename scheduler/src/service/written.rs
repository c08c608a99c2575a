//! The last version of each object we wrote, until the cache shows it.
//!
//! One decision writes an object twice (a binding's spec then its status; a middleware object's
//! annotation then its status), and the watch delivers each write separately: a pass that reads
//! the cache in between would take our own first write for news and write the status once more
//! (for a `MultiCloudMongoDB` that was 0.8 extra status applies per decision). So each pass
//! records what the apiserver answered to its last write, with the resourceVersions known to be
//! older than it: the one it decided from and those of its own earlier writes. A later pass that
//! reads one of those older versions from the cache decides from what we wrote instead. Any other
//! version — ours arriving, or someone else's newer write — forgets the entry: resourceVersions
//! of one object only move forward and watch events arrive in their order, so nothing is ever
//! substituted for a version we do not know to be older. A re-list forgets everything.

use std::any::Any;
use std::sync::Arc;

use dashmap::DashMap;
use kube::Resource;
use kube::runtime::watcher::Event;

/// What we wrote last, per object (`Kind/namespace/name`).
#[derive(Debug, Default)]
pub struct Written {
    by_object: DashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// Versions the cache can show that predate `object`.
    older: Vec<String>,
    /// `object`'s resourceVersion.
    rv: String,
    /// The apiserver's answer to our last write (a `K` of the key's kind).
    object: Arc<dyn Any + Send + Sync>,
}

/// `Kind/namespace/name`, or `Kind/name` for a cluster-scoped object.
pub fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let name = obj.meta().name.as_deref().unwrap_or_default();
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{}/{ns}/{name}", K::kind(&())),
        None => format!("{}/{name}", K::kind(&())),
    }
}

impl Written {
    /// Our last write of an object answered `written`; a cache showing one of `older` (the
    /// version the pass decided from, those its earlier writes produced) predates it, and so
    /// do the versions an earlier entry of the object knew (a pass that decided from our
    /// previous write while the cache was older still).
    pub fn record<K>(&self, written: K, mut older: Vec<String>)
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let Some(rv) = written.meta().resource_version.clone() else {
            return;
        };
        let k = key(&written);
        if let Some((_, before)) = self.by_object.remove(&k) {
            older.extend(before.older);
            older.push(before.rv);
        }
        older.retain(|o| *o != rv);
        self.by_object.insert(
            k,
            Entry {
                older,
                rv,
                object: Arc::new(written),
            },
        );
    }

    /// The object to decide from: what we wrote, while the cache shows a version older than
    /// it; otherwise the cached object (and the entry is forgotten).
    pub fn view<K>(&self, cached: Arc<K>) -> Arc<K>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let k = key(&*cached);
        let rv = cached
            .meta()
            .resource_version
            .as_deref()
            .unwrap_or_default();
        if let Some(entry) = self.by_object.get(&k) {
            if entry.older.iter().any(|o| o == rv)
                && let Ok(ours) = entry.object.clone().downcast::<K>()
            {
                return ours;
            }
        } else {
            return cached;
        }
        self.by_object
            .remove_if(&k, |_, e| !e.older.iter().any(|o| o == rv));
        cached
    }

    /// A watch event: a version that is not known to be older than our write (our write
    /// itself, or a newer one) ends the entry, a deletion or a re-list too.
    pub fn seen<K>(&self, event: &Event<K>)
    where
        K: Resource<DynamicType = ()>,
    {
        match event {
            Event::Apply(obj) => {
                let rv = obj.meta().resource_version.as_deref().unwrap_or_default();
                self.by_object
                    .remove_if(&key(obj), |_, e| !e.older.iter().any(|o| o == rv));
            }
            Event::Delete(obj) => {
                self.by_object.remove(&key(obj));
            }
            Event::Init => self.by_object.clear(),
            Event::InitApply(_) | Event::InitDone => {}
        }
    }

    pub fn len(&self) -> usize {
        self.by_object.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(rv: &str, data: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some("c".into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c.data = Some([("v".to_owned(), data.to_owned())].into());
        c
    }

    fn data(c: &ConfigMap) -> &str {
        &c.data.as_ref().unwrap()["v"]
    }

    #[test]
    fn older_versions_read_as_our_write_and_anything_else_ends_the_memory() {
        let w = Written::default();
        // Decided from 10, our first write made 11, our last 12.
        w.record(cm("12", "ours"), vec!["10".into(), "11".into()]);
        assert_eq!(data(&w.view(Arc::new(cm("10", "old")))), "ours");
        assert_eq!(data(&w.view(Arc::new(cm("11", "half")))), "ours");
        assert_eq!(w.len(), 1);
        // Someone else's newer write is never masked, and ends the memory.
        assert_eq!(data(&w.view(Arc::new(cm("13", "theirs")))), "theirs");
        assert!(w.is_empty());
        assert_eq!(data(&w.view(Arc::new(cm("11", "half")))), "half");
    }

    #[test]
    fn the_watch_delivering_our_write_or_a_deletion_or_a_relist_forgets_it() {
        let w = Written::default();
        w.record(cm("12", "ours"), vec!["10".into(), "11".into()]);
        w.seen(&Event::Apply(cm("11", "half")));
        assert_eq!(
            w.len(),
            1,
            "the first of our writes arriving changes nothing"
        );
        w.seen(&Event::Apply(cm("12", "ours")));
        assert!(w.is_empty());
        w.record(cm("12", "ours"), vec!["10".into()]);
        w.seen(&Event::Delete(cm("12", "ours")));
        assert!(w.is_empty());
        w.record(cm("12", "ours"), vec!["10".into()]);
        w.seen(&Event::<ConfigMap>::Init);
        assert!(w.is_empty());
    }
}
