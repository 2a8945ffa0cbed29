//! The Kubernetes inventory: objects read from files (or, later, watched) and indexed so that an
//! address at a point in time resolves to a pod, its owning workload, a Service or a node.
//!
//! Everything here is pure: [`Inventory::build`] takes parsed objects and returns the index plus
//! notes about what it had to infer.

pub mod check;
pub mod load;
pub mod owners;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use load::{KubeObject, LoadError, Loaded, load_paths, parse_text};

use crate::model::{Labels, Protocol, WorkloadKind, WorkloadRef};

/// A port a container declares; `name` makes it usable as a named targetPort or policy port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub labels: Labels,
    pub owner: WorkloadRef,
    pub host_network: bool,
    pub node: Option<String>,
    pub ports: Vec<ContainerPort>,
    /// The pod holds its IPs from creation until deletion (or until it has finished).
    pub valid_from: Option<Timestamp>,
    pub valid_to: Option<Timestamp>,
}

impl PodInfo {
    fn valid_at(&self, t: Timestamp) -> bool {
        self.valid_from.is_none_or(|f| f <= t) && self.valid_to.is_none_or(|to| t < to)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct ServicePortInfo {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
    pub target: TargetPort,
}

impl ServicePortInfo {
    /// The pod port this Service port reaches on a backend with these container ports: the
    /// number, or the port its containers name so (`None` when none does).
    pub fn target_on(&self, container_ports: &[ContainerPort]) -> Option<u16> {
        match &self.target {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Name(name) => {
                container_ports.iter().find(|c| c.name.as_deref() == Some(name.as_str())).map(|c| c.port)
            }
        }
    }
}

/// The Service port an Ingress backend names: by number or by the Service port's name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum BackendPort {
    Number(u16),
    Name(String),
}

/// An Ingress and the Services it sends to (its default backend and every path's), in its own
/// namespace as Ingress backends always are.
#[derive(Debug, Clone)]
pub struct IngressInfo {
    pub namespace: String,
    pub name: String,
    /// (Service name, Service port), sorted, once each.
    pub backends: Vec<(String, BackendPort)>,
}

#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub cluster_ips: Vec<IpAddr>,
    pub selector: Option<Labels>,
    pub ports: Vec<ServicePortInfo>,
    pub valid_from: Option<Timestamp>,
    pub valid_to: Option<Timestamp>,
    /// How it is reachable from outside the cluster, if it is: `LoadBalancer`, `NodePort`,
    /// `externalIPs`.
    pub exposed: Option<&'static str>,
}

/// One endpoint of an EndpointSlice: the backing address and, when known, its pod.
#[derive(Debug, Clone)]
pub struct SliceEndpoint {
    pub ips: Vec<IpAddr>,
    pub pod: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct SliceInfo {
    pub endpoints: Vec<SliceEndpoint>,
    /// (port name, port, protocol): the pods' real ports for each Service port name.
    pub ports: Vec<(Option<String>, u16, Protocol)>,
}

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub pod_cidrs: Vec<IpNet>,
}

/// A workload as its template describes it: what every one of its pods will look like.
#[derive(Debug, Clone)]
pub struct WorkloadInfo {
    pub workload: WorkloadRef,
    pub template_labels: Option<Labels>,
    pub ports: Vec<ContainerPort>,
    pub host_network: bool,
    /// Ports its containers open on their node (`hostPort`): reachable from outside the cluster.
    pub host_ports: Vec<u16>,
}

