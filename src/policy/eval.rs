//! NetworkPolicy evaluation: which traffic do a set of `networking.k8s.io/v1` NetworkPolicies allow?
//!
//! The semantics are Kubernetes' own: a pod is isolated for a direction when some policy of its
//! namespace selects it and has that policy type; an isolated pod accepts (or sends) only what the
//! union of the selecting policies' rules allows; a connection needs both the source's egress and
//! the destination's ingress. Only pods are subject to policies: `Peer::Ip` stands for everything
//! else (external addresses, nodes, unresolved endpoints) and is matched by `ipBlock`s only.
//!
//! Policies are compiled once (selectors, CIDRs, ports parsed, policies indexed by namespace) so
//! that a query does no parsing: `allows` answers yes/no without allocating, for the hot loops of
//! policy generation; `check` adds the names of the policies behind the verdict, for reports.
//! Anything Kubernetes' validation would reject makes an `EvalWarning` and matches nothing: a
//! broken rule must never widen what we believe is allowed.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::admin::{self, Action, AdminPolicies, Tier};
use super::cilium::{self, CiliumNetworkPolicy};
use super::portset::{ConnSet, PortSet};
use crate::dns::Names;
pub use crate::enrich::NodeRole;
use crate::model::{DnsName, Labels, Port, Protocol};

/// The label the API server puts on every namespace (Kubernetes 1.21+), so selectors can name one.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where objects without `metadata.namespace` live, as `kubectl apply` would put them.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A container port with a name, which a policy port may refer to (`port: http`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// What the evaluator needs to know about a pod.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub labels: &'a Labels,
    /// The pod's named container ports; unnamed ones play no part in policy evaluation.
    pub ports: &'a [NamedPort],
}

/// One end of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    Pod(PodView<'a>),
    /// Anything that is not a pod or a node: an external address, an address we could not
    /// resolve.
    Ip(IpAddr),
    /// A node's address (or the API server's): an address to NetworkPolicy's ipBlocks, an entity
    /// to Cilium, whose CIDR rules never match it.
    Host {
        ip: IpAddr,
        role: NodeRole,
    },
}

/// A part of a policy that Kubernetes' validation would reject. The part matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalWarning {
    #[error("{policy}: {path}: {reason}; the selector matches nothing")]
    Selector { policy: String, path: String, reason: String },
    #[error("{policy}: {path}: {reason}; the peer matches nothing")]
    Peer { policy: String, path: String, reason: String },
    #[error("{policy}: {path}: {reason}; the port entry matches nothing")]
    Port { policy: String, path: String, reason: String },
    #[error("{policy}: spec.policyTypes: unknown type {value:?} (expected Ingress or Egress); ignored")]
    PolicyType { policy: String, value: String },
    /// Something of a cluster-scoped admin policy as a whole or of one of its rules.
    #[error("{policy}: {path}: {reason}")]
    Admin { policy: String, path: String, reason: String },
}

/// The verdict for one connection, with the policies behind it on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The source's side.
    pub egress: SideDecision,
    /// The destination's side.
    pub ingress: SideDecision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideDecision {
    /// That end is not a pod, so no policy applies to it.
    NotApplicable,
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    /// Allowed by these rules, one entry per policy (sorted by policy).
    AllowedBy(Vec<AllowingRules>),
    /// The pod is isolated by these policies (`ns/name`, sorted) and none of them allows it.
    Blocked { isolated_by: Vec<String> },
    /// A rule of a cluster-scoped admin or baseline policy decided ([`super::admin`]).
    Admin(AdminDecision),
}

impl SideDecision {
    pub fn allows(&self) -> bool {
        match self {
            SideDecision::Blocked { .. } => false,
            SideDecision::Admin(d) => d.allowed,
            SideDecision::NotApplicable | SideDecision::NotIsolated | SideDecision::AllowedBy(_) => true,
        }
    }
}

/// The rules of one policy that allow one side of a connection: the policy (`ns/name`), the spec
/// field of that side's rules (`ingress`, `egress`) and the rules' places in it, in spec order.
/// Spelled out only when shown: evaluation records indices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AllowingRules {
    pub policy: String,
    pub field: &'static str,
    pub rules: Vec<usize>,
}

impl AllowingRules {
    /// `field` is `ingress` or `egress`.
    pub fn new(policy: &str, field: &'static str, rules: &[usize]) -> Self {
        AllowingRules { policy: policy.to_string(), field, rules: rules.to_vec() }
    }
}

impl std::fmt::Display for AllowingRules {
    /// `ns/web spec.ingress[0]`, `ns/web spec.ingress[0], spec.ingress[2]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.policy)?;
        for (i, r) in self.rules.iter().enumerate() {
            write!(f, "{}spec.{}[{r}]", if i == 0 { " " } else { ", " }, self.field)?;
        }
        Ok(())
    }
}

/// Allowing rules in words: `ns/a spec.ingress[0]; ns/b spec.ingress[1], spec.ingress[2]`.
pub fn join_allowing(by: &[AllowingRules]) -> String {
    by.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The admin-tier or baseline-tier rule that decided one side of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminDecision {
    pub allowed: bool,
    pub tier: Tier,
    /// `Kind name`, e.g. `AdminNetworkPolicy deny-db`.
    pub policy: String,
    /// The rule's name, or its place (`egress[2]`) when it has none.
    pub rule: String,
}

impl std::fmt::Display for AdminDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{verb} by {}, rule {:?}", self.policy, self.rule)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The spec field holding this direction's rules.
    fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// Where a selector looks up labels: a pod's label map, or a namespace's labels plus its name.
trait LabelLookup {
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

struct NamespaceLabels<'a> {
    name: &'a str,
    labels: Option<&'a Labels>,
}

impl LabelLookup for NamespaceLabels<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        // The API server sets the name label itself, so it wins over whatever the map says.
        if key == NAMESPACE_NAME_LABEL {
            return Some(self.name);
        }
        self.labels.and_then(|l| l.label(key))
    }
}

#[derive(Debug, Clone)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A compiled label selector: all requirements must hold; no requirement selects everything.
#[derive(Debug, Clone, Default)]
struct Selector {
    requirements: Vec<Requirement>,
    /// Set when the selector was invalid: it then selects nothing.
    never: bool,
}

impl Selector {
    fn compile(sel: &LabelSelector, ctx: &mut Ctx<'_>, path: &str) -> Selector {
        let mut out = Selector::default();
        for (k, v) in sel.match_labels.iter().flatten() {
            out.requirements.push(Requirement::In(k.clone(), vec![v.clone()]));
        }
        for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
            let values = expr.values.clone().unwrap_or_default();
            let key = expr.key.clone();
            let mut invalid = |reason: String| {
                ctx.warn(EvalWarning::Selector {
                    policy: ctx.policy.to_string(),
                    path: format!("{path}.matchExpressions[{i}]"),
                    reason,
                });
            };
            let req = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    invalid(format!("operator {} needs at least one value", expr.operator));
                    None
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    invalid(format!("operator {} takes no values", expr.operator));
                    None
                }
                "In" => Some(Requirement::In(key, values)),
                "NotIn" => Some(Requirement::NotIn(key, values)),
                "Exists" => Some(Requirement::Exists(key)),
                "DoesNotExist" => Some(Requirement::DoesNotExist(key)),
                other => {
                    invalid(format!("unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"));
                    None
                }
            };
            match req {
                Some(r) => out.requirements.push(r),
                None => out.never = true,
            }
        }
        out
    }

    /// One `key=value` the selector requires, if any: where the evaluator files its policy.
    fn anchor(&self) -> Option<(&str, &str)> {
        if self.never {
            return None;
        }
        // Cilium's namespace keys are no pod label: a policy filed under one would be missed.
        self.requirements.iter().find_map(|r| match r {
            Requirement::In(k, vs)
                if vs.len() == 1 && k != CILIUM_NAMESPACE_KEY && !k.starts_with(CILIUM_NAMESPACE_LABELS) =>
            {
                Some((k.as_str(), vs[0].as_str()))
            }
            _ => None,
        })
    }

    fn matches(&self, labels: &impl LabelLookup) -> bool {
        !self.never
            && self.requirements.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.label(k).is_some_and(|v| vs.iter().any(|x| x == v)),
                // NotIn holds for objects without the key, as in Kubernetes.
                Requirement::NotIn(k, vs) => labels.label(k).is_none_or(|v| vs.iter().all(|x| x != v)),
                Requirement::Exists(k) => labels.label(k).is_some(),
                Requirement::DoesNotExist(k) => labels.label(k).is_none(),
            })
    }
}

#[derive(Debug, Clone)]
enum NamespaceMatch {
    /// No namespaceSelector: the policy's own namespace.
    Own,
    Selector(Selector),
}

#[derive(Debug, Clone)]
enum PeerMatch {
    Pods {
        namespaces: NamespaceMatch,
        pods: Selector,
    },
    Block {
        net: IpNet,
        except: Vec<IpNet>,
    },
    /// Cilium's endpoint selector: the namespace is a label of the pod's identity; a selector
    /// that names none selects in the policy's namespace only.
    CiliumPods {
        selector: Selector,
        own_namespace: bool,
    },
    /// Cilium's CIDR rules: external and unresolved addresses, never pods or nodes.
    CiliumBlock {
        net: IpNet,
        except: Vec<IpNet>,
    },
    /// Cilium's entities, resolved to what they match here.
    Entities(Entities),
    /// Cilium's `toFQDNs`: an address some name it was seen for matches.
    Fqdn(Vec<FqdnMatch>),
    Nothing,
}

#[derive(Debug, Clone, Default)]
struct Entities {
    /// `host` and `remote-node` both (which one a node is depends on where the pod runs, so one
    /// alone is not taken to match), or `cluster`.
    nodes: bool,
    apiserver: bool,
    ingress: bool,
    /// `world` (and its per-family halves): addresses that are no pod or node.
    world: bool,
    /// `cluster` or `all`: every pod.
    pods: bool,
}

#[derive(Debug, Clone)]
enum FqdnMatch {
    Name(DnsName),
    /// `*` matches any run of name characters within a label, as Cilium's `matchPattern`.
    Pattern(String),
}

impl FqdnMatch {
    fn matches(&self, name: &DnsName) -> bool {
        match self {
            FqdnMatch::Name(n) => n == name,
            FqdnMatch::Pattern(p) => glob(p.as_bytes(), name.as_str().as_bytes()),
        }
    }
}

/// `*` matches any run of characters other than `.`; everything else is literal.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).take_while(|&i| i == 0 || s[i - 1] != b'.').any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

#[derive(Debug, Clone)]
enum PortMatch {
    Numbers(Protocol, PortSet),
    /// Resolved against the destination pod's container ports (same name and protocol).
    Named(Protocol, String),
}

#[derive(Debug, Clone)]
struct Rule {
    /// `None`: the rule names no peers, so it matches every peer.
    peers: Option<Vec<PeerMatch>>,
    /// `None`: the rule names no ports, so it matches every port of every protocol.
    ports: Option<Vec<PortMatch>>,
}

#[derive(Debug, Clone)]
struct CompiledPolicy {
    id: String,
    selector: Selector,
    /// A CiliumNetworkPolicy: its selectors read a pod's identity labels ([`CiliumLabels`]).
    cilium: bool,
    /// `Some` when the policy has that type (and thereby isolates the pods it selects).
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
}

impl CompiledPolicy {
    fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Compilation context: the policy being compiled and where its warnings go.
struct Ctx<'w> {
    policy: String,
    warnings: &'w mut Vec<EvalWarning>,
}

impl Ctx<'_> {
    fn warn(&mut self, w: EvalWarning) {
        self.warnings.push(w);
    }
}

