//! Provenance: for each rule of a generated policy, the observed connections that justify it
//! (flows, first and last seen, processes). A rule is credited with a connection when that rule
//! alone, in its policy, admits it. Pure.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use serde::Serialize;

use super::eval::{Evaluator, SideDecision};
use super::generate::{Direction, Generation, Status};
use super::verify::{PortIndex, peer_of};
use crate::inventory::Inventory;
use crate::topology::Connections;

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

/// Every rule of every generated policy with the allowed connections of its workload it admits.
pub fn provenance(generation: &Generation, inv: &Inventory, conns: &Connections) -> Vec<RuleProvenance> {
    let ports = PortIndex::new(inv);
    let mut out = Vec::new();
    for g in &generation.policies {
        let spec = g.policy.spec.as_ref();
        let name = format!(
            "{}/{}",
            g.policy.metadata.namespace.as_deref().unwrap_or_default(),
            g.policy.metadata.name.as_deref().unwrap_or_default()
        );
        for direction in [Direction::Ingress, Direction::Egress] {
            let n = match direction {
                Direction::Ingress => spec.and_then(|s| s.ingress.as_ref()).map_or(0, Vec::len),
                Direction::Egress => spec.and_then(|s| s.egress.as_ref()).map_or(0, Vec::len),
            };
            for i in 0..n {
                let (eval, _) = Evaluator::new(&[only_rule(&g.policy, direction, i)], &inv.namespaces);
                let mut connections = Vec::new();
                for r in generation
                    .review
                    .iter()
                    .filter(|r| r.workload == g.workload && r.direction == direction && r.status == Status::Allowed)
                {
                    let Some(stats) = conns.map.get(&r.key) else { continue };
                    let src = peer_of(&r.key.src, &conns.catalog, &ports);
                    let dst = peer_of(&r.key.dst, &conns.catalog, &ports);
                    let d = eval.check(&src.as_peer(), &dst.as_peer(), r.key.port, r.key.protocol);
                    let side = match direction {
                        Direction::Ingress => &d.ingress,
                        Direction::Egress => &d.egress,
                    };
                    if matches!(side, SideDecision::AllowedBy(_)) {
                        connections.push(Justification {
                            peer: r.peer().label(),
                            port: r.key.port.get(),
                            protocol: r.key.protocol.as_str(),
                            flows: stats.flows,
                            first_seen: stats.first_seen,
                            last_seen: stats.last_seen,
                            processes: stats.processes.iter().cloned().collect(),
                        });
                    }
                }
                out.push(RuleProvenance {
                    policy: name.clone(),
                    workload: g.workload.to_string(),
                    direction,
                    rule: i,
                    connections,
                });
            }
        }
    }
    out
}
