//! Enrichment: a flow plus the inventory at the flow's time gives Kubernetes-level endpoints.
//!
//! Order of evidence for one address: a pod that held it at that time (host-network pods count as
//! their node), a node, a ClusterIP (translated to the Service's backing workloads and their real
//! port), then what the flow source said (Hubble's namespace, pod name, labels, workload), then the
//! address ranges: inside the cluster's ranges is "unresolved", outside "external".

use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::inventory::{AddressHit, Inventory, resolve_target};
use crate::model::{FlowRecord, Labels, ObservedEndpoint, Port, Protocol, Reserved, WorkloadKind, WorkloadRef};

/// The node name of an address with Cilium's `kube-apiserver` identity, and of its `ingress`
/// proxy: Cilium's dialect names them as those entities (`policy::generate::NodeRole`).
pub const APISERVER_NODE: &str = "kube-apiserver";
pub const INGRESS_NODE: &str = "cilium-ingress";

/// What a node endpoint is, as Cilium's reserved identities tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRole {
    /// A cluster node: Cilium's `host` (the pod's own node) or `remote-node` (any other).
    Node,
    /// The Kubernetes API server (`kube-apiserver`).
    ApiServer,
    /// Cilium's own Ingress/Gateway proxy (`ingress`).
    Ingress,
}

impl NodeRole {
    /// The role of a node endpoint, by the name enrichment gave it ([`APISERVER_NODE`],
    /// [`INGRESS_NODE`]; any other name is a node's).
    pub fn of(node_name: &str) -> NodeRole {
        match node_name {
            APISERVER_NODE => NodeRole::ApiServer,
            INGRESS_NODE => NodeRole::Ingress,
            _ => NodeRole::Node,
        }
    }
}

/// One end of a connection at Kubernetes level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    Workload { workload: WorkloadRef },
    Node { name: String, ip: IpAddr },
    External { ip: IpAddr },
    Unresolved { ip: IpAddr },
}

impl Endpoint {
    /// The end `spec` names, as the inventory classifies it: a workload, or one address (a
    /// node's, one inside the cluster's ranges that matches nothing: unresolved, else external).
    /// A range is not one end: an error naming `what`.
    pub fn named(inv: &Inventory, spec: &crate::model::PeerSpec, what: &str) -> Result<Endpoint, String> {
        use crate::model::PeerSpec;
        match spec {
            PeerSpec::Workload(w) => Ok(Endpoint::Workload { workload: w.clone() }),
            PeerSpec::Net(c) if c.net().prefix_len() == c.net().max_prefix_len() => {
                let ip = c.net().addr();
                if let Some(n) = inv.nodes.iter().find(|n| n.ips.contains(&ip)) {
                    return Ok(Endpoint::Node { name: n.name.clone(), ip });
                }
                Ok(if inv.cluster_cidrs.iter().any(|r| r.contains(&ip)) {
                    Endpoint::Unresolved { ip }
                } else {
                    Endpoint::External { ip }
                })
            }
            PeerSpec::Net(c) => Err(format!("{what} {c}: expected one address, not a range")),
        }
    }

    pub fn workload(&self) -> Option<&WorkloadRef> {
        match self {
            Endpoint::Workload { workload } => Some(workload),
            _ => None,
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Workload { .. } => None,
            Endpoint::Node { ip, .. } | Endpoint::External { ip } | Endpoint::Unresolved { ip } => Some(*ip),
        }
    }

    /// How tables name the peer: `kind/namespace/name`, `node/NAME (IP)`, or the bare address
    /// (its class is shown beside it).
    pub fn label(&self) -> String {
        match self {
            Endpoint::Workload { workload } => workload.to_string(),
            Endpoint::Node { name, ip } => format!("node/{name} ({ip})"),
            Endpoint::External { ip } | Endpoint::Unresolved { ip } => ip.to_string(),
        }
    }

    /// `in-cluster`, `node`, `external` or `unresolved`: the flag the review tables show.
    pub fn class(&self) -> &'static str {
        match self {
            Endpoint::Workload { .. } => "in-cluster",
            Endpoint::Node { .. } => "node",
            Endpoint::External { .. } => "external",
            Endpoint::Unresolved { .. } => "unresolved",
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Workload { workload } => workload.fmt(f),
            Endpoint::Node { name, ip } => write!(f, "node/{name} ({ip})"),
            Endpoint::External { ip } => write!(f, "{ip} (external)"),
            Endpoint::Unresolved { ip } => write!(f, "{ip} (unresolved)"),
        }
    }
}

