//! Cluster guardrails from the whole cluster's traffic: which namespaces talk to which, written
//! as the cluster-scoped policies of `policy.networking.k8s.io` ([`super::admin`]) that a
//! platform team applies and namespace owners cannot loosen. Pure.
//!
//! - **Shared services** (admin tier, `Accept`/`Allow`): the cluster DNS, and any workload that
//!   talks to (or is reached from) most namespaces, such as a Prometheus scraping them: every
//!   namespace may reach it (be reached by it) on the ports seen, whatever NetworkPolicies say.
//! - **Namespace isolation**, one policy per namespace with pods: ingress from the namespaces
//!   seen talking to it (and itself) is left to NetworkPolicies, ingress from every other
//!   namespace is denied. Traffic from outside the cluster (nodes, external addresses) is not a
//!   namespace's and is left alone. In `v1alpha2` this is a `Baseline`-tier ClusterNetworkPolicy
//!   (`Accept` then `Deny`): a namespace owner's NetworkPolicy that isolates a pod decides for it.
//!   `v1alpha1`'s BaselineAdminNetworkPolicy is one object for the whole cluster and cannot say
//!   "from these namespaces" per namespace, so there it is an AdminNetworkPolicy per namespace
//!   (`Pass` then `Deny`): the same pairs, but the deny holds against NetworkPolicies too.
//!
//! Reviewable like the workload policies: every pair of namespaces seen talking is a row, which a
//! person may exclude (its traffic is then denied), and a pair not seen may be included.
//! Deterministic: names, rules and lists are sorted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use serde::Serialize;

use super::admin::{
    self, AdminNetworkPolicy, AdminPolicies, AdminPort, AdminSpec, ClusterNetworkPolicy, ClusterProtocol,
    DestinationPort, EgressRule, IngressRule, NamespacedPod, PortNumber, ProtocolPort, RulePeer, Subject,
};
use super::eval::{Evaluator, NAMESPACE_NAME_LABEL};
use super::generate::{Ports, Selectors, dns_peer};
use super::verify::{PortIndex, peer_of};
use crate::enrich::Endpoint;
use crate::inventory::Inventory;
use crate::model::{Labels, Protocol, WorkloadRef};
use crate::topology::Connections;

/// Which API the guardrails are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminApi {
    /// `v1alpha2` ClusterNetworkPolicy (GKE 1.36+, Calico): tiers Admin and Baseline.
    V1alpha2,
    /// `v1alpha1` AdminNetworkPolicy (OpenShift, OVN-Kubernetes).
    V1alpha1,
}

/// A person's decisions on namespace pairs, `(from, to)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PairDecisions {
    /// Pairs seen talking whose traffic is to be denied.
    #[serde(default)]
    pub exclude: BTreeSet<(String, String)>,
    /// Pairs not seen (or not yet) that may talk.
    #[serde(default)]
    pub include: BTreeSet<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct GuardOptions {
    pub decisions: PairDecisions,
    /// A workload reached from (or reaching) at least this many other namespaces, and at least
    /// half of the namespaces with pods, is a shared service.
    pub min_shared: usize,
}

impl Default for GuardOptions {
    fn default() -> Self {
        GuardOptions { decisions: PairDecisions::default(), min_shared: 3 }
    }
}

/// One pair of namespaces, as the review shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairRow {
    pub from: String,
    pub to: String,
    /// Ports seen, `PORT/PROTO`, sorted.
    pub ports: Vec<String>,
    pub connections: usize,
    pub flows: u64,
    pub last_seen: Option<jiff::Timestamp>,
    /// Seen in the traffic (else a person included it).
    pub observed: bool,
    pub allowed: bool,
    /// When the traffic of this pair goes through a shared service's rule instead.
    pub shared: bool,
}

/// A workload every namespace talks to (`Direction::To`) or that talks to every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shared {
    pub workload: String,
    pub namespace: String,
    #[serde(skip)]
    pub selector: Labels,
    /// Reached at (for a source: reaching) these ports.
    #[serde(skip)]
    pub ports: Ports,
    /// `to`: every namespace may reach it; `from`: it may reach every namespace.
    pub direction: SharedDirection,
    /// Why: the cluster DNS, or how many namespaces it talks with.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedDirection {
    To,
    From,
}

