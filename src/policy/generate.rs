//! Policy generation: connections plus review decisions give one NetworkPolicy per workload,
//! Ingress and Egress, with merged rules, exact ports and stable selectors.
//!
//! The same input always gives the same policies: every map here is ordered and the output is
//! sorted before it is returned.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use super::selector::{SelectorError, is_identity_key, only_shared, select_exactly, select_exactly_with};
use crate::dns::Names;
use crate::enrich::Endpoint;
pub use crate::enrich::NodeRole;
use crate::inventory::{Inventory, TargetPort};
use crate::model::{Cidr, DnsName, Labels, PeerSpec, Protocol, WorkloadRef};
use crate::topology::{Catalog, ConnKey, Connections, EPHEMERAL_START};

pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "flowgate");
pub const WORKLOAD_ANNOTATION: &str = "flowgate.io/workload";

/// What a person decided about a workload's connections (or the CLI flags that say the same).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    /// Peers that get no rule: workloads or address ranges.
    #[serde(default)]
    pub exclude: BTreeSet<PeerSpec>,
    /// External ranges that may be reached or may connect in.
    #[serde(default)]
    pub trust: BTreeSet<Cidr>,
    /// Unresolved addresses that are allowed anyway (as /32 or /128).
    #[serde(default)]
    pub include_unresolved: BTreeSet<IpAddr>,
    /// Every unresolved address is allowed (`--include-unresolved`).
    #[serde(default)]
    pub include_all_unresolved: bool,
    /// External services trusted by name (`--trust-name`): an external address the name was seen
    /// resolving to may be reached. Cilium's dialect names it (`toFQDNs`); NetworkPolicy can only
    /// list those addresses.
    #[serde(default)]
    pub trust_names: BTreeSet<DnsName>,
    /// Directions the policy leaves out: not isolated, every connection that way allowed (the
    /// choice for an exposed workload whose outside clients the window did not show). Not both:
    /// a policy with no type would isolate Ingress.
    #[serde(default)]
    pub leave_out: BTreeSet<Direction>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Namespaces whose workloads get policies; `None` for all.
    pub namespaces: Option<BTreeSet<String>>,
    /// Only these workloads get policies (still limited to `namespaces`).
    pub workloads: Option<BTreeSet<WorkloadRef>>,
    pub decisions: Decisions,
    /// Decisions of single workloads, used for their own policies instead of `decisions` (the
    /// store keeps decisions per workload; one generation then covers a whole namespace).
    pub per_workload: BTreeMap<WorkloadRef, Decisions>,
    /// Allow every generated workload to reach the cluster DNS on 53/UDP and 53/TCP.
    pub dns: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespaces: None,
            workloads: None,
            decisions: Decisions::default(),
            per_workload: BTreeMap::new(),
            dns: true,
        }
    }
}

impl Options {
    /// The decisions that shape `target`'s policy.
    pub fn decisions_of(&self, target: &WorkloadRef) -> &Decisions {
        self.per_workload.get(target).unwrap_or(&self.decisions)
    }
}

/// Which way a connection crosses the workload under review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl std::str::FromStr for Direction {
    type Err = String;
    /// `ingress` or `egress` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ingress" => Ok(Direction::Ingress),
            "egress" => Ok(Direction::Egress),
            _ => Err(format!("{s:?} is not a direction: ingress or egress")),
        }
    }
}

impl Direction {
    /// `ingress` or `egress`, as JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// Why a connection has, or has no, rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Status {
    Allowed,
    Excluded(ExcludeReason),
    /// Traffic that needs no rule (from the node: kubelet probes, host-network pods).
    NoRuleNeeded,
    /// The policy leaves this direction out ([`Decisions::leave_out`]): nothing isolates it.
    LeftOut,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeReason {
    ByDecision(String),
    Unresolved,
    UntrustedExternal,
    NoSelector(String),
    /// Nothing said which end opened the connection and its port is ephemeral: most likely a
    /// reply read backwards, never worth a rule.
    UndecidedDirection,
}

impl Status {
    /// `allowed`, `excluded` or `no_rule_needed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Status::Allowed => "allowed",
            Status::Excluded(_) => "excluded",
            Status::NoRuleNeeded => "no_rule_needed",
            Status::LeftOut => "left_out",
        }
    }

    /// Why a connection is excluded: `by_decision`, `unresolved`, `untrusted_external`, `no_selector`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Status::Excluded(ExcludeReason::ByDecision(_)) => Some("by_decision"),
            Status::Excluded(ExcludeReason::Unresolved) => Some("unresolved"),
            Status::Excluded(ExcludeReason::UntrustedExternal) => Some("untrusted_external"),
            Status::Excluded(ExcludeReason::NoSelector(_)) => Some("no_selector"),
            Status::Excluded(ExcludeReason::UndecidedDirection) => Some("undecided_direction"),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Allowed => f.write_str("allowed"),
            Status::NoRuleNeeded => f.write_str("no rule needed (node)"),
            Status::LeftOut => f.write_str("allowed (direction left out of the policy)"),
            Status::Excluded(ExcludeReason::ByDecision(p)) => write!(f, "excluded ({p})"),
            Status::Excluded(ExcludeReason::Unresolved) => f.write_str("excluded (unresolved)"),
            Status::Excluded(ExcludeReason::UntrustedExternal) => f.write_str("excluded (external, not trusted)"),
            Status::Excluded(ExcludeReason::NoSelector(why)) => write!(f, "excluded ({why})"),
            Status::Excluded(ExcludeReason::UndecidedDirection) => {
                f.write_str("excluded (direction undecided, ephemeral port: likely a reply)")
            }
        }
    }
}