/// A cluster-scoped admin or baseline policy, compiled.
#[derive(Debug, Clone)]
struct AdminCompiled {
    /// `Kind name`.
    id: String,
    priority: i64,
    /// The subject's namespaces; with `subject_pods`, the pods in them too.
    subject_ns: Selector,
    subject_pods: Option<Selector>,
    ingress: Vec<AdminRule>,
    egress: Vec<AdminRule>,
}

impl AdminCompiled {
    fn rules(&self, dir: Direction) -> &[AdminRule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

#[derive(Debug, Clone)]
struct AdminRule {
    name: String,
    action: Action,
    peers: Vec<PeerMatch>,
    /// `None`: every port of every protocol.
    ports: Option<Vec<AdminPortMatch>>,
}

#[derive(Debug, Clone)]
enum AdminPortMatch {
    Numbers(Protocol, PortSet),
    /// A container port of the destination pod, with that port's protocol.
    Named(String),
}

/// NetworkPolicies compiled for evaluation; build once with `new`, query many times.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    /// The admin tier, in evaluation order (priority, then name).
    admin: Vec<AdminCompiled>,
    /// The baseline tier, in evaluation order.
    baseline: Vec<AdminCompiled>,
    by_namespace: HashMap<String, NamespacePolicies>,
    namespace_labels: BTreeMap<String, Labels>,
    /// The names addresses were seen for, which `toFQDNs` rules match.
    names: Names,
}

/// A namespace's policies, indexed by one `key=value` that each one's pod selector requires, so
/// that finding the policies selecting a pod tests the few that can, not all of them (a
/// namespace with a generated policy per workload has as many policies as workloads).
#[derive(Debug, Clone, Default)]
struct NamespacePolicies {
    /// In `ns/name` order.
    policies: Vec<CompiledPolicy>,
    /// key -> value -> the policies (indexes) whose selector requires `key=value`.
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
    /// Policies whose selector requires no single `key=value` (empty, expressions only, invalid).
    unanchored: Vec<usize>,
}

impl NamespacePolicies {
    fn new(mut policies: Vec<CompiledPolicy>) -> Self {
        policies.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = NamespacePolicies { policies, ..Default::default() };
        for (i, p) in out.policies.iter().enumerate() {
            match p.selector.anchor() {
                Some((k, v)) => {
                    out.by_label.entry(k.to_string()).or_default().entry(v.to_string()).or_default().push(i)
                }
                None => out.unanchored.push(i),
            }
        }
        out
    }

    /// The policies that may select a pod with these labels (a superset; in no particular order).
    fn candidates<'s>(&'s self, labels: &'s Labels) -> impl Iterator<Item = &'s CompiledPolicy> {
        let anchored = self.by_label.iter().filter_map(|(k, values)| values.get(labels.label(k)?)).flatten();
        self.unanchored.iter().chain(anchored).map(|&i| &self.policies[i])
    }
}

impl Evaluator {
    /// Compiles `policies`. `namespace_labels` gives each known namespace's labels; a namespace
    /// missing from it still carries its implicit `kubernetes.io/metadata.name` label.
    pub fn new(
        policies: &[NetworkPolicy],
        namespace_labels: &BTreeMap<String, Labels>,
    ) -> (Evaluator, Vec<EvalWarning>) {
        let mut warnings = Vec::new();
        let mut by_namespace: HashMap<String, Vec<CompiledPolicy>> = HashMap::new();
        for np in policies {
            let ns = np.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            let name = np.metadata.name.as_deref().unwrap_or("");
            let mut ctx = Ctx { policy: format!("{ns}/{name}"), warnings: &mut warnings };
            let compiled = compile_policy(np, &mut ctx);
            by_namespace.entry(ns.to_string()).or_default().push(compiled);
        }
        let by_namespace = by_namespace.into_iter().map(|(ns, list)| (ns, NamespacePolicies::new(list))).collect();
        let ev = Evaluator { by_namespace, namespace_labels: namespace_labels.clone(), ..Default::default() };
        (ev, warnings)
    }

    /// Compiles NetworkPolicies and CiliumNetworkPolicies together, as Cilium enforces them: a
    /// pod is isolated for a direction when a policy of either kind selects it for it, and then
    /// allowed what any of them allows. `names` are the DNS names addresses were seen for, which
    /// `toFQDNs` rules match (Cilium learns them from the pods' own lookups).
    pub fn with_cilium(
        policies: &[NetworkPolicy],
        cilium: &[CiliumNetworkPolicy],
        namespace_labels: &BTreeMap<String, Labels>,
        names: &Names,
    ) -> (Evaluator, Vec<EvalWarning>) {
        let mut warnings = Vec::new();
        let mut by_namespace: HashMap<String, Vec<CompiledPolicy>> = HashMap::new();
        for np in policies {
            let ns = np.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            let name = np.metadata.name.as_deref().unwrap_or("");
            let mut ctx = Ctx { policy: format!("{ns}/{name}"), warnings: &mut warnings };
            by_namespace.entry(ns.to_string()).or_default().push(compile_policy(np, &mut ctx));
        }
        for cnp in cilium {
            let ns = cnp.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
            let name = cnp.metadata.name.as_deref().unwrap_or("");
            let mut ctx = Ctx { policy: format!("{ns}/{name}"), warnings: &mut warnings };
            if let Some(p) = compile_cilium(cnp, &mut ctx) {
                by_namespace.entry(ns.to_string()).or_default().push(p);
            }
        }
        let by_namespace = by_namespace.into_iter().map(|(ns, list)| (ns, NamespacePolicies::new(list))).collect();
        let ev = Evaluator {
            by_namespace,
            namespace_labels: namespace_labels.clone(),
            names: names.clone(),
            ..Default::default()
        };
        (ev, warnings)
    }

    /// Adds the cluster-scoped policies of `policy.networking.k8s.io` ([`super::admin`]): the
    /// admin tier before the NetworkPolicies, the baseline tier after them. Their warnings name
    /// the policy (`AdminNetworkPolicy name`) and the rule.
    pub fn with_admin(mut self, policies: &AdminPolicies) -> (Evaluator, Vec<EvalWarning>) {
        let mut warnings = Vec::new();
        let (mut admin, mut baseline) = (Vec::new(), Vec::new());
        for p in &policies.admin {
            let mut ctx = admin_ctx(admin::ANP_KIND, &p.metadata, &mut warnings);
            admin.extend(compile_admin(p.spec.as_ref(), AdminKind::Anp, &mut ctx));
        }
        for (i, p) in policies.baseline.iter().enumerate() {
            let mut ctx = admin_ctx(admin::BANP_KIND, &p.metadata, &mut warnings);
            let name = p.metadata.name.as_deref().unwrap_or("");
            if name != admin::BANP_NAME {
                let reason = format!("the API admits only the name {:?}; evaluated anyway", admin::BANP_NAME);
                ctx.warn(EvalWarning::Admin { policy: ctx.policy.clone(), path: "metadata.name".into(), reason });
            }
            if i > 0 {
                let reason = "a cluster has one BaselineAdminNetworkPolicy; several are evaluated in name order".into();
                ctx.warn(EvalWarning::Admin { policy: ctx.policy.clone(), path: "metadata".into(), reason });
            }
            baseline.extend(compile_admin(p.spec.as_ref(), AdminKind::Banp, &mut ctx));
        }
        for p in &policies.cluster {
            let mut ctx = admin_ctx(admin::CNP_KIND, &p.metadata, &mut warnings);
            match p.spec.as_ref().and_then(|s| s.tier.as_deref()) {
                Some("Admin") => admin.extend(compile_admin(p.spec.as_ref(), AdminKind::Cnp(Tier::Admin), &mut ctx)),
                Some("Baseline") => {
                    baseline.extend(compile_admin(p.spec.as_ref(), AdminKind::Cnp(Tier::Baseline), &mut ctx))
                }
                other => {
                    let reason = match other {
                        None => "missing (expected Admin or Baseline); the policy is left out".to_string(),
                        Some(t) => format!(
                            "unknown tier {:?} (expected Admin or Baseline); the policy is left out",
                            crate::model::names::excerpt(t)
                        ),
                    };
                    ctx.warn(EvalWarning::Admin { policy: ctx.policy.clone(), path: "spec.tier".into(), reason });
                }
            }
        }
        // Priority, then name: deterministic where Kubernetes leaves ties undefined. The baseline
        // tier's order matters only between ClusterNetworkPolicies and a second BANP (warned).
        // (Sorted with what an earlier call added, so calls add up.)
        self.admin.extend(admin);
        self.baseline.extend(baseline);
        self.admin.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        self.baseline.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        for pair in self.admin.windows(2).filter(|w| w[0].priority == w[1].priority) {
            let (first, second) = (&pair[0].id, &pair[1].id);
            warnings.push(EvalWarning::Admin {
                policy: second.clone(),
                path: "spec.priority".into(),
                reason: format!(
                    "shares priority {} with {first}, which Kubernetes leaves undefined; {first} is evaluated first (by name)",
                    pair[1].priority
                ),
            });
        }
        (self, warnings)
    }

    /// Is `proto`/`port` from `src` to `dst` allowed, and by which policies on each side?
    pub fn check(&self, src: &Peer, dst: &Peer, port: Port, proto: Protocol) -> Decision {
        let egress = match src {
            Peer::Pod(pod) => self.side_decision(pod, Direction::Egress, dst, dst_ports(dst), port, proto),
            Peer::Ip(_) | Peer::Host { .. } => SideDecision::NotApplicable,
        };
        let ingress = match dst {
            Peer::Pod(pod) => self.side_decision(pod, Direction::Ingress, src, Some(pod.ports), port, proto),
            Peer::Ip(_) | Peer::Host { .. } => SideDecision::NotApplicable,
        };
        Decision { allowed: egress.allows() && ingress.allows(), egress, ingress }
    }

    /// The verdict of `check` without the attribution, and without allocating.
    pub fn allows(&self, src: &Peer, dst: &Peer, port: Port, proto: Protocol) -> bool {
        let side_allows = |subject: &PodView, dir: Direction, peer: &Peer, target_ports: Option<&[NamedPort]>| {
            if let Some((_, rule)) = self.tier_match(&self.admin, subject, dir, peer, target_ports, port, proto) {
                match rule.action {
                    Action::Allow => return true,
                    Action::Deny => return false,
                    Action::Pass => {}
                }
            }
            let mut isolated = false;
            for policy in self.selecting(subject) {
                let Some(rules) = policy.rules(dir) else { continue };
                isolated = true;
                let ns = subject.namespace;
                if rules
                    .iter()
                    .any(|r| self.rule_matches_peer(r, ns, peer) && rule_allows_port(r, target_ports, port, proto))
                {
                    return true;
                }
            }
            if isolated {
                return false;
            }
            self.tier_match(&self.baseline, subject, dir, peer, target_ports, port, proto)
                .is_none_or(|(_, rule)| rule.action == Action::Allow)
        };
        let egress_ok = match src {
            Peer::Pod(pod) => side_allows(pod, Direction::Egress, dst, dst_ports(dst)),
            Peer::Ip(_) | Peer::Host { .. } => true,
        };
        egress_ok
            && match dst {
                Peer::Pod(pod) => side_allows(pod, Direction::Ingress, src, Some(pod.ports)),
                Peer::Ip(_) | Peer::Host { .. } => true,
            }
    }

    /// Every protocol and port allowed from `src` to `dst`.
    pub fn allowed(&self, src: &Peer, dst: &Peer) -> ConnSet {
        let egress = match src {
            Peer::Pod(pod) => self.side_conns(pod, Direction::Egress, dst, dst_ports(dst)),
            Peer::Ip(_) | Peer::Host { .. } => ConnSet::all(),
        };
        if egress.is_empty() {
            return egress;
        }
        let ingress = match dst {
            Peer::Pod(pod) => self.side_conns(pod, Direction::Ingress, src, Some(pod.ports)),
            Peer::Ip(_) | Peer::Host { .. } => ConnSet::all(),
        };
        egress.intersect(&ingress)
    }

