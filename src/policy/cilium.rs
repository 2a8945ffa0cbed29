//! CiliumNetworkPolicy (`cilium.io/v2`): the same generation, spelled in Cilium's own policy
//! language. Pure: a [`Generation`]'s neutral rules in, policies out, deterministic.
//!
//! What differs from NetworkPolicy, and why:
//! - Selectors are Cilium endpoint selectors with the same identity-first labels; a peer in
//!   another namespace adds `k8s:io.kubernetes.pod.namespace` (Cilium puts a selector without it
//!   in the policy's own namespace).
//! - Nodes are entities, never addresses: Cilium's CIDR rules do not match nodes. Egress to a
//!   node is `toEntities: [host, remote-node]` (which of the two a node is depends on where the
//!   pod runs), to the API server `[kube-apiserver]`; ingress from nodes gets `fromEntities`,
//!   since Cilium admits only the pod's own node unasked.
//! - A trusted name is `toFQDNs: [{matchName}]`: the addresses behind an API change, its name
//!   does not. Cilium learns a name's addresses from the pod's own lookups through its DNS
//!   proxy, so a policy with an FQDN rule sends its DNS through the proxy (`rules.dns`,
//!   `matchPattern: "*"`, on the DNS server's rule). When an address of the name is excluded, or
//!   there is no DNS rule (`--no-dns`), the name is written as its addresses instead (toFQDNs
//!   cannot leave one out), with a warning. There is no `fromFQDNs`: ingress from a name is its
//!   addresses.
//! - One rule carries one kind of peer (endpoints, entities, CIDRs or FQDNs): Cilium refuses to
//!   combine them. Rules are otherwise merged per port set, as NetworkPolicy's are.
//! - An empty direction is `[{}]`, Cilium's deny-all: the policy isolates both directions, as
//!   the NetworkPolicy does with both `policyTypes`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::generate::{Direction, Generated, Generation, NodeRole, PeerSel, Ports};
use crate::model::{Cidr, Labels};

pub const API_VERSION: &str = "cilium.io/v2";
pub const KIND: &str = "CiliumNetworkPolicy";
/// The label Cilium gives every pod's identity: its namespace.
pub const NAMESPACE_KEY: &str = "k8s:io.kubernetes.pod.namespace";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumNetworkPolicy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
}

/// The part of a rule spec Flowgate writes and evaluates. Deny rules and the node selector are
/// read only to be warned about (`policy::eval`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<LabelSelector>>,
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<String>>,
    #[serde(default, rename = "fromCIDRSet", skip_serializing_if = "Option::is_none")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<LabelSelector>>,
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<String>>,
    #[serde(default, rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<String>>,
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CidrRule {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FqdnSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PortRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortProtocol>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortProtocol {
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// L7 rules: only DNS is written (and read); any other kind is kept to be warned about.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct L7Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Vec<FqdnSelector>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Policies in the Cilium dialect, with what this spelling had to give up.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// In the generation's order, one per generated workload.
    pub policies: Vec<CiliumNetworkPolicy>,
    pub warnings: Vec<String>,
}

/// Every policy of a generation.
pub fn render(g: &Generation) -> Rendered {
    render_some(g, |_| true)
}

/// The policies of the generated workloads `keep` selects (one workload's page).
pub fn render_some(g: &Generation, keep: impl Fn(&Generated) -> bool) -> Rendered {
    let mut out = Rendered::default();
    for gp in g.policies.iter().filter(|p| keep(p)) {
        out.policies.push(policy(gp, g.dns.as_ref(), &mut out.warnings));
    }
    out.warnings.sort();
    out.warnings.dedup();
    out
}

/// A rule's peers, by the kind Cilium lets one rule hold.
#[derive(Default)]
struct Groups {
    endpoints: Vec<LabelSelector>,
    entities: Vec<&'static str>,
    cidrs: Vec<(Cidr, Vec<Cidr>)>,
    fqdns: Vec<String>,
    /// The DNS server, when its rule must send DNS through Cilium's proxy.
    dns_proxy: Vec<LabelSelector>,
}

fn selector(labels: &Labels, namespace: Option<&str>) -> LabelSelector {
    let mut m = labels.clone();
    if let Some(ns) = namespace {
        m.insert(NAMESPACE_KEY.to_string(), ns.to_string());
    }
    LabelSelector { match_labels: Some(m), match_expressions: None }
}

/// Every pod of every namespace (what the DNS server admits).
fn all_endpoints() -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_KEY.to_string(),
            operator: "Exists".to_string(),
            values: None,
        }]),
    }
}

