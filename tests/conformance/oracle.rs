//! Reading an np-guard/netpol-analyzer case: the cluster it describes (workloads expanded to one
//! pod each, named as the analyzer names them) and the connectivity it expects.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use flowgate::inventory::{KubeObject, Loaded};
use flowgate::model::{Labels, Protocol};
use flowgate::policy::admin::AdminPolicies;
use flowgate::policy::eval::{DEFAULT_NAMESPACE, NamedPort};
use flowgate::policy::portset::ConnSet;
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One workload of the case, standing for all of its pods.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `ns/name[Kind]`, the analyzer's spelling.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub ports: Vec<NamedPort>,
}

#[derive(Debug, Default)]
pub struct Cluster {
    pub workloads: Vec<Workload>,
    pub policies: Vec<NetworkPolicy>,
    pub admin: AdminPolicies,
    pub namespace_labels: BTreeMap<String, Labels>,
}

/// Expands workloads to a pod each. A pod with an owner stands for its owner (the analyzer names
/// it after the owner); the first pod of an owner wins, as all of an owner's pods share a template.
pub fn cluster(loaded: &Loaded) -> Cluster {
    let mut c = Cluster::default();
    for obj in &loaded.objects {
        let (kind, meta, template): (&str, &ObjectMeta, Option<&PodTemplateSpec>) = match obj {
            KubeObject::Namespace(ns) => {
                if let Some(name) = &ns.metadata.name {
                    c.namespace_labels.insert(name.clone(), ns.metadata.labels.clone().unwrap_or_default());
                }
                continue;
            }
            KubeObject::NetworkPolicy(np) => {
                c.policies.push(np.clone());
                continue;
            }
            KubeObject::AdminNetworkPolicy(p) => {
                c.admin.admin.push(p.clone());
                continue;
            }
            KubeObject::BaselineAdminNetworkPolicy(p) => {
                c.admin.baseline.push(p.clone());
                continue;
            }
            KubeObject::ClusterNetworkPolicy(p) => {
                c.admin.cluster.push(p.clone());
                continue;
            }
            KubeObject::Pod(pod) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
                // A mirror pod's owner is its Node: the analyzer names such a pod after itself.
                let owner = pod
                    .metadata
                    .owner_references
                    .as_deref()
                    .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)).or_else(|| refs.first()))
                    .filter(|o| o.kind != "Node");
                let (name, kind) = match owner {
                    // An owner reference without a kind is shown as a Pod by the analyzer.
                    Some(o) => (o.name.as_str(), if o.kind.is_empty() { "Pod" } else { o.kind.as_str() }),
                    None => (pod.metadata.name.as_deref().unwrap_or(""), "Pod"),
                };
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let ports = pod.spec.as_ref().map(named_ports).unwrap_or_default();
                push(&mut c, ns, name, kind, labels, ports);
                continue;
            }
            KubeObject::Deployment(d) => ("Deployment", &d.metadata, Some(&d.spec.template)),
            KubeObject::StatefulSet(d) => ("StatefulSet", &d.metadata, Some(&d.spec.template)),
            KubeObject::DaemonSet(d) => ("DaemonSet", &d.metadata, Some(&d.spec.template)),
            KubeObject::ReplicaSet(d) => ("ReplicaSet", &d.metadata, d.spec.template.as_ref()),
            KubeObject::ReplicationController(d) => {
                ("ReplicationController", &d.metadata, d.spec.as_ref().and_then(|s| s.template.as_ref()))
            }
            KubeObject::Job(d) => ("Job", &d.metadata, d.spec.as_ref().map(|s| &s.template)),
            KubeObject::CronJob(d) => ("CronJob", &d.metadata, d.spec.job_template.spec.as_ref().map(|s| &s.template)),
            _ => continue,
        };
        let ns = meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let name = meta.name.as_deref().unwrap_or("");
        let labels = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
        let ports = template.and_then(|t| t.spec.as_ref()).map(named_ports).unwrap_or_default();
        push(&mut c, ns, name, kind, labels, ports);
    }
    c
}

fn push(c: &mut Cluster, ns: &str, name: &str, kind: &str, labels: Labels, ports: Vec<NamedPort>) {
    let id = format!("{ns}/{name}[{kind}]");
    if c.workloads.iter().any(|w| w.id == id) {
        return;
    }
    c.workloads.push(Workload { id, namespace: ns.to_string(), name: name.to_string(), labels, ports });
}

fn named_ports(spec: &PodSpec) -> Vec<NamedPort> {
    let mut out = Vec::new();
    for container in &spec.containers {
        for p in container.ports.iter().flatten() {
            let (Some(name), Ok(port)) = (&p.name, u16::try_from(p.container_port)) else { continue };
            let protocol = p.protocol.as_deref().and_then(|s| s.parse().ok()).unwrap_or(Protocol::Tcp);
            out.push(NamedPort { name: name.clone(), port, protocol });
        }
    }
    out
}

/// An inclusive address range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub start: IpAddr,
    pub end: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Workload(String),
    External(Range),
}

/// The expected output: one entry per line that concerns workloads and external ranges.
#[derive(Debug, Default)]
pub struct Expected {
    pub lines: Vec<(End, End, ConnSet)>,
    /// Lines about peers we do not model (the `{ingress-controller}` of Ingress/Route analysis).
    pub ignored: usize,
}

pub fn parse_expected(text: &str, source: &Path) -> Result<Expected, String> {
    let mut out = Expected::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |why: &str| format!("{}:{}: {why}: {line:?}", source.display(), i + 1);
        let (pair, conns) = line.split_once(" : ").ok_or_else(|| err("no ` : `"))?;
        let (src, dst) = pair.split_once(" => ").ok_or_else(|| err("no ` => `"))?;
        if src.starts_with('{') || dst.starts_with('{') {
            out.ignored += 1;
            continue;
        }
        let conns: ConnSet = conns.parse().map_err(|e| err(&format!("{e}")))?;
        out.lines.push((
            parse_end(src).ok_or_else(|| err("bad peer"))?,
            parse_end(dst).ok_or_else(|| err("bad peer"))?,
            conns,
        ));
    }
    Ok(out)
}

fn parse_end(s: &str) -> Option<End> {
    if let Some(range) = s.strip_suffix("[External]") {
        let (a, b) = range.split_once('-')?;
        let (start, end): (IpAddr, IpAddr) = (a.parse().ok()?, b.parse().ok()?);
        return (start.is_ipv4() == end.is_ipv4() && start <= end).then_some(End::External(Range { start, end }));
    }
    (s.contains('/') && s.ends_with(']')).then(|| End::Workload(s.to_string()))
}

pub fn prev(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_sub(1).map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a).checked_sub(1).map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

pub fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}