    /// Whether some policy selects `pod` for ingress and for egress: (ingress, egress).
    pub fn isolation(&self, pod: &PodView) -> (bool, bool) {
        let mut iso = (false, false);
        for p in self.selecting(pod) {
            iso.0 |= p.ingress.is_some();
            iso.1 |= p.egress.is_some();
        }
        iso
    }

    /// The ids (`ns/name`) of the policies selecting `pod`, sorted, once each.
    pub fn selecting_ids(&self, pod: &PodView) -> Vec<String> {
        let mut ids: Vec<String> = self.selecting(pod).map(|p| p.id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The policies selecting `pod`, in no particular order.
    fn selecting<'s>(&'s self, pod: &PodView<'s>) -> impl Iterator<Item = &'s CompiledPolicy> {
        let labels = pod.labels;
        let identity = self.identity(pod);
        self.by_namespace
            .get(pod.namespace)
            .into_iter()
            .flat_map(move |ns| ns.candidates(labels))
            .filter(move |p| if p.cilium { p.selector.matches(&identity) } else { p.selector.matches(labels) })
    }

    /// A pod's labels as Cilium's selectors read them.
    fn identity<'s>(&'s self, pod: &PodView<'s>) -> CiliumLabels<'s> {
        CiliumLabels {
            namespace: pod.namespace,
            labels: pod.labels,
            ns_labels: self.namespace_labels.get(pod.namespace),
        }
    }

    fn side_decision(
        &self,
        subject: &PodView,
        dir: Direction,
        peer: &Peer,
        target_ports: Option<&[NamedPort]>,
        port: Port,
        proto: Protocol,
    ) -> SideDecision {
        let decided = |tier: Tier, (policy, rule): (&AdminCompiled, &AdminRule)| {
            SideDecision::Admin(AdminDecision {
                allowed: rule.action == Action::Allow,
                tier,
                policy: policy.id.clone(),
                rule: rule.name.clone(),
            })
        };
        if let Some(m) = self.tier_match(&self.admin, subject, dir, peer, target_ports, port, proto)
            && m.1.action != Action::Pass
        {
            return decided(Tier::Admin, m);
        }
        let mut isolating = Vec::new();
        let mut allowing = Vec::new();
        for policy in self.selecting(subject) {
            let Some(rules) = policy.rules(dir) else { continue };
            isolating.push(policy.id.clone());
            let ns = subject.namespace;
            let matching: Vec<usize> = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| self.rule_matches_peer(r, ns, peer) && rule_allows_port(r, target_ports, port, proto))
                .map(|(i, _)| i)
                .collect();
            if !matching.is_empty() {
                allowing.push(AllowingRules { policy: policy.id.clone(), field: dir.field(), rules: matching });
            }
        }
        if isolating.is_empty() {
            return match self.tier_match(&self.baseline, subject, dir, peer, target_ports, port, proto) {
                Some(m) => decided(Tier::Baseline, m),
                None => SideDecision::NotIsolated,
            };
        }
        // Attributions in `ns/name` order; dedup covers policies loaded twice.
        allowing.sort();
        allowing.dedup();
        isolating.sort();
        isolating.dedup();
        if allowing.is_empty() {
            SideDecision::Blocked { isolated_by: isolating }
        } else {
            SideDecision::AllowedBy(allowing)
        }
    }

    fn side_conns(
        &self,
        subject: &PodView,
        dir: Direction,
        peer: &Peer,
        target_ports: Option<&[NamedPort]>,
    ) -> ConnSet {
        // The admin tier: what its rules allow, and what is left (passed or not matched).
        let mut allowed = ConnSet::none();
        let mut rest = ConnSet::all();
        if !self.admin.is_empty() {
            let mut passed = ConnSet::none();
            for (_, rule) in self.tier_rules(&self.admin, subject, dir, peer) {
                let conns = admin_rule_conns(rule, target_ports).intersect(&rest);
                if conns.is_empty() {
                    continue;
                }
                match rule.action {
                    Action::Allow => allowed.union_with(&conns),
                    Action::Deny => {}
                    Action::Pass => passed.union_with(&conns),
                }
                rest.subtract_with(&conns);
                if rest.is_empty() {
                    break;
                }
            }
            rest.union_with(&passed);
            if rest.is_empty() {
                return allowed;
            }
        }
        let mut isolated = false;
        let mut acc = ConnSet::none();
        for policy in self.selecting(subject) {
            let Some(rules) = policy.rules(dir) else { continue };
            isolated = true;
            for rule in rules {
                if self.rule_matches_peer(rule, subject.namespace, peer) {
                    acc.union_with(&rule_conns(rule, target_ports));
                }
            }
        }
        if isolated {
            allowed.union_with(&acc.intersect(&rest));
            return allowed;
        }
        // Not isolated: the baseline tier decides, and allows what none of its rules matches.
        for (_, rule) in self.tier_rules(&self.baseline, subject, dir, peer) {
            let conns = admin_rule_conns(rule, target_ports).intersect(&rest);
            if rule.action == Action::Allow {
                allowed.union_with(&conns);
            }
            rest.subtract_with(&conns);
            if rest.is_empty() {
                break;
            }
        }
        allowed.union_with(&rest);
        allowed
    }

    /// Whether an admin policy's subject holds `pod`.
    fn admin_selects(&self, p: &AdminCompiled, pod: &PodView) -> bool {
        p.subject_ns.matches(&NamespaceLabels { name: pod.namespace, labels: self.namespace_labels.get(pod.namespace) })
            && p.subject_pods.as_ref().is_none_or(|s| s.matches(pod.labels))
    }

    /// The rules of a tier for `subject` in direction `dir` whose peers match `peer`, in order.
    fn tier_rules<'s>(
        &'s self,
        tier: &'s [AdminCompiled],
        subject: &'s PodView,
        dir: Direction,
        peer: &'s Peer,
    ) -> impl Iterator<Item = (&'s AdminCompiled, &'s AdminRule)> {
        tier.iter()
            .filter(move |p| !p.rules(dir).is_empty() && self.admin_selects(p, subject))
            .flat_map(move |p| p.rules(dir).iter().map(move |r| (p, r)))
            .filter(move |(_, r)| r.peers.iter().any(|m| self.peer_matches(m, "", peer)))
    }

    /// The first rule of a tier that matches the connection, with its policy.
    #[allow(clippy::too_many_arguments)]
    fn tier_match<'s>(
        &'s self,
        tier: &'s [AdminCompiled],
        subject: &'s PodView,
        dir: Direction,
        peer: &'s Peer,
        target_ports: Option<&[NamedPort]>,
        port: Port,
        proto: Protocol,
    ) -> Option<(&'s AdminCompiled, &'s AdminRule)> {
        if tier.is_empty() {
            return None;
        }
        self.tier_rules(tier, subject, dir, peer).find(|(_, r)| admin_rule_allows_port(r, target_ports, port, proto))
    }

    fn rule_matches_peer(&self, rule: &Rule, policy_ns: &str, peer: &Peer) -> bool {
        match &rule.peers {
            None => true,
            Some(peers) => peers.iter().any(|m| self.peer_matches(m, policy_ns, peer)),
        }
    }

    fn peer_matches(&self, m: &PeerMatch, policy_ns: &str, peer: &Peer) -> bool {
        match (m, peer) {
            (PeerMatch::Pods { namespaces, pods }, Peer::Pod(pod)) => {
                let ns_ok = match namespaces {
                    NamespaceMatch::Own => pod.namespace == policy_ns,
                    NamespaceMatch::Selector(sel) => sel.matches(&NamespaceLabels {
                        name: pod.namespace,
                        labels: self.namespace_labels.get(pod.namespace),
                    }),
                };
                ns_ok && pods.matches(pod.labels)
            }
            (PeerMatch::Block { net, except }, Peer::Ip(ip) | Peer::Host { ip, .. })
            | (PeerMatch::CiliumBlock { net, except }, Peer::Ip(ip)) => {
                // An IPv4 address written as ::ffff:a.b.c.d is the IPv4 address.
                let ip = ip.to_canonical();
                net.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
            }
            (PeerMatch::CiliumPods { selector, own_namespace }, Peer::Pod(pod)) => {
                (!own_namespace || pod.namespace == policy_ns) && selector.matches(&self.identity(pod))
            }
            (PeerMatch::Entities(e), peer) => match peer {
                Peer::Pod(_) => e.pods,
                Peer::Ip(_) => e.world,
                Peer::Host { role: NodeRole::Node, .. } => e.nodes,
                Peer::Host { role: NodeRole::ApiServer, .. } => e.apiserver,
                Peer::Host { role: NodeRole::Ingress, .. } => e.ingress,
            },
            (PeerMatch::Fqdn(matches), Peer::Ip(ip)) => {
                self.names.of(ip).any(|name| matches.iter().any(|m| m.matches(name)))
            }
            _ => false,
        }
    }
}

/// A pod's identity labels as Cilium's selectors read them: its own labels, its namespace as
/// `io.kubernetes.pod.namespace`, and its namespace's labels as `io.cilium.k8s.namespace.labels.*`.
/// (Selector keys have their `k8s:` or `any:` source removed when compiled.)
struct CiliumLabels<'a> {
    namespace: &'a str,
    labels: &'a Labels,
    ns_labels: Option<&'a Labels>,
}

impl LabelLookup for CiliumLabels<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        if key == CILIUM_NAMESPACE_KEY {
            return Some(self.namespace);
        }
        if let Some(k) = key.strip_prefix(CILIUM_NAMESPACE_LABELS) {
            // The API server's name label wins over the map, as for NetworkPolicy.
            if k == NAMESPACE_NAME_LABEL {
                return Some(self.namespace);
            }
            return self.ns_labels.and_then(|l| l.label(k));
        }
        self.labels.label(key)
    }
}

const CILIUM_NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";
const CILIUM_NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels.";

fn dst_ports<'a>(dst: &Peer<'a>) -> Option<&'a [NamedPort]> {
    match dst {
        Peer::Pod(p) => Some(p.ports),
        Peer::Ip(_) | Peer::Host { .. } => None,
    }
}

/// A named port resolves against the destination pod; a non-pod destination has no names.
fn resolve_named(target_ports: Option<&[NamedPort]>, proto: Protocol, name: &str) -> Option<u16> {
    target_ports?.iter().find(|p| p.protocol == proto && p.name == name).map(|p| p.port)
}

fn rule_conns(rule: &Rule, target_ports: Option<&[NamedPort]>) -> ConnSet {
    let Some(ports) = &rule.ports else { return ConnSet::all() };
    let mut out = ConnSet::none();
    for pm in ports {
        match pm {
            PortMatch::Numbers(proto, set) => out.add(*proto, set),
            PortMatch::Named(proto, name) => {
                if let Some(p) = resolve_named(target_ports, *proto, name) {
                    out.add(*proto, &PortSet::single(p));
                }
            }
        }
    }
    out
}

fn rule_allows_port(rule: &Rule, target_ports: Option<&[NamedPort]>, port: Port, proto: Protocol) -> bool {
    let Some(ports) = &rule.ports else { return true };
    ports.iter().any(|pm| match pm {
        PortMatch::Numbers(p, set) => *p == proto && set.contains(port.get()),
        PortMatch::Named(p, name) => *p == proto && resolve_named(target_ports, *p, name) == Some(port.get()),
    })
}

