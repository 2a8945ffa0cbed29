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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::networking::v1::NetworkPolicy;

    use super::*;
    use crate::model::{Labels, Port, Protocol};
    use crate::policy::eval::{AdminDecision, EvalWarning, Evaluator, NamedPort, Peer, PodView, SideDecision};

    /// The documents of `yaml` sorted into NetworkPolicies and admin policies by kind.
    fn objects(yaml: &str) -> (Vec<NetworkPolicy>, AdminPolicies) {
        let docs = serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("test YAML");
        let (mut nps, mut admin) = (Vec::new(), AdminPolicies::default());
        for d in docs.into_iter().filter(|d| !d.is_null()) {
            match d["kind"].as_str().expect("a kind") {
                "NetworkPolicy" => nps.push(serde_json::from_value(d).expect("a NetworkPolicy")),
                ANP_KIND => admin.admin.push(serde_json::from_value(d).expect("an ANP")),
                BANP_KIND => admin.baseline.push(serde_json::from_value(d).expect("a BANP")),
                CNP_KIND => admin.cluster.push(serde_json::from_value(d).expect("a CNP")),
                other => panic!("kind {other}"),
            }
        }
        (nps, admin)
    }

    struct Pod {
        namespace: &'static str,
        name: &'static str,
        labels: Labels,
        ports: Vec<NamedPort>,
    }

    /// shop/web, shop/db (a named port `pg`), ops/mon; namespaces shop (team a) and ops (team b).
    struct Cluster {
        pods: Vec<Pod>,
        namespaces: BTreeMap<String, Labels>,
    }

    impl Cluster {
        fn new() -> Cluster {
            let labels = |pairs: &[(&str, &str)]| -> Labels {
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
            };
            let pg = NamedPort { name: "pg".into(), port: 5432, protocol: Protocol::Tcp };
            let pods = vec![
                Pod { namespace: "shop", name: "web", labels: labels(&[("app", "web")]), ports: vec![] },
                Pod { namespace: "shop", name: "db", labels: labels(&[("app", "db")]), ports: vec![pg] },
                Pod { namespace: "ops", name: "mon", labels: labels(&[("app", "mon")]), ports: vec![] },
            ];
            let namespaces = BTreeMap::from([
                ("shop".to_string(), labels(&[("team", "a")])),
                ("ops".to_string(), labels(&[("team", "b")])),
            ]);
            Cluster { pods, namespaces }
        }

        /// `ns/name` for a pod, anything else parses as an address.
        fn peer(&self, s: &str) -> Peer<'_> {
            match s.split_once('/') {
                Some((ns, name)) => {
                    let p = self.pods.iter().find(|p| p.namespace == ns && p.name == name).expect("a pod");
                    Peer::Pod(PodView { namespace: p.namespace, name: p.name, labels: &p.labels, ports: &p.ports })
                }
                None => Peer::Ip(s.parse().expect("an address")),
            }
        }

        fn evaluator(&self, yaml: &str) -> (Evaluator, Vec<EvalWarning>) {
            let (nps, admin) = objects(yaml);
            let (ev, mut warnings) = Evaluator::new(&nps, &self.namespaces);
            let (ev, more) = ev.with_admin(&admin);
            warnings.extend(more);
            (ev, warnings)
        }

        /// `check` and `allowed` must agree; returns the decision.
        fn decide(&self, ev: &Evaluator, src: &str, dst: &str, port: u16, proto: Protocol) -> bool {
            let (s, d) = (self.peer(src), self.peer(dst));
            let p = Port::new(port).expect("port");
            let check = ev.check(&s, &d, p, proto);
            assert_eq!(check.allowed, ev.allows(&s, &d, p, proto), "{src} -> {dst} {port}: allows vs check");
            assert_eq!(check.allowed, ev.allowed(&s, &d).contains(proto, port), "{src} -> {dst} {port}: allowed set");
            check.allowed
        }
    }

    const TCP: Protocol = Protocol::Tcp;

    /// An ANP on shop/db's ingress from shop/web: (name, priority, action).
    fn anp_on_db(name: &str, priority: i64, action: &str) -> String {
        format!(
            "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: {name}}}
spec:
  priority: {priority}
  subject: {{pods: {{namespaceSelector: {{matchLabels: {{team: a}}}}, podSelector: {{matchLabels: {{app: db}}}}}}}}
  ingress:
  - name: {name}-rule
    action: {action}
    from: [{{pods: {{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: web}}}}}}}}]