/// One line of a review table: a connection seen from one workload that gets a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewRow {
    pub workload: WorkloadRef,
    pub direction: Direction,
    pub key: ConnKey,
    pub status: Status,
    /// Nothing said which end opened this connection (see `ConnStats::undecided`).
    pub undecided: bool,
    /// The row's status in the Cilium dialect, where it differs from `status`: a row that an
    /// address rule admits as NetworkPolicy reads it (an ipBlock matches a node's address) but
    /// Cilium's reading does not (its CIDR rules never match a node, its node entities never an
    /// address). See the address-rule pass in [`generate`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cilium: Option<Status>,
}

impl ReviewRow {
    /// The status in `dialect`.
    pub fn status_in(&self, dialect: super::Dialect) -> &Status {
        match (dialect, &self.cilium) {
            (super::Dialect::Cilium, Some(s)) => s,
            _ => &self.status,
        }
    }

    /// The other end: the source of an ingress row, the destination of an egress row.
    pub fn peer(&self) -> &Endpoint {
        match self.direction {
            Direction::Ingress => &self.key.src,
            Direction::Egress => &self.key.dst,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub workload: WorkloadRef,
    pub selector: Labels,
    /// The policy's name (the workload's, with its kind when two kinds share the name).
    pub name: String,
    /// The rules, merged, before a dialect spells them; `policy` is their NetworkPolicy.
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    /// The directions it leaves out (not isolated); its rules for them are empty.
    pub leave_out: BTreeSet<Direction>,
    pub policy: NetworkPolicy,
}

impl Generation {
    /// The NetworkPolicies generated for `workload` (for every workload, with `None`): the
    /// proposal that simulation, explain and the diff put beside the cluster's policies.
    pub fn policies_of<'g>(&'g self, workload: Option<&'g WorkloadRef>) -> impl Iterator<Item = &'g NetworkPolicy> {
        self.policies.iter().filter(move |g| workload.is_none_or(|w| &g.workload == w)).map(|g| &g.policy)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Generation {
    pub policies: Vec<Generated>,
    pub review: Vec<ReviewRow>,
    pub warnings: Vec<String>,
    /// The cluster DNS peer every egress reaches (unless `--no-dns`), so a dialect can treat its
    /// rule apart (Cilium's DNS proxy rule, which `toFQDNs` needs).
    pub dns: Option<PeerSel>,
    /// Warnings about the NetworkPolicy spelling only (a trusted name written as addresses), with
    /// the workload whose policy they are about.
    pub kube_warnings: Vec<(WorkloadRef, String)>,
}

/// A peer as the decisions name it, before a dialect spells it: [`to_peer`] for NetworkPolicy,
/// [`super::cilium`] for CiliumNetworkPolicy. Ordered, so rules come out sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerSel {
    Pods {
        namespace: String,
        selector: Labels,
    },
    /// An address range, less the ranges inside it that must stay out (the cluster's own ranges
    /// and excluded addresses, when a wide range is trusted).
    Block(Cidr, Vec<Cidr>),
    /// Every pod of every namespace: what the cluster DNS must accept queries from.
    AllPods,
    /// A node (kubelet, a host-network pod), the API server or Cilium's ingress proxy.
    /// NetworkPolicy names its address (egress; ingress from nodes needs no rule there); Cilium
    /// names what it is (entities), since its CIDR rules never match nodes.
    Node {
        ip: IpAddr,
        role: NodeRole,
    },
    /// An external service trusted by name, with the addresses it was seen resolving to that the
    /// rule may reach (excluded addresses left out); `complete` when none was left out.
    Name {
        name: DnsName,
        addresses: Vec<Cidr>,
        complete: bool,
    },
}

/// A rule's ports: (protocol, port) pairs, exact.
pub type Ports = BTreeSet<(Protocol, u16)>;
type PortSet = Ports;

/// A rule before a dialect spells it: its peers (sorted) and the ports they share.
pub type Rule = (Vec<PeerSel>, Ports);

/// `(namespace, key, value)`: one label as it occurs in one namespace.
type NsLabel<'a> = (&'a str, &'a str, &'a str);

pub(crate) struct Selectors<'a> {
    catalog: &'a Catalog,
    cache: BTreeMap<WorkloadRef, Result<Labels, SelectorError>>,
    /// `(namespace, key, value)` -> the workloads with a pod carrying that label, built on the
    /// first lookup: a selector can only select pods that share a label with its workload, so
    /// only those are compared, not the whole namespace for every workload.
    carrying: Option<std::collections::HashMap<NsLabel<'a>, Vec<&'a WorkloadRef>>>,
}

impl<'a> Selectors<'a> {
    pub(crate) fn new(catalog: &'a Catalog) -> Selectors<'a> {
        Selectors { catalog, cache: BTreeMap::new(), carrying: None }
    }

    /// The label index ([`Selectors::carrying`]), built on first use.
    fn index(&mut self) -> &std::collections::HashMap<NsLabel<'a>, Vec<&'a WorkloadRef>> {
        let catalog = self.catalog;
        self.carrying.get_or_insert_with(|| {
            let mut m: std::collections::HashMap<_, Vec<&WorkloadRef>> = std::collections::HashMap::new();
            for (w, sets) in &catalog.workloads {
                let pairs: BTreeSet<(&str, &str)> =
                    sets.iter().flat_map(|l| l.iter()).map(|(k, v)| (k.as_str(), v.as_str())).collect();
                for (k, v) in pairs {
                    m.entry((w.namespace.as_str(), k, v)).or_default().push(w);
                }
            }
            m
        })
    }

    /// The workloads of `ns` with a pod carrying `k=v`, in catalog order, each with whether all
    /// of its pods carry it.
    fn carriers(&mut self, ns: &str, k: &str, v: &str) -> Vec<(&'a WorkloadRef, bool)> {
        let catalog = self.catalog;
        let found: Vec<&'a WorkloadRef> = self.index().get(&(ns, k, v)).cloned().unwrap_or_default();
        found
            .into_iter()
            .map(|w| {
                let all = catalog
                    .workloads
                    .get(w)
                    .is_some_and(|sets| sets.iter().all(|l| l.get(k).map(String::as_str) == Some(v)));
                (w, all)
            })
            .collect()
    }

    pub(crate) fn get(&mut self, w: &WorkloadRef) -> Result<Labels, SelectorError> {
        if let Some(r) = self.cache.get(w) {
            return r.clone();
        }
        let catalog = self.catalog;
        let r = match catalog.workloads.get_key_value(w) {
            None => select_exactly(w, &BTreeSet::new(), catalog.in_namespace(&w.namespace)),
            Some((key, sets)) => {
                // A workload `sel` selects carries each of its labels: the first (in catalog
                // order) among the carriers of its rarest label that has a pod `sel` selects.
                let carrying = self.index();
                let selected = |sel: &Labels| -> Option<&'a WorkloadRef> {
                    if sel.is_empty() {
                        // Selects every pod of the namespace.
                        return catalog.in_namespace(&key.namespace).map(|(o, _)| o).find(|o| *o != key);
                    }
                    let rarest = sel
                        .iter()
                        .map(|(k, v)| {
                            carrying
                                .get(&(key.namespace.as_str(), k.as_str(), v.as_str()))
                                .map(Vec::as_slice)
                                .unwrap_or_default()
                        })
                        .min_by_key(|c| c.len())?;
                    rarest.iter().copied().filter(|o| *o != key).find(|o| {
                        catalog.workloads.get(*o).is_some_and(|ls| ls.iter().any(|l| super::selector::matches(sel, l)))
                    })
                };
                select_exactly_with(w, sets, selected)
            }
        };
        self.cache.insert(w.clone(), r.clone());
        r
    }
}

fn peer_excluded(d: &Decisions, e: &Endpoint) -> Option<String> {
    d.exclude.iter().find_map(|spec| {
        let hit = match (spec, e) {
            (PeerSpec::Workload(w), Endpoint::Workload { workload }) => w == workload,
            (PeerSpec::Net(c), _) => e.ip().is_some_and(|ip| c.contains(&ip)),
            _ => false,
        };
        hit.then(|| spec.to_string())
    })
}

/// The workloads that get a policy.
pub fn targets(catalog: &Catalog, inv: &Inventory, opts: &Options) -> Vec<WorkloadRef> {
    catalog
        .workloads
        .keys()
        .filter(|w| opts.namespaces.as_ref().is_none_or(|ns| ns.contains(&w.namespace)))
        .filter(|w| opts.workloads.as_ref().is_none_or(|ws| ws.contains(*w)))
        .filter(|w| !inv.workloads.get(*w).is_some_and(|i| i.host_network))
        .cloned()
        .collect()
}

/// Classifies the peer of a connection as seen from a target, and names it for a rule.
/// What a trusted range must leave out: the cluster's own ranges inside it (its pods are named by
/// selectors, and an unresolved address there stays excluded until someone includes it) and the
/// excluded addresses inside it. Strict subsets only, as Kubernetes requires of `except`.
fn carve_out(trusted: &Cidr, d: &Decisions, cluster: &[ipnet::IpNet]) -> Vec<Cidr> {
    let net = trusted.net();
    let inside = |n: &ipnet::IpNet| net.contains(n) && *n != net;
    let mut out: Vec<Cidr> = cluster.iter().filter(|n| inside(n)).filter_map(|n| n.to_string().parse().ok()).collect();
    out.extend(d.exclude.iter().filter_map(|e| match e {
        PeerSpec::Net(c) if inside(&c.net()) => Some(*c),
        _ => None,
    }));
    out.sort();
    out.dedup();
    // A range inside another one listed is already left out.
    let all = out.clone();
    out.retain(|c| !all.iter().any(|o| o != c && o.net().contains(&c.net())));
    out
}

/// The addresses a trusted name may be reached at: those it was seen resolving to that are
/// external (outside the cluster's ranges, or an external end of some connection) and not a
/// node's (a rule never names a pod's or a node's address by range), less the excluded ones; and
/// whether none was excluded.
fn name_addresses(name: &DnsName, d: &Decisions, lookup: &Lookup) -> (Vec<Cidr>, bool) {
    let mut complete = true;
    let mut out = Vec::new();
    for ip in lookup.names.addresses_of(name) {
        let outside = !lookup.inv.in_cluster_range(&ip) || lookup.external.contains(&ip);
        if !outside || lookup.inv.node_by_ip(&ip).is_some() {
            continue;
        }
        if peer_excluded(d, &Endpoint::External { ip }).is_some() {
            complete = false;
            continue;
        }
        out.push(Cidr::host(ip));
    }
    (out, complete)
}

/// What a generation looks things up in besides the connections' selectors.
struct Lookup<'a> {
    inv: &'a Inventory,
    names: &'a Names,
    /// Every address some connection has as an external end (Cilium's `world` is external even
    /// at a private address).
    external: BTreeSet<IpAddr>,
}