fn compile_policy(np: &NetworkPolicy, ctx: &mut Ctx<'_>) -> CompiledPolicy {
    let id = ctx.policy.clone();
    let Some(spec) = &np.spec else {
        // No spec: an empty podSelector and no types but the default Ingress, i.e. deny all ingress.
        return CompiledPolicy {
            id,
            selector: Selector::default(),
            cilium: false,
            ingress: Some(Vec::new()),
            egress: None,
        };
    };
    let selector =
        spec.pod_selector.as_ref().map(|s| Selector::compile(s, ctx, "spec.podSelector")).unwrap_or_default();
    let (has_ingress, has_egress) = match &spec.policy_types {
        Some(types) if !types.is_empty() => {
            let mut t = (false, false);
            for ty in types {
                match ty.as_str() {
                    "Ingress" => t.0 = true,
                    "Egress" => t.1 = true,
                    other => ctx.warn(EvalWarning::PolicyType { policy: ctx.policy.clone(), value: other.to_string() }),
                }
            }
            t
        }
        // The API server's default: Ingress always, Egress when there are egress rules.
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    };
    let ingress = has_ingress.then(|| {
        let rules = spec.ingress.as_deref().unwrap_or_default();
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                compile_rule(r.from.as_deref(), r.ports.as_deref(), ctx, &format!("spec.ingress[{i}]"), "from")
            })
            .collect()
    });
    let egress = has_egress.then(|| {
        let rules = spec.egress.as_deref().unwrap_or_default();
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(r.to.as_deref(), r.ports.as_deref(), ctx, &format!("spec.egress[{i}]"), "to"))
            .collect()
    });
    CompiledPolicy { id, selector, cilium: false, ingress, egress }
}

fn compile_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    ctx: &mut Ctx<'_>,
    path: &str,
    peers_field: &str,
) -> Rule {
    let peers = peers.filter(|p| !p.is_empty()).map(|peers| {
        peers.iter().enumerate().map(|(i, p)| compile_peer(p, ctx, &format!("{path}.{peers_field}[{i}]"))).collect()
    });
    let ports = ports.filter(|p| !p.is_empty()).map(|ports| {
        ports.iter().enumerate().filter_map(|(i, p)| compile_port(p, ctx, &format!("{path}.ports[{i}]"))).collect()
    });
    Rule { peers, ports }
}

fn compile_peer(peer: &NetworkPolicyPeer, ctx: &mut Ctx<'_>, path: &str) -> PeerMatch {
    let has_selector = peer.pod_selector.is_some() || peer.namespace_selector.is_some();
    let invalid = |ctx: &mut Ctx<'_>, reason: String| {
        ctx.warn(EvalWarning::Peer { policy: ctx.policy.clone(), path: path.to_string(), reason });
        PeerMatch::Nothing
    };
    match (&peer.ip_block, has_selector) {
        (Some(_), true) => invalid(ctx, "ipBlock cannot be combined with podSelector or namespaceSelector".into()),
        (None, false) => invalid(ctx, "a peer needs a podSelector, a namespaceSelector or an ipBlock".into()),
        (Some(block), false) => match compile_block(block) {
            Ok(m) => m,
            Err(reason) => invalid(ctx, reason),
        },
        (None, true) => {
            let pods = match &peer.pod_selector {
                Some(s) => Selector::compile(s, ctx, &format!("{path}.podSelector")),
                None => Selector::default(),
            };
            let namespaces = match &peer.namespace_selector {
                Some(s) => NamespaceMatch::Selector(Selector::compile(s, ctx, &format!("{path}.namespaceSelector"))),
                None => NamespaceMatch::Own,
            };
            PeerMatch::Pods { namespaces, pods }
        }
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.trim().parse().map_err(|_| format!("invalid CIDR {s:?}"))?;
    // Kubernetes accepts host bits (10.0.0.1/8) and uses the network they belong to.
    Ok(net.trunc())
}

fn compile_block(block: &IPBlock) -> Result<PeerMatch, String> {
    let net = parse_net(&block.cidr).map_err(|e| format!("ipBlock.cidr: {e}"))?;
    let mut except = Vec::new();
    for e in block.except.iter().flatten() {
        except.push(parse_net(e).map_err(|e| format!("ipBlock.except: {e}"))?);
    }
    Ok(PeerMatch::Block { net, except })
}

fn port_warning(ctx: &mut Ctx<'_>, path: &str, reason: String) -> Option<PortMatch> {
    ctx.warn(EvalWarning::Port { policy: ctx.policy.clone(), path: path.to_string(), reason });
    None
}

fn compile_port(p: &NetworkPolicyPort, ctx: &mut Ctx<'_>, path: &str) -> Option<PortMatch> {
    let invalid = |ctx: &mut Ctx<'_>, reason: String| port_warning(ctx, path, reason);
    let proto = match p.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(s) => match s.parse::<Protocol>() {
            Ok(proto) => proto,
            Err(e) => return invalid(ctx, e.to_string()),
        },
    };
    let number = |n: i32| u16::try_from(n).ok().filter(|&n| n != 0);
    match (&p.port, p.end_port) {
        (None, None) => Some(PortMatch::Numbers(proto, PortSet::all())),
        (None, Some(_)) => invalid(ctx, "endPort needs a numeric port".into()),
        (Some(IntOrString::String(name)), end) => {
            // A quoted number is still a number to the user who wrote it.
            if let Ok(n) = name.parse::<i32>() {
                return compile_range(number(n), end, proto, ctx, path);
            }
            if end.is_some() {
                return invalid(ctx, format!("endPort cannot be used with the named port {name:?}"));
            }
            Some(PortMatch::Named(proto, name.clone()))
        }
        (Some(IntOrString::Int(n)), end) => compile_range(number(*n), end, proto, ctx, path),
    }
}

fn compile_range(
    start: Option<u16>,
    end: Option<i32>,
    proto: Protocol,
    ctx: &mut Ctx<'_>,
    path: &str,
) -> Option<PortMatch> {
    let Some(start) = start else { return port_warning(ctx, path, "port must be 1-65535".into()) };
    let end = match end {
        None => start,
        Some(e) => match u16::try_from(e) {
            Ok(e) if e >= start => e,
            _ => {
                return port_warning(ctx, path, format!("endPort {e} must be at least port {start} and at most 65535"));
            }
        },
    };
    Some(PortMatch::Numbers(proto, PortSet::range(start, end)))
}

/// Compiles a CiliumNetworkPolicy: the subset Flowgate writes (endpoint selectors, entities,
/// CIDRs with their exceptions, FQDN names and patterns, ports with ranges and names, DNS rules)
/// and what hand-written ones commonly add. What it cannot judge is warned about: a host policy
/// (`nodeSelector`) is left out whole; deny rules and L7 rules other than DNS are not evaluated
/// (their ports count as allowed); a rule that combines kinds of peers, which Cilium refuses,
/// matches nothing.
fn compile_cilium(p: &CiliumNetworkPolicy, ctx: &mut Ctx<'_>) -> Option<CompiledPolicy> {
    let id = ctx.policy.clone();
    let warn = |ctx: &mut Ctx<'_>, path: &str, reason: String| {
        ctx.warn(EvalWarning::Peer { policy: ctx.policy.clone(), path: path.to_string(), reason })
    };
    let Some(spec) = &p.spec else {
        warn(ctx, "spec", "a CiliumNetworkPolicy without a spec selects nothing".into());
        return None;
    };
    if spec.node_selector.is_some() {
        warn(ctx, "spec.nodeSelector", "host policies are not evaluated; the policy is left out".into());
        return None;
    }
    for (field, rules) in [("ingressDeny", &spec.ingress_deny), ("egressDeny", &spec.egress_deny)] {
        if rules.as_ref().is_some_and(|r| !r.is_empty()) {
            warn(ctx, &format!("spec.{field}"), "deny rules are not evaluated".into());
        }
    }
    let selector = match &spec.endpoint_selector {
        Some(sel) => cilium_selector(sel, ctx, "spec.endpointSelector").0,
        None => {
            warn(ctx, "spec.endpointSelector", "missing; the policy selects nothing".into());
            Selector { never: true, ..Selector::default() }
        }
    };
    // Cilium: a direction with no rules does not isolate; `[{}]` does (and allows nothing).
    let ingress = spec.ingress.as_ref().filter(|r| !r.is_empty()).map(|rules| {
        let rule = |(i, r): (usize, &cilium::IngressRule), ctx: &mut Ctx<'_>| {
            let path = format!("spec.ingress[{i}]");
            let members = [
                member(&r.from_endpoints, "fromEndpoints", ctx, &path, endpoints),
                member(&r.from_cidr, "fromCIDR", ctx, &path, cidrs),
                member(&r.from_cidr_set, "fromCIDRSet", ctx, &path, cidr_set),
                member(&r.from_entities, "fromEntities", ctx, &path, entities),
            ];
            cilium_rule(members, r.to_ports.as_deref(), ctx, &path)
        };
        rules.iter().enumerate().map(|r| rule(r, ctx)).collect()
    });
    let egress = spec.egress.as_ref().filter(|r| !r.is_empty()).map(|rules| {
        let rule = |(i, r): (usize, &cilium::EgressRule), ctx: &mut Ctx<'_>| {
            let path = format!("spec.egress[{i}]");
            let members = [
                member(&r.to_endpoints, "toEndpoints", ctx, &path, endpoints),
                member(&r.to_cidr, "toCIDR", ctx, &path, cidrs),
                member(&r.to_cidr_set, "toCIDRSet", ctx, &path, cidr_set),
                member(&r.to_entities, "toEntities", ctx, &path, entities),
                member(&r.to_fqdns, "toFQDNs", ctx, &path, fqdns),
            ];
            cilium_rule(members, r.to_ports.as_deref(), ctx, &path)
        };
        rules.iter().enumerate().map(|r| rule(r, ctx)).collect()
    });
    Some(CompiledPolicy { id, selector, cilium: true, ingress, egress })
}