fn entities(role: NodeRole) -> &'static [&'static str] {
    match role {
        NodeRole::Node => &["host", "remote-node"],
        NodeRole::ApiServer => &["kube-apiserver"],
        NodeRole::Ingress => &["ingress"],
    }
}

fn to_ports(ports: &Ports, dns_proxy: bool) -> Vec<PortRule> {
    let mut v: Vec<_> = ports.iter().collect();
    v.sort_by_key(|(proto, port)| (*port, *proto));
    let ports = v
        .into_iter()
        .map(|(proto, port)| PortProtocol {
            port: port.to_string(),
            end_port: None,
            protocol: Some(proto.as_str().to_string()),
        })
        .collect();
    let rules = dns_proxy.then(|| L7Rules {
        dns: Some(vec![FqdnSelector { match_name: None, match_pattern: Some("*".into()) }]),
        other: BTreeMap::new(),
    });
    vec![PortRule { ports: Some(ports), rules }]
}

fn cidr_fields(cidrs: &[(Cidr, Vec<Cidr>)]) -> (Option<Vec<String>>, Option<Vec<CidrRule>>) {
    if cidrs.is_empty() {
        return (None, None);
    }
    // toCIDR when nothing is carved out; toCIDRSet otherwise (one rule holds only one of them).
    if cidrs.iter().all(|(_, except)| except.is_empty()) {
        return (Some(cidrs.iter().map(|(c, _)| c.to_string()).collect()), None);
    }
    let set = cidrs
        .iter()
        .map(|(c, except)| CidrRule {
            cidr: c.to_string(),
            except: (!except.is_empty()).then(|| except.iter().map(Cidr::to_string).collect()),
        })
        .collect();
    (None, Some(set))
}

/// Sorts and dedups each group, so a rule's peers come out in one order whatever the input's.
fn tidy(g: &mut Groups) {
    let key = |s: &LabelSelector| serde_json::to_string(s).unwrap_or_default();
    g.endpoints.sort_by_key(key);
    g.endpoints.dedup();
    g.entities.sort();
    g.entities.dedup();
    g.cidrs.sort();
    g.cidrs.dedup();
    g.fqdns.sort();
    g.fqdns.dedup();
}

