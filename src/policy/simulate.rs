//! Simulation: what applying a proposed set of policies would do to the traffic seen. The
//! NetworkPolicies already in the cluster, then the same plus the proposed set (replacing policies
//! of the same namespace and name, as `kubectl apply` would), are evaluated against each observed
//! connection; a connection allowed today and blocked after is one that applying the set would
//! break. Pure: the inventory's policies, the proposal and the connections in, verdicts out.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;

use super::admin::Tier;
use super::eval::{Decision, Evaluator, SideDecision, join_allowing};
use super::generate::Generation;
use super::verify::{PortIndex, peer_of};
use crate::enrich::Endpoint;
use crate::inventory::Inventory;
use crate::model::WorkloadRef;
use crate::topology::{ConnKey, ConnStats, Connections};

/// What applying the proposal does to one observed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Allowed today and after.
    Allowed,
    /// Allowed today, blocked after: applying the proposal breaks it.
    WouldBreak,
    /// Blocked today (its flows are being dropped, or will be once the existing policies are
    /// enforced) and after.
    Blocked,
    /// Blocked today, allowed after.
    NewlyAllowed,
    /// From a node: CNIs let node traffic to its own pods through whatever the policies say.
    NotSubject,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allowed => "allowed",
            Effect::WouldBreak => "would_break",
            Effect::Blocked => "blocked",
            Effect::NewlyAllowed => "newly_allowed",
            Effect::NotSubject => "not_subject",
        }
    }
}

/// One observed connection, today and with the proposal applied.
#[derive(Debug, Clone)]
pub struct Simulated<'a> {
    pub key: &'a ConnKey,
    pub stats: &'a ConnStats,
    pub before: Decision,
    pub after: Decision,
    pub effect: Effect,
}

impl Simulated<'_> {
    /// Why the proposal leaves it as it is: the deciding policies of the side that blocks it
    /// (`blocked by the default deny of ns/a, ns/b (egress)`), or of both sides that allow it.
    pub fn reason(&self) -> String {
        explain(&self.after)
    }
}

/// What a decision comes to in words: which side blocks it and whose isolation (no rule of theirs
/// allows it: their default deny), or which policies allow it.
pub fn explain(d: &Decision) -> String {
    let side = |s: &SideDecision, dir: &str| match s {
        SideDecision::Blocked { isolated_by } => {
            Some(format!("blocked by the default deny of {} ({dir}: no rule allows it)", isolated_by.join(", ")))
        }
        SideDecision::Admin(a) if !a.allowed => Some(format!("{a} ({dir})")),
        _ => None,
    };
    if let Some(why) = side(&d.egress, "egress").or_else(|| side(&d.ingress, "ingress")) {
        return why;
    }
    let by: BTreeSet<String> = [&d.egress, &d.ingress]
        .into_iter()
        .flat_map(|s| match s {
            SideDecision::AllowedBy(p) => p.iter().map(ToString::to_string).collect(),
            SideDecision::Admin(a) => vec![format!("{}, rule {:?}", a.policy, a.rule)],
            _ => Vec::new(),
        })
        .collect();
    if by.is_empty() {
        "allowed: no policy isolates either end".to_string()
    } else {
        format!("allowed by {}", by.into_iter().collect::<Vec<_>>().join("; "))
    }
}

/// The policies in force once `proposed` is applied over `existing`: a proposed policy replaces an
/// existing one of the same namespace and name (Flowgate's own earlier policy, say).
pub fn with_proposed(existing: &[NetworkPolicy], proposed: &[NetworkPolicy]) -> Vec<NetworkPolicy> {
    let key = |p: &NetworkPolicy| (p.metadata.namespace.clone(), p.metadata.name.clone());
    let replaced: BTreeSet<_> = proposed.iter().map(key).collect();
    existing.iter().filter(|p| !replaced.contains(&key(p))).chain(proposed).cloned().collect()
}

/// The evaluators of the policies in force today and with `proposed` applied, and what either
/// could not read (sorted, once each).
fn evaluators(inv: &Inventory, proposed: &[NetworkPolicy]) -> (Evaluator, Evaluator, Vec<String>) {
    let (before, mut warnings) = Evaluator::new(&inv.policies, &inv.namespaces);
    let (after, after_warnings) = Evaluator::new(&with_proposed(&inv.policies, proposed), &inv.namespaces);
    warnings.extend(after_warnings);
    // The cluster-scoped admin policies stay as they are on both sides.
    let (before, admin_warnings) = before.with_admin(&inv.admin);
    let (after, _) = after.with_admin(&inv.admin);
    warnings.extend(admin_warnings);
    let mut warnings: Vec<String> = warnings.into_iter().map(|w| w.to_string()).collect();
    warnings.sort();
    warnings.dedup();
    (before, after, warnings)
}

