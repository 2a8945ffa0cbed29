//! Enrichment: a flow plus the inventory at the flow's time gives Kubernetes-level endpoints.
//!
//! Order of evidence for one address: a pod that held it at that time (host-network pods count as
//! their node), a node, a ClusterIP (translated to the Service's backing workloads and their real
//! port), then what the flow source said (Hubble's namespace, pod name, labels, workload), then the
//! address ranges: inside the cluster's ranges is "unresolved", outside "external".

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::inventory::{AddressHit, Inventory, resolve_target};
use crate::model::{FlowRecord, Labels, ObservedEndpoint, Port, Protocol, Reserved, WorkloadKind, WorkloadRef};

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
}

fn side(
    inv: &Inventory,
    ip: IpAddr,
    t: Timestamp,
    meta: Option<&ObservedEndpoint>,
    learned: &mut Vec<(WorkloadRef, Labels)>,
    known: &impl Fn(&WorkloadRef, &Labels) -> bool,
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
    if let Some(meta) = meta {
        if let Some(Reserved::Host | Reserved::RemoteNode | Reserved::KubeApiserver | Reserved::Health) = meta.reserved
        {
            let name = match meta.reserved {
                Some(Reserved::KubeApiserver) => "kube-apiserver".to_string(),
                _ => ip.to_string(),
            };
            return Endpoint::Node { name, ip };
        }
        if let (Some(ns), Some(pod)) = (&meta.namespace, &meta.pod_name)
            && let Some(w) = observed_workload(ns, pod, meta)
        {
            if !meta.labels.is_empty() && !known(&w, &meta.labels) {
                learned.push((w.clone(), meta.labels.clone()));
            }
            return Endpoint::Workload { workload: w };
        }
    }
    if inv.in_cluster_range(&ip) { Endpoint::Unresolved { ip } } else { Endpoint::External { ip } }
}

fn lookup(inv: &Inventory, ip: IpAddr, t: Timestamp) -> Option<AddressHit<'_>> {
    if let Some(p) = inv.pod_at(&ip, t) {
        return Some(AddressHit::Pod(p));
    }
    inv.node_by_ip(&ip).map(AddressHit::Node)
}

/// The workload of a pod the inventory does not know, from what Hubble reported: its
/// `workloads` field when present, otherwise the shape of the generated pod name.
pub fn observed_workload(ns: &str, pod: &str, meta: &ObservedEndpoint) -> Option<WorkloadRef> {
    if crate::model::check_name(ns).is_err() || crate::model::check_name(pod).is_err() {
        return None;
    }
    if let Some((kind, name)) = &meta.workload
        && crate::model::check_name(name).is_ok()
    {
        return Some(WorkloadRef::new(*kind, ns, name.clone()));
    }
    let (kind, name) = infer_from_pod_name(pod);
    Some(WorkloadRef::new(kind, ns, name))
}

/// `web-7d9f8b6c5d-x2x9q` -> Deployment `web`; `db-0` -> StatefulSet `db`; anything else is a
/// bare pod. A DaemonSet pod (`agent-x7k2p`) cannot be told from a bare pod by its name alone and
/// stays a pod: selecting it by its labels still selects exactly it.
pub fn infer_from_pod_name(pod: &str) -> (WorkloadKind, String) {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if let [suffix, hash, base] = parts.as_slice() {
        let is_suffix = suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
        let is_hash = (6..=10).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_alphanumeric());
        if is_suffix && is_hash && !base.is_empty() {
            return (WorkloadKind::Deployment, base.to_string());
        }
    }
    if let Some((base, ordinal)) = pod.rsplit_once('-')
        && !base.is_empty()
        && !ordinal.is_empty()
        && ordinal.len() <= 4
        && ordinal.bytes().all(|b| b.is_ascii_digit())
    {
        return (WorkloadKind::StatefulSet, base.to_string());
    }
    (WorkloadKind::Pod, pod.to_string())
}

/// Enriches one flow. Never fails: what cannot be resolved is `Unresolved` or `External`.
pub fn enrich(inv: &Inventory, flow: &FlowRecord) -> Vec<Enriched> {
    enrich_learning(inv, flow, |_, _| false)
}

/// [`enrich`], leaving out of `learned` the label sets for which `known` says the caller has no
/// use (typically: already in its catalog). A busy stream repeats the same few label sets in every
/// flow, and copying them for each one was most of the cost of folding a flow in.
pub fn enrich_learning(
    inv: &Inventory,
    flow: &FlowRecord,
    known: impl Fn(&WorkloadRef, &Labels) -> bool,
) -> Vec<Enriched> {
    let mut learned = Vec::new();
    let t = flow.time;
    let src = side(inv, flow.src_ip, t, flow.src_meta.as_ref(), &mut learned, &known);
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
            });
        }
        return out;
    }
    let dst = side(inv, flow.dst_ip, t, flow.dst_meta.as_ref(), &mut learned, &known);
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
    out.push(Enriched { src, dst, port: flow.dst_port, protocol: flow.protocol, service, learned });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::parse_text;

    #[test]
    fn infers_workloads_from_pod_names() {
        let cases = [
            ("reviews-v1-545db77b95-s6jb8", WorkloadKind::Deployment, "reviews-v1"),
            ("coredns-5d78c9869d-abcde", WorkloadKind::Deployment, "coredns"),
            ("mongo-0", WorkloadKind::StatefulSet, "mongo"),
            ("web-12", WorkloadKind::StatefulSet, "web"),
            ("debug", WorkloadKind::Pod, "debug"),
            ("cilium-x7k2p", WorkloadKind::Pod, "cilium-x7k2p"),
        ];
        for (pod, kind, name) in cases {
            assert_eq!(infer_from_pod_name(pod), (kind, name.to_string()), "{pod}");
        }
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
        FlowRecord {
            time: time.parse().unwrap(),
            uuid: None,
            src_ip: src.parse().unwrap(),
            src_port: Some(40000),
            dst_ip: dst.parse().unwrap(),
            dst_port: Port::new(port).unwrap(),
            protocol: Protocol::Tcp,
            verdict: Default::default(),
            process: None,
            node: None,
            cluster: None,
            bytes: None,
            packets: None,
            src_meta: None,
            dst_meta: None,
            dst_service: None,
        }
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
        };
        let mut f = flow("10.250.0.1", "10.250.0.2", 8080, "2024-01-01T03:00:00Z");
        f.src_meta = Some(meta("b", "api-7d9f8b6c5d-x2x9q", "api"));
        f.dst_meta = Some(meta("b", "db-0", "db"));
        let all = enrich(&inv, &f);
        assert_eq!(all[0].learned.len(), 2);
        assert_eq!(enrich_learning(&inv, &f, |_, _| false), all);
        let some = enrich_learning(&inv, &f, |w, _| w.name == "api");
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
        assert_eq!(Endpoint::from_key("external/not-an-ip"), None);
    }
}
