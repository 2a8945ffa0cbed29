//! Verification: the generated policies, evaluated against the very connections they were built
//! from. Every connection marked allowed must be allowed; every excluded one must be blocked.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Dialect;
use super::cilium::CiliumNetworkPolicy;
use super::eval::{Decision, EvalWarning, Evaluator, NamedPort, NodeRole, Peer, PodView};
use super::generate::{Generation, ReviewRow, Status};
use crate::dns::Names;
use crate::enrich::Endpoint;
use crate::inventory::Inventory;
use crate::model::{Labels, WorkloadRef};
use crate::topology::Catalog;

/// Named container ports per workload, from its template and its pods.
pub struct PortIndex {
    by_workload: BTreeMap<WorkloadRef, Vec<NamedPort>>,
}

impl PortIndex {
    pub fn new(inv: &Inventory) -> PortIndex {
        let mut by_workload: BTreeMap<WorkloadRef, Vec<NamedPort>> = BTreeMap::new();
        let named = |p: &crate::inventory::ContainerPort| {
            p.name.as_ref().map(|n| NamedPort { name: n.clone(), port: p.port, protocol: p.protocol })
        };
        for (w, info) in &inv.workloads {
            by_workload.entry(w.clone()).or_default().extend(info.ports.iter().filter_map(named));
        }
        for pod in &inv.pods {
            by_workload.entry(pod.owner.clone()).or_default().extend(pod.ports.iter().filter_map(named));
        }
        for v in by_workload.values_mut() {
            v.sort_by(|a, b| (&a.name, a.port, a.protocol).cmp(&(&b.name, b.port, b.protocol)));
            v.dedup();
        }
        PortIndex { by_workload }
    }
}

/// A connection end with owned data, lending out the evaluator's borrowed view.
pub enum OwnedPeer {
    Pod { namespace: String, name: String, labels: Labels, ports: Vec<NamedPort> },
    Ip(IpAddr),
    Host(IpAddr, NodeRole),
}

impl OwnedPeer {
    pub fn as_peer(&self) -> Peer<'_> {
        match self {
            OwnedPeer::Pod { namespace, name, labels, ports } => Peer::Pod(PodView { namespace, name, labels, ports }),
            OwnedPeer::Ip(ip) => Peer::Ip(*ip),
            OwnedPeer::Host(ip, role) => Peer::Host { ip: *ip, role: *role },
        }
    }
}

/// Every pod a workload is known as: one per label set it was seen with (a workload with none
/// stands in as one pod without labels). Other ends are themselves.
pub fn peers_of(e: &Endpoint, catalog: &Catalog, ports: &PortIndex) -> Vec<OwnedPeer> {
    match e {
        Endpoint::Workload { workload } => match catalog.workloads.get(workload).filter(|s| s.len() > 1) {
            Some(sets) => sets
                .iter()
                .map(|labels| OwnedPeer::Pod {
                    namespace: workload.namespace.clone(),
                    name: workload.name.clone(),
                    labels: labels.clone(),
                    ports: ports.by_workload.get(workload).cloned().unwrap_or_default(),
                })
                .collect(),
            None => vec![peer_of(e, catalog, ports)],
        },
        _ => vec![peer_of(e, catalog, ports)],
    }
}