/// A flow at Kubernetes level. A flow to a ClusterIP whose Service is backed by pods of several
/// workloads becomes one `Enriched` per workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enriched {
    pub src: Endpoint,
    pub dst: Endpoint,
    /// The port the destination pod listens on (the Service's targetPort, never its port).
    pub port: Port,
    pub protocol: Protocol,
    /// The Service the flow went through: namespace, name, Service port.
    pub service: Option<(String, String, u16)>,
    /// Labels the flow source reported for an end the inventory does not know.
    pub learned: Vec<(WorkloadRef, Labels)>,
    /// How those workloads were told from what the flow source said (for the summary).
    pub inferred: Vec<(WorkloadRef, Inference)>,
    /// Ends that carry a pod identity (namespace and labels) but no pod name, and whose address
    /// matches no pod: the end is `Unresolved` here, and
    /// [`Connections::settle`](crate::topology::Connections::settle) gives it the workload whose
    /// pods carry exactly that identity, once the whole input has been seen.
    pub identities: Vec<PendingIdentity>,
}

/// A pod identity without a pod: what Cilium's proxy and masqueraded flows carry (they leave from
/// the node's `cilium_host` address with the pod's security identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PendingIdentity {
    /// Which end: the source (`true`) or the destination.
    pub src: bool,
    pub namespace: String,
    pub labels: Labels,
}

pub use crate::model::Inference;