/// A rule's peer member `field`, compiled by `compile` when it is there and not empty.
fn member<T>(
    list: &Option<Vec<T>>,
    field: &'static str,
    ctx: &mut Ctx<'_>,
    path: &str,
    compile: fn(&[T], &mut Ctx<'_>, &str, &str) -> Vec<PeerMatch>,
) -> (&'static str, Option<Vec<PeerMatch>>) {
    (field, list.as_deref().filter(|v| !v.is_empty()).map(|v| compile(v, ctx, path, field)))
}

/// One Cilium rule from its peer members (at most one kind may be present) and its ports.
fn cilium_rule<const N: usize>(
    members: [(&'static str, Option<Vec<PeerMatch>>); N],
    ports: Option<&[cilium::PortRule]>,
    ctx: &mut Ctx<'_>,
    path: &str,
) -> Rule {
    let present: Vec<(&str, Vec<PeerMatch>)> = members.into_iter().filter_map(|(f, m)| Some((f, m?))).collect();
    let ports = ports.filter(|p| !p.is_empty()).map(|p| cilium_ports(p, ctx, path));
    match present.len() {
        // No peer named: every peer on the rule's ports; with no ports either, nothing (`{}`).
        0 => Rule { peers: if ports.is_some() { None } else { Some(Vec::new()) }, ports },
        1 => Rule { peers: present.into_iter().next().map(|(_, m)| m), ports },
        _ => {
            let fields: Vec<&str> = present.iter().map(|(f, _)| *f).collect();
            ctx.warn(EvalWarning::Peer {
                policy: ctx.policy.clone(),
                path: path.to_string(),
                reason: format!("combines {}, which Cilium refuses", fields.join(" and ")),
            });
            Rule { peers: Some(Vec::new()), ports }
        }
    }
}

/// A Cilium endpoint selector as a pod-label selector (keys without their `k8s:`/`any:` source),
/// and whether it names a namespace. A key of another source (`reserved:`, `cidr:`, ...) makes it
/// select nothing.
fn cilium_selector(sel: &LabelSelector, ctx: &mut Ctx<'_>, path: &str) -> (Selector, bool) {
    let mut out = Selector::compile(sel, ctx, path);
    let mut names_namespace = false;
    let mut bad = None;
    for r in &mut out.requirements {
        let key = match r {
            Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => k,
        };
        let plain = match key.split_once(':') {
            Some(("k8s" | "any", rest)) => rest.to_string(),
            Some((source, _)) => {
                bad.get_or_insert_with(|| format!("{source}: labels are not evaluated"));
                continue;
            }
            None => key.clone(),
        };
        names_namespace |= plain == CILIUM_NAMESPACE_KEY;
        *key = plain;
    }
    if let Some(reason) = bad {
        ctx.warn(EvalWarning::Selector { policy: ctx.policy.clone(), path: path.to_string(), reason });
        out.never = true;
    }
    (out, names_namespace)
}

fn endpoints(sels: &[LabelSelector], ctx: &mut Ctx<'_>, path: &str, field: &str) -> Vec<PeerMatch> {
    sels.iter()
        .enumerate()
        .map(|(i, s)| {
            let (selector, names_namespace) = cilium_selector(s, ctx, &format!("{path}.{field}[{i}]"));
            PeerMatch::CiliumPods { selector, own_namespace: !names_namespace }
        })
        .collect()
}

fn cidrs(list: &[String], ctx: &mut Ctx<'_>, path: &str, field: &str) -> Vec<PeerMatch> {
    list.iter()
        .enumerate()
        .map(|(i, c)| match parse_net(c) {
            Ok(net) => PeerMatch::CiliumBlock { net, except: Vec::new() },
            Err(reason) => {
                ctx.warn(EvalWarning::Peer {
                    policy: ctx.policy.clone(),
                    path: format!("{path}.{field}[{i}]"),
                    reason,
                });
                PeerMatch::Nothing
            }
        })
        .collect()
}

fn cidr_set(list: &[cilium::CidrRule], ctx: &mut Ctx<'_>, path: &str, field: &str) -> Vec<PeerMatch> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let parsed = parse_net(&r.cidr).and_then(|net| {
                let except = r.except.iter().flatten().map(|e| parse_net(e)).collect::<Result<Vec<_>, _>>()?;
                Ok(PeerMatch::CiliumBlock { net, except })
            });
            parsed.unwrap_or_else(|reason| {
                ctx.warn(EvalWarning::Peer {
                    policy: ctx.policy.clone(),
                    path: format!("{path}.{field}[{i}]"),
                    reason,
                });
                PeerMatch::Nothing
            })
        })
        .collect()
}

fn entities(list: &[String], ctx: &mut Ctx<'_>, path: &str, field: &str) -> Vec<PeerMatch> {
    let mut e = Entities::default();
    let (mut host, mut remote) = (false, false);
    for (i, name) in list.iter().enumerate() {
        match name.as_str() {
            "host" => host = true,
            "remote-node" => remote = true,
            "kube-apiserver" => e.apiserver = true,
            "ingress" => e.ingress = true,
            "world" | "world-ipv4" | "world-ipv6" => e.world = true,
            "cluster" => {
                (host, remote, e.pods) = (true, true, true);
                e.apiserver = true;
                e.ingress = true;
            }
            "all" => {
                (host, remote, e.pods, e.world) = (true, true, true, true);
                e.apiserver = true;
                e.ingress = true;
            }
            "health" | "init" | "unmanaged" | "none" => {}
            other => ctx.warn(EvalWarning::Peer {
                policy: ctx.policy.clone(),
                path: format!("{path}.{field}[{i}]"),
                reason: format!("unknown entity {:?}", crate::model::names::excerpt(other)),
            }),
        }
    }
    e.nodes = host && remote;
    vec![PeerMatch::Entities(e)]
}

fn fqdns(list: &[cilium::FqdnSelector], ctx: &mut Ctx<'_>, path: &str, field: &str) -> Vec<PeerMatch> {
    let mut out = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let at = format!("{path}.{field}[{i}]");
        let bad = |ctx: &mut Ctx<'_>, reason: String| {
            ctx.warn(EvalWarning::Peer { policy: ctx.policy.clone(), path: at.clone(), reason })
        };
        match (&f.match_name, &f.match_pattern) {
            (Some(n), None) => match DnsName::parse(n) {
                Ok(n) => out.push(FqdnMatch::Name(n)),
                Err(e) => bad(ctx, e.to_string()),
            },
            (None, Some(p)) => out.push(FqdnMatch::Pattern(p.trim_end_matches('.').to_ascii_lowercase())),
            _ => bad(ctx, "needs exactly one of matchName and matchPattern".into()),
        }
    }
    vec![PeerMatch::Fqdn(out)]
}

/// `toPorts`: every listed port of every entry; `ANY` (or no protocol) is every protocol a
/// connection here has, `0` (or no port) every port. L7 rules other than DNS are warned about.
fn cilium_ports(rules: &[cilium::PortRule], ctx: &mut Ctx<'_>, path: &str) -> Vec<PortMatch> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("{path}.toPorts[{i}]");
        if let Some(l7) = &r.rules
            && !l7.other.is_empty()
        {
            let kinds: Vec<&str> = l7.other.keys().map(String::as_str).collect();
            port_warning(
                ctx,
                &at,
                format!("L7 rules ({}) are not evaluated; the ports count as allowed", kinds.join(", ")),
            );
        }
        let ports = r.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            out.extend(Protocol::ALL.iter().map(|p| PortMatch::Numbers(*p, PortSet::all())));
        }
        for (j, pp) in ports.iter().enumerate() {
            let at = format!("{at}.ports[{j}]");
            let protocols: Vec<Protocol> = match pp.protocol.as_deref() {
                None | Some("ANY") => Protocol::ALL.to_vec(),
                Some(s) => match s.parse::<Protocol>() {
                    Ok(p) => vec![p],
                    Err(e) => {
                        port_warning(ctx, &at, e.to_string());
                        continue;
                    }
                },
            };
            let port = pp.port.trim();
            for proto in protocols {
                let m = match port.parse::<u32>() {
                    Ok(0) if pp.end_port.is_none() => Some(PortMatch::Numbers(proto, PortSet::all())),
                    Ok(n) => compile_range(u16::try_from(n).ok().filter(|&n| n != 0), pp.end_port, proto, ctx, &at),
                    Err(_) if port.is_empty() => Some(PortMatch::Numbers(proto, PortSet::all())),
                    Err(_) if pp.end_port.is_some() => {
                        port_warning(ctx, &at, format!("endPort cannot be used with the named port {port:?}"))
                    }
                    Err(_) => Some(PortMatch::Named(proto, port.to_string())),
                };
                out.extend(m);
            }
        }
    }
    out
}

/// Which of the three kinds a policy is: it decides the actions and the port fields it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminKind {
    Anp,
    Banp,
    Cnp(Tier),
}

fn admin_ctx<'w>(kind: &str, meta: &ObjectMeta, warnings: &'w mut Vec<EvalWarning>) -> Ctx<'w> {
    let name = meta.name.as_deref().unwrap_or("");
    Ctx { policy: format!("{kind} {}", crate::model::names::excerpt(name)), warnings }
}

/// A port entry Kubernetes would reject: warned about, and it matches nothing.
fn bad_port<T>(ctx: &mut Ctx<'_>, path: &str, reason: String) -> Option<T> {
    ctx.warn(EvalWarning::Port { policy: ctx.policy.clone(), path: path.to_string(), reason });
    None
}

fn admin_warn(ctx: &mut Ctx<'_>, path: &str, reason: String) {
    ctx.warn(EvalWarning::Admin { policy: ctx.policy.clone(), path: path.to_string(), reason });
}

/// At most `MAX_ITEMS` of a list, with a warning when there are more.
fn bounded<'a, T>(list: &'a [T], ctx: &mut Ctx<'_>, path: &str) -> &'a [T] {
    if list.len() > admin::MAX_ITEMS {
        admin_warn(ctx, path, format!("{} entries; only the first {} are read", list.len(), admin::MAX_ITEMS));
        &list[..admin::MAX_ITEMS]
    } else {
        list
    }
}

/// Compiles one admin or baseline policy; `None` when it cannot select anything at all.
fn compile_admin(spec: Option<&admin::AdminSpec>, kind: AdminKind, ctx: &mut Ctx<'_>) -> Option<AdminCompiled> {
    let Some(spec) = spec else {
        admin_warn(ctx, "spec", "missing; the policy is left out".into());
        return None;
    };
    let priority = match kind {
        AdminKind::Banp => 0,
        AdminKind::Anp | AdminKind::Cnp(_) => match spec.priority {
            Some(p) if (admin::MIN_PRIORITY..=admin::MAX_PRIORITY).contains(&p) => p,
            Some(p) => {
                let clamped = p.clamp(admin::MIN_PRIORITY, admin::MAX_PRIORITY);
                let reason = format!(
                    "priority {p} is outside {}-{}; evaluated at {clamped}",
                    admin::MIN_PRIORITY,
                    admin::MAX_PRIORITY
                );
                admin_warn(ctx, "spec.priority", reason);
                clamped
            }
            None => {
                admin_warn(ctx, "spec.priority", "missing; evaluated at 0".into());
                0
            }
        },
    };
    let never = Selector { never: true, ..Selector::default() };
    let (subject_ns, subject_pods) = match spec.subject.as_ref().map(|s| (&s.namespaces, &s.pods)) {
        Some((Some(ns), None)) => (Selector::compile(ns, ctx, "spec.subject.namespaces"), None),
        Some((None, Some(pods))) => {
            let (ns, pods) = namespaced_pod(pods, ctx, "spec.subject.pods");
            (ns, Some(pods))
        }
        _ => {
            admin_warn(
                ctx,
                "spec.subject",
                "needs exactly one of namespaces and pods; the policy selects nothing".into(),
            );
            (never, None)
        }
    };
    let v2 = matches!(kind, AdminKind::Cnp(_));
    let compile_rules = |dir: Direction, ctx: &mut Ctx<'_>| -> Vec<AdminRule> {
        let (field, list): (&str, Vec<RuleParts<'_>>) = match dir {
            Direction::Ingress => (
                "ingress",
                spec.ingress
                    .iter()
                    .flatten()
                    .map(|r| RuleParts {
                        name: r.name.as_deref(),
                        action: &r.action,
                        peers: r.from.as_deref(),
                        ports: r.ports.as_deref(),
                        protocols: r.protocols.as_deref(),
                    })
                    .collect(),
            ),
            Direction::Egress => (
                "egress",
                spec.egress
                    .iter()
                    .flatten()
                    .map(|r| RuleParts {
                        name: r.name.as_deref(),
                        action: &r.action,
                        peers: r.to.as_deref(),
                        ports: r.ports.as_deref(),
                        protocols: r.protocols.as_deref(),
                    })
                    .collect(),
            ),
        };
        let list = bounded(&list, ctx, &format!("spec.{field}"));
        list.iter()
            .enumerate()
            .map(|(i, r)| compile_admin_rule(r, kind, dir, v2, ctx, &format!("spec.{field}[{i}]")))
            .collect()
    };
    let ingress = compile_rules(Direction::Ingress, ctx);
    let egress = compile_rules(Direction::Egress, ctx);
    Some(AdminCompiled { id: ctx.policy.clone(), priority, subject_ns, subject_pods, ingress, egress })
}

/// One rule of either direction and version, borrowed.
struct RuleParts<'a> {
    name: Option<&'a str>,
    action: &'a str,
    peers: Option<&'a [admin::RulePeer]>,
    ports: Option<&'a [admin::AdminPort]>,
    protocols: Option<&'a [admin::ClusterProtocol]>,
}