/// What the cluster's traffic says about its namespaces.
#[derive(Debug, Clone, Default)]
pub struct Guardrails {
    /// The namespaces with pods (in the inventory or in the traffic), sorted.
    pub namespaces: Vec<String>,
    pub pairs: Vec<PairRow>,
    pub shared: Vec<Shared>,
    pub warnings: Vec<String>,
}

impl Guardrails {
    /// The namespaces `to` accepts traffic from (itself included); a pair whose traffic all goes
    /// through a shared service's admin rule needs nothing more (least privilege: the DNS
    /// clients of kube-system may reach its DNS, not all of it).
    fn sources_of<'a>(&'a self, to: &'a str) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&str> =
            self.pairs.iter().filter(|p| p.allowed && !p.shared && p.to == to).map(|p| p.from.as_str()).collect();
        out.insert(to);
        out
    }
}

fn ns_of(e: &Endpoint) -> Option<&WorkloadRef> {
    match e {
        Endpoint::Workload { workload } => Some(workload),
        _ => None,
    }
}

/// The namespace pairs of `conns` (workload to workload, across namespaces), the shared services,
/// and each pair's status under `opts`.
pub fn guardrails(inv: &Inventory, conns: &Connections, opts: &GuardOptions) -> Guardrails {
    let mut warnings = Vec::new();
    let mut namespaces: BTreeSet<String> = inv
        .pods
        .iter()
        .map(|p| p.namespace.clone())
        .chain(conns.catalog.workloads.keys().map(|w| w.namespace.clone()))
        .collect();
    // Per pair: ports, connections, flows, last seen.
    type Acc = (Ports, usize, u64, Option<jiff::Timestamp>);
    let mut pairs: BTreeMap<(String, String), Acc> = BTreeMap::new();
    // Per workload: the other namespaces that reach it / it reaches, and the ports.
    let mut reached: BTreeMap<&WorkloadRef, (BTreeSet<&str>, Ports)> = BTreeMap::new();
    let mut reaching: BTreeMap<&WorkloadRef, (BTreeSet<&str>, Ports)> = BTreeMap::new();
    let mut sels = Selectors::new(&conns.catalog);
    let mut shared = Vec::new();
    let (dns, dns_ports) = dns_peer(inv, &mut sels, &mut warnings);
    let dns_workload = match &dns {
        super::generate::PeerSel::Pods { namespace, selector } => {
            shared.push(Shared {
                workload: format!("the cluster DNS ({namespace}/{})", label_text(selector)),
                namespace: namespace.clone(),
                selector: selector.clone(),
                ports: dns_ports.clone(),
                direction: SharedDirection::To,
                reason: "every pod resolves names".into(),
            });
            conns.catalog.workloads.keys().find(|w| {
                &w.namespace == namespace
                    && conns.catalog.workloads[*w].iter().all(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
            })
        }
        _ => None,
    };
    for (k, s) in &conns.map {
        let (Some(src), Some(dst)) = (ns_of(&k.src), ns_of(&k.dst)) else { continue };
        namespaces.insert(src.namespace.clone());
        namespaces.insert(dst.namespace.clone());
        if src.namespace == dst.namespace {
            continue;
        }
        let port = (k.protocol, k.port.get());
        let e = pairs.entry((src.namespace.clone(), dst.namespace.clone())).or_default();
        e.0.insert(port);
        e.1 += 1;
        e.2 += s.flows;
        e.3 = Some(e.3.map_or(s.last_seen, |t| t.max(s.last_seen)));
        let r = reached.entry(dst).or_default();
        r.0.insert(&src.namespace);
        r.1.insert(port);
        // Everyone reaches the DNS: that makes no client a shared service.
        if Some(dst) != dns_workload {
            let r = reaching.entry(src).or_default();
            r.0.insert(&dst.namespace);
            r.1.insert(port);
        }
    }
    let threshold = opts.min_shared.max(namespaces.len().div_ceil(2)).max(1);

    for (map, direction) in [(&reached, SharedDirection::To), (&reaching, SharedDirection::From)] {
        for (w, (others, ports)) in map {
            if others.len() < threshold || Some(*w) == dns_workload {
                continue;
            }
            match sels.get(w) {
                Ok(selector) => shared.push(Shared {
                    workload: w.to_string(),
                    namespace: w.namespace.clone(),
                    selector,
                    ports: ports.clone(),
                    direction,
                    reason: match direction {
                        SharedDirection::To => format!("reached from {} other namespaces", others.len()),
                        SharedDirection::From => format!("reaches {} other namespaces", others.len()),
                    },
                }),
                Err(e) => {
                    warnings.push(format!("{w} talks with {} namespaces but {e}: not a shared service", others.len()))
                }
            }
        }
    }
    // A pair all of whose traffic a shared service's rule admits needs no rule of its own.
    let covered = |from: &str, to: &str, ports: &Ports| {
        ports.iter().all(|p| {
            shared.iter().any(|s| {
                s.ports.contains(p)
                    && match s.direction {
                        SharedDirection::To => s.namespace == to,
                        SharedDirection::From => s.namespace == from,
                    }
            })
        })
    };
    let mut rows = Vec::new();
    for ((from, to), (ports, n, flows, last)) in &pairs {
        let key = (from.clone(), to.clone());
        let excluded = opts.decisions.exclude.contains(&key);
        let shared_pair = covered(from, to, ports);
        if excluded && shared_pair {
            warnings.push(format!(
                "{from} -> {to} is excluded, but all its traffic goes to or from a shared service, which every namespace may reach: it stays allowed"
            ));
        }
        rows.push(PairRow {
            from: from.clone(),
            to: to.clone(),
            ports: ports.iter().map(|(p, n)| format!("{n}/{p}")).collect(),
            connections: *n,
            flows: *flows,
            last_seen: *last,
            observed: true,
            allowed: !excluded || shared_pair,
            shared: shared_pair,
        });
    }
    for (from, to) in &opts.decisions.include {
        if from != to && !pairs.contains_key(&(from.clone(), to.clone())) {
            rows.push(PairRow {
                from: from.clone(),
                to: to.clone(),
                ports: Vec::new(),
                connections: 0,
                flows: 0,
                last_seen: None,
                observed: false,
                allowed: true,
                shared: false,
            });
            namespaces.insert(from.clone());
            namespaces.insert(to.clone());
        }
    }
    rows.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    shared.sort_by(|a, b| (a.direction, &a.namespace, &a.workload).cmp(&(b.direction, &b.namespace, &b.workload)));
    Guardrails { namespaces: namespaces.into_iter().collect(), pairs: rows, shared, warnings }
}

fn label_text(l: &Labels) -> String {
    l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn name_selector(names: impl IntoIterator<Item = impl Into<String>>) -> LabelSelector {
    let mut values: Vec<String> = names.into_iter().map(Into::into).collect();
    values.sort();
    values.dedup();
    if let [one] = values.as_slice() {
        return LabelSelector {
            match_labels: Some(BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), one.clone())])),
            ..Default::default()
        };
    }
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.into(),
            operator: "In".into(),
            values: Some(values),
        }]),
        ..Default::default()
    }
}