impl Inference {
    pub fn describe(self) -> &'static str {
        match self {
            Inference::HubbleWorkloads => "named by Hubble's workloads field",
            Inference::PodTemplateHash => "pod name <deployment>-<pod-template-hash>-<suffix>",
            Inference::Ordinal => "pod name <statefulset>-<ordinal>",
            Inference::JobName => "job-name label",
            Inference::CronJobName => "job-name label <cronjob>-<schedule>",
            Inference::RevisionHash => "pod name <daemonset>-<suffix> with a revision label",
            Inference::SameLabels => "several <name>-<suffix> pods with one label set",
            Inference::BarePod => "a bare pod (nothing names an owner)",
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn side(
    inv: &Inventory,
    ip: IpAddr,
    t: Timestamp,
    meta: Option<&Arc<ObservedEndpoint>>,
    is_src: bool,
    learned: &mut Vec<(WorkloadRef, Labels)>,
    inferred: &mut Vec<(WorkloadRef, Inference)>,
    identities: &mut Vec<PendingIdentity>,
    known: &impl Fn(&WorkloadRef, &Arc<ObservedEndpoint>) -> bool,
) -> Endpoint {
    if let Some(hit) = lookup(inv, ip, t) {
        match hit {
            AddressHit::Pod(p) if p.host_network => {
                return Endpoint::Node { name: p.node.clone().unwrap_or_else(|| ip.to_string()), ip };
            }
            AddressHit::Pod(p) => return Endpoint::Workload { workload: p.owner.clone() },
            AddressHit::Node(n) => return Endpoint::Node { name: n.name.clone(), ip },
            AddressHit::Service(_) => {}
        }
    }
    let fallback = if inv.in_cluster_range(&ip) { Endpoint::Unresolved { ip } } else { Endpoint::External { ip } };
    let Some(meta) = meta else { return fallback };
    // Cilium's reserved identities say what the address is when no pod holds it.
    match meta.reserved {
        Some(Reserved::Host | Reserved::RemoteNode | Reserved::Health) => {
            return Endpoint::Node { name: ip.to_string(), ip };
        }
        Some(Reserved::KubeApiserver) => return Endpoint::Node { name: APISERVER_NODE.into(), ip },
        // Cilium's own Ingress/Gateway proxy, which runs on the node.
        Some(Reserved::Ingress) => return Endpoint::Node { name: INGRESS_NODE.into(), ip },
        _ => {}
    }
    if let Some(ns) = &meta.namespace {
        if let Some(pod) = &meta.pod_name {
            if let Some((w, how)) = meta.owner.get_or_init(|| observed_workload(ns, pod, meta)) {
                if !meta.labels.is_empty() && !known(w, meta) {
                    learned.push((w.clone(), meta.labels.clone()));
                    inferred.push((w.clone(), *how));
                }
                return Endpoint::Workload { workload: w.clone() };
            }
        } else if !meta.labels.is_empty() && meta.reserved.is_none() && crate::model::Name::namespace(ns).is_ok() {
            identities.push(PendingIdentity { src: is_src, namespace: ns.clone(), labels: meta.labels.clone() });
            return Endpoint::Unresolved { ip };
        }
    }
    // `world` is outside the cluster even at a private address (a VM in the VPC, a cloud API).
    if meta.reserved == Some(Reserved::World) {
        return Endpoint::External { ip };
    }
    fallback
}

fn lookup(inv: &Inventory, ip: IpAddr, t: Timestamp) -> Option<AddressHit<'_>> {
    if let Some(p) = inv.pod_at(&ip, t) {
        return Some(AddressHit::Pod(p));
    }
    inv.node_by_ip(&ip).map(AddressHit::Node)
}

/// The workload of a pod the inventory does not know, from what Hubble reported: its
/// `workloads` field when present, otherwise the shape of the generated pod name and the labels
/// controllers set.
pub fn observed_workload(ns: &str, pod: &str, meta: &ObservedEndpoint) -> Option<(WorkloadRef, Inference)> {
    if crate::model::Name::namespace(ns).is_err() || crate::model::Name::of_kind("Pod", pod).is_err() {
        return None;
    }
    if let Some((kind, name)) = &meta.workload
        && crate::model::NameRule::for_workload(*kind).is_valid(name)
    {
        return Some((WorkloadRef::new(*kind, ns, name.clone()), Inference::HubbleWorkloads));
    }
    // A name inferred from a valid pod name may still break its kind's rule (a pod `db.x-0`
    // would make StatefulSet `db.x`): then the pod is its own workload, as Kubernetes allows it.
    match infer_from_pod(pod, &meta.labels) {
        (kind, name, how) if crate::model::NameRule::for_workload(kind).is_valid(&name) => {
            Some((WorkloadRef::new(kind, ns, name), how))
        }
        _ => Some((WorkloadRef::new(WorkloadKind::Pod, ns, pod), Inference::BarePod)),
    }
}

/// `<base>-<5 alphanumerics>`: the random suffix ReplicaSets, DaemonSets and Jobs give their pods.
fn split_suffix(pod: &str) -> Option<&str> {
    let (base, suffix) = pod.rsplit_once('-')?;
    // `web--x2x9q` is a valid pod name, but `web-` is no valid name for its owner.
    (suffix.len() == 5
        && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && crate::model::NameRule::for_kind("Deployment").is_valid(base))
    .then_some(base)
}

/// The owner a pod's name and labels point to:
/// - `web-7d9f8b6c5d-x2x9q` -> Deployment `web`;
/// - `job-name: backup-29061440` on `backup-29061440-k2x9p` -> CronJob `backup` (a Job named
///   `<cronjob>-<minutes since the epoch>`), `job-name: migrate` -> Job `migrate`;
/// - `agent-x7k2p` with `controller-revision-hash` or `pod-template-generation` -> DaemonSet `agent`;
/// - `db-0` (or `statefulset.kubernetes.io/pod-name`) -> StatefulSet `db`;
/// - anything else is a bare pod. Cilium leaves the revision labels out of identities, so a
///   DaemonSet seen only through Hubble is told by its pods sharing one label set instead
///   ([`Connections::settle`](crate::topology::Connections::settle)).
pub fn infer_from_pod(pod: &str, labels: &Labels) -> (WorkloadKind, String, Inference) {
    let inferred = infer_owner(pod, labels);
    // The owner's name becomes a key and a URL, so it must be a valid name itself: `web--x2x9q`,
    // `web--7d9f8b6c5d-x2x9q` or `web--0` (valid pod names) would give `web-`, a key the store
    // could not read back. Such a pod stands for itself.
    if crate::model::NameRule::for_workload(inferred.0).is_valid(&inferred.1) {
        inferred
    } else {
        (WorkloadKind::Pod, pod.to_string(), Inference::BarePod)
    }
}

fn infer_owner(pod: &str, labels: &Labels) -> (WorkloadKind, String, Inference) {
    let job = labels.get("batch.kubernetes.io/job-name").or_else(|| labels.get("job-name"));
    if let Some(job) = job
        && split_suffix(pod) == Some(job.as_str())
        && crate::model::NameRule::for_kind("Job").is_valid(job)
    {
        if let Some((cronjob, stamp)) = job.rsplit_once('-')
            && stamp.len() >= 8
            && stamp.bytes().all(|b| b.is_ascii_digit())
            && !cronjob.is_empty()
        {
            return (WorkloadKind::CronJob, cronjob.to_string(), Inference::CronJobName);
        }
        return (WorkloadKind::Job, job.clone(), Inference::JobName);
    }
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if let [suffix, hash, base] = parts.as_slice() {
        let is_suffix = suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
        let is_hash = (6..=10).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_alphanumeric());
        if is_suffix && is_hash && !base.is_empty() {
            return (WorkloadKind::Deployment, base.to_string(), Inference::PodTemplateHash);
        }
    }
    if let Some(base) = split_suffix(pod)
        && (labels.contains_key("controller-revision-hash") || labels.contains_key("pod-template-generation"))
        && !labels.contains_key("statefulset.kubernetes.io/pod-name")
    {
        return (WorkloadKind::DaemonSet, base.to_string(), Inference::RevisionHash);
    }
    if let Some((base, ordinal)) = pod.rsplit_once('-')
        && !base.is_empty()
        && !ordinal.is_empty()
        && ordinal.len() <= 4
        && ordinal.bytes().all(|b| b.is_ascii_digit())
    {
        return (WorkloadKind::StatefulSet, base.to_string(), Inference::Ordinal);
    }
    (WorkloadKind::Pod, pod.to_string(), Inference::BarePod)
}