/// Something the index had to guess or could not use; shown to the user, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note(pub String);

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub pods: Vec<PodInfo>,
    pod_by_ip: HashMap<IpAddr, Vec<usize>>,
    pub services: Vec<ServiceInfo>,
    svc_by_ip: HashMap<IpAddr, Vec<usize>>,
    slices: HashMap<(String, String), Vec<SliceInfo>>,
    pub nodes: Vec<NodeInfo>,
    node_by_ip: HashMap<IpAddr, usize>,
    pub workloads: BTreeMap<WorkloadRef, WorkloadInfo>,
    pub namespaces: BTreeMap<String, Labels>,
    pub policies: Vec<NetworkPolicy>,
    pub ingresses: Vec<IngressInfo>,
    /// The cluster-scoped AdminNetworkPolicies, BaselineAdminNetworkPolicy and
    /// ClusterNetworkPolicies, evaluated around `policies`.
    pub admin: crate::policy::admin::AdminPolicies,
    /// Lookups by name and by owner: enrichment asks these per flow, so they must not scan.
    pod_by_name: HashMap<(String, String), Vec<usize>>,
    pods_by_owner: HashMap<WorkloadRef, Vec<usize>>,
    pods_by_namespace: HashMap<String, Vec<usize>>,
    svc_by_name: HashMap<(String, String), usize>,
    /// Pod and Service address ranges: an address inside that matches nothing is "unresolved".
    pub cluster_cidrs: Vec<IpNet>,
    /// Whether `cluster_cidrs` came from the cluster or the user rather than the private-range default.
    pub cluster_cidrs_known: bool,
    pub notes: Vec<Note>,
}