fn every_namespace() -> LabelSelector {
    LabelSelector::default()
}

fn pods_of(s: &Shared) -> NamespacedPod {
    NamespacedPod {
        namespace_selector: Some(name_selector([s.namespace.clone()])),
        pod_selector: Some(LabelSelector { match_labels: Some(s.selector.clone()), ..Default::default() }),
    }
}

fn protocol_name(p: Protocol) -> String {
    p.as_str().to_string()
}

fn v1_ports(ports: &Ports) -> Vec<AdminPort> {
    ports
        .iter()
        .map(|(p, n)| AdminPort {
            port_number: Some(PortNumber { protocol: Some(protocol_name(*p)), port: i64::from(*n) }),
            ..Default::default()
        })
        .collect()
}

fn v2_ports(ports: &Ports) -> Vec<ClusterProtocol> {
    ports
        .iter()
        .map(|(p, n)| {
            let port = Some(ProtocolPort {
                destination_port: Some(DestinationPort { number: Some(i64::from(*n)), range: None }),
            });
            match p {
                Protocol::Tcp => ClusterProtocol { tcp: port, ..Default::default() },
                Protocol::Udp => ClusterProtocol { udp: port, ..Default::default() },
                Protocol::Sctp => ClusterProtocol { sctp: port, ..Default::default() },
            }
        })
        .collect()
}

