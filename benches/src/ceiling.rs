//! The ceiling: the least work any scheduler can do per decision on this apiserver. It watches
//! what names it, as a scheduler does, and writes a precomputed answer with the writes a real
//! one needs and nothing else: for a binding the same two merge patches ours makes (the spec with
//! the applied-placement annotation, then the status with the `Scheduled` condition and the
//! generation the first patch produced), for a MultiCloudMongoDB one patch of the
//! `schedulerResult` annotation. No estimator, no events, no cache of Clusters.
//!
//! It runs as its own process (`ceiling_scheduler`) with the same client as ours
//! (`fedstate_runtime::client`: the same `--kube-api-qps`/`--kube-api-burst` limiter), so the
//! benchmark can hold it, time it and count its requests like the two real schedulers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use fedstate_api::karmada::binding::{APPLIED_PLACEMENT_ANNOTATION, ResourceBinding};
use fedstate_api::names::SCHEDULER_RESULT_ANNOTATION;
use fedstate_api::{ClusterWithReplicaset, MultiCloudMongoDB, SchedulerResult};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

/// What the ceiling places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Bindings,
    Mcm,
}

/// Flags of `ceiling_scheduler`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "ceiling_scheduler",
    about = "The benchmark's trivial scheduler"
)]
pub struct Args {
    #[command(flatten)]
    pub common: fedstate_runtime::CommonArgs,
    /// Objects naming this scheduler are placed.
    #[arg(long, default_value = "bench-ceiling")]
    pub scheduler_name: String,
    /// Decisions in flight (ours: `--concurrency`, 32).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The precomputed answer's clusters.
    #[arg(long, value_delimiter = ',', default_value = "member1,member2,member3")]
    pub clusters: Vec<String>,
    #[arg(long, value_enum, default_value_t = Kind::Bindings)]
    pub kind: Kind,
}

/// Names in flight and the generation last written per object: a watch event of our own write
/// is not new work (remember what we wrote).
#[derive(Debug, Default)]
struct Book {
    in_flight: HashSet<(String, String)>,
    written: HashMap<(String, String), i64>,
}

fn key(o: &impl ResourceExt) -> (String, String) {
    (o.namespace().unwrap_or_default(), o.name_any())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = fedstate_runtime::client(&args.common).await?;
    match args.kind {
        Kind::Bindings => bindings(client, &args).await,
        Kind::Mcm => mcms(client, &args).await,
    }
}

async fn bindings(client: Client, args: &Args) -> anyhow::Result<()> {
    let book = Arc::new(Mutex::new(Book::default()));
    let (tx, rx) = mpsc::unbounded_channel::<Arc<ResourceBinding>>();
    let watch = {
        let (book, name) = (book.clone(), args.scheduler_name.clone());
        let api: Api<ResourceBinding> = Api::all(client.clone());
        async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(e) = events.next().await {
                let rb = match e {
                    Ok(watcher::Event::Apply(rb) | watcher::Event::InitApply(rb)) => rb,
                    Ok(watcher::Event::InitDone) => {
                        eprintln!("ceiling: bindings watch synced; ready");
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("ceiling: watch: {e}");
                        continue;
                    }
                };
                if rb.spec.scheduler_name.as_deref() != Some(name.as_str())
                    || rb.metadata.deletion_timestamp.is_some()
                {
                    continue;
                }
                let generation = rb.metadata.generation.unwrap_or(0);
                let done = rb
                    .status
                    .as_ref()
                    .and_then(|s| s.scheduler_observed_generation)
                    == Some(generation)
                    && !rb.spec.clusters.is_empty();
                let k = key(&rb);
                {
                    let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
                    if done || b.written.get(&k).is_some_and(|g| *g >= generation) {
                        continue;
                    }
                    if !b.in_flight.insert(k) {
                        continue;
                    }
                }
                let _ = tx.send(Arc::new(rb));
            }
        }
    };
    let work = tokio_stream_of(rx).for_each_concurrent(args.concurrency, |rb| {
        let (client, book, clusters) = (client.clone(), book.clone(), args.clusters.clone());
        async move {
            let k = key(&*rb);
            let written = place_binding(&client, &rb, &clusters).await;
            let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
            b.in_flight.remove(&k);
            match written {
                Ok(g) => {
                    b.written.insert(k, g);
                }
                Err(e) => eprintln!("ceiling: {}/{}: {e}", k.0, k.1),
            }
        }
    });
    let stop = fedstate_runtime::shutdown::signal();
    tokio::select! {
        _ = watch => {}
        _ = work => {}
        _ = stop.cancelled() => {}
    }
    Ok(())
}