/// What an address resolved to at a point in time.
#[derive(Debug, Clone, Copy)]
pub enum AddressHit<'a> {
    Pod(&'a PodInfo),
    Service(&'a ServiceInfo),
    Node(&'a NodeInfo),
}

/// Private, shared and unique-local ranges: used as the cluster's ranges when nothing better is known.
pub fn private_ranges() -> Vec<IpNet> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn labels_of(meta: &ObjectMeta) -> Labels {
    meta.labels.clone().unwrap_or_default()
}

fn ts(t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

fn container_ports(containers: &[Container]) -> Vec<ContainerPort> {
    let mut out: Vec<ContainerPort> = containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = u16::try_from(p.container_port).ok().filter(|p| *p != 0)?;
            let protocol = p.protocol.as_deref().unwrap_or("TCP").parse().ok()?;
            Some(ContainerPort { name: p.name.clone(), port, protocol })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn spec_ports(spec: &Option<PodSpec>) -> Vec<ContainerPort> {
    spec.as_ref()
        .map(|s| {
            let mut all = s.containers.clone();
            all.extend(
                s.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always")).cloned(),
            );
            container_ports(&all)
        })
        .unwrap_or_default()
}

fn template_info(t: &PodTemplateSpec) -> (Option<Labels>, Vec<ContainerPort>, bool, Vec<u16>) {
    let labels = t.metadata.as_ref().map(labels_of);
    let ports = spec_ports(&t.spec);
    let host = t.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    let mut host_ports: Vec<u16> = t
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.host_port?).ok().filter(|p| *p != 0))
        .collect();
    host_ports.sort();
    host_ports.dedup();
    (labels, ports, host, host_ports)
}

fn parse_ips<'a>(raw: impl IntoIterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = raw.into_iter().filter_map(|s| s.trim().parse().ok()).collect();
    v.sort();
    v.dedup();
    v
}

impl Inventory {
    /// Indexes parsed objects. Objects without a name or namespace are skipped with a note, and
    /// so are those whose names break Kubernetes' rules (with their bad labels and references
    /// dropped, [`check`]): files were checked as they were read, but stored objects may predate
    /// the checks. Checking costs a pass; the objects are copied only when one needs cleaning.
    pub fn build(objects: &[KubeObject]) -> Inventory {
        let mut inv = Inventory::default();
        let (checked, report) = check::clean_all(objects);
        let objects: &[KubeObject] = &checked;
        inv.notes.extend(report.warnings.into_iter().map(Note));
        let owners = owners::OwnerIndex::new(objects);
        for obj in objects {
            match obj {
                KubeObject::Namespace(ns) => {
                    if let Some(name) = &ns.metadata.name {
                        let mut labels = labels_of(&ns.metadata);
                        labels.insert("kubernetes.io/metadata.name".into(), name.clone());
                        inv.namespaces.insert(name.clone(), labels);
                    }
                }
                KubeObject::Node(node) => {
                    let Some(name) = node.metadata.name.clone() else { continue };
                    let ips = parse_ips(
                        node.status
                            .iter()
                            .flat_map(|s| s.addresses.iter().flatten())
                            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                            .map(|a| a.address.as_str()),
                    );
                    let pod_cidrs = node
                        .spec
                        .iter()
                        .flat_map(|s| s.pod_cidrs.iter().flatten().chain(s.pod_cidr.iter()))
                        .filter_map(|c| c.parse::<IpNet>().ok())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    inv.nodes.push(NodeInfo { name, ips, pod_cidrs });
                }
                KubeObject::Pod(pod) => {
                    let (Some(name), Some(ns)) = (&pod.metadata.name, &pod.metadata.namespace) else {
                        inv.notes.push(Note("a Pod without name or namespace was skipped".into()));
                        continue;
                    };
                    let (owner, note) = owners.owner_of_pod(pod);
                    if let Some(n) = note {
                        inv.notes.push(Note(n));
                    }
                    let status = pod.status.as_ref();
                    let ips =
                        parse_ips(status.into_iter().flat_map(|s| {
                            s.pod_ips.iter().flatten().map(|p| p.ip.as_str()).chain(s.pod_ip.as_deref())
                        }));
                    let finished =
                        status.and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
                    let valid_to = ts(&pod.metadata.deletion_timestamp).or_else(|| {
                        // A finished pod released its IP when its last container ended.
                        if !finished {
                            return None;
                        }
                        status
                            .into_iter()
                            .flat_map(|s| s.container_statuses.iter().flatten())
                            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
                            .max()
                    });
                    let spec = pod.spec.as_ref();
                    inv.pods.push(PodInfo {
                        namespace: ns.clone(),
                        name: name.clone(),
                        ips,
                        labels: labels_of(&pod.metadata),
                        owner,
                        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
                        node: spec.and_then(|s| s.node_name.clone()),
                        ports: spec_ports(&pod.spec),
                        valid_from: ts(&pod.metadata.creation_timestamp),
                        valid_to,
                    });
                }
                KubeObject::Service(svc) => {
                    let (Some(name), Some(ns)) = (&svc.metadata.name, &svc.metadata.namespace) else { continue };
                    let Some(spec) = &svc.spec else { continue };
                    let cluster_ips = parse_ips(
                        spec.cluster_ips
                            .iter()
                            .flatten()
                            .map(String::as_str)
                            .chain(spec.cluster_ip.as_deref())
                            .filter(|ip| *ip != "None"),
                    );
                    let ports = spec
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| {
                            let port = u16::try_from(p.port).ok().filter(|p| *p != 0)?;
                            let protocol = p.protocol.as_deref().unwrap_or("TCP").parse().ok()?;
                            let target = match &p.target_port {
                                None => TargetPort::Number(port),
                                Some(IntOrString::Int(n)) => {
                                    TargetPort::Number(u16::try_from(*n).ok().filter(|p| *p != 0)?)
                                }
                                Some(IntOrString::String(s)) => match s.parse::<u16>() {
                                    Ok(n) if n != 0 => TargetPort::Number(n),
                                    _ => TargetPort::Name(s.clone()),
                                },
                            };
                            Some(ServicePortInfo { name: p.name.clone(), port, protocol, target })
                        })
                        .collect();
                    inv.services.push(ServiceInfo {
                        namespace: ns.clone(),
                        name: name.clone(),
                        cluster_ips,
                        selector: spec.selector.clone().filter(|s| !s.is_empty()),
                        ports,
                        valid_from: ts(&svc.metadata.creation_timestamp),
                        valid_to: ts(&svc.metadata.deletion_timestamp),
                        exposed: match spec.type_.as_deref() {
                            Some("LoadBalancer") => Some("LoadBalancer"),
                            Some("NodePort") => Some("NodePort"),
                            _ if spec.external_ips.as_ref().is_some_and(|ips| !ips.is_empty()) => Some("externalIPs"),
                            _ => None,
                        },
                    });
                }
                KubeObject::EndpointSlice(slice) => {
                    let Some(ns) = &slice.metadata.namespace else { continue };
                    let Some(svc) = slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"))
                    else {
                        continue;
                    };
                    let endpoints = slice
                        .endpoints
                        .iter()
                        .flatten()
                        .map(|e| SliceEndpoint {
                            ips: parse_ips(e.addresses.iter().map(String::as_str)),
                            pod: e.target_ref.as_ref().filter(|r| r.kind.as_deref() == Some("Pod")).and_then(|r| {
                                Some((r.namespace.clone().unwrap_or_else(|| ns.clone()), r.name.clone()?))
                            }),
                        })
                        .collect();
                    let ports = slice
                        .ports
                        .iter()
                        .flatten()
                        .filter_map(|p| {
                            let port = u16::try_from(p.port?).ok().filter(|p| *p != 0)?;
                            let protocol = p.protocol.as_deref().unwrap_or("TCP").parse().ok()?;
                            Some((p.name.clone().filter(|n| !n.is_empty()), port, protocol))
                        })
                        .collect();
                    inv.slices.entry((ns.clone(), svc.clone())).or_default().push(SliceInfo { endpoints, ports });
                }
                KubeObject::Deployment(o) => {
                    inv.add_workload(WorkloadKind::Deployment, &o.metadata, Some(&o.spec.template))
                }
                KubeObject::StatefulSet(o) => {
                    inv.add_workload(WorkloadKind::StatefulSet, &o.metadata, Some(&o.spec.template))
                }
                KubeObject::DaemonSet(o) => {
                    inv.add_workload(WorkloadKind::DaemonSet, &o.metadata, Some(&o.spec.template))
                }
                KubeObject::CronJob(o) => inv.add_workload(
                    WorkloadKind::CronJob,
                    &o.metadata,
                    o.spec.job_template.spec.as_ref().map(|s| &s.template),
                ),
                KubeObject::Job(o) if owners.top_owner_of_job(o).is_none() => {
                    inv.add_workload(WorkloadKind::Job, &o.metadata, o.spec.as_ref().map(|s| &s.template))
                }
                KubeObject::ReplicaSet(o) if owners.top_owner_of_rs(o).is_none() => {
                    inv.add_workload(WorkloadKind::ReplicaSet, &o.metadata, o.spec.template.as_ref())
                }
                KubeObject::ReplicationController(o) => inv.add_workload(
                    WorkloadKind::ReplicationController,
                    &o.metadata,
                    o.spec.as_ref().and_then(|s| s.template.as_ref()),
                ),
                KubeObject::NetworkPolicy(np) => inv.policies.push(np.clone()),
                KubeObject::Ingress(ing) => {
                    let (Some(ns), Some(name)) = (&ing.metadata.namespace, &ing.metadata.name) else { continue };
                    let spec = ing.spec.as_ref();
                    let default = spec.and_then(|s| s.default_backend.as_ref());
                    let paths = spec
                        .into_iter()
                        .flat_map(|s| s.rules.iter().flatten())
                        .flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter()))
                        .map(|p| &p.backend);
                    let mut backends: Vec<(String, BackendPort)> = default
                        .into_iter()
                        .chain(paths)
                        .filter_map(|b| {
                            let svc = b.service.as_ref()?;
                            let port = svc.port.as_ref()?;
                            let port = match (port.number, &port.name) {
                                (Some(n), _) => BackendPort::Number(u16::try_from(n).ok().filter(|n| *n != 0)?),
                                (None, Some(n)) if !n.is_empty() => BackendPort::Name(n.clone()),
                                _ => return None,
                            };
                            Some((svc.name.clone(), port))
                        })
                        .collect();
                    backends.sort();
                    backends.dedup();
                    inv.ingresses.push(IngressInfo { namespace: ns.clone(), name: name.clone(), backends });
                }
                KubeObject::AdminNetworkPolicy(p) => inv.admin.admin.push(p.clone()),
                KubeObject::BaselineAdminNetworkPolicy(p) => inv.admin.baseline.push(p.clone()),
                KubeObject::ClusterNetworkPolicy(p) => inv.admin.cluster.push(p.clone()),
                KubeObject::Job(_) | KubeObject::ReplicaSet(_) => {}
            }
        }
        // Pods whose workload object is not in the inventory still make up a workload.
        for pod in &inv.pods {
            inv.workloads.entry(pod.owner.clone()).or_insert_with(|| WorkloadInfo {
                workload: pod.owner.clone(),
                template_labels: None,
                ports: pod.ports.clone(),
                host_network: pod.host_network,
                host_ports: Vec::new(),
            });
        }
        // Namespaces referenced by objects but absent themselves still carry their name label.
        let referenced: Vec<String> = inv
            .pods
            .iter()
            .map(|p| p.namespace.clone())
            .chain(inv.services.iter().map(|s| s.namespace.clone()))
            .chain(inv.workloads.keys().map(|w| w.namespace.clone()))
            .collect();
        for ns in referenced {
            inv.namespaces
                .entry(ns.clone())
                .or_insert_with(|| Labels::from([("kubernetes.io/metadata.name".to_string(), ns)]));
        }
        inv.pods.sort_by(|a, b| (&a.namespace, &a.name, a.valid_from).cmp(&(&b.namespace, &b.name, b.valid_from)));
        inv.reindex();
        inv.notes.sort();
        inv.notes.dedup();
        inv
    }

    fn add_workload(&mut self, kind: WorkloadKind, meta: &ObjectMeta, template: Option<&PodTemplateSpec>) {
        let (Some(name), Some(ns)) = (&meta.name, &meta.namespace) else {
            self.notes.push(Note(format!("a {} without name or namespace was skipped", kind.kube_kind())));
            return;
        };
        let w = WorkloadRef::new(kind, ns.clone(), name.clone());
        let (template_labels, ports, host_network, host_ports) =
            template.map(template_info).unwrap_or((None, Vec::new(), false, Vec::new()));
        self.workloads
            .insert(w.clone(), WorkloadInfo { workload: w, template_labels, ports, host_network, host_ports });
    }

    fn reindex(&mut self) {
        self.pod_by_ip.clear();
        self.pod_by_name.clear();
        self.pods_by_owner.clear();
        self.pods_by_namespace.clear();
        for (i, p) in self.pods.iter().enumerate() {
            for ip in &p.ips {
                self.pod_by_ip.entry(*ip).or_default().push(i);
            }
            self.pod_by_name.entry((p.namespace.clone(), p.name.clone())).or_default().push(i);
            self.pods_by_owner.entry(p.owner.clone()).or_default().push(i);
            self.pods_by_namespace.entry(p.namespace.clone()).or_default().push(i);
        }
        self.svc_by_name.clear();
        for (i, s) in self.services.iter().enumerate() {
            self.svc_by_name.entry((s.namespace.clone(), s.name.clone())).or_insert(i);
        }
        self.svc_by_ip.clear();
        for (i, s) in self.services.iter().enumerate() {
            for ip in &s.cluster_ips {
                self.svc_by_ip.entry(*ip).or_default().push(i);
            }
        }
        self.node_by_ip.clear();
        for (i, n) in self.nodes.iter().enumerate() {
            for ip in &n.ips {
                self.node_by_ip.insert(*ip, i);
            }
        }
        let mut cidrs: Vec<IpNet> = self.nodes.iter().flat_map(|n| n.pod_cidrs.iter().copied()).collect();
        cidrs.sort();
        cidrs.dedup();
        self.cluster_cidrs_known = !cidrs.is_empty();
        self.cluster_cidrs = if cidrs.is_empty() { private_ranges() } else { cidrs };
    }

    /// Adds ranges the user named (`--cluster-cidr`): pod and Service ranges the objects do not show.
    pub fn add_cluster_cidrs(&mut self, extra: &[IpNet]) {
        if extra.is_empty() {
            return;
        }
        if !self.cluster_cidrs_known {
            self.cluster_cidrs.clear();
            self.cluster_cidrs_known = true;
        }
        self.cluster_cidrs.extend(extra.iter().copied());
        self.cluster_cidrs.sort();
        self.cluster_cidrs.dedup();
    }

    pub fn in_cluster_range(&self, ip: &IpAddr) -> bool {
        self.cluster_cidrs.iter().any(|c| c.contains(ip))
    }

    /// The pod holding `ip` at time `t`: the newest one created at or before `t` and not gone yet.
    pub fn pod_at(&self, ip: &IpAddr, t: Timestamp) -> Option<&PodInfo> {
        self.pod_by_ip
            .get(ip)?
            .iter()
            .map(|&i| &self.pods[i])
            .filter(|p| p.valid_at(t))
            .max_by(|a, b| a.valid_from.cmp(&b.valid_from).then_with(|| b.name.cmp(&a.name)))
    }

    pub fn service_at(&self, ip: &IpAddr, t: Timestamp) -> Option<&ServiceInfo> {
        self.svc_by_ip
            .get(ip)?
            .iter()
            .map(|&i| &self.services[i])
            .find(|s| s.valid_from.is_none_or(|f| f <= t) && s.valid_to.is_none_or(|to| t < to))
    }

    pub fn node_by_ip(&self, ip: &IpAddr) -> Option<&NodeInfo> {
        self.node_by_ip.get(ip).map(|&i| &self.nodes[i])
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.svc_by_name.get(&(namespace.to_string(), name.to_string())).map(|&i| &self.services[i])
    }

    /// The newest pod of that name (pods are sorted by creation within a name).
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        let ids = self.pod_by_name.get(&(namespace.to_string(), name.to_string()))?;
        ids.last().map(|&i| &self.pods[i])
    }

    pub fn slices(&self, namespace: &str, service: &str) -> &[SliceInfo] {
        self.slices.get(&(namespace.to_string(), service.to_string())).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The pods of a workload (all of them, whatever their lifetime).
    pub fn pods_of<'a>(&'a self, w: &'a WorkloadRef) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.pods_by_owner.get(w).into_iter().flatten().map(|&i| &self.pods[i])
    }

    /// The pods a Service sends traffic to at time `t`, with the real port for `port`/`protocol`:
    /// EndpointSlices when the inventory has them, the selector otherwise.
    pub fn service_backends(
        &self,
        svc: &ServiceInfo,
        port: u16,
        protocol: Protocol,
        t: Timestamp,
    ) -> Vec<(&PodInfo, Option<u16>)> {
        let Some(sp) = svc.ports.iter().find(|p| p.port == port && p.protocol == protocol) else {
            return Vec::new();
        };
        let slices = self.slices(&svc.namespace, &svc.name);
        let mut out: Vec<(&PodInfo, Option<u16>)> = Vec::new();
        if !slices.is_empty() {
            for slice in slices {
                let real =
                    slice.ports.iter().find(|(n, _, proto)| *proto == protocol && n.as_deref() == sp.name.as_deref());
                for ep in &slice.endpoints {
                    let pod = match &ep.pod {
                        Some((ns, name)) => self.pod(ns, name),
                        None => ep.ips.iter().find_map(|ip| self.pod_at(ip, t)),
                    };
                    if let Some(pod) = pod {
                        let target = real.map(|r| r.1).or_else(|| resolve_target(&sp.target, pod, protocol));
                        out.push((pod, target));
                    }
                }
            }
        } else if let Some(sel) = &svc.selector {
            let in_ns = self.pods_by_namespace.get(&svc.namespace).into_iter().flatten().map(|&i| &self.pods[i]);
            for pod in in_ns.filter(|p| p.valid_at(t) && sel.iter().all(|(k, v)| p.labels.get(k) == Some(v))) {
                out.push((pod, resolve_target(&sp.target, pod, protocol)));
            }
        }
        out.sort_by(|a, b| (&a.0.namespace, &a.0.name).cmp(&(&b.0.namespace, &b.0.name)));
        out.dedup_by(|a, b| std::ptr::eq(a.0, b.0));
        out
    }

    /// The workloads a Service selects (by selector against workload templates and pods), for
    /// Services whose backends are not running in the inventory's snapshot.
    pub fn service_workloads(&self, svc: &ServiceInfo) -> Vec<&WorkloadInfo> {
        let Some(sel) = &svc.selector else { return Vec::new() };
        let matches = |l: &Labels| sel.iter().all(|(k, v)| l.get(k) == Some(v));
        self.workloads
            .values()
            .filter(|w| w.workload.namespace == svc.namespace)
            .filter(|w| {
                w.template_labels.as_ref().is_some_and(matches) || self.pods_of(&w.workload).any(|p| matches(&p.labels))
            })
            .collect()
    }

    /// The cluster DNS Service: kube-system/kube-dns, or a Service labelled `k8s-app: kube-dns`.
    pub fn dns_service(&self) -> Option<&ServiceInfo> {
        self.service("kube-system", "kube-dns").or_else(|| {
            self.services
                .iter()
                .find(|s| s.selector.as_ref().is_some_and(|l| l.get("k8s-app").map(String::as_str) == Some("kube-dns")))
        })
    }
}

/// A Service's targetPort for one pod: a number as is, a name through the pod's container ports.
pub fn resolve_target(target: &TargetPort, pod: &PodInfo, protocol: Protocol) -> Option<u16> {
    match target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod
            .ports
            .iter()
            .find(|p| p.protocol == protocol && p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.port),
    }
}