/// Whether a bare pod's name has the `<base>-<suffix>` shape of a controller's pods; the base.
pub fn suffixed_base(pod: &str) -> Option<&str> {
    split_suffix(pod)
}

/// Answers a caller gave for ends as the parsers share them (`Arc`s of one endpoint text),
/// remembered by address: each end is then looked up by its labels once, not in every flow. It
/// holds every end it answers for, so no other end can take that address while it is kept; at
/// [`KnownEnds::MAX`] ends it forgets them all and starts again.
#[derive(Debug)]
pub struct KnownEnds<V = ()>(std::sync::Mutex<rustc_hash::FxHashMap<usize, (Arc<ObservedEndpoint>, V)>>);

impl<V> Default for KnownEnds<V> {
    fn default() -> Self {
        KnownEnds(Default::default())
    }
}

impl<V: Clone> KnownEnds<V> {
    pub const MAX: usize = 65_536;

    pub fn get(&self, end: &Arc<ObservedEndpoint>) -> Option<V> {
        let ends = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ends.get(&(Arc::as_ptr(end) as usize)).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, end: &Arc<ObservedEndpoint>, v: V) {
        let mut ends = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ends.len() >= Self::MAX {
            ends.clear();
        }
        ends.insert(Arc::as_ptr(end) as usize, (end.clone(), v));
    }
}

/// Enriches one flow. Never fails: what cannot be resolved is `Unresolved` or `External`.
pub fn enrich(inv: &Inventory, flow: &FlowRecord) -> Vec<Enriched> {
    enrich_learning(inv, flow, |_, _| false)
}