/// The outcome for a set of connections.
#[derive(Debug, Clone, Default)]
pub struct Simulation<'a> {
    /// In the connections' order (sorted by key).
    pub rows: Vec<Simulated<'a>>,
    /// What the evaluator could not read in the policies (unknown fields, named ports it cannot
    /// resolve), from either set.
    pub warnings: Vec<String>,
}

impl Simulation<'_> {
    /// The connections applying the proposal would break: observed, allowed today, blocked after.
    pub fn would_break(&self) -> impl Iterator<Item = &Simulated<'_>> {
        self.rows.iter().filter(|r| r.effect == Effect::WouldBreak)
    }

    /// How many connections each effect has: the semantic diff of the proposal against the
    /// policies in force, over the traffic seen.
    pub fn counts(&self) -> std::collections::BTreeMap<Effect, usize> {
        let mut out = std::collections::BTreeMap::new();
        for r in &self.rows {
            *out.entry(r.effect).or_insert(0) += 1;
        }
        out
    }

    /// The cluster's policies that decide some simulated connection today (`ns/name`, sorted):
    /// those the proposal is compared with.
    pub fn deciding_today(&self) -> Vec<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for r in &self.rows {
            for side in [&r.before.egress, &r.before.ingress] {
                match side {
                    SideDecision::AllowedBy(p) => out.extend(p.iter().map(|a| a.policy.clone())),
                    SideDecision::Blocked { isolated_by: p } => out.extend(p.iter().cloned()),
                    SideDecision::Admin(a) => {
                        out.insert(a.policy.clone());
                    }
                    _ => {}
                }
            }
        }
        out.into_iter().collect()
    }

    /// The effect on the connection with this key, if it was simulated.
    pub fn effect(&self, key: &ConnKey) -> Option<&Simulated<'_>> {
        self.rows.binary_search_by(|r| r.key.cmp(key)).ok().map(|i| &self.rows[i])
    }
}

/// Evaluates every connection of `conns` that `scope` keeps against the inventory's policies, then
/// against them with `proposed` applied ([`with_proposed`]).
pub fn simulate<'a>(
    inv: &Inventory,
    conns: &'a Connections,
    proposed: &[NetworkPolicy],
    scope: impl Fn(&ConnKey) -> bool,
) -> Simulation<'a> {
    let (before_eval, after_eval, warnings) = evaluators(inv, proposed);
    let ports = PortIndex::new(inv);
    let mut rows = Vec::new();
    for (key, stats) in conns.sorted() {
        if !scope(key) {
            continue;
        }
        let src = peer_of(&key.src, &conns.catalog, &ports);
        let dst = peer_of(&key.dst, &conns.catalog, &ports);
        let before = before_eval.check(&src.as_peer(), &dst.as_peer(), key.port, key.protocol);
        let after = after_eval.check(&src.as_peer(), &dst.as_peer(), key.port, key.protocol);
        let effect = if matches!(key.src, Endpoint::Node { .. }) && !after.allowed {
            Effect::NotSubject
        } else {
            match (before.allowed, after.allowed) {
                (true, true) => Effect::Allowed,
                (true, false) => Effect::WouldBreak,
                (false, false) => Effect::Blocked,
                (false, true) => Effect::NewlyAllowed,
            }
        };
        rows.push(Simulated { key, stats, before, after, effect });
    }
    Simulation { rows, warnings }
}

/// One connection, seen or not, explained: the decision today and with `proposed` applied, and
/// its statistics when it was observed.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub before: Decision,
    pub after: Decision,
    pub observed: Option<ConnStats>,
}

