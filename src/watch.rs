//! Watching a live cluster: kube-rs reflectors keep the current objects of every kind Flowgate
//! reads, and a snapshot is recorded in the store whenever it changed, so deletions close objects
//! and the time-aware inventory follows the cluster within one interval.
//!
//! An IO shell around `Store::import`; the Kubernetes API is reached through `kube::Client`
//! (kubeconfig or in-cluster service account, [`client`]).
//!
//! `flowgate watch` runs [`watch`] alone; `serve --kube` starts a [`Watcher`] beside the web
//! server: its [`Synced`] handle tells `/readyz` which kinds have not listed yet, and
//! [`Watcher::run`] records until the server's shutdown, outliving a database outage.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Debug;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::runtime::reflector::{self, Store as Reader};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::inventory::KubeObject;
use crate::metrics::{Counter, Metrics};
use crate::policy::admin::{AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy};
use crate::store::Store;
use crate::store::inventory::ImportReport;

/// The current objects of one kind.
trait Kind: Send + Sync {
    fn name(&self) -> &str;
    fn snapshot(&self) -> Vec<KubeObject>;
    fn ready(&self) -> bool;
}

struct Reflected<K: Resource<DynamicType = ()> + 'static> {
    kind: String,
    reader: Reader<K>,
    wrap: fn(K) -> KubeObject,
}

impl<K> Kind for Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.kind
    }
    fn snapshot(&self) -> Vec<KubeObject> {
        self.reader.state().iter().map(|o| (self.wrap)((**o).clone())).collect()
    }
    fn ready(&self) -> bool {
        // A reader is ready once its first full list has been applied.
        futures_util::FutureExt::now_or_never(self.reader.wait_until_ready()).is_some()
    }
}

/// Starts a reflector for one kind on the current runtime: its reader, and the task that feeds it.
fn reflect<K>(
    client: &Client,
    metrics: &Metrics,
    wrap: fn(K) -> KubeObject,
) -> (Arc<dyn Kind>, tokio::task::AbortHandle)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let (reader, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    // Without a backoff a watcher against an unreachable API server spins; with it, errors are
    // retried at growing intervals and logged once each.
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let restarts: Arc<Counter> = metrics.watch_restarts.get(&kind);
    let name = kind.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!("watching {name}: {e}");
                restarts.inc();
            }
        }
    });
    (Arc::new(Reflected { kind, reader, wrap }), task.abort_handle())
}