/// The two writes; returns the generation the spec patch produced.
async fn place_binding(
    client: &Client,
    rb: &ResourceBinding,
    clusters: &[String],
) -> anyhow::Result<i64> {
    let api: Api<ResourceBinding> =
        Api::namespaced(client.clone(), &rb.namespace().unwrap_or_default());
    let placement = serde_json::to_string(&rb.spec.placement)?;
    let targets = crate::workload::divide(rb.spec.replicas.max(1), clusters);
    let spec = json!({
        "metadata": {"annotations": {APPLIED_PLACEMENT_ANNOTATION: placement}},
        "spec": {"clusters": targets},
    });
    let name = rb.name_any();
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&spec))
        .await?;
    let generation = patched.metadata.generation.unwrap_or(0);
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "conditions": [{"type": "Scheduled", "status": "True", "reason": "Success",
                        "message": "Binding has been scheduled successfully.", "lastTransitionTime": now}],
        "schedulerObservedGeneration": generation,
        "lastScheduledTime": now,
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(generation)
}

async fn mcms(client: Client, args: &Args) -> anyhow::Result<()> {
    let book = Arc::new(Mutex::new(Book::default()));
    let (tx, rx) = mpsc::unbounded_channel::<Arc<MultiCloudMongoDB>>();
    let watch = {
        let (book, name) = (book.clone(), args.scheduler_name.clone());
        let api: Api<MultiCloudMongoDB> = Api::all(client.clone());
        async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(e) = events.next().await {
                let obj = match e {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    Ok(watcher::Event::InitDone) => {
                        eprintln!("ceiling: MultiCloudMongoDB watch synced; ready");
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("ceiling: watch: {e}");
                        continue;
                    }
                };
                if obj.spec.scheduler_name() != name || crate::workload::is_placed(&obj) {
                    continue;
                }
                let generation = obj.metadata.generation.unwrap_or(0);
                let k = key(&obj);
                {
                    let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
                    if b.written.get(&k).is_some_and(|g| *g >= generation) || !b.in_flight.insert(k)
                    {
                        continue;
                    }
                }
                let _ = tx.send(Arc::new(obj));
            }
        }
    };
    let work = tokio_stream_of(rx).for_each_concurrent(args.concurrency, |obj| {
        let (client, book, clusters) = (client.clone(), book.clone(), args.clusters.clone());
        async move {
            let k = key(&*obj);
            let written = place_mcm(&client, &obj, &clusters).await;
            let mut b = book.lock().unwrap_or_else(|p| p.into_inner());
            b.in_flight.remove(&k);
            match written {
                Ok(()) => {
                    b.written.insert(k, obj.metadata.generation.unwrap_or(0));
                }
                Err(e) => eprintln!("ceiling: {}/{}: {e}", k.0, k.1),
            }
        }
    });
    let stop = fedstate_runtime::shutdown::signal();
    tokio::select! {
        _ = watch => {}
        _ = work => {}
        _ = stop.cancelled() => {}
    }
    Ok(())
}

/// One write: the annotation.
async fn place_mcm(
    client: &Client,
    obj: &MultiCloudMongoDB,
    clusters: &[String],
) -> anyhow::Result<()> {
    let api: Api<MultiCloudMongoDB> =
        Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let result = SchedulerResult {
        clusters: crate::workload::divide(obj.spec.replicaset, clusters)
            .into_iter()
            .map(|t| ClusterWithReplicaset {
                cluster: t.name,
                replicaset: t.replicas,
                ..ClusterWithReplicaset::default()
            })
            .collect(),
        generation: obj.metadata.generation,
        ..SchedulerResult::default()
    };
    let patch =
        json!({"metadata": {"annotations": {SCHEDULER_RESULT_ANNOTATION: result.to_annotation()}}});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