fn compile_admin_rule(
    r: &RuleParts<'_>,
    kind: AdminKind,
    dir: Direction,
    v2: bool,
    ctx: &mut Ctx<'_>,
    path: &str,
) -> AdminRule {
    let name = match r.name {
        Some(n) if !n.is_empty() => crate::model::names::excerpt(n),
        _ => path.trim_start_matches("spec.").to_string(),
    };
    let at = format!("{path} ({name:?})");
    let action = match (kind, r.action) {
        (AdminKind::Anp | AdminKind::Banp, "Allow") | (AdminKind::Cnp(_), "Accept") => Some(Action::Allow),
        (_, "Deny") => Some(Action::Deny),
        (AdminKind::Anp | AdminKind::Cnp(Tier::Admin), "Pass") => Some(Action::Pass),
        (_, other) => {
            let expected = match kind {
                AdminKind::Anp => "Allow, Deny or Pass",
                AdminKind::Banp => "Allow or Deny",
                AdminKind::Cnp(Tier::Admin) => "Accept, Deny or Pass",
                AdminKind::Cnp(Tier::Baseline) => "Accept or Deny",
            };
            let reason = format!(
                "action {:?} is not one of {expected}; the rule matches nothing",
                crate::model::names::excerpt(other)
            );
            admin_warn(ctx, &format!("{at}.action"), reason);
            None
        }
    };
    let peers_field = match dir {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    let mut peers = Vec::new();
    match r.peers {
        Some(list) if !list.is_empty() => {
            let list = bounded(list, ctx, &format!("{at}.{peers_field}"));
            for (i, p) in list.iter().enumerate() {
                peers.extend(compile_admin_peer(p, dir, ctx, &format!("{at}.{peers_field}[{i}]")));
            }
        }
        _ => {
            admin_warn(ctx, &format!("{at}.{peers_field}"), "needs at least one peer; the rule matches nothing".into())
        }
    }
    let (ports, other) =
        if v2 { (None, r.ports.map(|_| "ports")) } else { (r.ports, r.protocols.map(|_| "protocols")) };
    if let Some(field) = other {
        let version = if v2 { admin::V1ALPHA2 } else { admin::V1ALPHA1 };
        admin_warn(ctx, &format!("{at}.{field}"), format!("not a field of {version}; ignored"));
    }
    let ports = if v2 {
        r.protocols.map(|list| {
            let list = bounded(list, ctx, &format!("{at}.protocols"));
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| compile_cluster_protocol(p, ctx, &format!("{at}.protocols[{i}]")))
                .collect()
        })
    } else {
        ports.map(|list| {
            let list = bounded(list, ctx, &format!("{at}.ports"));
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| compile_admin_port(p, ctx, &format!("{at}.ports[{i}]")))
                .collect()
        })
    };
    match action {
        Some(action) => AdminRule { name, action, peers, ports },
        // An unreadable action: the rule matches nothing rather than guessing what it does.
        None => AdminRule { name, action: Action::Deny, peers: Vec::new(), ports },
    }
}

/// A `pods` field: the namespace selector and the pod selector (a missing one selects all).
fn namespaced_pod(p: &admin::NamespacedPod, ctx: &mut Ctx<'_>, path: &str) -> (Selector, Selector) {
    let ns = p
        .namespace_selector
        .as_ref()
        .map(|s| Selector::compile(s, ctx, &format!("{path}.namespaceSelector")))
        .unwrap_or_default();
    let pods =
        p.pod_selector.as_ref().map(|s| Selector::compile(s, ctx, &format!("{path}.podSelector"))).unwrap_or_default();
    (ns, pods)
}

fn compile_admin_peer(p: &admin::RulePeer, dir: Direction, ctx: &mut Ctx<'_>, path: &str) -> Vec<PeerMatch> {
    let set: Vec<&str> = [
        ("namespaces", p.namespaces.is_some()),
        ("pods", p.pods.is_some()),
        ("nodes", p.nodes.is_some()),
        ("networks", p.networks.is_some()),
        ("domainNames", p.domain_names.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect();
    let invalid = |ctx: &mut Ctx<'_>, reason: String| {
        ctx.warn(EvalWarning::Peer { policy: ctx.policy.clone(), path: path.to_string(), reason });
        vec![PeerMatch::Nothing]
    };
    if set.len() != 1 {
        let what = if set.is_empty() { "none".to_string() } else { set.join(" and ") };
        return invalid(ctx, format!("a peer needs exactly one field, it has {what}"));
    }
    if dir == Direction::Ingress && !matches!(set[0], "namespaces" | "pods") {
        return invalid(ctx, format!("{} is no ingress peer (only namespaces and pods are)", set[0]));
    }
    if let Some(ns) = &p.namespaces {
        let sel = Selector::compile(ns, ctx, &format!("{path}.namespaces"));
        return vec![PeerMatch::Pods { namespaces: NamespaceMatch::Selector(sel), pods: Selector::default() }];
    }
    if let Some(pods) = &p.pods {
        let (ns, pods) = namespaced_pod(pods, ctx, &format!("{path}.pods"));
        return vec![PeerMatch::Pods { namespaces: NamespaceMatch::Selector(ns), pods }];
    }
    if p.nodes.is_some() {
        // As netpol-analyzer: nodes are known here by address only, not by their labels.
        return invalid(ctx, "nodes peers are not evaluated (nodes are known by address, not labels)".into());
    }
    if let Some(networks) = &p.networks {
        let networks = bounded(networks, ctx, &format!("{path}.networks"));
        return networks
            .iter()
            .enumerate()
            .map(|(i, c)| match parse_net(c) {
                Ok(net) => PeerMatch::Block { net, except: Vec::new() },
                Err(reason) => {
                    ctx.warn(EvalWarning::Peer {
                        policy: ctx.policy.clone(),
                        path: format!("{path}.networks[{i}]"),
                        reason,
                    });
                    PeerMatch::Nothing
                }
            })
            .collect();
    }
    let names = p.domain_names.as_deref().unwrap_or_default();
    let names = bounded(names, ctx, &format!("{path}.domainNames"));
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match n.strip_prefix("*.") {
            Some(rest) => {
                out.push(FqdnMatch::Pattern(format!("*.{}", rest.trim_end_matches('.').to_ascii_lowercase())))
            }
            None => match DnsName::parse(n) {
                Ok(n) => out.push(FqdnMatch::Name(n)),
                Err(e) => ctx.warn(EvalWarning::Peer {
                    policy: ctx.policy.clone(),
                    path: format!("{path}.domainNames[{i}]"),
                    reason: e.to_string(),
                }),
            },
        }
    }
    vec![PeerMatch::Fqdn(out)]
}

fn admin_protocol(p: Option<&str>, ctx: &mut Ctx<'_>, path: &str) -> Option<Protocol> {
    match p {
        None | Some("") => Some(Protocol::Tcp),
        Some(s) => match s.parse::<Protocol>() {
            Ok(p) => Some(p),
            Err(e) => bad_port(ctx, path, e.to_string()),
        },
    }
}

fn admin_range(start: i64, end: i64, ctx: &mut Ctx<'_>, path: &str) -> Option<PortSet> {
    match (u16::try_from(start), u16::try_from(end)) {
        (Ok(s), Ok(e)) if s >= 1 && s <= e => Some(PortSet::range(s, e)),
        _ => bad_port(ctx, path, format!("port {start}-{end} is not within 1-65535 with start <= end")),
    }
}

fn compile_admin_port(p: &admin::AdminPort, ctx: &mut Ctx<'_>, path: &str) -> Option<AdminPortMatch> {
    match (&p.port_number, &p.named_port, &p.port_range) {
        (Some(n), None, None) => {
            let proto = admin_protocol(n.protocol.as_deref(), ctx, path)?;
            let set = admin_range(n.port, n.port, ctx, path)?;
            Some(AdminPortMatch::Numbers(proto, set))
        }
        (None, Some(name), None) => Some(AdminPortMatch::Named(name.clone())),
        (None, None, Some(r)) => {
            let proto = admin_protocol(r.protocol.as_deref(), ctx, path)?;
            Some(AdminPortMatch::Numbers(proto, admin_range(r.start, r.end, ctx, path)?))
        }
        _ => bad_port(ctx, path, "needs exactly one of portNumber, namedPort and portRange".into()),
    }
}

fn compile_cluster_protocol(p: &admin::ClusterProtocol, ctx: &mut Ctx<'_>, path: &str) -> Option<AdminPortMatch> {
    let set: Vec<(Protocol, &admin::ProtocolPort)> =
        [(Protocol::Tcp, &p.tcp), (Protocol::Udp, &p.udp), (Protocol::Sctp, &p.sctp)]
            .into_iter()
            .filter_map(|(proto, pp)| Some((proto, pp.as_ref()?)))
            .collect();
    match (set.as_slice(), &p.destination_named_port) {
        ([], Some(name)) => Some(AdminPortMatch::Named(name.clone())),
        ([(proto, pp)], None) => {
            let ports = match &pp.destination_port {
                None => PortSet::all(),
                Some(admin::DestinationPort { number: Some(n), range: None }) => admin_range(*n, *n, ctx, path)?,
                Some(admin::DestinationPort { number: None, range: Some(r) }) => {
                    admin_range(r.start, r.end, ctx, path)?
                }
                Some(_) => {
                    return bad_port(ctx, path, "destinationPort needs exactly one of number and range".into());
                }
            };
            Some(AdminPortMatch::Numbers(*proto, ports))
        }
        _ => bad_port(ctx, path, "needs exactly one of tcp, udp, sctp and destinationNamedPort".into()),
    }
}

/// A named port of the destination pod: its first container port of that name, any protocol.
fn resolve_admin_named(target_ports: Option<&[NamedPort]>, name: &str) -> Option<(Protocol, u16)> {
    target_ports?.iter().find(|p| p.name == name).map(|p| (p.protocol, p.port))
}

fn admin_rule_conns(rule: &AdminRule, target_ports: Option<&[NamedPort]>) -> ConnSet {
    let Some(ports) = &rule.ports else { return ConnSet::all() };
    let mut out = ConnSet::none();
    for pm in ports {
        match pm {
            AdminPortMatch::Numbers(proto, set) => out.add(*proto, set),
            AdminPortMatch::Named(name) => {
                if let Some((proto, p)) = resolve_admin_named(target_ports, name) {
                    out.add(proto, &PortSet::single(p));
                }
            }
        }
    }
    out
}