/// The cluster-scoped policy kinds of `policy.networking.k8s.io`, as kube-rs resources. Their
/// CRDs are installed in some clusters only ([`reflect_optional`]).
macro_rules! cluster_resource {
    ($ty:ty, $kind:literal, $version:literal, $plural:literal) => {
        impl Resource for $ty {
            type DynamicType = ();
            type Scope = kube::core::ClusterResourceScope;
            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                crate::policy::admin::GROUP.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
cluster_resource!(AdminNetworkPolicy, "AdminNetworkPolicy", "v1alpha1", "adminnetworkpolicies");
cluster_resource!(BaselineAdminNetworkPolicy, "BaselineAdminNetworkPolicy", "v1alpha1", "baselineadminnetworkpolicies");
cluster_resource!(ClusterNetworkPolicy, "ClusterNetworkPolicy", "v1alpha2", "clusternetworkpolicies");

/// List items come without `kind` and `apiVersion`; the stored object says them, as the loader
/// that reads it back asks (a ClusterNetworkPolicy must name its group: Antrea has one too).
fn anp(mut p: AdminNetworkPolicy) -> KubeObject {
    (p.api_version, p.kind) = (crate::policy::admin::V1ALPHA1.into(), crate::policy::admin::ANP_KIND.into());
    KubeObject::AdminNetworkPolicy(p)
}

fn banp(mut p: BaselineAdminNetworkPolicy) -> KubeObject {
    (p.api_version, p.kind) = (crate::policy::admin::V1ALPHA1.into(), crate::policy::admin::BANP_KIND.into());
    KubeObject::BaselineAdminNetworkPolicy(p)
}

fn cnp(mut p: ClusterNetworkPolicy) -> KubeObject {
    (p.api_version, p.kind) = (crate::policy::admin::V1ALPHA2.into(), crate::policy::admin::CNP_KIND.into());
    KubeObject::ClusterNetworkPolicy(p)
}

/// How often a kind whose CRD was not installed is looked for again.
const PROBE_EVERY: Duration = Duration::from_secs(300);

/// A kind that may be absent (a CRD not installed): absent, it counts as listed and empty.
struct Optional<K: Resource<DynamicType = ()> + 'static> {
    inner: Reflected<K>,
    /// 0 not known yet, 1 absent, 2 present.
    state: Arc<std::sync::atomic::AtomicU8>,
}

impl<K> Kind for Optional<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn snapshot(&self) -> Vec<KubeObject> {
        match self.state.load(std::sync::atomic::Ordering::SeqCst) {
            2 => self.inner.snapshot(),
            _ => Vec::new(),
        }
    }
    fn ready(&self) -> bool {
        match self.state.load(std::sync::atomic::Ordering::SeqCst) {
            1 => true,
            2 => self.inner.ready(),
            _ => false,
        }
    }
}

/// [`reflect`] for a kind whose CRD may not be installed: a list of one object tells; a 404 marks
/// it absent (listed, empty) and it is looked for again every [`PROBE_EVERY`]; once present, its
/// reflector runs as any other's.
fn reflect_optional<K>(
    client: &Client,
    metrics: &Metrics,
    wrap: fn(K) -> KubeObject,
) -> (Arc<dyn Kind>, tokio::task::AbortHandle)
where
    K: Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    use std::sync::atomic::Ordering;
    let kind = K::kind(&()).into_owned();
    let (reader, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    let restarts: Arc<Counter> = metrics.watch_restarts.get(&kind);
    let state = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let (name, flag) = (kind.clone(), state.clone());
    let task = tokio::spawn(async move {
        loop {
            match api.list(&kube::api::ListParams::default().limit(1)).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    if flag.swap(1, Ordering::SeqCst) != 1 {
                        tracing::info!(
                            "watch: {name} is not installed in the cluster (looked for again every {}s)",
                            PROBE_EVERY.as_secs()
                        );
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                Err(e) => {
                    tracing::warn!("watching {name}: {e}");
                    restarts.inc();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok(_) => break,
            }
        }
        flag.store(2, Ordering::SeqCst);
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!("watching {name}: {e}");
                restarts.inc();
            }
        }
    });
    (Arc::new(Optional { inner: Reflected { kind, reader, wrap }, state }), task.abort_handle())
}

/// A reflector per kind Flowgate reads, running until the `Watcher` is dropped. The deployment's
/// ClusterRole (`deploy/base/clusterrole.yaml`) grants list and watch of exactly these; a test
/// in `tests/watch.rs` compares it with the requests made.
pub struct Watcher {
    kinds: Arc<[Arc<dyn Kind>]>,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// Which kinds have listed once, for `/readyz`: a clone of a [`Watcher`]'s readers.
#[derive(Clone)]
pub struct Synced(Arc<[Arc<dyn Kind>]>);

impl Synced {
    /// The kinds whose first list has not arrived yet, in the watcher's order.
    pub fn pending(&self) -> Vec<String> {
        self.0.iter().filter(|k| !k.ready()).map(|k| k.name().to_string()).collect()
    }
}

impl Watcher {
    /// Starts every reflector on the current runtime; watch errors go to the log and to
    /// `metrics.watch_restarts`.
    pub fn start(client: &Client, metrics: &Metrics) -> Watcher {
        let started = [
            reflect::<Namespace>(client, metrics, KubeObject::Namespace),
            reflect::<Node>(client, metrics, KubeObject::Node),
            reflect::<Pod>(client, metrics, KubeObject::Pod),
            reflect::<Service>(client, metrics, KubeObject::Service),
            reflect::<EndpointSlice>(client, metrics, KubeObject::EndpointSlice),
            reflect::<ReplicaSet>(client, metrics, KubeObject::ReplicaSet),
            reflect::<ReplicationController>(client, metrics, KubeObject::ReplicationController),
            reflect::<Deployment>(client, metrics, KubeObject::Deployment),
            reflect::<StatefulSet>(client, metrics, KubeObject::StatefulSet),
            reflect::<DaemonSet>(client, metrics, KubeObject::DaemonSet),
            reflect::<Job>(client, metrics, KubeObject::Job),
            reflect::<CronJob>(client, metrics, KubeObject::CronJob),
            reflect::<NetworkPolicy>(client, metrics, KubeObject::NetworkPolicy),
            reflect::<Ingress>(client, metrics, KubeObject::Ingress),
            reflect_optional::<AdminNetworkPolicy>(client, metrics, anp),
            reflect_optional::<BaselineAdminNetworkPolicy>(client, metrics, banp),
            reflect_optional::<ClusterNetworkPolicy>(client, metrics, cnp),
        ];
        let (kinds, tasks): (Vec<_>, Vec<_>) = started.into_iter().unzip();
        Watcher { kinds: kinds.into(), tasks }
    }