/// A workload stands in as one pod carrying its first known label set: selectors are built from
/// the labels all of a workload's pods share, so for them any of its sets gives the same answer
/// (verification tries every set, [`peers_of`]).
pub fn peer_of(e: &Endpoint, catalog: &Catalog, ports: &PortIndex) -> OwnedPeer {
    match e {
        Endpoint::Workload { workload } => OwnedPeer::Pod {
            namespace: workload.namespace.clone(),
            name: workload.name.clone(),
            labels: catalog.workloads.get(workload).and_then(|s| s.iter().next()).cloned().unwrap_or_default(),
            ports: ports.by_workload.get(workload).cloned().unwrap_or_default(),
        },
        Endpoint::Node { ip, name } => OwnedPeer::Host(*ip, NodeRole::of(name)),
        Endpoint::External { ip } | Endpoint::Unresolved { ip } => OwnedPeer::Ip(*ip),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Rows marked allowed that the policies allow.
    pub allowed: usize,
    /// Rows marked excluded that the policies block.
    pub blocked: usize,
    /// Rows that need no rule (node traffic), not evaluated.
    pub not_evaluated: usize,
    pub mismatches: Vec<(ReviewRow, Decision)>,
    pub warnings: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The generation's NetworkPolicies against its review.
pub fn verify(generation: &Generation, inv: &Inventory, catalog: &Catalog) -> Verification {
    let policies: Vec<_> = generation.policies.iter().map(|g| g.policy.clone()).collect();
    let (evaluator, mut warnings) = Evaluator::new(&policies, &inv.namespaces);
    // The cluster's admin policies decide before (and after) the generated ones.
    let (evaluator, admin_warnings) = evaluator.with_admin(&inv.admin);
    warnings.extend(admin_warnings);
    verify_with(generation, &evaluator, warnings, inv, catalog, Dialect::Kubernetes)
}

/// The generation spelled as CiliumNetworkPolicies (`policies`, from [`super::cilium::render`])
/// against its review; `names` are what its `toFQDNs` rules match.
pub fn verify_cilium(
    generation: &Generation,
    policies: &[CiliumNetworkPolicy],
    inv: &Inventory,
    catalog: &Catalog,
    names: &Names,
) -> Verification {
    let (evaluator, mut warnings) = Evaluator::with_cilium(&[], policies, &inv.namespaces, names);
    let (evaluator, admin_warnings) = evaluator.with_admin(&inv.admin);
    warnings.extend(admin_warnings);
    verify_with(generation, &evaluator, warnings, inv, catalog, Dialect::Cilium)
}

fn verify_with(
    generation: &Generation,
    evaluator: &Evaluator,
    warnings: Vec<EvalWarning>,
    inv: &Inventory,
    catalog: &Catalog,
    dialect: Dialect,
) -> Verification {
    let ports = PortIndex::new(inv);
    let mut v = Verification { warnings: warnings.into_iter().map(|w| w.to_string()).collect(), ..Default::default() };
    let generated: std::collections::BTreeSet<&WorkloadRef> = generation.policies.iter().map(|g| &g.workload).collect();
    for row in &generation.review {
        // A direction left out is not isolated: what happens to the connection is the other
        // end's policy's doing, verified on that end's row.
        if matches!(row.status, Status::NoRuleNeeded | Status::LeftOut) || !generated.contains(&row.workload) {
            v.not_evaluated += 1;
            continue;
        }
        // Every pod either end is known as (a workload seen with several label sets is each of
        // them): allowed means every one of them is allowed, excluded that none is. A peer
        // excluded because no selector picks out all its pods may still have some of them
        // reached by a rule for others (the DNS rule reaches the pods carrying the DNS server's
        // labels): there only all of them allowed is a contradiction.
        let srcs = peers_of(&row.key.src, catalog, &ports);
        let dsts = peers_of(&row.key.dst, catalog, &ports);
        let (mut allowed, mut blocked) = (None, None);
        for s in &srcs {
            for d in &dsts {
                let decision = evaluator.check(&s.as_peer(), &d.as_peer(), row.key.port, row.key.protocol);
                let slot = if decision.allowed { &mut allowed } else { &mut blocked };
                slot.get_or_insert(decision);
            }
        }
        let status = row.status_in(dialect);
        let partial_ok = matches!(status, Status::Excluded(super::generate::ExcludeReason::NoSelector(_)));
        match (*status == Status::Allowed, allowed, blocked) {
            (true, Some(_), None) => v.allowed += 1,
            (false, None, Some(_)) => v.blocked += 1,
            (false, Some(_), Some(_)) if partial_ok => v.blocked += 1,
            (true, _, Some(d)) | (false, Some(d), _) => v.mismatches.push((row.clone(), d)),
            (_, None, None) => v.not_evaluated += 1,
        }
    }
    v
}