fn admin_rule_allows_port(rule: &AdminRule, target_ports: Option<&[NamedPort]>, port: Port, proto: Protocol) -> bool {
    let Some(ports) = &rule.ports else { return true };
    ports.iter().any(|pm| match pm {
        AdminPortMatch::Numbers(p, set) => *p == proto && set.contains(port.get()),
        AdminPortMatch::Named(name) => resolve_admin_named(target_ports, name) == Some((proto, port.get())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(yaml: &str) -> Vec<NetworkPolicy> {
        let docs = serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("test YAML");
        docs.into_iter().filter(|d| !d.is_null()).map(|d| serde_json::from_value(d).expect("a NetworkPolicy")).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn np(name: &str, protocol: Protocol, port: u16) -> NamedPort {
        NamedPort { name: name.into(), port, protocol }
    }

    /// The pods of the fixture cluster: shop/web, shop/db, ops/mon, and ghost/x in a namespace
    /// that the namespace map does not know.
    struct Fixture {
        pods: Vec<(String, String, Labels, Vec<NamedPort>)>,
        namespaces: BTreeMap<String, Labels>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let pods = vec![
                (
                    "shop".into(),
                    "web".into(),
                    labels(&[("app", "web")]),
                    vec![np("http", Protocol::Tcp, 8080), np("dns", Protocol::Udp, 53)],
                ),
                (
                    "shop".into(),
                    "db".into(),
                    labels(&[("app", "db"), ("tier", "data")]),
                    vec![np("pg", Protocol::Tcp, 5432)],
                ),
                ("ops".into(), "mon".into(), labels(&[("app", "mon")]), vec![np("http", Protocol::Tcp, 9090)]),
                ("ghost".into(), "x".into(), labels(&[("app", "web")]), vec![]),
            ];
            let namespaces = BTreeMap::from([
                ("shop".to_string(), labels(&[("team", "a")])),
                ("ops".to_string(), labels(&[("team", "b"), (NAMESPACE_NAME_LABEL, "spoofed")])),
            ]);
            Fixture { pods, namespaces }
        }

        /// `ns/name` for a pod, anything else parses as an IP address.
        fn peer(&self, s: &str) -> Peer<'_> {
            if let Some((ns, name)) = s.split_once('/') {
                let (ns, name, labels, ports) =
                    self.pods.iter().find(|p| p.0 == ns && p.1 == name).unwrap_or_else(|| panic!("no pod {s}"));
                return Peer::Pod(PodView { namespace: ns, name, labels, ports });
            }
            Peer::Ip(s.parse().expect("an IP address"))
        }
    }

    const DENY_ALL_SHOP: &str = "
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}}
";

    /// (what, policies, src, dst, port, protocol, allowed)
    type Case = (&'static str, &'static str, &'static str, &'static str, u16, Protocol, bool);

    fn run(cases: &[Case]) {
        let fx = Fixture::new();
        for &(what, yaml, src, dst, port, proto, want) in cases {
            let (ev, warnings) = Evaluator::new(&policies(yaml), &fx.namespaces);
            let (src, dst) = (fx.peer(src), fx.peer(dst));
            let port = Port::new(port).expect("test port");
            let d = ev.check(&src, &dst, port, proto);
            assert_eq!(d.allowed, want, "{what}: {d:?} (warnings {warnings:?})");
            // `allows` and `allowed` must agree with `check` on every case.
            assert_eq!(ev.allows(&src, &dst, port, proto), want, "{what}: allows() disagrees");
            assert_eq!(ev.allowed(&src, &dst).contains(proto, port.get()), want, "{what}: allowed() disagrees");
        }
    }

    #[test]
    fn isolation_and_policy_types() {
        run(&[
            ("no policy allows everything", "", "shop/web", "shop/db", 80, Protocol::Tcp, true),
            ("empty podSelector isolates every pod", DENY_ALL_SHOP, "shop/web", "shop/db", 80, Protocol::Tcp, false),
            (
                "default type is Ingress only: egress stays open",
                DENY_ALL_SHOP,
                "shop/web",
                "ops/mon",
                80,
                Protocol::Tcp,
                true,
            ),
            ("a policy isolates only its own namespace", DENY_ALL_SHOP, "shop/web", "ghost/x", 80, Protocol::Tcp, true),
            (
                "egress rules imply the Egress type",
                "
kind: NetworkPolicy
metadata: {name: e, namespace: shop}
spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}
",
                "shop/web",
                "ops/mon",
                80,
                Protocol::Tcp,
                false,
            ),
            (
                "explicit Egress type with no rules denies all egress",
                "
kind: NetworkPolicy
metadata: {name: e, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress]}
",
                "shop/web",
                "8.8.8.8",
                53,
                Protocol::Udp,
                false,
            ),
            (
                "explicit Egress type ignores ingress rules and leaves ingress open",
                "
kind: NetworkPolicy
metadata: {name: e, namespace: shop}
spec: {podSelector: {}, policyTypes: [Egress], ingress: [{from: [{podSelector: {matchLabels: {app: none}}}]}]}
",
                "8.8.8.8",
                "shop/db",
                5432,
                Protocol::Tcp,
                true,
            ),
            (
                "a selector that does not select the pod does not isolate it",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}}
",
                "shop/db",
                "shop/web",
                80,
                Protocol::Tcp,
                true,
            ),
            (
                "policies add up: one allowing rule suffices",
                "
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}}
---
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}
",
                "shop/web",
                "shop/db",
                5432,
                Protocol::Tcp,
                true,
            ),
            (
                "both sides must allow: the source's egress blocks",
                "
kind: NetworkPolicy
metadata: {name: e, namespace: ops}
spec: {podSelector: {}, policyTypes: [Egress]}
",
                "ops/mon",
                "shop/web",
                8080,
                Protocol::Tcp,
                false,
            ),
        ]);
    }

    const PEERS: &str = "
kind: NetworkPolicy
metadata: {name: peers, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
      podSelector: {matchLabels: {app: mon}}
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ghost}}
  - from:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    - ipBlock: {cidr: '2001:db8::/32'}
";

    #[test]
    fn peers() {
        run(&[
            ("podSelector alone: same namespace", PEERS, "shop/web", "shop/db", 1, Protocol::Tcp, true),
            (
                "podSelector alone does not reach other namespaces",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}
",
                "ghost/x",
                "shop/db",
                1,
                Protocol::Tcp,
                false,
            ),
            ("namespace and pod selectors together", PEERS, "ops/mon", "shop/db", 1, Protocol::Tcp, true),
            (
                "namespaceSelector alone: every pod of the namespace",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]}
",
                "ops/mon",
                "shop/db",
                1,
                Protocol::Tcp,
                true,
            ),
            (
                "empty namespaceSelector: every namespace, even unknown ones",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}
",
                "ghost/x",
                "shop/db",
                1,
                Protocol::Tcp,
                true,
            ),
            ("the implicit name label of an unknown namespace", PEERS, "ghost/x", "shop/db", 1, Protocol::Tcp, true),
            (
                "the implicit name label cannot be spoofed",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: spoofed}}}]}]}
",
                "ops/mon",
                "shop/db",
                1,
                Protocol::Tcp,
                false,
            ),
            ("ipBlock matches an address in the CIDR", PEERS, "10.2.3.4", "shop/db", 1, Protocol::Tcp, true),
            ("ipBlock except carves out", PEERS, "10.1.3.4", "shop/db", 1, Protocol::Tcp, false),
            ("ipBlock outside the CIDR", PEERS, "11.0.0.1", "shop/db", 1, Protocol::Tcp, false),
            ("ipBlock IPv6", PEERS, "2001:db8::1", "shop/db", 1, Protocol::Tcp, true),
            ("ipBlock IPv6 outside", PEERS, "2001:db9::1", "shop/db", 1, Protocol::Tcp, false),
            ("an IPv4-mapped IPv6 address is IPv4", PEERS, "::ffff:10.2.3.4", "shop/db", 1, Protocol::Tcp, true),
            (
                "ipBlock never matches a pod",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}
",
                "shop/web",
                "shop/db",
                1,
                Protocol::Tcp,
                false,
            ),
            ("selectors never match an address", PEERS, "192.168.0.1", "shop/db", 1, Protocol::Tcp, false),
            (
                "empty from list: every peer",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{from: []}]}
",
                "192.168.0.1",
                "shop/db",
                1,
                Protocol::Tcp,
                true,
            ),
            (
                "egress to an ipBlock",
                "
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 8.8.8.0/24}}]}]}
",
                "shop/web",
                "8.8.8.8",
                53,
                Protocol::Udp,
                true,
            ),
        ]);
    }

    fn from_selector(expr: &str) -> String {
        format!(
            "
kind: NetworkPolicy
metadata: {{name: p, namespace: shop}}
spec: {{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{from: [{{podSelector: {expr}}}]}}]}}
"
        )
    }

    #[test]
    fn label_selectors() {
        // Sources in shop: db has app=db,tier=data; web has app=web (and is the destination).
        let cases: &[(&str, &str, &str, bool)] = &[
            ("matchLabels", "{matchLabels: {app: db}}", "shop/db", true),
            ("matchLabels mismatch", "{matchLabels: {app: other}}", "shop/db", false),
            ("In", "{matchExpressions: [{key: tier, operator: In, values: [data, cache]}]}", "shop/db", true),
            ("In mismatch", "{matchExpressions: [{key: tier, operator: In, values: [cache]}]}", "shop/db", false),
            ("NotIn", "{matchExpressions: [{key: tier, operator: NotIn, values: [cache]}]}", "shop/db", true),
            (
                "NotIn holds without the key",
                "{matchExpressions: [{key: zone, operator: NotIn, values: [x]}]}",
                "shop/db",
                true,
            ),
            ("NotIn excludes", "{matchExpressions: [{key: tier, operator: NotIn, values: [data]}]}", "shop/db", false),
            ("Exists", "{matchExpressions: [{key: tier, operator: Exists}]}", "shop/db", true),
            ("Exists without the key", "{matchExpressions: [{key: zone, operator: Exists}]}", "shop/db", false),
            ("DoesNotExist", "{matchExpressions: [{key: zone, operator: DoesNotExist}]}", "shop/db", true),
            (
                "DoesNotExist with the key",
                "{matchExpressions: [{key: tier, operator: DoesNotExist}]}",
                "shop/db",
                false,
            ),
            (
                "matchLabels AND matchExpressions",
                "{matchLabels: {app: db}, matchExpressions: [{key: tier, operator: In, values: [cache]}]}",
                "shop/db",
                false,
            ),
            (
                "unknown operator matches nothing",
                "{matchExpressions: [{key: tier, operator: Equals, values: [data]}]}",
                "shop/db",
                false,
            ),
            (
                "In without values matches nothing",
                "{matchExpressions: [{key: tier, operator: In, values: []}]}",
                "shop/db",
                false,
            ),
            (
                "NotIn without values matches nothing",
                "{matchExpressions: [{key: zone, operator: NotIn}]}",
                "shop/db",
                false,
            ),
        ];
        let fx = Fixture::new();
        for &(what, expr, src, want) in cases {
            let (ev, _) = Evaluator::new(&policies(&from_selector(expr)), &fx.namespaces);
            let d = ev.check(&fx.peer(src), &fx.peer("shop/web"), Port::new(80).expect("port"), Protocol::Tcp);
            assert_eq!(d.allowed, want, "{what}: {d:?}");
        }
    }

    #[test]
    fn invalid_parts_warn_and_match_nothing() {
        let yaml = "
kind: NetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Sideways]
  ingress:
  - from:
    - podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}
    - {}
    - ipBlock: {cidr: 10.0.0.0/33}
    - ipBlock: {cidr: 10.0.0.0/8}
      podSelector: {}
    ports:
    - {port: 0}
    - {port: 80, endPort: 79}
    - {port: http, endPort: 90}
    - {protocol: ICMP, port: 1}
