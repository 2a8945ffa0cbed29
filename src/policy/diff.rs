//! The proposed policy beside the policies that select the same pods today, rule by rule: each
//! direction's rules flattened to peer/port entries (`pods app=web in shop on 8080/TCP`), and
//! which entries the proposal adds, drops or keeps. The YAML text diff is the second view. Pure:
//! policies in, sets and lines out. (What changes over the observed traffic is the simulation's
//! part, [`super::simulate`].)

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::eval::{Evaluator, PodView};
use super::generate::Direction;
use crate::inventory::Inventory;
use crate::model::WorkloadRef;
use crate::topology::Catalog;

/// One direction's entries: in the proposal only, in today's policies only, in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectionDiff {
    pub direction: Direction,
    /// Whether today's policies isolate this direction, and whether the proposal does.
    pub isolated_today: bool,
    pub isolated_proposed: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

/// The proposal against today's policies selecting the same pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    /// `ns/name` of the policies selecting the workload's pods today, sorted.
    pub today: Vec<String>,
    pub directions: Vec<DirectionDiff>,
}

/// `namespace/name`, as the evaluator names a policy.
fn id(p: &NetworkPolicy) -> String {
    format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or("default"), p.metadata.name.as_deref().unwrap_or(""))
}

/// The cluster's NetworkPolicies that select any pod `w` is known by (its label sets).
pub fn selecting<'a>(inv: &'a Inventory, catalog: &Catalog, w: &WorkloadRef) -> Vec<&'a NetworkPolicy> {
    let (eval, _) = Evaluator::new(&inv.policies, &inv.namespaces);
    let mut ids = BTreeSet::new();
    for labels in catalog.workloads.get(w).into_iter().flatten() {
        let pod = PodView { namespace: &w.namespace, name: &w.name, labels, ports: &[] };
        ids.extend(eval.selecting_ids(&pod));
    }
    let mut out: Vec<&NetworkPolicy> = inv.policies.iter().filter(|p| ids.contains(&id(p))).collect();
    out.sort_by_key(|p| id(p));
    out
}

/// `proposed` (one workload's policies) beside `today` (the policies selecting its pods).
pub fn diff(today: &[&NetworkPolicy], proposed: &[&NetworkPolicy]) -> PolicyDiff {
    let directions = [Direction::Ingress, Direction::Egress]
        .into_iter()
        .map(|direction| {
            let side = |ps: &[&NetworkPolicy]| {
                let isolated = ps.iter().any(|p| isolates(p, direction));
                let entries: BTreeSet<String> = ps.iter().flat_map(|p| entries(p, direction)).collect();
                (isolated, entries)
            };
            let (isolated_today, was) = side(today);
            let (isolated_proposed, now) = side(proposed);
            DirectionDiff {
                direction,
                isolated_today,
                isolated_proposed,
                added: now.difference(&was).cloned().collect(),
                removed: was.difference(&now).cloned().collect(),
                kept: now.intersection(&was).cloned().collect(),
            }
        })
        .collect();
    let today = today
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or("default"),
                p.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    PolicyDiff { today, directions }
}

/// Whether `p` isolates `direction` for the pods it selects (its types, or the API server's
/// defaults: Ingress always, Egress when it has egress rules).
pub fn isolates(p: &NetworkPolicy, direction: Direction) -> bool {
    let Some(spec) = &p.spec else { return direction == Direction::Ingress };
    match &spec.policy_types {
        Some(types) if !types.is_empty() => types.iter().any(|t| t.eq_ignore_ascii_case(direction.as_str())),
        _ => match direction {
            Direction::Ingress => true,
            Direction::Egress => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
        },
    }
}

/// Every peer/port pair one direction of `p` admits, in words; none when it does not isolate
/// that direction (its rules there have no effect).
pub fn entries(p: &NetworkPolicy, direction: Direction) -> Vec<String> {
    if !isolates(p, direction) {
        return Vec::new();
    }
    let ns = p.metadata.namespace.as_deref().unwrap_or("default");
    let Some(spec) = &p.spec else { return Vec::new() };
    type PeersAndPorts<'p> = (Option<&'p Vec<NetworkPolicyPeer>>, Option<&'p Vec<NetworkPolicyPort>>);
    let rules: Vec<PeersAndPorts<'_>> = match direction {
        Direction::Ingress => spec.ingress.iter().flatten().map(|r| (r.from.as_ref(), r.ports.as_ref())).collect(),
        Direction::Egress => spec.egress.iter().flatten().map(|r| (r.to.as_ref(), r.ports.as_ref())).collect(),
    };
    let mut out = Vec::new();
    for (peers, ports) in rules {
        let peers: Vec<String> = match peers.filter(|p| !p.is_empty()) {
            None => vec!["anyone".to_string()],
            Some(ps) => ps.iter().map(|peer| peer_words(peer, ns)).collect(),
        };
        let ports: Vec<String> = match ports.filter(|p| !p.is_empty()) {
            None => vec!["all ports".to_string()],
            Some(ps) => ps.iter().map(port_words).collect(),
        };
        for peer in &peers {
            for port in &ports {
                out.push(format!("{peer} on {port}"));
            }
        }
    }
    out
}