fn classify(
    peer: &Endpoint,
    other_end: &Endpoint,
    direction: Direction,
    d: &Decisions,
    sels: &mut Selectors,
    lookup: &Lookup,
) -> (Status, Option<PeerSel>) {
    if let Some(spec) = peer_excluded(d, peer).or_else(|| peer_excluded(d, other_end)) {
        return (Status::Excluded(ExcludeReason::ByDecision(spec)), None);
    }
    match peer {
        Endpoint::Workload { workload } => match sels.get(workload) {
            Ok(selector) => (Status::Allowed, Some(PeerSel::Pods { namespace: workload.namespace.clone(), selector })),
            Err(e) => (Status::Excluded(ExcludeReason::NoSelector(e.to_string())), None),
        },
        Endpoint::Node { ip, name } => {
            let node = PeerSel::Node { ip: *ip, role: NodeRole::of(name) };
            match direction {
                // Kubelet probes and host-network clients: CNIs let the node in regardless, so
                // NetworkPolicy needs no rule; Cilium admits only the pod's own node unasked, so
                // its dialect writes one (`fromEntities`).
                Direction::Ingress => (Status::NoRuleNeeded, Some(node)),
                Direction::Egress => (Status::Allowed, Some(node)),
            }
        }
        Endpoint::Unresolved { ip } => {
            if d.include_all_unresolved || d.include_unresolved.contains(ip) {
                (Status::Allowed, Some(PeerSel::Block(Cidr::host(*ip), Vec::new())))
            } else {
                (Status::Excluded(ExcludeReason::Unresolved), None)
            }
        }
        Endpoint::External { ip } => {
            // A trusted name the address was seen for names it first (the addresses behind an
            // API change; its name does not), then the narrowest trusted range that holds it.
            if let Some(name) = d.trust_names.iter().find(|n| lookup.names.resolves(n, ip)) {
                let (addresses, complete) = name_addresses(name, d, lookup);
                return (Status::Allowed, Some(PeerSel::Name { name: name.clone(), addresses, complete }));
            }
            match d.trust.iter().filter(|c| c.contains(ip)).max_by_key(|c| c.net().prefix_len()) {
                Some(c) => {
                    let except = carve_out(c, d, &lookup.inv.cluster_cidrs);
                    // An external address inside the cluster's ranges (Cilium's `world` at a
                    // private address): the range's `except` leaves it out, so it gets its own
                    // block. Excluded addresses never reach here.
                    if except.iter().any(|e| e.contains(ip)) {
                        (Status::Allowed, Some(PeerSel::Block(Cidr::host(*ip), Vec::new())))
                    } else {
                        (Status::Allowed, Some(PeerSel::Block(*c, except)))
                    }
                }
                None => (Status::Excluded(ExcludeReason::UntrustedExternal), None),
            }
        }
    }
}