/// [`enrich`], leaving out of `learned` the label sets (an end's `labels`) for which `known` says
/// the caller has no use (typically: already in its catalog). A busy stream repeats the same few
/// label sets in every flow, and copying them for each one was most of the cost of folding a flow
/// in. The end is given as the parsers share it, so that a caller can remember its answer for
/// that end ([`KnownEnds`]).
pub fn enrich_learning(
    inv: &Inventory,
    flow: &FlowRecord,
    known: impl Fn(&WorkloadRef, &Arc<ObservedEndpoint>) -> bool,
) -> Vec<Enriched> {
    let (mut learned, mut inferred, mut identities) = (Vec::new(), Vec::new(), Vec::new());
    let t = flow.time;
    let src =
        side(inv, flow.src_ip, t, flow.src_meta.as_ref(), true, &mut learned, &mut inferred, &mut identities, &known);
    let mut out = Vec::with_capacity(1);
    // A ClusterIP is only ever a destination; pods never hold one, so check Services first.
    if inv.pod_at(&flow.dst_ip, t).is_none()
        && let Some(svc) = inv.service_at(&flow.dst_ip, t)
    {
        let via = Some((svc.namespace.clone(), svc.name.clone(), flow.dst_port.get()));
        let backends = inv.service_backends(svc, flow.dst_port.get(), flow.protocol, t);
        let mut targets: Vec<(Endpoint, Port)> = backends
            .iter()
            .map(|(pod, real)| {
                let dst = if pod.host_network {
                    Endpoint::Node {
                        name: pod.node.clone().unwrap_or_default(),
                        ip: pod.ips.first().copied().unwrap_or(flow.dst_ip),
                    }
                } else {
                    Endpoint::Workload { workload: pod.owner.clone() }
                };
                (dst, real.and_then(Port::new).unwrap_or(flow.dst_port))
            })
            .collect();
        if targets.is_empty() {
            // No pod backed the Service at that time in the snapshot: fall back to the
            // workloads its selector matches, with their declared ports.
            let sp = svc.ports.iter().find(|p| p.port == flow.dst_port.get() && p.protocol == flow.protocol);
            for w in inv.service_workloads(svc) {
                let port = sp
                    .and_then(|sp| match &sp.target {
                        crate::inventory::TargetPort::Number(n) => Some(*n),
                        crate::inventory::TargetPort::Name(name) => w
                            .ports
                            .iter()
                            .find(|p| p.protocol == flow.protocol && p.name.as_deref() == Some(name.as_str()))
                            .map(|p| p.port),
                    })
                    .and_then(Port::new)
                    .unwrap_or(flow.dst_port);
                targets.push((Endpoint::Workload { workload: w.workload.clone() }, port));
            }
        }
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            targets.push((Endpoint::Unresolved { ip: flow.dst_ip }, flow.dst_port));
        }
        for (dst, port) in targets {
            out.push(Enriched {
                src: src.clone(),
                dst,
                port,
                protocol: flow.protocol,
                service: via.clone(),
                learned: learned.clone(),
                inferred: inferred.clone(),
                identities: identities.clone(),
            });
        }
        return out;
    }
    let dst =
        side(inv, flow.dst_ip, t, flow.dst_meta.as_ref(), false, &mut learned, &mut inferred, &mut identities, &known);
    let service = flow.dst_service.as_ref().map(|(ns, name)| {
        // Hubble reports the Service but the already-translated backend port; find the Service port.
        let svc_port = inv
            .service(ns, name)
            .and_then(|s| {
                let pod = inv.pod_at(&flow.dst_ip, t);
                s.ports.iter().find(|p| {
                    p.protocol == flow.protocol
                        && match pod {
                            Some(pod) => resolve_target(&p.target, pod, flow.protocol) == Some(flow.dst_port.get()),
                            None => p.target == crate::inventory::TargetPort::Number(flow.dst_port.get()),
                        }
                })
            })
            .map(|p| p.port)
            .unwrap_or(flow.dst_port.get());
        (ns.clone(), name.clone(), svc_port)
    });
    out.push(Enriched {
        src,
        dst,
        port: flow.dst_port,
        protocol: flow.protocol,
        service,
        learned,
        inferred,
        identities,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::parse_text;

    #[test]
    fn infers_workloads_from_pod_names_and_labels() {
        use Inference::*;
        let none: &[(&str, &str)] = &[];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], WorkloadKind, &'a str, Inference);
        let cases: &[Case] = &[
            ("reviews-v1-545db77b95-s6jb8", none, WorkloadKind::Deployment, "reviews-v1", PodTemplateHash),
            ("coredns-5d78c9869d-abcde", none, WorkloadKind::Deployment, "coredns", PodTemplateHash),
            ("mongo-0", none, WorkloadKind::StatefulSet, "mongo", Ordinal),
            ("web-12", none, WorkloadKind::StatefulSet, "web", Ordinal),
            ("debug", none, WorkloadKind::Pod, "debug", BarePod),
            ("cilium-x7k2p", none, WorkloadKind::Pod, "cilium-x7k2p", BarePod),
            (
                "cilium-x7k2p",
                &[("controller-revision-hash", "5d9c"), ("k8s-app", "cilium")],
                WorkloadKind::DaemonSet,
                "cilium",
                RevisionHash,
            ),
            ("fluentd-9xk2p", &[("pod-template-generation", "3")], WorkloadKind::DaemonSet, "fluentd", RevisionHash),
            ("migrate-q8k2z", &[("job-name", "migrate")], WorkloadKind::Job, "migrate", JobName),
            ("migrate-q8k2z", &[("batch.kubernetes.io/job-name", "migrate")], WorkloadKind::Job, "migrate", JobName),
            ("backup-29061440-k2x9p", &[("job-name", "backup-29061440")], WorkloadKind::CronJob, "backup", CronJobName),
            // A job-name that is not the pod's base says nothing.
            ("other-q8k2z", &[("job-name", "migrate")], WorkloadKind::Pod, "other-q8k2z", BarePod),
            ("web-0", &[("controller-revision-hash", "web-6c4d")], WorkloadKind::StatefulSet, "web", Ordinal),
            // Found by `scripts/fuzz pipeline`: valid pod names whose owner name would not be
            // valid (`web-`), so its key did not read back. They stand for themselves.
            ("web--1234567-abcde", none, WorkloadKind::Pod, "web--1234567-abcde", BarePod),
            ("web--0", none, WorkloadKind::Pod, "web--0", BarePod),
            ("web--x7k2p", &[("controller-revision-hash", "5d9c")], WorkloadKind::Pod, "web--x7k2p", BarePod),
            (
                "backup--29061440-k2x9p",
                &[("job-name", "backup--29061440")],
                WorkloadKind::Pod,
                "backup--29061440-k2x9p",
                BarePod,
            ),
        ];
        // An inferred name its kind forbids (a StatefulSet may not hold a '.'): the bare pod.
        let meta =
            ObservedEndpoint { namespace: Some("shop".into()), pod_name: Some("db.x-0".into()), ..Default::default() };
        assert_eq!(
            observed_workload("shop", "db.x-0", &meta),
            Some((WorkloadRef::new(WorkloadKind::Pod, "shop", "db.x-0"), Inference::BarePod))
        );
        for (pod, labels, kind, name, how) in cases {
            let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(infer_from_pod(pod, &labels), (*kind, name.to_string(), *how), "{pod}");
            let w = WorkloadRef::new(*kind, "ns", name.to_string());
            let key = Endpoint::Workload { workload: w.clone() }.key();
            assert_eq!(Endpoint::from_key(&key), Some(Endpoint::Workload { workload: w }), "{pod}");
        }
        // Nor do such pods group into a DaemonSet named `web-` (`Connections::settle`).
        assert_eq!(suffixed_base("web-x7k2p"), Some("web"));
        assert_eq!(suffixed_base("web--x7k2p"), None);
    }

    #[test]
    fn reserved_identities_and_pod_identities() {
        let inv = Inventory::build(&parse_text(INV, "inv.json").objects);
        let meta = |labels: &[&str], ns: Option<&str>, pod: Option<&str>| {
            let mut m = ObservedEndpoint {
                namespace: ns.map(str::to_string),
                pod_name: pod.map(str::to_string),
                ..Default::default()
            };
            for l in labels {
                match l.strip_prefix("reserved:") {
                    Some("host") => m.reserved = Some(Reserved::Host),
                    Some("remote-node") => m.reserved = Some(Reserved::RemoteNode),
                    Some("kube-apiserver") => m.reserved = Some(Reserved::KubeApiserver),
                    Some("world") => m.reserved = Some(Reserved::World),
                    Some("ingress") => m.reserved = Some(Reserved::Ingress),
                    Some(_) => m.reserved = Some(Reserved::Unknown),
                    None => {
                        let (k, v) = l.split_once('=').unwrap();
                        m.labels.insert(k.into(), v.into());
                    }
                }
            }
            m
        };
        let src_of = |m: ObservedEndpoint, ip: &str| {
            let mut f = flow(ip, "10.244.0.9", 8080, "2024-01-01T03:00:00Z");
            f.src_meta = Some(m.into());
            enrich(&inv, &f).remove(0)
        };
        // (labels, namespace, pod, address, the source as enrichment names it)
        type Case<'a> = (&'a [&'a str], Option<&'a str>, Option<&'a str>, &'a str, &'a str);
        let cases: &[Case] = &[
            (&["reserved:remote-node"], None, None, "10.244.1.29", "node/10.244.1.29 (10.244.1.29)"),
            (&["reserved:host"], None, None, "10.244.0.148", "node/10.244.0.148 (10.244.0.148)"),
            (&["reserved:kube-apiserver"], None, None, "10.0.0.1", "node/kube-apiserver (10.0.0.1)"),
            (&["reserved:ingress"], None, None, "10.244.0.50", "node/cilium-ingress (10.244.0.50)"),
            // world at a private address is still outside the cluster.
            (&["reserved:world"], None, None, "10.128.0.4", "10.128.0.4 (external)"),
            // A pod name wins over an odd world identity (seen in a GKE capture).
            (
                &["reserved:world"],
                Some("kube-system"),
                Some("kube-dns-b4f5c58c7-7qmtw"),
                "10.156.3.6",
                "deployment/kube-system/kube-dns",
            ),
            (
                &["app=productpage"],
                Some("bookinfo"),
                Some("productpage-v1-6b746f74dc-9rcxx"),
                "10.244.0.177",
                "deployment/bookinfo/productpage-v1",
            ),
            // No address or reserved label to go by: the ranges.
            (&[], None, None, "10.244.0.77", "10.244.0.77 (unresolved)"),
        ];
        for (labels, ns, pod, ip, want) in cases {
            let e = src_of(meta(labels, *ns, *pod), ip);
            assert_eq!(e.src.to_string(), *want, "{labels:?}");
            assert!(e.identities.is_empty());
        }
        // An identity without a pod name is left for settle, on the right end.
        let e = src_of(meta(&["app=productpage", "version=v1"], Some("bookinfo"), None), "10.244.0.148");
        assert_eq!(e.src, Endpoint::Unresolved { ip: "10.244.0.148".parse().unwrap() });
        assert_eq!(
            e.identities,
            vec![PendingIdentity {
                src: true,
                namespace: "bookinfo".into(),
                labels: Labels::from([("app".into(), "productpage".into()), ("version".into(), "v1".into())])
            }]
        );
    }

    const INV: &str = r#"
{"apiVersion":"v1","kind":"List","items":[
 {"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"spec":{"podCIDR":"10.244.0.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"172.18.0.2"}]}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"old-0","namespace":"a","creationTimestamp":"2024-01-01T00:00:00Z","deletionTimestamp":"2024-01-01T01:00:00Z","ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"old","uid":"1","controller":true}]},"spec":{"containers":[{"name":"c"}]},"status":{"podIP":"10.244.0.7"}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"new-0","namespace":"a","labels":{"app":"web"},"creationTimestamp":"2024-01-01T02:00:00Z","ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"new","uid":"2","controller":true}]},"spec":{"containers":[{"name":"c","ports":[{"name":"http","containerPort":8080}]}]},"status":{"podIP":"10.244.0.7"}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"client","namespace":"a","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"containers":[{"name":"c"}]},"status":{"podIP":"10.244.0.9"}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"hostpod","namespace":"kube-system","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"hostNetwork":true,"nodeName":"n1","containers":[{"name":"c"}]},"status":{"podIP":"172.18.0.2"}},
 {"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"a"},"spec":{"clusterIP":"10.96.0.10","selector":{"app":"web"},"ports":[{"port":80,"targetPort":"http"}]}}
]}"#;

    fn flow(src: &str, dst: &str, port: u16, time: &str) -> FlowRecord {
        let mut f = FlowRecord::between(
            time.parse().unwrap(),
            src.parse().unwrap(),
            dst.parse().unwrap(),
            Port::new(port).unwrap(),
            Protocol::Tcp,
        );
        f.src_port = Some(40000);
        f.verdict = Default::default();
        f
    }

    #[test]
    fn resolves_by_time_service_node_and_ranges() {
        let loaded = parse_text(INV, "inv.json");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mut inv = Inventory::build(&loaded.objects);
        inv.add_cluster_cidrs(&["10.96.0.0/12".parse().unwrap()]);
        let one = |f: FlowRecord| {
            let e = enrich(&inv, &f);
            assert_eq!(e.len(), 1);
            (e[0].src.to_string(), e[0].dst.to_string(), e[0].port.get())
        };
        // The recycled IP belongs to `old` before its deletion and to `new` after its creation.
        assert_eq!(one(flow("10.244.0.9", "10.244.0.7", 80, "2024-01-01T00:30:00Z")).1, "statefulset/a/old");
        assert_eq!(one(flow("10.244.0.9", "10.244.0.7", 80, "2024-01-01T03:00:00Z")).1, "statefulset/a/new");
        // Between the two lives nobody holds it: inside the pod range, so unresolved.
        assert_eq!(one(flow("10.244.0.9", "10.244.0.7", 80, "2024-01-01T01:30:00Z")).1, "10.244.0.7 (unresolved)");
        // A ClusterIP translates to the backing workload and the named targetPort.
        let (src, dst, port) = one(flow("10.244.0.9", "10.96.0.10", 80, "2024-01-01T03:00:00Z"));
        assert_eq!((src.as_str(), dst.as_str(), port), ("pod/a/client", "statefulset/a/new", 8080));
        // Before its pod existed, the Service still maps to the workload its selector matches.
        assert_eq!(one(flow("10.244.0.9", "10.96.0.10", 80, "2024-01-01T00:30:00Z")).2, 8080);
        assert_eq!(one(flow("172.18.0.2", "10.244.0.9", 8080, "2024-01-01T03:00:00Z")).0, "node/n1 (172.18.0.2)");
        assert_eq!(
            one(flow("10.244.0.9", "192.229.173.207", 443, "2024-01-01T03:00:00Z")).1,
            "192.229.173.207 (external)"
        );
    }

    #[test]
    fn learning_leaves_out_only_what_the_caller_knows() {
        let inv = Inventory::build(&parse_text(INV, "inv.json").objects);
        let meta = |ns: &str, pod: &str, app: &str| ObservedEndpoint {
            namespace: Some(ns.into()),
            pod_name: Some(pod.into()),
            labels: Labels::from([("app".to_string(), app.to_string())]),
            reserved: None,
            workload: None,
            owner: Default::default(),
        };
        let mut f = flow("10.250.0.1", "10.250.0.2", 8080, "2024-01-01T03:00:00Z");
        f.src_meta = Some(meta("b", "api-7d9f8b6c5d-x2x9q", "api").into());
        f.dst_meta = Some(meta("b", "db-0", "db").into());
        let all = enrich(&inv, &f);
        assert_eq!(all[0].learned.len(), 2);
        assert_eq!(enrich_learning(&inv, &f, |_, _| false), all);
        let some = enrich_learning(&inv, &f, |w, _| w.name == "api");
        // An end remembered as known (by the Arc the parser shares) is known in later flows.
        let ends = KnownEnds::default();
        let remembered = |w: &WorkloadRef, e: &Arc<ObservedEndpoint>| {
            ends.get(e).is_some() || {
                let known = w.name == "api";
                if known {
                    ends.insert(e, ());
                }
                known
            }
        };
        assert_eq!(enrich_learning(&inv, &f, remembered), some);
        let (src, dst) = (f.src_meta.clone().unwrap(), f.dst_meta.clone().unwrap());
        assert!(ends.get(&src).is_some() && ends.get(&dst).is_none());
        assert_eq!(enrich_learning(&inv, &f, |_, e| ends.get(e).is_some()), some);
        let other = Arc::new((*src).clone());
        assert!(ends.get(&other).is_none(), "an equal end elsewhere is another end");
        assert_eq!(some[0].learned, vec![all[0].learned[1].clone()]);
        assert_eq!((&some[0].src, &some[0].dst, some[0].port), (&all[0].src, &all[0].dst, all[0].port));
    }
}