---
"
        )
    }

    const NP_DB_FROM_MON: &str = "
kind: NetworkPolicy
metadata: {name: db-from-mon, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]}
---
";

    const NP_DB_FROM_WEB: &str = "
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}
---
";

    const BANP_DENY_ALL_INGRESS: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{name: deny-all, action: Deny, from: [{namespaces: {}}]}]
---
";

    #[test]
    fn lower_priority_decides_first() {
        let c = Cluster::new();
        let (ev, w) = c.evaluator(&(anp_on_db("deny", 20, "Deny") + &anp_on_db("allow", 10, "Allow")));
        assert!(w.is_empty(), "{w:?}");
        assert!(c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        let (ev, _) = c.evaluator(&(anp_on_db("deny", 10, "Deny") + &anp_on_db("allow", 20, "Allow")));
        assert!(!c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        // Only the subject and the rule's peers are affected.
        assert!(c.decide(&ev, "ops/mon", "shop/db", 80, TCP));
        assert!(c.decide(&ev, "shop/db", "shop/web", 80, TCP));
    }

    #[test]
    fn equal_priorities_warn_and_go_by_name() {
        let c = Cluster::new();
        let (ev, w) = c.evaluator(&(anp_on_db("b-allow", 10, "Allow") + &anp_on_db("a-deny", 10, "Deny")));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].to_string().starts_with(
                "AdminNetworkPolicy b-allow: spec.priority: shares priority 10 with AdminNetworkPolicy a-deny"
            ),
            "{}",
            w[0]
        );
        assert!(!c.decide(&ev, "shop/web", "shop/db", 80, TCP));
    }

    #[test]
    fn rules_in_order_within_a_policy() {
        let c = Cluster::new();
        let yaml = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: db}
spec:
  priority: 1
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - {name: deny-80, action: Deny, from: [{namespaces: {}}], ports: [{portNumber: {protocol: TCP, port: 80}}]}
  - {name: allow-web, action: Allow, from: [{pods: {podSelector: {matchLabels: {app: web}}}}]}
  - {name: deny-rest, action: Deny, from: [{namespaces: {}}]}