/// The cluster DNS peer and its real ports: the pods behind kube-dns, or the conventional
/// `k8s-app: kube-dns` in kube-system when the inventory does not show them.
pub(crate) fn dns_peer(inv: &Inventory, sels: &mut Selectors, warnings: &mut Vec<String>) -> (PeerSel, PortSet) {
    let fallback_ports: PortSet = [(Protocol::Udp, 53), (Protocol::Tcp, 53)].into();
    if let Some(svc) = inv.dns_service() {
        let workloads = inv.service_workloads(svc);
        if let [w] = workloads.as_slice()
            && let Ok(selector) = sels.get(&w.workload)
        {
            let mut ports = PortSet::new();
            for sp in svc.ports.iter().filter(|p| p.port == 53) {
                let real = match &sp.target {
                    TargetPort::Number(n) => Some(*n),
                    TargetPort::Name(name) => w
                        .ports
                        .iter()
                        .chain(inv.pods_of(&w.workload).flat_map(|p| p.ports.iter()))
                        .find(|p| p.protocol == sp.protocol && p.name.as_deref() == Some(name.as_str()))
                        .map(|p| p.port),
                };
                ports.insert((sp.protocol, real.unwrap_or(53)));
            }
            if ports.is_empty() {
                ports = fallback_ports;
            }
            return (PeerSel::Pods { namespace: w.workload.namespace.clone(), selector }, ports);
        }
        if let Some(sel) = &svc.selector {
            return (PeerSel::Pods { namespace: svc.namespace.clone(), selector: sel.clone() }, fallback_ports);
        }
    }
    warnings
        .push("the cluster DNS Service is not in the inventory; DNS rules use k8s-app=kube-dns in kube-system".into());
    (
        PeerSel::Pods {
            namespace: "kube-system".into(),
            selector: Labels::from([("k8s-app".to_string(), "kube-dns".to_string())]),
        },
        fallback_ports,
    )
}

/// A peer as NetworkPolicy can name it: what [`PeerSel`] was before the other dialects, so that
/// its rules keep their order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum KubePeer {
    Pods { namespace: String, selector: Labels },
    Block(Cidr, Vec<Cidr>),
    AllPods,
}

/// The NetworkPolicy peers of a neutral one: a node by its address (egress only), a trusted name
/// by the addresses it was seen resolving to.
fn kube_peers(p: &PeerSel, direction: Direction) -> Vec<KubePeer> {
    match p {
        PeerSel::Pods { namespace, selector } => {
            vec![KubePeer::Pods { namespace: namespace.clone(), selector: selector.clone() }]
        }
        PeerSel::Block(c, except) => vec![KubePeer::Block(*c, except.clone())],
        PeerSel::AllPods => vec![KubePeer::AllPods],
        PeerSel::Node { ip, .. } => match direction {
            Direction::Ingress => Vec::new(),
            Direction::Egress => vec![KubePeer::Block(Cidr::host(*ip), Vec::new())],
        },
        PeerSel::Name { addresses, .. } => addresses.iter().map(|c| KubePeer::Block(*c, Vec::new())).collect(),
    }
}