impl Endpoint {
    /// A stable text key (`deployment/ns/name`, `node/name/ip`, `external/ip`, `unresolved/ip`),
    /// used by the store and in URLs; [`Endpoint::from_key`] reads it back.
    pub fn key(&self) -> String {
        match self {
            Endpoint::Workload { workload } => workload.to_string(),
            Endpoint::Node { name, ip } => format!("node/{name}/{ip}"),
            Endpoint::External { ip } => format!("external/{ip}"),
            Endpoint::Unresolved { ip } => format!("unresolved/{ip}"),
        }
    }

    /// The store's key for an end known only by its pod identity (see [`PendingIdentity`]):
    /// `identity/<namespace>/<address>/<key=value,...>`. Label keys and values hold neither `,`
    /// nor `=`, and the labels come last, so a key's own `/` (`app.kubernetes.io/name`) is no
    /// trouble.
    pub fn identity_key(ip: IpAddr, id: &PendingIdentity) -> String {
        let labels: Vec<String> = id.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("identity/{}/{ip}/{}", id.namespace, labels.join(","))
    }

    /// Reads [`Endpoint::identity_key`] back: the address (as an unresolved end) and the identity.
    pub fn from_identity_key(s: &str, src: bool) -> Option<(Endpoint, PendingIdentity)> {
        let rest = s.strip_prefix("identity/")?;
        let (namespace, rest) = rest.split_once('/')?;
        let (ip, labels) = rest.split_once('/')?;
        crate::model::Name::namespace(namespace).ok()?;
        let ip: IpAddr = ip.parse().ok()?;
        let mut parsed = Labels::new();
        for pair in labels.split(',') {
            let (k, v) = pair.split_once('=')?;
            if k.is_empty() || v.contains('=') {
                return None;
            }
            parsed.insert(k.to_string(), v.to_string());
        }
        Some((Endpoint::Unresolved { ip }, PendingIdentity { src, namespace: namespace.to_string(), labels: parsed }))
    }

