//! Verification: the generated policies, evaluated against the very connections they were built
//! from. Every connection marked allowed must be allowed; every excluded one must be blocked.

use std::collections::BTreeMap;
use std::net::IpAddr;

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

/// A workload stands in as one pod carrying its first known label set: selectors are built from
/// the labels all of a workload's pods share, so any of its sets gives the same answer.
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
    verify_with(generation, &evaluator, warnings, inv, catalog)
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
    verify_with(generation, &evaluator, warnings, inv, catalog)
}

fn verify_with(
    generation: &Generation,
    evaluator: &Evaluator,
    warnings: Vec<EvalWarning>,
    inv: &Inventory,
    catalog: &Catalog,
) -> Verification {
    let ports = PortIndex::new(inv);
    let mut v = Verification { warnings: warnings.into_iter().map(|w| w.to_string()).collect(), ..Default::default() };
    let generated: std::collections::BTreeSet<&WorkloadRef> = generation.policies.iter().map(|g| &g.workload).collect();
    for row in &generation.review {
        if row.status == Status::NoRuleNeeded || !generated.contains(&row.workload) {
            v.not_evaluated += 1;
            continue;
        }
        let src = peer_of(&row.key.src, catalog, &ports);
        let dst = peer_of(&row.key.dst, catalog, &ports);
        let d = evaluator.check(&src.as_peer(), &dst.as_peer(), row.key.port, row.key.protocol);
        let want_allowed = row.status == Status::Allowed;
        match (want_allowed, d.allowed) {
            (true, true) => v.allowed += 1,
            (false, false) => v.blocked += 1,
            _ => v.mismatches.push((row.clone(), d)),
        }
    }
    v
}