/// Neutral rules as NetworkPolicy's: peers spelled as it can (sorted, a rule left without peers
/// dropped), and the rules in the order NetworkPolicy output always had.
fn kube_rules(rules: &[Rule], direction: Direction) -> Vec<(Vec<KubePeer>, Ports)> {
    let mut out: Vec<(Vec<KubePeer>, Ports)> = rules
        .iter()
        .filter_map(|(peers, ports)| {
            let mut kp: Vec<KubePeer> = peers.iter().flat_map(|p| kube_peers(p, direction)).collect();
            kp.sort();
            kp.dedup();
            (!kp.is_empty()).then(|| (kp, ports.clone()))
        })
        .collect();
    out.sort();
    out
}

fn to_peer(p: &KubePeer, own_ns: &str) -> NetworkPolicyPeer {
    match p {
        KubePeer::Pods { namespace, selector } => NetworkPolicyPeer {
            pod_selector: Some(LabelSelector { match_labels: Some(selector.clone()), match_expressions: None }),
            namespace_selector: (namespace != own_ns).then(|| LabelSelector {
                match_labels: Some(Labels::from([("kubernetes.io/metadata.name".to_string(), namespace.clone())])),
                match_expressions: None,
            }),
            ip_block: None,
        },
        KubePeer::Block(c, except) => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: c.to_string(),
                except: (!except.is_empty()).then(|| except.iter().map(Cidr::to_string).collect()),
            }),
            namespace_selector: None,
            pod_selector: None,
        },
        KubePeer::AllPods => {
            NetworkPolicyPeer { namespace_selector: Some(LabelSelector::default()), pod_selector: None, ip_block: None }
        }
    }
}

fn to_ports(ports: &PortSet) -> Vec<NetworkPolicyPort> {
    let mut v: Vec<&(Protocol, u16)> = ports.iter().collect();
    v.sort_by_key(|(proto, port)| (*port, *proto));
    v.into_iter()
        .map(|(proto, port)| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(*port))),
            protocol: Some(proto.as_str().to_string()),
            end_port: None,
        })
        .collect()
}

/// Peers with the same port set share one rule.
fn merge_rules(peers: BTreeMap<PeerSel, PortSet>) -> Vec<(Vec<PeerSel>, PortSet)> {
    let mut by_ports: BTreeMap<PortSet, Vec<PeerSel>> = BTreeMap::new();
    for (peer, ports) in peers {
        by_ports.entry(ports).or_default().push(peer);
    }
    let mut rules: Vec<(Vec<PeerSel>, PortSet)> = by_ports.into_iter().map(|(ports, peers)| (peers, ports)).collect();
    rules.sort();
    rules
}

/// Where a rule's pod peers in one namespace are exactly the workloads that one identity label
/// selects (reviews-v1, -v2 and -v3 are all the workloads with `app: reviews`), that one label
/// replaces them: what a person would write, and what still holds when a fourth version rolls out.
/// Only when every workload any of whose pods carries the label is among the peers, so the label
/// selects no pod the rule did not already admit.
fn collapse(rules: Vec<(Vec<PeerSel>, PortSet)>, sels: &mut Selectors) -> Vec<(Vec<PeerSel>, PortSet)> {
    let mut out = Vec::with_capacity(rules.len());
    for (peers, ports) in rules {
        let mut peers: BTreeSet<PeerSel> = peers.into_iter().collect();
        // Candidate labels: the identity labels of the peers' selectors, by namespace.
        let mut candidates: BTreeSet<(String, String, String)> = BTreeSet::new();
        for p in &peers {
            if let PeerSel::Pods { namespace, selector } = p {
                for (k, v) in selector.iter().filter(|(k, _)| is_identity_key(k)) {
                    candidates.insert((namespace.clone(), k.clone(), v.clone()));
                }
            }
        }
        for (ns, k, v) in candidates {
            // Looked up, not scanned: who carries each label is indexed once per generation.
            let carrying = sels.carriers(&ns, &k, &v);
            // The one label must cover every pod of every workload it stands for: a workload with
            // some pods without it (another label set) would lose them.
            if carrying.len() < 2 || carrying.iter().any(|(_, all)| !all) {
                continue;
            }
            let mut theirs = Vec::new();
            for (w, _) in carrying {
                match sels.get(w) {
                    Ok(selector) => theirs.push(PeerSel::Pods { namespace: ns.clone(), selector }),
                    Err(_) => {
                        theirs.clear();
                        break;
                    }
                }
            }
            if theirs.is_empty() || !theirs.iter().all(|p| peers.contains(p)) {
                continue;
            }
            for p in &theirs {
                peers.remove(p);
            }
            peers.insert(PeerSel::Pods { namespace: ns, selector: Labels::from([(k, v)]) });
        }
        out.push((peers.into_iter().collect(), ports));
    }
    out.sort();
    out
}

