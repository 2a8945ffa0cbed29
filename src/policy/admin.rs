//! The cluster-scoped policy APIs of `policy.networking.k8s.io` (SIG Network's network-policy-api):
//! `v1alpha1` AdminNetworkPolicy and BaselineAdminNetworkPolicy, and `v1alpha2`
//! ClusterNetworkPolicy (one kind for both tiers). k8s-openapi has no types for them; these are
//! the fields the evaluator reads ([`super::eval::Evaluator::with_admin`]), everything else
//! (status, unknown fields) is ignored. Pure: serde types and names, no IO.
//!
//! How they are evaluated, per direction (egress at the source pod, ingress at the destination):
//! 1. The admin tier (AdminNetworkPolicies, ClusterNetworkPolicies of tier `Admin`), by ascending
//!    priority and, within a policy, rules in order: the first rule whose peer and port match
//!    decides. `Allow` (`Accept`) allows, and nothing below is consulted; `Deny` denies; `Pass`
//!    skips the rest of the admin tier.
//! 2. NetworkPolicies (and CiliumNetworkPolicies), as without admin policies: when some selects
//!    the pod for that direction, they decide.
//! 3. Otherwise the baseline tier (the BaselineAdminNetworkPolicy `default`, ClusterNetworkPolicies
//!    of tier `Baseline`): the first matching rule decides `Allow` or `Deny`; no match allows.
//!
//! As np-guard's netpol-analyzer reads them (the conformance oracle): admin rules are read as
//! they are, with no implicit isolation; a `nodes` peer is not evaluated (warned about, it
//! matches nothing); a named port resolves on the destination pod with that pod's protocol and
//! matches nothing towards an address. Where the analyzer refuses the whole input (two
//! AdminNetworkPolicies at one priority, a priority out of 0-1000, a second baseline policy, a
//! BaselineAdminNetworkPolicy not named `default`), the evaluator warns and goes on
//! deterministically: ties are broken by name, a priority is clamped, every baseline policy is
//! read. A part that Kubernetes' validation would reject matches nothing, with a warning that
//! names the policy and rule. IPv6 `networks` are evaluated (the analyzer skips them with a
//! warning).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "policy.networking.k8s.io";
pub const V1ALPHA1: &str = "policy.networking.k8s.io/v1alpha1";
pub const V1ALPHA2: &str = "policy.networking.k8s.io/v1alpha2";
pub const ANP_KIND: &str = "AdminNetworkPolicy";
pub const BANP_KIND: &str = "BaselineAdminNetworkPolicy";
pub const CNP_KIND: &str = "ClusterNetworkPolicy";
/// The only name a BaselineAdminNetworkPolicy may have.
pub const BANP_NAME: &str = "default";
/// The priorities the API admits, lowest first.
pub const MIN_PRIORITY: i64 = 0;
pub const MAX_PRIORITY: i64 = 1000;
/// More rules, peers or ports than this in one list are not read (the API admits 100 rules and
/// 100 peers, 25 of each in v1alpha2): an object past it was not admitted by any API server.
pub const MAX_ITEMS: usize = 1000;

/// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy: cluster-scoped, ordered by priority.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminNetworkPolicy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<AdminSpec>,
}

/// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy: the singleton `default`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineAdminNetworkPolicy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<AdminSpec>,
}

/// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy: either tier, ordered by priority.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<AdminSpec>,
}

/// The spec of all three kinds: `priority` is absent from a BaselineAdminNetworkPolicy and
/// `tier` is ClusterNetworkPolicy's. Numbers are read wide so that an out-of-range one is
/// warned about rather than failing the object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
}

/// Exactly one of `namespaces` (every pod of the namespaces it selects) and `pods`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

/// Pods by namespace and pod labels; a missing selector is the empty one (everything).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<RulePeer>>,
    /// v1alpha1's ports; `None` is every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<AdminPort>>,
    /// v1alpha2's ports; `None` is every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ClusterProtocol>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<RulePeer>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<AdminPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ClusterProtocol>>,
}

/// A rule peer: exactly one field set. Ingress peers have only `namespaces` and `pods`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulePeer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_names: Option<Vec<String>>,
}

/// v1alpha1: exactly one of a port number, a named port (of the destination pod) and a range.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<PortNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortRange>,
}

/// `protocol` defaults to TCP.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default)]
    pub start: i64,
    #[serde(default)]
    pub end: i64,
}

/// v1alpha2: exactly one of `tcp`, `udp`, `sctp` (each with a destination port) and
/// `destinationNamedPort`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProtocol {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ProtocolPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<ProtocolPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<ProtocolPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}

/// `None` (or an empty object): every port of the protocol.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<DestinationPort>,
}

/// Exactly one of a number and a range.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
}

/// The cluster-scoped policies of an inventory, as read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdminPolicies {
    pub admin: Vec<AdminNetworkPolicy>,
    pub baseline: Vec<BaselineAdminNetworkPolicy>,
    pub cluster: Vec<ClusterNetworkPolicy>,
}

impl AdminPolicies {
    pub fn is_empty(&self) -> bool {
        self.admin.is_empty() && self.baseline.is_empty() && self.cluster.is_empty()
    }

    pub fn len(&self) -> usize {
        self.admin.len() + self.baseline.len() + self.cluster.len()
    }
}

/// The two tiers around NetworkPolicies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Before NetworkPolicies: AdminNetworkPolicy, ClusterNetworkPolicy tier `Admin`.
    Admin,
    /// After them, for pods they do not isolate: BaselineAdminNetworkPolicy, tier `Baseline`.
    Baseline,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `Allow` (v1alpha1) or `Accept` (v1alpha2).
    Allow,
    Deny,
    /// Admin tier only: leave the connection to NetworkPolicies (then the baseline).
    Pass,
}