/// Priorities: shared services first (from 10), then the namespaces (from 100), each policy at a
/// priority of its own: Kubernetes leaves the order of two at one priority undefined.
const SHARED_PRIORITY: i64 = 10;
const NAMESPACE_PRIORITY: i64 = 100;

/// `Err` when the policies do not fit the priorities the API admits (0-1000, one each).
fn check_priorities(g: &Guardrails, shared: &SharedRules) -> Result<(), String> {
    let shared_needed = 1 + shared.own.len();
    if SHARED_PRIORITY as usize + shared_needed > NAMESPACE_PRIORITY as usize
        || NAMESPACE_PRIORITY as usize + g.namespaces.len() > admin::MAX_PRIORITY as usize + 1
    {
        return Err(format!(
            "{} shared services and {} namespaces do not fit the priorities the API admits (0-1000, one each)",
            shared.own.len(),
            g.namespaces.len()
        ));
    }
    Ok(())
}

fn meta(name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "flowgate".to_string())])),
        ..Default::default()
    }
}

/// A DNS-1123 name for a policy about `what` (names of namespaces and workloads are already
/// DNS-1123 labels; a long one is cut and made unique with its position).
fn policy_name(prefix: &str, what: &str, i: usize) -> String {
    let name = format!("{prefix}-{what}");
    if name.len() <= 63 {
        name
    } else {
        let tail = format!("-{i}");
        format!("{}{tail}", name[..63 - tail.len()].trim_end_matches(['-', '.']))
    }
}

/// One rule per shared service and direction, as (subject, ingress rules, egress rules).
struct SharedRules {
    /// Every namespace: egress to each `To` service, ingress from each `From` one.
    everyone_egress: Vec<(RulePeer, Ports, String)>,
    everyone_ingress: Vec<(RulePeer, Ports, String)>,
    /// Each service itself: ingress from every namespace (`To`), egress to every one (`From`).
    own: Vec<(String, NamespacedPod, SharedDirection, Ports)>,
}

fn shared_rules(g: &Guardrails) -> SharedRules {
    let mut out = SharedRules { everyone_egress: Vec::new(), everyone_ingress: Vec::new(), own: Vec::new() };
    for s in &g.shared {
        let peer = RulePeer { pods: Some(pods_of(s)), ..Default::default() };
        let rule = format!(
            "{} {}",
            match s.direction {
                SharedDirection::To => "to",
                SharedDirection::From => "from",
            },
            s.workload
        );
        match s.direction {
            SharedDirection::To => out.everyone_egress.push((peer, s.ports.clone(), rule)),
            SharedDirection::From => out.everyone_ingress.push((peer, s.ports.clone(), rule)),
        }
        let what = match s.workload.strip_prefix("the cluster DNS") {
            Some(_) => "dns".to_string(),
            None => s.workload.replace('/', "-"),
        };
        out.own.push((what, pods_of(s), s.direction, s.ports.clone()));
    }
    out
}

/// How each API version spells the same guardrails.
struct Spelling {
    /// Shared services' action: `Accept` (v1alpha2) or `Allow` (v1alpha1).
    accept: &'static str,
    /// What a namespace policy does with the namespaces seen talking to it: `Accept` in the
    /// Baseline tier, `Pass` (to NetworkPolicies) in v1alpha1's admin tier.
    seen: &'static str,
    /// The namespace policies' tier (v1alpha2 only) and name prefix.
    namespace_tier: Option<&'static str>,
    namespace_prefix: &'static str,
    /// Shared services' tier (v1alpha2 only).
    shared_tier: Option<&'static str>,
    /// `protocols` (v1alpha2) or `ports` (v1alpha1).
    v2_ports: bool,
}

