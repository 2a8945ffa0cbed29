//! Provenance: for each rule of a generated policy, the observed connections that justify it
//! (flows, first and last seen, processes). A rule is credited with a connection when that rule
//! alone, in its policy, admits it. Pure.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use serde::Serialize;

use super::eval::{Evaluator, SideDecision};
use super::generate::{Direction, Generation, Status};
use super::verify::{PortIndex, peer_of};
use crate::inventory::Inventory;
use crate::topology::{ConnKey, Connections};

/// One connection behind a rule.
#[derive(Debug, Clone, Serialize)]
pub struct Justification {
    pub peer: String,
    pub port: u16,
    pub protocol: &'static str,
    pub flows: u64,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    pub processes: Vec<String>,
}

/// One rule of a generated policy and what justifies it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleProvenance {
    /// `namespace/name` of the policy.
    pub policy: String,
    pub workload: String,
    pub direction: Direction,
    /// The rule's index in the policy's `ingress` or `egress` list.
    pub rule: usize,
    /// The connections it admits, in the review's order. Empty for a rule no observed connection
    /// needs (the DNS rule of a workload that resolved nothing in the window, say).
    pub connections: Vec<Justification>,
}

/// `policy` cut down to rule `i` of one direction.
fn only_rule(policy: &NetworkPolicy, direction: Direction, i: usize) -> NetworkPolicy {
    let spec = policy.spec.clone().unwrap_or_default();
    let (ingress, egress, types) = match direction {
        Direction::Ingress => (Some(vec![spec.ingress.unwrap_or_default()[i].clone()]), None, "Ingress"),
        Direction::Egress => (None, Some(vec![spec.egress.unwrap_or_default()[i].clone()]), "Egress"),
    };
    NetworkPolicy {
        metadata: policy.metadata.clone(),
        spec: Some(NetworkPolicySpec {
            pod_selector: spec.pod_selector,
            ingress,
            egress,
            policy_types: Some(vec![types.to_string()]),
        }),
    }
}

/// The number of rules of `policy` in `direction`.
fn rules_in(policy: &NetworkPolicy, direction: Direction) -> usize {
    let spec = policy.spec.as_ref();
    match direction {
        Direction::Ingress => spec.and_then(|s| s.ingress.as_ref()).map_or(0, Vec::len),
        Direction::Egress => spec.and_then(|s| s.egress.as_ref()).map_or(0, Vec::len),
    }
}

fn name_of(policy: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        policy.metadata.namespace.as_deref().unwrap_or_default(),
        policy.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Rule `i` of `policy`'s `direction`, credited with each of `candidates` (a connection and the
/// label of its peer) that it alone admits.
fn credit<'k>(
    policy: &NetworkPolicy,
    direction: Direction,
    i: usize,
    inv: &Inventory,
    ports: &PortIndex,
    conns: &Connections,
    candidates: impl Iterator<Item = (&'k ConnKey, String)>,
) -> Vec<Justification> {
    let (eval, _) = Evaluator::new(&[only_rule(policy, direction, i)], &inv.namespaces);
    let mut out = Vec::new();
    for (key, peer) in candidates {
        let Some(stats) = conns.map.get(key) else { continue };
        let src = peer_of(&key.src, &conns.catalog, ports);
        let dst = peer_of(&key.dst, &conns.catalog, ports);
        let d = eval.check(&src.as_peer(), &dst.as_peer(), key.port, key.protocol);
        let side = match direction {
            Direction::Ingress => &d.ingress,
            Direction::Egress => &d.egress,
        };
        if matches!(side, SideDecision::AllowedBy(_)) {
            out.push(Justification {
                peer,
                port: key.port.get(),
                protocol: key.protocol.as_str(),
                flows: stats.flows,
                first_seen: stats.first_seen,
                last_seen: stats.last_seen,
                processes: stats.processes.iter().cloned().collect(),
            });
        }
    }
    out
}

/// Every rule of every generated policy with the allowed connections of its workload it admits.
pub fn provenance(generation: &Generation, inv: &Inventory, conns: &Connections) -> Vec<RuleProvenance> {
    let ports = PortIndex::new(inv);
    let mut out = Vec::new();
    for g in &generation.policies {
        for direction in [Direction::Ingress, Direction::Egress] {
            for i in 0..rules_in(&g.policy, direction) {
                let rows = generation
                    .review
                    .iter()
                    .filter(|r| r.workload == g.workload && r.direction == direction && r.status == Status::Allowed)
                    .map(|r| (&r.key, r.peer().label()));
                out.push(RuleProvenance {
                    policy: name_of(&g.policy),
                    workload: g.workload.to_string(),
                    direction,
                    rule: i,
                    connections: credit(&g.policy, direction, i, inv, &ports, conns, rows),
                });
            }
        }
    }
    out
}

/// What each rule of `policies` (a recorded revision of `workload`'s policy, say) admits of the
/// observed connections: every connection, not only those a generation allowed, with the peer
/// seen from the rule's side (the source for ingress, the destination for egress). A rule with
/// none admitted nothing in the window: a candidate to remove.
pub fn rule_usage(
    policies: &[NetworkPolicy],
    workload: &str,
    inv: &Inventory,
    conns: &Connections,
) -> Vec<RuleProvenance> {
    let ports = PortIndex::new(inv);
    let mut keys: Vec<&ConnKey> = conns.map.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for policy in policies {
        for direction in [Direction::Ingress, Direction::Egress] {
            for i in 0..rules_in(policy, direction) {
                let peers = keys.iter().map(|k| {
                    let peer = match direction {
                        Direction::Ingress => &k.src,
                        Direction::Egress => &k.dst,
                    };
                    (*k, peer.label())
                });
                out.push(RuleProvenance {
                    policy: name_of(policy),
                    workload: workload.to_string(),
                    direction,
                    rule: i,
                    connections: credit(policy, direction, i, inv, &ports, conns, peers),
                });
            }
        }
    }
    out
}