";
        let fx = Fixture::new();
        let (ev, warnings) = Evaluator::new(&policies(yaml), &fx.namespaces);
        let kinds: Vec<&str> = warnings
            .iter()
            .map(|w| match w {
                EvalWarning::Selector { .. } => "selector",
                EvalWarning::Peer { .. } => "peer",
                EvalWarning::Port { .. } => "port",
                EvalWarning::PolicyType { .. } => "type",
                EvalWarning::Admin { .. } => "admin",
            })
            .collect();
        assert_eq!(
            kinds,
            ["type", "selector", "peer", "peer", "peer", "port", "port", "port", "port"],
            "{warnings:#?}"
        );
        assert!(
            warnings[1].to_string().starts_with("shop/bad: spec.ingress[0].from[0].podSelector.matchExpressions[0]")
        );
        // Nothing in the rule survives, so the pod is isolated and nothing gets in.
        assert!(ev.allowed(&fx.peer("10.0.0.1"), &fx.peer("shop/db")).is_empty());
        assert!(ev.allowed(&fx.peer("shop/web"), &fx.peer("shop/db")).is_empty());
    }

    #[test]
    fn ports() {
        let ingress_ports = |ports: &str| -> String {
            format!(
                "
kind: NetworkPolicy
metadata: {{name: p, namespace: shop}}
spec: {{podSelector: {{}}, ingress: [{{ports: {ports}}}]}}
"
            )
        };
        let egress_ports = |ports: &str| -> String {
            format!(
                "
kind: NetworkPolicy
metadata: {{name: p, namespace: shop}}
spec: {{podSelector: {{}}, policyTypes: [Egress], egress: [{{ports: {ports}}}]}}
"
            )
        };
        // (what, policy, src, dst, want as the analyzer spells it)
        let cases: Vec<(&str, String, &str, &str, &str)> = vec![
            ("missing ports: all", ingress_ports("null"), "ops/mon", "shop/web", "All Connections"),
            ("empty ports: all", ingress_ports("[]"), "ops/mon", "shop/web", "All Connections"),
            ("protocol defaults to TCP", ingress_ports("[{port: 80}]"), "ops/mon", "shop/web", "TCP 80"),
            ("protocol alone: all its ports", ingress_ports("[{protocol: UDP}]"), "ops/mon", "shop/web", "UDP 1-65535"),
            (
                "endPort range",
                ingress_ports("[{port: 8000, endPort: 8100}, {port: 53, protocol: SCTP}]"),
                "ops/mon",
                "shop/web",
                "SCTP 53,TCP 8000-8100",
            ),
            (
                "named port resolves on the destination",
                ingress_ports("[{port: http}]"),
                "ops/mon",
                "shop/web",
                "TCP 8080",
            ),
            (
                "named port needs the same protocol",
                ingress_ports("[{port: dns}, {port: dns, protocol: UDP}]"),
                "ops/mon",
                "shop/web",
                "UDP 53",
            ),
            ("unmatched named port: nothing", ingress_ports("[{port: pg}]"), "ops/mon", "shop/web", "No Connections"),
            ("a quoted number is a number", ingress_ports("[{port: '443'}]"), "ops/mon", "shop/web", "TCP 443"),
            (
                "egress named port resolves on the destination",
                egress_ports("[{port: http}]"),
                "shop/web",
                "ops/mon",
                "TCP 9090",
            ),
            (
                "egress named port: not the source's",
                egress_ports("[{port: pg}]"),
                "shop/db",
                "ops/mon",
                "No Connections",
            ),
            (
                "egress named port to an address: nothing",
                egress_ports("[{port: http}, {port: 443}]"),
                "shop/web",
                "1.1.1.1",
                "TCP 443",
            ),
        ];
        let fx = Fixture::new();
        for (what, yaml, src, dst, want) in cases {
            let (ev, warnings) = Evaluator::new(&policies(&yaml), &fx.namespaces);
            assert!(warnings.is_empty(), "{what}: {warnings:?}");
            let got = ev.allowed(&fx.peer(src), &fx.peer(dst));
            assert_eq!(got.to_string(), want, "{what}");
        }
    }

    #[test]
    fn decisions_name_the_policies() {
        let yaml = "
kind: NetworkPolicy
metadata: {name: zz-web, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: cache}}}]}, {from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}, {from: [{podSelector: {matchLabels: {app: web}}}]}]}
---
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}}
---
kind: NetworkPolicy
metadata: {name: aa-web, namespace: shop}
spec: {podSelector: {matchLabels: {tier: data}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}
";
        let fx = Fixture::new();
        let (ev, _) = Evaluator::new(&policies(yaml), &fx.namespaces);
        let p = |n| Port::new(n).expect("port");
        let d = ev.check(&fx.peer("shop/web"), &fx.peer("shop/db"), p(5432), Protocol::Tcp);
        assert_eq!(
            d,
            Decision {
                allowed: true,
                egress: SideDecision::NotIsolated,
                ingress: SideDecision::AllowedBy(vec![
                    AllowingRules::new("shop/aa-web", "ingress", &[0]),
                    // The rule for another app is not named; the second and third match.
                    AllowingRules::new("shop/zz-web", "ingress", &[1, 2]),
                ]),
            }
        );
        let d = ev.check(&fx.peer("ops/mon"), &fx.peer("shop/db"), p(5432), Protocol::Tcp);
        assert!(!d.allowed);
        assert_eq!(
            d.ingress,
            SideDecision::Blocked {
                isolated_by: vec!["shop/aa-web".into(), "shop/deny-all".into(), "shop/zz-web".into()]
            }
        );
        let d = ev.check(&fx.peer("shop/db"), &fx.peer("9.9.9.9"), p(443), Protocol::Tcp);
        assert_eq!((d.allowed, d.ingress), (true, SideDecision::NotApplicable));
        assert_eq!(
            ev.isolation(&match fx.peer("shop/db") {
                Peer::Pod(v) => v,
                Peer::Ip(_) | Peer::Host { .. } => unreachable!(),
            }),
            (true, false)
        );
    }

    fn cnps(yaml: &str) -> Vec<CiliumNetworkPolicy> {
        let docs = serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("test YAML");
        docs.into_iter().filter(|d| !d.is_null()).map(|d| serde_json::from_value(d).expect("a CNP")).collect()
    }

    /// CiliumNetworkPolicy as Cilium enforces the subset Flowgate writes: (what, policy, source,
    /// destination, port, protocol, allowed). `host:` and `apiserver:` prefixes make node peers.
    #[test]
    fn cilium_policies() {
        const WEB: &str = "
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: db}}]
    toPorts: [{ports: [{port: '8080', protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {app: mon, k8s:io.kubernetes.pod.namespace: ops}}]
    toPorts: [{ports: [{port: http}]}]
  - fromEntities: [host, remote-node]
    toPorts: [{ports: [{port: '8080', protocol: TCP}]}]
  egress:
  - toFQDNs: [{matchName: api.example.com}]
    toPorts: [{ports: [{port: '443', protocol: TCP}]}]
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
  - toEntities: [kube-apiserver]
    toPorts: [{ports: [{port: '6443', protocol: ANY}]}]
  - toEntities: [host]
  - toEndpoints: [{matchExpressions: [{key: k8s:io.kubernetes.pod.namespace, operator: Exists}]}]
    toPorts: [{ports: [{port: '53', protocol: UDP}], rules: {dns: [{matchPattern: '*'}]}}]
---
kind: CiliumNetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  endpointSelector: {matchLabels: {k8s:app: db}}
  ingress: [{}]
";
        let cases: &[(&str, &str, &str, u16, Protocol, bool)] = &[
            ("an endpoint selector in the policy's namespace", "shop/db", "shop/web", 8080, Protocol::Tcp, true),
            ("only on the rule's ports", "shop/db", "shop/web", 8081, Protocol::Tcp, false),
            ("a selector without a namespace stays in the policy's", "ghost/x", "shop/web", 8080, Protocol::Tcp, false),
            (
                "the namespace label reaches another namespace; a named port",
                "ops/mon",
                "shop/web",
                8080,
                Protocol::Tcp,
                true,
            ),
            ("nodes by entity (both host and remote-node)", "host:172.18.0.2", "shop/web", 8080, Protocol::Tcp, true),
            ("an address is no node", "172.18.0.2", "shop/web", 8080, Protocol::Tcp, false),
            ("toFQDNs: an address the name was seen for", "shop/web", "192.229.173.207", 443, Protocol::Tcp, true),
            ("toFQDNs: any other address", "shop/web", "192.229.173.9", 443, Protocol::Tcp, false),
            ("toCIDRSet", "shop/web", "10.2.0.1", 5000, Protocol::Udp, true),
            ("toCIDRSet except", "shop/web", "10.1.0.1", 5000, Protocol::Udp, false),
            ("CIDR rules never match nodes", "shop/web", "host:10.2.0.9", 10250, Protocol::Tcp, false),
            ("CIDR rules never match pods", "shop/web", "shop/db", 5432, Protocol::Tcp, false),
            ("the API server entity, ANY protocol", "shop/web", "apiserver:10.2.0.1", 6443, Protocol::Sctp, true),
            ("host alone is not taken for every node", "shop/web", "host:172.18.0.3", 22, Protocol::Tcp, false),
            ("every namespace's pods, with the DNS proxy", "shop/web", "ops/mon", 53, Protocol::Udp, true),
            ("{} allows nothing", "shop/web", "shop/db", 53, Protocol::Udp, false),
            (
                "k8s: prefixed keys select; the egress side is not isolated",
                "shop/db",
                "ops/mon",
                9090,
                Protocol::Tcp,
                true,
            ),
        ];
        let fx = Fixture::new();
        let mut names = Names::new();
        names.add("192.229.173.207".parse().unwrap(), &"api.example.com".parse().unwrap(), jiff::Timestamp::UNIX_EPOCH);
        let (ev, warnings) = Evaluator::with_cilium(&[], &cnps(WEB), &fx.namespaces, &names);
        assert!(warnings.is_empty(), "{warnings:?}");
        let peer = |s: &str| -> Peer<'_> {
            if let Some(ip) = s.strip_prefix("host:") {
                return Peer::Host { ip: ip.parse().unwrap(), role: NodeRole::Node };
            }
            if let Some(ip) = s.strip_prefix("apiserver:") {
                return Peer::Host { ip: ip.parse().unwrap(), role: NodeRole::ApiServer };
            }
            fx.peer(s)
        };
        for &(what, src, dst, port, proto, want) in cases {
            let d = ev.check(&peer(src), &peer(dst), Port::new(port).unwrap(), proto);
            assert_eq!(d.allowed, want, "{what}: {d:?}");
        }
    }

    #[test]
    fn cilium_parts_it_cannot_judge_warn_and_never_widen() {
        let yaml = "
kind: CiliumNetworkPolicy
metadata: {name: odd, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints: [{matchLabels: {app: db}}]
    toCIDR: [10.0.0.0/8]
  - toEndpoints: [{matchLabels: {reserved:host: ''}}]
  - toEntities: [moon]
  egressDeny:
  - toCIDR: [10.0.0.0/8]
---
kind: CiliumNetworkPolicy
metadata: {name: host, namespace: shop}
spec:
  nodeSelector: {}
  ingress: [{}]
";
        let fx = Fixture::new();
        let (ev, warnings) = Evaluator::with_cilium(&[], &cnps(yaml), &fx.namespaces, &Names::new());
        let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        for want in
            ["combines toEndpoints and toCIDR", "reserved: labels", "unknown entity", "deny rules", "host policies"]
        {
            assert!(text.iter().any(|t| t.contains(want)), "{want} in {text:#?}");
        }
        // The combined rule matches nothing: web is isolated and reaches neither db nor 10/8.
        assert!(ev.allowed(&fx.peer("shop/web"), &fx.peer("shop/db")).is_empty());
        assert!(ev.allowed(&fx.peer("shop/web"), &fx.peer("10.0.0.1")).is_empty());
    }

    #[test]
    fn knp_and_cnp_add_up_as_cilium_enforces_both() {
        let knp = policies(
            "
kind: NetworkPolicy
metadata: {name: k, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {app: db}}}]}]}
",
        );
        let cnp = cnps(
            "
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: mon, k8s:io.kubernetes.pod.namespace: ops}}]}]
",
        );
        let fx = Fixture::new();
        let (ev, _) = Evaluator::with_cilium(&knp, &cnp, &fx.namespaces, &Names::new());
        let p = Port::new(80).unwrap();
        assert!(ev.allows(&fx.peer("shop/db"), &fx.peer("shop/web"), p, Protocol::Tcp));
        assert!(ev.allows(&fx.peer("ops/mon"), &fx.peer("shop/web"), p, Protocol::Tcp));
        assert!(!ev.allows(&fx.peer("ghost/x"), &fx.peer("shop/web"), p, Protocol::Tcp));
    }
}