fn policy(gp: &Generated, dns: Option<&PeerSel>, warnings: &mut Vec<String>) -> CiliumNetworkPolicy {
    let ns = gp.workload.namespace.as_str();
    let w = &gp.workload;
    // A name is an FQDN rule only when the DNS rule can carry Cilium's proxy and no address of
    // the name is excluded; else its addresses.
    let fqdn_ok = |complete: bool| dns.is_some() && complete;
    let uses_fqdn = gp
        .egress
        .iter()
        .flat_map(|(peers, _)| peers)
        .any(|p| matches!(p, PeerSel::Name { complete, .. } if fqdn_ok(*complete)));
    let mut groups = |peers: &[PeerSel], direction: Direction| -> Groups {
        let mut g = Groups::default();
        for p in peers {
            match p {
                PeerSel::Pods { namespace, selector: labels } => {
                    let sel = selector(labels, (namespace != ns).then_some(namespace.as_str()));
                    if direction == Direction::Egress && uses_fqdn && Some(p) == dns {
                        g.dns_proxy.push(sel);
                    } else {
                        g.endpoints.push(sel);
                    }
                }
                PeerSel::AllPods => g.endpoints.push(all_endpoints()),
                PeerSel::Block(c, except) => g.cidrs.push((*c, except.clone())),
                PeerSel::Node { role, .. } => g.entities.extend(entities(*role)),
                PeerSel::Name { name, addresses, complete } => {
                    if direction == Direction::Egress && fqdn_ok(*complete) {
                        g.fqdns.push(name.to_string());
                        continue;
                    }
                    let why = match direction {
                        Direction::Ingress => "Cilium has no fromFQDNs",
                        Direction::Egress if !complete => "toFQDNs cannot leave out its excluded addresses",
                        Direction::Egress => "toFQDNs needs the DNS rule (--no-dns leaves it out)",
                    };
                    let shown: Vec<String> = addresses.iter().map(|c| c.net().addr().to_string()).collect();
                    warnings.push(format!(
                        "{w}: the trusted name {name} is written as the addresses it was seen resolving to ({}): {why}",
                        shown.join(", ")
                    ));
                    g.cidrs.extend(addresses.iter().map(|c| (*c, Vec::new())));
                }
            }
        }
        tidy(&mut g);
        g
    };

    let mut ingress = Vec::new();
    for (peers, ports) in &gp.ingress {
        let g = groups(peers, Direction::Ingress);
        let (from_cidr, from_cidr_set) = cidr_fields(&g.cidrs);
        let to_ports = || Some(to_ports(ports, false));
        if !g.endpoints.is_empty() {
            ingress.push(IngressRule { from_endpoints: Some(g.endpoints), to_ports: to_ports(), ..Default::default() });
        }
        if !g.entities.is_empty() {
            let from_entities = Some(g.entities.iter().map(|e| e.to_string()).collect());
            ingress.push(IngressRule { from_entities, to_ports: to_ports(), ..Default::default() });
        }
        if from_cidr.is_some() || from_cidr_set.is_some() {
            ingress.push(IngressRule { from_cidr, from_cidr_set, to_ports: to_ports(), ..Default::default() });
        }
    }
    let mut egress = Vec::new();
    for (peers, ports) in &gp.egress {
        let g = groups(peers, Direction::Egress);
        let (to_cidr, to_cidr_set) = cidr_fields(&g.cidrs);
        let to_ports_of = |proxy| Some(to_ports(ports, proxy));
        if !g.endpoints.is_empty() {
            egress.push(EgressRule {
                to_endpoints: Some(g.endpoints),
                to_ports: to_ports_of(false),
                ..Default::default()
            });
        }
        if !g.dns_proxy.is_empty() {
            egress.push(EgressRule {
                to_endpoints: Some(g.dns_proxy),
                to_ports: to_ports_of(true),
                ..Default::default()
            });
        }
        if !g.entities.is_empty() {
            let to_entities = Some(g.entities.iter().map(|e| e.to_string()).collect());
            egress.push(EgressRule { to_entities, to_ports: to_ports_of(false), ..Default::default() });
        }
        if to_cidr.is_some() || to_cidr_set.is_some() {
            egress.push(EgressRule { to_cidr, to_cidr_set, to_ports: to_ports_of(false), ..Default::default() });
        }
        if !g.fqdns.is_empty() {
            let to_fqdns = Some(
                g.fqdns.iter().map(|n| FqdnSelector { match_name: Some(n.clone()), match_pattern: None }).collect(),
            );
            egress.push(EgressRule { to_fqdns, to_ports: to_ports_of(false), ..Default::default() });
        }
    }
    // Cilium's deny-all for a direction: one rule that matches nothing.
    if ingress.is_empty() {
        ingress.push(IngressRule::default());
    }
    if egress.is_empty() {
        egress.push(EgressRule::default());
    }
    let meta = &gp.policy.metadata;
    CiliumNetworkPolicy {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            labels: meta.labels.clone(),
            annotations: meta.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(Spec {
            endpoint_selector: Some(selector(&gp.selector, None)),
            // A direction left out has no rules at all: in Cilium that does not isolate it.
            ingress: (!gp.leave_out.contains(&Direction::Ingress)).then_some(ingress),
            egress: (!gp.leave_out.contains(&Direction::Egress)).then_some(egress),
            ..Spec::default()
        }),
    }
}

/// Policies as multi-document YAML, one document per policy, in order.
pub fn to_yaml(policies: &[CiliumNetworkPolicy]) -> Result<String, String> {
    let mut out = String::new();
    for (i, p) in policies.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let doc = serde_saphyr::to_string(p).map_err(|e| format!("serialising {name}: {e}"))?;
        out.push_str(&doc);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