const V1ALPHA2: Spelling = Spelling {
    accept: "Accept",
    seen: "Accept",
    namespace_tier: Some("Baseline"),
    namespace_prefix: "flowgate-baseline",
    shared_tier: Some("Admin"),
    v2_ports: true,
};

const V1ALPHA1: Spelling = Spelling {
    accept: "Allow",
    seen: "Pass",
    namespace_tier: None,
    namespace_prefix: "flowgate-isolate",
    shared_tier: None,
    v2_ports: false,
};

/// The guardrails' policies in one API's spelling, as (name, spec with tier and priority), each
/// at a priority of its own; `Err` when they do not fit the priorities the API admits.
fn specs(g: &Guardrails, sp: &Spelling) -> Result<Vec<(String, AdminSpec)>, String> {
    let shared = shared_rules(g);
    check_priorities(g, &shared)?;
    let ports_of = |p: &Ports| -> (Option<Vec<AdminPort>>, Option<Vec<ClusterProtocol>>) {
        if sp.v2_ports { (None, Some(v2_ports(p))) } else { (Some(v1_ports(p)), None) }
    };
    let egress_rule = |name: &str, action: &str, peer: RulePeer, p: &Ports| {
        let (ports, protocols) = ports_of(p);
        EgressRule { name: Some(name.into()), action: action.into(), to: Some(vec![peer]), ports, protocols }
    };
    let ingress_rule = |name: &str, action: &str, peer: RulePeer, p: Option<&Ports>| {
        let (ports, protocols) = p.map(ports_of).unwrap_or((None, None));
        IngressRule { name: Some(name.into()), action: action.into(), from: Some(vec![peer]), ports, protocols }
    };
    let spec =
        |tier: Option<&str>, priority: i64, subject: Subject, ingress: Vec<IngressRule>, egress: Vec<EgressRule>| {
            AdminSpec {
                tier: tier.map(str::to_string),
                priority: Some(priority),
                subject: Some(subject),
                ingress: (!ingress.is_empty()).then_some(ingress),
                egress: (!egress.is_empty()).then_some(egress),
            }
        };
    let everyone = || RulePeer { namespaces: Some(every_namespace()), ..Default::default() };
    let mut out = Vec::new();
    if !shared.everyone_egress.is_empty() || !shared.everyone_ingress.is_empty() {
        let egress =
            shared.everyone_egress.iter().map(|(peer, p, n)| egress_rule(n, sp.accept, peer.clone(), p)).collect();
        let ingress = shared
            .everyone_ingress
            .iter()
            .map(|(peer, p, n)| ingress_rule(n, sp.accept, peer.clone(), Some(p)))
            .collect();
        let subject = Subject { namespaces: Some(every_namespace()), pods: None };
        out.push((
            "flowgate-shared-services".to_string(),
            spec(sp.shared_tier, SHARED_PRIORITY, subject, ingress, egress),
        ));
    }
    for (i, (what, pods, direction, p)) in shared.own.iter().enumerate() {
        let (ingress, egress) = match direction {
            SharedDirection::To => (vec![ingress_rule("from every namespace", sp.accept, everyone(), Some(p))], vec![]),
            SharedDirection::From => (vec![], vec![egress_rule("to every namespace", sp.accept, everyone(), p)]),
        };
        let subject = Subject { namespaces: None, pods: Some(pods.clone()) };
        let priority = SHARED_PRIORITY + 1 + i as i64;
        out.push((policy_name("flowgate-shared", what, i), spec(sp.shared_tier, priority, subject, ingress, egress)));
    }
    for (i, ns) in g.namespaces.iter().enumerate() {
        let seen = RulePeer { namespaces: Some(name_selector(g.sources_of(ns))), ..Default::default() };
        let ingress = vec![
            ingress_rule("from the namespaces seen talking to it", sp.seen, seen, None),
            ingress_rule("from any other namespace", "Deny", everyone(), None),
        ];
        let subject = Subject { namespaces: Some(name_selector([ns.clone()])), pods: None };
        let priority = NAMESPACE_PRIORITY + i as i64;
        out.push((
            policy_name(sp.namespace_prefix, ns, i),
            spec(sp.namespace_tier, priority, subject, ingress, vec![]),
        ));
    }
    Ok(out)
}