fn selector_words(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = s.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "Exists" | "DoesNotExist" => format!("{} {}", e.key, e.operator),
            op => format!("{} {op} ({values})", e.key),
        });
    }
    if parts.is_empty() { "all".to_string() } else { parts.join(",") }
}

fn peer_words(peer: &NetworkPolicyPeer, ns: &str) -> String {
    if let Some(b) = &peer.ip_block {
        return match b.except.as_deref().filter(|e| !e.is_empty()) {
            None => format!("ipBlock {}", b.cidr),
            Some(except) => format!("ipBlock {} except {}", b.cidr, except.join(",")),
        };
    }
    match (&peer.pod_selector, &peer.namespace_selector) {
        (Some(pods), None) => format!("pods {} in {ns}", selector_words(pods)),
        (None, Some(nss)) => format!("pods all in namespaces {}", selector_words(nss)),
        (Some(pods), Some(nss)) => format!("pods {} in namespaces {}", selector_words(pods), selector_words(nss)),
        (None, None) => "nothing (an empty peer)".to_string(),
    }
}

fn port_words(p: &NetworkPolicyPort) -> String {
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    match (&p.port, p.end_port) {
        (None, _) => format!("all {proto} ports"),
        (Some(IntOrString::Int(n)), Some(end)) if end > *n => format!("{n}-{end}/{proto}"),
        (Some(IntOrString::Int(n)), _) => format!("{n}/{proto}"),
        (Some(IntOrString::String(name)), _) => format!("{name}/{proto} (named)"),
    }
}

/// Policies as YAML for reading beside each other: each as it would be applied (its name,
/// namespace, labels and spec; not the server's bookkeeping), one document each, in order.
pub fn yaml_of(policies: &[&NetworkPolicy]) -> String {
    let mut out = String::new();
    for (i, p) in policies.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let bare = NetworkPolicy {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: p.metadata.name.clone(),
                namespace: p.metadata.namespace.clone(),
                labels: p.metadata.labels.clone(),
                ..Default::default()
            },
            spec: p.spec.clone(),
        };
        match serde_saphyr::to_string(&bare) {
            Ok(doc) => out.push_str(&doc),
            Err(e) => out.push_str(&format!("# cannot be written as YAML: {e}\n")),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// One line of a text diff: `' '` kept, `'-'` only in the old text, `'+'` only in the new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub op: char,
    pub text: String,
}

/// The most lines [`text_diff`] compares in either text; past it the diff is the two texts whole
/// (every old line removed, every new one added), which is still correct, only not minimal.
pub const MAX_DIFF_LINES: usize = 4000;

/// A line diff of `old` and `new` (a longest common subsequence: kept lines in order, the rest
/// removed or added, removals first).
pub fn text_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let line = |op, text: &str| DiffLine { op, text: text.to_string() };
    if a.len() > MAX_DIFF_LINES || b.len() > MAX_DIFF_LINES {
        return a.iter().map(|t| line('-', t)).chain(b.iter().map(|t| line('+', t))).collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(line(' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(line('-', a[i]));
            i += 1;
        } else {
            out.push(line('+', b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> NetworkPolicy {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn rules_flatten_to_peer_port_entries_and_diff_as_sets() {
        let today = policy(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: old, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}, {namespaceSelector: {matchLabels: {team: ops}}}]
    ports: [{port: 5432}]
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
",
        );
        let proposed = policy(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432, protocol: TCP}, {port: 9000, endPort: 9010, protocol: UDP}]
",
        );
        let d = diff(&[&today], &[&proposed]);
        assert_eq!(d.today, ["shop/old"]);
        let ingress = &d.directions[0];
        assert_eq!(ingress.kept, ["pods app=web in shop on 5432/TCP"]);
        assert_eq!(ingress.added, ["pods app=web in shop on 9000-9010/UDP"]);
        assert_eq!(
            ingress.removed,
            ["ipBlock 10.0.0.0/8 except 10.1.0.0/16 on all ports", "pods all in namespaces team=ops on 5432/TCP"]
        );
        assert!(ingress.isolated_today && ingress.isolated_proposed);
        // The old policy has no egress type: egress was open, the proposal isolates it with no rule.
        let egress = &d.directions[1];
        assert!(!egress.isolated_today && egress.isolated_proposed);
        assert!(egress.added.is_empty() && egress.removed.is_empty() && egress.kept.is_empty());
    }

    #[test]
    fn text_diff_keeps_common_lines_in_order() {
        let d = text_diff("a\nb\nc\nd\n", "a\nc\nx\nd\n");
        let ops: String = d.iter().map(|l| format!("{}{}", l.op, l.text)).collect::<Vec<_>>().join("|");
        assert_eq!(ops, " a|-b| c|+x| d");
        assert!(text_diff("same\n", "same\n").iter().all(|l| l.op == ' '));
        assert_eq!(text_diff("", "new").len(), 1);
    }
}