";
        let (ev, w) = c.evaluator(yaml);
        assert!(w.is_empty(), "{w:?}");
        assert!(!c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        assert!(c.decide(&ev, "shop/web", "shop/db", 81, TCP));
        assert!(!c.decide(&ev, "ops/mon", "shop/db", 81, TCP));
        assert_eq!(
            ev.allowed(&c.peer("shop/web"), &c.peer("shop/db")).to_string(),
            "SCTP 1-65535,TCP 1-79,81-65535,UDP 1-65535"
        );
    }

    #[test]
    fn deny_wins_over_a_network_policy_allow() {
        let c = Cluster::new();
        let (ev, _) = c.evaluator(NP_DB_FROM_WEB);
        assert!(c.decide(&ev, "shop/web", "shop/db", 5432, TCP));
        let (ev, _) = c.evaluator(&(anp_on_db("deny", 10, "Deny") + NP_DB_FROM_WEB));
        assert!(!c.decide(&ev, "shop/web", "shop/db", 5432, TCP));
        let d = ev.check(&c.peer("shop/web"), &c.peer("shop/db"), Port::new(5432).unwrap(), TCP);
        assert_eq!(
            d.ingress,
            SideDecision::Admin(AdminDecision {
                allowed: false,
                tier: Tier::Admin,
                policy: "AdminNetworkPolicy deny".into(),
                rule: "deny-rule".into(),
            })
        );
        assert_eq!(
            crate::policy::simulate::explain(&d),
            r#"denied by AdminNetworkPolicy deny, rule "deny-rule" (ingress)"#
        );
        // An admin Allow also overrides the NetworkPolicy that isolates db from web.
        let (ev, _) = c.evaluator(&(anp_on_db("allow", 10, "Allow") + NP_DB_FROM_MON));
        assert!(c.decide(&ev, "shop/web", "shop/db", 5432, TCP));
    }

    #[test]
    fn pass_goes_to_network_policies_then_to_the_baseline() {
        let c = Cluster::new();
        // Pass skips the rest of the admin tier: the Deny at a later priority is not reached.
        let pass_then_deny = anp_on_db("pass", 10, "Pass") + &anp_on_db("deny", 20, "Deny");
        // db isolated by a NetworkPolicy that allows web: it decides, the baseline is not asked.
        let (ev, _) = c.evaluator(&(pass_then_deny.clone() + NP_DB_FROM_WEB + BANP_DENY_ALL_INGRESS));
        assert!(c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        // ...and one that does not allow web: web is blocked.
        let (ev, _) = c.evaluator(&(pass_then_deny.clone() + NP_DB_FROM_MON));
        assert!(!c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        // No NetworkPolicy: the baseline decides the passed connection.
        let (ev, _) = c.evaluator(&(pass_then_deny.clone() + BANP_DENY_ALL_INGRESS));
        assert!(!c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        // No NetworkPolicy and no baseline: allowed.
        let (ev, _) = c.evaluator(&pass_then_deny);
        assert!(c.decide(&ev, "shop/web", "shop/db", 80, TCP));
    }

    #[test]
    fn baseline_only_for_pods_network_policies_do_not_isolate() {
        let c = Cluster::new();
        let (ev, w) = c.evaluator(&(NP_DB_FROM_WEB.to_string() + BANP_DENY_ALL_INGRESS));
        assert!(w.is_empty(), "{w:?}");
        // db is isolated for ingress: its NetworkPolicy decides, allowing web and not mon.
        assert!(c.decide(&ev, "shop/web", "shop/db", 80, TCP));
        assert!(!c.decide(&ev, "ops/mon", "shop/db", 80, TCP));
        // web and mon are not: the baseline denies their ingress.
        assert!(!c.decide(&ev, "shop/db", "shop/web", 80, TCP));
        assert!(!c.decide(&ev, "shop/web", "ops/mon", 80, TCP));
        let d = ev.check(&c.peer("shop/db"), &c.peer("shop/web"), Port::new(80).unwrap(), TCP);
        assert!(matches!(&d.ingress, SideDecision::Admin(a) if a.tier == Tier::Baseline && a.rule == "deny-all"));
        // Egress is not touched by an ingress-only baseline, and its namespace peers are no
        // address.
        assert!(c.decide(&ev, "shop/web", "1.2.3.4", 443, TCP));
        assert!(c.decide(&ev, "1.2.3.4", "shop/web", 443, TCP));
    }

    #[test]
    fn networks_and_named_ports() {
        let c = Cluster::new();
        let yaml = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress}
spec:
  priority: 3
  subject: {namespaces: {}}
  egress:
  - {name: pg, action: Allow, to: [{namespaces: {}}], ports: [{namedPort: pg}]}
  - {name: dns, action: Allow, to: [{networks: [8.8.8.8/32]}], ports: [{portNumber: {protocol: UDP, port: 53}}]}
  - {name: rest, action: Deny, to: [{networks: [0.0.0.0/0]}, {namespaces: {}}]}
";
        let (ev, w) = c.evaluator(yaml);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(ev.allowed(&c.peer("shop/web"), &c.peer("shop/db")).to_string(), "TCP 5432");
        assert_eq!(ev.allowed(&c.peer("shop/web"), &c.peer("ops/mon")).to_string(), "No Connections");
        assert_eq!(ev.allowed(&c.peer("shop/web"), &c.peer("8.8.8.8")).to_string(), "UDP 53");
        assert!(!c.decide(&ev, "shop/web", "8.8.4.4", 53, Protocol::Udp));
    }

    #[test]
    fn cluster_network_policies_of_both_tiers() {
        let c = Cluster::new();
        let yaml = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: admin-db}
spec:
  tier: Admin
  priority: 5
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - {name: web-pg, action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}], protocols: [{destinationNamedPort: pg}]}
  - {name: web-range, action: Pass, from: [{namespaces: {matchLabels: {team: a}}}], protocols: [{tcp: {destinationPort: {range: {start: 8000, end: 8100}}}}]}
  - {name: rest, action: Deny, from: [{namespaces: {}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 0
  subject: {namespaces: {}}
  ingress:
  - {name: allow-8080, action: Accept, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 8080}}}]}
  - {name: deny, action: Deny, from: [{namespaces: {}}]}