    pub fn synced(&self) -> Synced {
        Synced(self.kinds.clone())
    }

    /// One tick: the snapshot is imported when every kind has listed and it changed since `last`.
    async fn pass(
        &self,
        store: &Store,
        cluster: i32,
        last: &mut Option<u64>,
    ) -> crate::store::Result<Option<(ImportReport, usize)>> {
        // Until every kind has listed once, a snapshot would close objects merely not seen yet.
        if !self.kinds.iter().all(|k| k.ready()) {
            return Ok(None);
        }
        let objects: Vec<KubeObject> = self.kinds.iter().flat_map(|k| k.snapshot()).collect();
        let fp = fingerprint(&objects);
        if *last == Some(fp) {
            return Ok(None);
        }
        let report = store.import(cluster, &objects, jiff::Timestamp::now()).await?;
        *last = Some(fp);
        Ok(Some((report, objects.len())))
    }

    /// `serve --kube`: records a changed snapshot every `interval` until `stop` completes (an
    /// import under way finishes first), then stops the reflectors. A failed import (PostgreSQL
    /// away) is logged when the outage starts and when it ends, and tried again at every tick.
    pub async fn run(self, store: Store, cluster: i32, interval: Duration, stop: impl Future<Output = ()>) {
        let mut last = None;
        let mut failing = false;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            match self.pass(&store, cluster, &mut last).await {
                Ok(recorded) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("watch: recording resumed");
                    }
                    if let Some((report, n)) = recorded {
                        log_import(&report, n);
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("watch: recording a snapshot: {e} (trying again at every tick)");
                }
                Err(e) => tracing::debug!("watch: {e}"),
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What one import did, in the server's log: its counts, and its first warnings.
fn log_import(r: &ImportReport, n: usize) {
    const SHOWN: usize = 10;
    for w in r.warnings.iter().take(SHOWN) {
        tracing::warn!("watch: {w}");
    }
    if r.warnings.len() > SHOWN {
        tracing::warn!("watch: {} more warnings", r.warnings.len() - SHOWN);
    }
    tracing::info!(
        "watch: recorded {} objects: {} added, {} updated, {} closed, {} skipped (invalid names)",
        n.saturating_sub(r.skipped as usize),
        r.added,
        r.updated,
        r.closed,
        r.skipped
    );
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
/// which something changed (`flowgate watch`). Runs until the task is dropped or an import fails;
/// `on_import` hears of each import.
pub async fn watch(
    client: Client,
    store: Store,
    cluster: i32,
    interval: Duration,
    mut on_import: impl FnMut(&ImportReport, usize),
) -> crate::store::Result<()> {
    let watcher = Watcher::start(&client, &Metrics::default());
    let mut last = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some((report, n)) = watcher.pass(&store, cluster, &mut last).await? {
            on_import(&report, n);
        }
    }
}

/// A client for the cluster: `kubeconfig` (and `context` in it) when given; else the default
/// kubeconfig (`KUBECONFIG`, `~/.kube/config`) when a `context` is named; else whatever
/// `kube::Config::infer` finds (the in-cluster service account, or the default kubeconfig).
pub async fn client(kubeconfig: Option<&Path>, context: Option<String>) -> anyhow::Result<Client> {
    let options = kube::config::KubeConfigOptions { context, ..Default::default() };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    };
    Client::try_from(config).context("Kubernetes client")
}