    pub fn from_key(s: &str) -> Option<Endpoint> {
        let (head, rest) = s.split_once('/')?;
        match head {
            "node" => {
                let (name, ip) = rest.rsplit_once('/')?;
                Some(Endpoint::Node { name: name.to_string(), ip: ip.parse().ok()? })
            }
            "external" => Some(Endpoint::External { ip: rest.parse().ok()? }),
            "unresolved" => Some(Endpoint::Unresolved { ip: rest.parse().ok()? }),
            _ => s.parse().ok().map(|workload| Endpoint::Workload { workload }),
        }
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn endpoint_keys_round_trip() {
        for k in [
            "deployment/shop/web",
            "statefulset/shop/db",
            "node/node-1/172.18.0.2",
            "node/kube-apiserver/10.0.0.1",
            "external/192.229.173.207",
            "external/2001:db8::1",
            "unresolved/10.244.9.9",
        ] {
            assert_eq!(Endpoint::from_key(k).map(|e| e.key()).as_deref(), Some(k));
        }
        assert_eq!(Endpoint::from_key("bogus"), None);
        let id = PendingIdentity {
            src: true,
            namespace: "bookinfo".into(),
            labels: Labels::from([("app.kubernetes.io/name".into(), "pp".into()), ("version".into(), "v1".into())]),
        };
        let ip: IpAddr = "10.244.0.148".parse().unwrap();
        let key = Endpoint::identity_key(ip, &id);
        assert_eq!(key, "identity/bookinfo/10.244.0.148/app.kubernetes.io/name=pp,version=v1");
        assert_eq!(Endpoint::from_identity_key(&key, true), Some((Endpoint::Unresolved { ip }, id)));
        assert_eq!(Endpoint::from_key(&key), None);
        for bad in [
            "identity/Bad/10.0.0.1/a=b",
            "identity/ns/nope/a=b",
            "identity/ns/10.0.0.1/a",
            "identity/ns/10.0.0.1/a=b=c",
        ] {
            assert_eq!(Endpoint::from_identity_key(bad, false), None, "{bad}");
        }
        assert_eq!(Endpoint::from_key("external/not-an-ip"), None);
    }
}