/// What the policies in force (and with `proposed` applied over them) say about `key`.
pub fn explain_one(inv: &Inventory, conns: &Connections, proposed: &[NetworkPolicy], key: &ConnKey) -> Explanation {
    let (before_eval, after_eval, _) = evaluators(inv, proposed);
    let ports = PortIndex::new(inv);
    let src = peer_of(&key.src, &conns.catalog, &ports);
    let dst = peer_of(&key.dst, &conns.catalog, &ports);
    Explanation {
        before: before_eval.check(&src.as_peer(), &dst.as_peer(), key.port, key.protocol),
        after: after_eval.check(&src.as_peer(), &dst.as_peer(), key.port, key.protocol),
        observed: conns.map.get(key).cloned(),
    }
}

/// One side of a decision in words: `not a pod (no policy applies)`, `not isolated (no policy
/// selects it for egress)`, `allowed by ns/a, ns/b`, `isolated by ns/a and no rule allows it`.
pub fn side_words(s: &SideDecision, dir: &str) -> String {
    match s {
        SideDecision::NotApplicable => "not a pod: no policy applies".into(),
        SideDecision::NotIsolated => format!("not isolated: no policy selects it for {dir}"),
        SideDecision::AllowedBy(p) => format!("allowed by {}", join_allowing(p)),
        SideDecision::Admin(a) => match a.tier {
            Tier::Admin => format!("{a} (admin tier, before NetworkPolicies)"),
            Tier::Baseline => format!("{a} (baseline tier: no NetworkPolicy selects it for {dir})"),
        },
        SideDecision::Blocked { isolated_by } => {
            format!(
                "isolated for {dir} by {} and no rule of theirs allows it (their default deny)",
                isolated_by.join(", ")
            )
        }
    }
}

/// A generation's own proposal simulated: the policies of `workload` (of every workload generated,
/// with `None`) applied over the inventory's, over the connections with an end in that workload
/// (every connection, with `None`). What the review page shows beside its YAML.
pub fn proposal<'a>(
    inv: &Inventory,
    conns: &'a Connections,
    generation: &Generation,
    workload: Option<&WorkloadRef>,
) -> Simulation<'a> {
    let proposed: Vec<NetworkPolicy> = generation.policies_of(workload).cloned().collect();
    let touches = |e: &Endpoint| workload.is_none_or(|w| e.workload() == Some(w));
    simulate(inv, conns, &proposed, |k| touches(&k.src) || touches(&k.dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::eval::AllowingRules;

    fn policy(ns: &str, name: &str, json: serde_json::Value) -> NetworkPolicy {
        let mut v = json;
        v["apiVersion"] = "networking.k8s.io/v1".into();
        v["kind"] = "NetworkPolicy".into();
        v["metadata"] = serde_json::json!({"namespace": ns, "name": name});
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_proposed_policy_replaces_the_one_of_its_name_only() {
        let deny = policy("shop", "deny", serde_json::json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}));
        let web = policy("shop", "web", serde_json::json!({"spec": {"podSelector": {}}}));
        let other = policy("other", "web", serde_json::json!({"spec": {"podSelector": {}}}));
        let new_web =
            policy("shop", "web", serde_json::json!({"spec": {"podSelector": {"matchLabels": {"app": "web"}}}}));
        let set = with_proposed(&[deny.clone(), web, other.clone()], std::slice::from_ref(&new_web));
        assert_eq!(set, vec![deny, other, new_web]);
    }

    #[test]
    fn explain_names_the_blocking_side_or_the_allowing_policies() {
        let blocked = Decision {
            allowed: false,
            egress: SideDecision::AllowedBy(vec![AllowingRules::new("shop/web", "egress", &[0])]),
            ingress: SideDecision::Blocked { isolated_by: vec!["db/deny".into(), "db/x".into()] },
        };
        assert_eq!(explain(&blocked), "blocked by the default deny of db/deny, db/x (ingress: no rule allows it)");
        let allowed = Decision {
            allowed: true,
            egress: SideDecision::AllowedBy(vec![AllowingRules::new("shop/web", "egress", &[1])]),
            ingress: SideDecision::AllowedBy(vec![
                AllowingRules::new("db/db", "ingress", &[0, 2]),
                AllowingRules::new("shop/web", "ingress", &[0]),
            ]),
        };
        assert_eq!(
            explain(&allowed),
            "allowed by db/db spec.ingress[0], spec.ingress[2]; shop/web spec.egress[1]; shop/web spec.ingress[0]"
        );
        let open = Decision { allowed: true, egress: SideDecision::NotIsolated, ingress: SideDecision::NotApplicable };
        assert_eq!(explain(&open), "allowed: no policy isolates either end");
    }
}