/// The guardrails as `v1alpha2` ClusterNetworkPolicies.
pub fn to_cluster_network_policies(g: &Guardrails) -> Result<Vec<ClusterNetworkPolicy>, String> {
    Ok(specs(g, &V1ALPHA2)?
        .into_iter()
        .map(|(name, spec)| ClusterNetworkPolicy {
            api_version: admin::V1ALPHA2.into(),
            kind: admin::CNP_KIND.into(),
            metadata: meta(name),
            spec: Some(spec),
        })
        .collect())
}

/// The guardrails as `v1alpha1` AdminNetworkPolicies, each at a priority of its own. `Err` when
/// the cluster has more namespaces than priorities are left (the API admits 0-1000).
pub fn to_admin_network_policies(g: &Guardrails) -> Result<Vec<AdminNetworkPolicy>, String> {
    Ok(specs(g, &V1ALPHA1)?
        .into_iter()
        .map(|(name, spec)| AdminNetworkPolicy {
            api_version: admin::V1ALPHA1.into(),
            kind: admin::ANP_KIND.into(),
            metadata: meta(name),
            spec: Some(spec),
        })
        .collect())
}

/// Deterministic YAML of either set, documents in order.
pub fn to_yaml<T: Serialize>(objects: &[T]) -> Result<String, String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// A pair whose observed connections the guardrails decide otherwise than the review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub from: String,
    pub to: String,
    pub connection: String,
    pub expected_allowed: bool,
}

/// Evaluates `policies` (with no NetworkPolicies: the guardrails alone) against every observed
/// connection between namespaces: an allowed pair's connections must be allowed, an excluded
/// pair's denied.
pub fn verify(g: &Guardrails, policies: &AdminPolicies, inv: &Inventory, conns: &Connections) -> Vec<Mismatch> {
    let (eval, _) = Evaluator::new(&[], &inv.namespaces);
    let (eval, _) = eval.with_admin(policies);
    let ports = PortIndex::new(inv);
    let status: BTreeMap<(&str, &str), bool> =
        g.pairs.iter().map(|p| ((p.from.as_str(), p.to.as_str()), p.allowed)).collect();
    let mut out = Vec::new();
    let mut keys: Vec<_> = conns.map.keys().collect();
    keys.sort();
    for k in keys {
        let (Some(src), Some(dst)) = (ns_of(&k.src), ns_of(&k.dst)) else { continue };
        let expected = if src.namespace == dst.namespace {
            true
        } else {
            match status.get(&(src.namespace.as_str(), dst.namespace.as_str())) {
                Some(a) => *a,
                None => continue,
            }
        };
        let s = peer_of(&k.src, &conns.catalog, &ports);
        let d = peer_of(&k.dst, &conns.catalog, &ports);
        let allowed = eval.check(&s.as_peer(), &d.as_peer(), k.port, k.protocol).allowed;
        if allowed != expected {
            out.push(Mismatch {
                from: src.namespace.clone(),
                to: dst.namespace.clone(),
                connection: format!("{} -> {} {}/{}", k.src, k.dst, k.port.get(), k.protocol),
                expected_allowed: expected,
            });
        }
    }
    out
}

/// The emitted objects read back as the evaluator reads a cluster's (through their YAML, so that
/// what is verified is what is written).
pub fn read_back(yaml: &str) -> Result<AdminPolicies, String> {
    let loaded = crate::inventory::parse_text(yaml, "the guardrails");
    if let Some(e) = loaded.errors.first() {
        return Err(e.to_string());
    }
    let mut out = AdminPolicies::default();
    for o in loaded.objects {
        match o {
            crate::inventory::KubeObject::AdminNetworkPolicy(p) => out.admin.push(p),
            crate::inventory::KubeObject::BaselineAdminNetworkPolicy(p) => out.baseline.push(p),
            crate::inventory::KubeObject::ClusterNetworkPolicy(p) => out.cluster.push(p),
            _ => {}
        }
    }
    Ok(out)
}