/// Generates the policies for every target workload.
pub fn generate(inv: &Inventory, conns: &Connections, opts: &Options) -> Generation {
    let mut out = Generation::default();
    let mut sels = Selectors::new(&conns.catalog);
    let external = conns
        .map
        .keys()
        .flat_map(|k| [&k.src, &k.dst])
        .filter_map(|e| match e {
            Endpoint::External { ip } => Some(*ip),
            _ => None,
        })
        .collect();
    let lookup = Lookup { inv, names: &conns.names, external };
    let targets = targets(&conns.catalog, inv, opts);
    let target_set: BTreeSet<&WorkloadRef> = targets.iter().collect();

    let dns = opts.dns.then(|| dns_peer(inv, &mut sels, &mut out.warnings));
    // The DNS server's policy admits every pod on the DNS ports (below), whatever was decided
    // about single clients: its rows must say so, or verification contradicts the policy.
    // Whether the DNS rule every policy carries reaches this workload's pods: its namespace and
    // every label set it is known by carry the DNS selector (a twin without a selector of its own
    // is still reached by the rule).
    let dns_selects = |w: &WorkloadRef| match &dns {
        Some((PeerSel::Pods { namespace, selector }, _)) => {
            namespace == &w.namespace
                && conns.catalog.workloads.get(w).is_some_and(|sets| {
                    !sets.is_empty() && sets.iter().all(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
                })
        }
        _ => false,
    };
    let is_dns_server = |target: &WorkloadRef, sels: &mut Selectors| match &dns {
        Some((PeerSel::Pods { namespace, selector }, _)) => {
            namespace == &target.namespace && sels.get(target).as_ref() == Ok(selector)
        }
        _ => false,
    };

    let mut ingress: BTreeMap<&WorkloadRef, BTreeMap<PeerSel, PortSet>> = BTreeMap::new();
    let mut egress: BTreeMap<&WorkloadRef, BTreeMap<PeerSel, PortSet>> = BTreeMap::new();
    for (key, stats) in conns.sorted() {
        let sides = [
            (key.dst.workload(), Direction::Ingress, &key.src, &key.dst),
            (key.src.workload(), Direction::Egress, &key.dst, &key.src),
        ];
        let undecided = stats.direction_undecided();
        for (target, direction, peer, own) in sides {
            let Some(target) = target.and_then(|t| target_set.get(t).copied()) else { continue };
            let on_dns_port = dns.as_ref().is_some_and(|(_, ports)| ports.contains(&(key.protocol, key.port.get())));
            // Every policy lets its pods query the DNS server, and the server's lets every pod in:
            // a DNS query between two workloads is allowed whatever was decided about either.
            let dns_query = on_dns_port
                && match (direction, peer) {
                    (Direction::Ingress, Endpoint::Workload { .. }) => is_dns_server(target, &mut sels),
                    (Direction::Egress, Endpoint::Workload { workload }) => dns_selects(workload),
                    _ => false,
                };
            // When the peer gets a policy too, the connection needs both: the peer's own review
            // excluding this workload blocks it as surely as this one's would, unless the peer's
            // policy leaves its side of it (the other direction) out.
            let peer_side = match direction {
                Direction::Ingress => Direction::Egress,
                Direction::Egress => Direction::Ingress,
            };
            let peer_review = peer.workload().filter(|w| *w != target && target_set.contains(w)).and_then(|w| {
                let d = opts.decisions_of(w);
                if d.leave_out.contains(&peer_side) {
                    return None;
                }
                peer_excluded(d, own).or_else(|| peer_excluded(d, peer)).map(|spec| format!("{spec} in {w}'s review"))
            });
            let (status, sel) = if opts.decisions_of(target).leave_out.contains(&direction) {
                // Not isolated here; the peer's own policy may still exclude it, when it gets one.
                let peer_has_policy = peer.workload().is_some_and(|w| sels.get(w).is_ok());
                match &peer_review {
                    Some(why) if !dns_query && peer_has_policy => {
                        (Status::Excluded(ExcludeReason::ByDecision(why.clone())), None)
                    }
                    _ => (Status::LeftOut, None),
                }
            } else if dns_query {
                (Status::Allowed, None)
            } else if undecided && key.port.get() >= EPHEMERAL_START {
                (Status::Excluded(ExcludeReason::UndecidedDirection), None)
            } else {
                match classify(peer, own, direction, opts.decisions_of(target), &mut sels, &lookup) {
                    (Status::Allowed, _) if let Some(why) = peer_review => {
                        (Status::Excluded(ExcludeReason::ByDecision(why)), None)
                    }
                    decided => decided,
                }
            };
            if let Some(sel) = sel {
                let map = match direction {
                    Direction::Ingress => ingress.entry(target).or_default(),
                    Direction::Egress => egress.entry(target).or_default(),
                };
                map.entry(sel).or_default().insert((key.protocol, key.port.get()));
            }
            out.review.push(ReviewRow {
                workload: target.clone(),
                direction,
                key: key.clone(),
                status,
                undecided,
                cilium: None,
            });
        }
    }

    // A row whose peer is an address and that is excluded by default (unresolved, external and
    // untrusted, or a likely reply: an undecided direction on an ephemeral port) while an
    // address rule of its own policy admits that address on that port, as NetworkPolicy spells
    // the rule: a node's /32 (a host-network pod shares its node's address), an included
    // unresolved address's /32 (the same address also seen as a node), a trusted range, a
    // trusted name's addresses. An ipBlock cannot tell a node, an unresolved and an external
    // address apart, and the rule is there for rows that are allowed, so the policy cannot leave
    // this one out: the row says it is allowed, and a warning says by which rule. Exclusions by
    // decision never get here: an excluded address gets no rule and is cut out of every range
    // (`carve_out`, `name_addresses`). A node's rule spells no peer on ingress (`kube_peers`),
    // so it admits nothing there.
    for row in &mut out.review {
        let Status::Excluded(reason) = &row.status else { continue };
        let was = match reason {
            ExcludeReason::Unresolved => "unresolved",
            ExcludeReason::UntrustedExternal => "untrusted",
            ExcludeReason::UndecidedDirection => "undecided (likely a reply)",
            ExcludeReason::ByDecision(_) | ExcludeReason::NoSelector(_) => continue,
        };
        // As the evaluator reads it: an IPv4 address written as ::ffff:a.b.c.d is that address.
        let Some(ip) = row.peer().ip().map(|ip| ip.to_canonical()) else { continue };
        let port = (row.key.protocol, row.key.port.get());
        let rules = match row.direction {
            Direction::Ingress => ingress.get(&row.workload),
            Direction::Egress => egress.get(&row.workload),
        };
        let admitting = rules.into_iter().flatten().find_map(|(sel, ports)| {
            let admits = ports.contains(&port)
                && kube_peers(sel, row.direction).iter().any(|p| {
                    matches!(p, KubePeer::Block(c, except) if c.contains(&ip) && !except.iter().any(|e| e.contains(&ip)))
                });
            admits.then_some(sel)
        });
        let Some(sel) = admitting else { continue };
        let by = match sel {
            PeerSel::Node { ip, .. } => format!("the rule for the node at {ip}"),
            PeerSel::Block(c, _) => format!("the rule for {c}"),
            PeerSel::Name { name, .. } => format!("the rule for the trusted name {name}"),
            PeerSel::Pods { .. } | PeerSel::AllPods => unreachable!("only address rules admit an address"),
        };
        // Cilium spells a node rule as entities (`host`, `remote-node`) and an address rule as
        // CIDRs, which match only addresses outside the cluster's identities: there the rule
        // admits the row only when both are addresses.
        let in_cilium = !matches!(sel, PeerSel::Node { .. }) && !matches!(row.peer(), Endpoint::Node { .. });
        out.warnings.push(format!(
            "{}: {} on {}/{} is {was}, but {by} admits it: allowed{}",
            row.workload,
            row.peer(),
            row.key.port.get(),
            row.key.protocol,
            if in_cilium {
                ""
            } else {
                " (as a CiliumNetworkPolicy it stays excluded: Cilium's address rules do not match nodes, nor its node rules an address)"
            },
        ));
        if !in_cilium {
            row.cilium = Some(row.status.clone());
        }
        row.status = Status::Allowed;
    }

    // Names are counted over every workload known in the namespace, not only the targets, so a
    // policy's name does not depend on which workloads were asked for.
    let mut names: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for w in conns.catalog.workloads.keys() {
        *names.entry((w.namespace.as_str(), w.name.as_str())).or_default() += 1;
    }
    for target in &targets {
        let selector = match sels.get(target) {
            Ok(s) => s,
            Err(e) => {
                out.warnings.push(format!("no policy for {target}: {e}"));
                continue;
            }
        };
        if only_shared(&selector) {
            out.warnings.push(format!(
                "{target} is selected by labels many apps share ({}): a future pod carrying them is selected too; give it an app label",
                selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            ));
        }
        let leave_out = &opts.decisions_of(target).leave_out;
        if leave_out.len() == 2 {
            out.warnings.push(format!(
                "no policy for {target}: both directions are left out (a policy with no type would isolate Ingress)"
            ));
            continue;
        }
        let mut eg = egress.remove(target).unwrap_or_default();
        if let Some((peer, ports)) = dns.as_ref().filter(|_| !leave_out.contains(&Direction::Egress)) {
            eg.entry(peer.clone()).or_default().extend(ports.iter().copied());
        }
        let mut ing = ingress.remove(target).unwrap_or_default();
        // The DNS server itself must answer every pod that gets the DNS egress rule, on every
        // DNS port, not only the clients and protocols that happened to be observed.
        if let Some((PeerSel::Pods { namespace, selector: dns_sel }, ports)) = &dns
            && !leave_out.contains(&Direction::Ingress)
            && namespace == &target.namespace
            && dns_sel == &selector
        {
            ing.entry(PeerSel::AllPods).or_default().extend(ports.iter().copied());
        }
        // Rules that every-pod already covers are redundant: drop those ports from pod peers.
        if let Some(all) = ing.get(&PeerSel::AllPods).cloned() {
            ing.retain(|peer, ports| {
                if matches!(peer, PeerSel::Pods { .. }) {
                    ports.retain(|p| !all.contains(p));
                }
                !ports.is_empty()
            });
        }
        let ns = target.namespace.as_str();
        let ing = collapse(merge_rules(ing), &mut sels);
        let eg = collapse(merge_rules(eg), &mut sels);
        let ingress_rules: Vec<NetworkPolicyIngressRule> = kube_rules(&ing, Direction::Ingress)
            .into_iter()
            .map(|(peers, ports)| NetworkPolicyIngressRule {
                from: Some(peers.iter().map(|p| to_peer(p, ns)).collect()),
                ports: Some(to_ports(&ports)),
            })
            .collect();
        let egress_rules: Vec<NetworkPolicyEgressRule> = kube_rules(&eg, Direction::Egress)
            .into_iter()
            .map(|(peers, ports)| NetworkPolicyEgressRule {
                to: Some(peers.iter().map(|p| to_peer(p, ns)).collect()),
                ports: Some(to_ports(&ports)),
            })
            .collect();
        for (peers, _) in ing.iter().chain(&eg) {
            for p in peers {
                if let PeerSel::Name { name, addresses, .. } = p {
                    let shown: Vec<String> = addresses.iter().map(|c| c.net().addr().to_string()).collect();
                    out.kube_warnings.push((target.clone(), format!(
                        "NetworkPolicy cannot name hosts: the trusted name {name} is allowed in {target}'s policy as the addresses it was seen resolving to ({}), which may change; the cilium dialect names it",
                        shown.join(", ")
                    )));
                }
            }
        }
        // Two workloads of different kinds may share a name; only then does the kind join the name.
        let name = if names.get(&(target.namespace.as_str(), target.name.as_str())).copied().unwrap_or(0) > 1 {
            format!("{}-{}", target.name, target.kind)
        } else {
            target.name.clone()
        };
        let policy = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(target.namespace.clone()),
                labels: Some(BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())])),
                annotations: Some(BTreeMap::from([(WORKLOAD_ANNOTATION.to_string(), target.to_string())])),
                ..ObjectMeta::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector { match_labels: Some(selector.clone()), match_expressions: None }),
                policy_types: Some(
                    [Direction::Ingress, Direction::Egress]
                        .into_iter()
                        .filter(|d| !leave_out.contains(d))
                        .map(|d| if d == Direction::Ingress { "Ingress".into() } else { "Egress".into() })
                        .collect(),
                ),
                ingress: (!ingress_rules.is_empty()).then_some(ingress_rules),
                egress: (!egress_rules.is_empty()).then_some(egress_rules),
            }),
        };
        out.policies.push(Generated {
            workload: target.clone(),
            selector,
            name: policy.metadata.name.clone().unwrap_or_default(),
            ingress: ing,
            egress: eg,
            leave_out: leave_out.clone(),
            policy,
        });
        for name in &opts.decisions_of(target).trust_names {
            if name_addresses(name, opts.decisions_of(target), &lookup).0.is_empty() {
                out.warnings.push(format!(
                    "the trusted name {name} ({target}) was not seen resolving to an external address it may reach: no rule names it"
                ));
            }
        }
    }
    out.dns = dns.map(|(peer, _)| peer);
    out.review.sort_by(|a, b| (&a.workload, a.direction, &a.key).cmp(&(&b.workload, b.direction, &b.key)));
    out.warnings.sort();
    out.warnings.dedup();
    out.kube_warnings.sort();
    out.kube_warnings.dedup();
    out
}