";
        let (ev, w) = c.evaluator(yaml);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(ev.allowed(&c.peer("shop/web"), &c.peer("shop/db")).to_string(), "TCP 5432,8080");
        assert_eq!(ev.allowed(&c.peer("ops/mon"), &c.peer("shop/db")).to_string(), "No Connections");
        assert_eq!(ev.allowed(&c.peer("shop/db"), &c.peer("shop/web")).to_string(), "TCP 8080");
    }

    #[test]
    fn invalid_parts_warn_name_the_policy_and_match_nothing() {
        let c = Cluster::new();
        let yaml = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: odd}
spec:
  priority: 5000
  subject: {namespaces: {}}
  ingress:
  - {name: maybe, action: Perhaps, from: [{namespaces: {}}]}
  - {name: two, action: Allow, from: [{namespaces: {}, pods: {podSelector: {}}}]}
  - {name: none, action: Allow, from: []}
  - {name: ports, action: Allow, from: [{namespaces: {}}], ports: [{portRange: {start: 90, end: 80}}, {}]}
  egress:
  - {name: nodes, action: Deny, to: [{nodes: {}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: no-subject}
spec: {priority: 1, subject: {}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: other}
spec:
  subject: {namespaces: {}}
  egress: [{name: pass, action: Pass, to: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: tierless}
spec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}
";
        let (ev, w) = c.evaluator(yaml);
        let text: Vec<String> = w.iter().map(|w| w.to_string()).collect();
        for want in [
            "AdminNetworkPolicy odd: spec.priority: priority 5000 is outside 0-1000",
            r#"AdminNetworkPolicy odd: spec.ingress[0] ("maybe").action: action "Perhaps" is not one of Allow, Deny or Pass"#,
            r#"AdminNetworkPolicy odd: spec.ingress[1] ("two").from[0]: a peer needs exactly one field, it has namespaces and pods"#,
            r#"AdminNetworkPolicy odd: spec.ingress[2] ("none").from: needs at least one peer"#,
            r#"AdminNetworkPolicy odd: spec.ingress[3] ("ports").ports[0]: port 90-80 is not within 1-65535"#,
            r#"AdminNetworkPolicy odd: spec.ingress[3] ("ports").ports[1]: needs exactly one of portNumber"#,
            r#"AdminNetworkPolicy odd: spec.egress[0] ("nodes").to[0]: nodes peers are not evaluated"#,
            "AdminNetworkPolicy no-subject: spec.subject: needs exactly one of namespaces and pods",
            r#"BaselineAdminNetworkPolicy other: metadata.name: the API admits only the name "default""#,
            r#"BaselineAdminNetworkPolicy other: spec.egress[0] ("pass").action: action "Pass" is not one of Allow or Deny"#,
            "ClusterNetworkPolicy tierless: spec.tier: missing",
        ] {
            assert!(text.iter().any(|t| t.starts_with(want)), "{want:?} in {text:#?}");
        }
        assert_eq!(text.len(), 11, "{text:#?}");
        // Nothing of it matches: everything stays allowed (no NetworkPolicy, no valid rule).
        assert!(ev.allowed(&c.peer("shop/web"), &c.peer("shop/db")).is_all());
        assert!(ev.allowed(&c.peer("shop/db"), &c.peer("ops/mon")).is_all());
    }
}
