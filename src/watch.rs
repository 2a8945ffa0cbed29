//! Watching a live cluster: kube-rs reflectors keep the current objects of every kind Flowgate
//! reads, and a snapshot is recorded in the store whenever it changed, so deletions close objects
//! and the time-aware inventory follows the cluster within one interval.
//!
//! An IO shell around `Store::import`; the Kubernetes API is reached through `kube::Client`
//! (kubeconfig or in-cluster service account).

use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store as Reader};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::inventory::KubeObject;
use crate::store::Store;

/// The current objects of one kind.
trait Kind: Send + Sync {
    fn snapshot(&self) -> Vec<KubeObject>;
    fn ready(&self) -> bool;
}

struct Reflected<K: Resource<DynamicType = ()> + 'static> {
    reader: Reader<K>,
    wrap: fn(K) -> KubeObject,
}

impl<K> Kind for Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    fn snapshot(&self) -> Vec<KubeObject> {
        self.reader.state().iter().map(|o| (self.wrap)((**o).clone())).collect()
    }
    fn ready(&self) -> bool {
        // A reader is ready once its first full list has been applied.
        futures_util::FutureExt::now_or_never(self.reader.wait_until_ready()).is_some()
    }
}

/// Starts a reflector for one kind on the current runtime and returns its reader.
fn reflect<K>(client: &Client, wrap: fn(K) -> KubeObject) -> Arc<dyn Kind>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    // Without a backoff a watcher against an unreachable API server spins; with it, errors are
    // retried at growing intervals and logged once each.
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!("watching {}: {e}", K::kind(&()));
            }
        }
    });
    Arc::new(Reflected { reader, wrap })
}

fn kinds(client: &Client) -> Vec<Arc<dyn Kind>> {
    vec![
        reflect::<Namespace>(client, KubeObject::Namespace),
        reflect::<Node>(client, KubeObject::Node),
        reflect::<Pod>(client, KubeObject::Pod),
        reflect::<Service>(client, KubeObject::Service),
        reflect::<EndpointSlice>(client, KubeObject::EndpointSlice),
        reflect::<ReplicaSet>(client, KubeObject::ReplicaSet),
        reflect::<ReplicationController>(client, KubeObject::ReplicationController),
        reflect::<Deployment>(client, KubeObject::Deployment),
        reflect::<StatefulSet>(client, KubeObject::StatefulSet),
        reflect::<DaemonSet>(client, KubeObject::DaemonSet),
        reflect::<Job>(client, KubeObject::Job),
        reflect::<CronJob>(client, KubeObject::CronJob),
        reflect::<NetworkPolicy>(client, KubeObject::NetworkPolicy),
    ]
}

/// A fingerprint of a snapshot, to skip imports when nothing changed.
fn fingerprint(objects: &[KubeObject]) -> u64 {
    let mut keys: Vec<(&str, &str, &str, &str)> = objects
        .iter()
        .map(|o| {
            let m = o.metadata();
            (
                o.kind(),
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or(""),
                m.resource_version.as_deref().unwrap_or(""),
            )
        })
        .collect();
    keys.sort_unstable();
    let mut h = DefaultHasher::new();
    keys.hash(&mut h);
    h.finish()
}

/// Watches the cluster behind `client` and records a snapshot in the store every `interval` in
/// which something changed. Runs until the task is dropped; `on_import` hears of each import.
pub async fn watch(
    client: Client,
    store: Store,
    cluster: i32,
    interval: Duration,
    mut on_import: impl FnMut(&crate::store::inventory::ImportReport, usize),
) -> crate::store::Result<()> {
    let kinds = kinds(&client);
    let mut last = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Until every kind has listed once, a snapshot would close objects merely not seen yet.
        if !kinds.iter().all(|k| k.ready()) {
            continue;
        }
        let objects: Vec<KubeObject> = kinds.iter().flat_map(|k| k.snapshot()).collect();
        let fp = fingerprint(&objects);
        if last == Some(fp) {
            continue;
        }
        let report = store.import(cluster, &objects, jiff::Timestamp::now()).await?;
        on_import(&report, objects.len());
        last = Some(fp);
    }
}