/// Policies as multi-document YAML, one document per policy, in workload order.
pub fn to_yaml(policies: &[Generated]) -> Result<String, String> {
    let mut out = String::new();
    for (i, g) in policies.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let doc = serde_saphyr::to_string(&g.policy).map_err(|e| format!("serialising {}: {e}", g.workload))?;
        out.push_str(&doc);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

impl Decisions {
    /// The decisions after a person ticks (`allow`) or unticks a connection with `peer`.
    /// Ticking undoes an exclusion, trusts an external address (as a /32 or /128) or includes an
    /// unresolved one; unticking excludes the peer (a workload, or the single address).
    pub fn toggle(&self, peer: &Endpoint, allow: bool) -> Decisions {
        let mut d = self.clone();
        let spec = match peer {
            Endpoint::Workload { workload } => PeerSpec::Workload(workload.clone()),
            Endpoint::Node { ip, .. } | Endpoint::External { ip } | Endpoint::Unresolved { ip } => {
                PeerSpec::Net(Cidr::host(*ip))
            }
        };
        if allow {
            // Remove every exclusion that names this peer or covers its address.
            d.exclude.retain(|e| match (e, peer) {
                (PeerSpec::Workload(w), Endpoint::Workload { workload }) => w != workload,
                (PeerSpec::Net(c), _) => !peer.ip().is_some_and(|ip| c.contains(&ip)),
                _ => true,
            });
            match peer {
                Endpoint::External { ip } if !d.trust.iter().any(|c| c.contains(ip)) => {
                    d.trust.insert(Cidr::host(*ip));
                }
                Endpoint::Unresolved { ip } => {
                    d.include_unresolved.insert(*ip);
                }
                _ => {}
            }
        } else {
            if let Endpoint::Unresolved { ip } = peer {
                d.include_unresolved.remove(ip);
            }
            if let Endpoint::External { ip } = peer {
                d.trust.remove(&Cidr::host(*ip));
            }
            d.exclude.insert(spec);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggling_is_undone_by_toggling_back() {
        let w = Endpoint::Workload { workload: "deployment/shop/db".parse().unwrap() };
        let ext = Endpoint::External { ip: "192.229.173.207".parse().unwrap() };
        let unr = Endpoint::Unresolved { ip: "10.244.9.9".parse().unwrap() };
        let base = Decisions::default();
        for e in [&w, &ext, &unr] {
            let denied = base.toggle(e, false);
            assert_eq!(denied.exclude.len(), 1, "{e}");
            let allowed = denied.toggle(e, true);
            assert!(allowed.exclude.is_empty(), "{e}");
        }
        let trusted = base.toggle(&ext, true);
        assert_eq!(trusted.trust.iter().map(|c| c.to_string()).collect::<Vec<_>>(), ["192.229.173.207/32"]);
        let included = base.toggle(&unr, true);
        assert!(included.include_unresolved.contains(&"10.244.9.9".parse().unwrap()));
        // An address already covered by a trusted range is not trusted again.
        let mut wide = Decisions::default();
        wide.trust.insert("192.229.173.0/24".parse().unwrap());
        assert_eq!(wide.toggle(&ext, true).trust.len(), 1);
        // Unticking inside a trusted range excludes just that address.
        let d = wide.toggle(&ext, false);
        assert_eq!(d.trust.len(), 1);
        assert!(d.exclude.contains(&"192.229.173.207".parse().unwrap()));
    }
}
