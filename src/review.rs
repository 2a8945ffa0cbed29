//! The store-backed review: connections of a window plus each workload's stored decisions give
//! its policy. Shared by `flowgate generate --cluster` and the web application.

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::inventory::Inventory;
use crate::model::WorkloadRef;
use crate::policy::generate::{self, Decisions, Generation, Options};
use crate::policy::verify::{self, Verification};
use crate::store::query::Scope;
use crate::store::{Result, Store};
use crate::topology::Connections;

/// What to review: one workload, or every workload of a namespace.
#[derive(Debug, Clone)]
pub enum Target<'a> {
    Workload(&'a WorkloadRef),
    Namespace { namespace: &'a str, only: Option<&'a BTreeSet<WorkloadRef>> },
}

/// The connections of a window and the policies generated from them.
pub struct Reviewed {
    pub connections: Connections,
    pub generation: Generation,
    pub verification: Verification,
    /// The decisions (and their version) each target's policy was built with.
    pub decisions: Vec<(WorkloadRef, Decisions, i32)>,
}

/// Merges CLI-level decisions into stored ones (a union: the CLI adds exclusions and trust).
fn merged(stored: &Decisions, extra: &Decisions) -> Decisions {
    let mut d = stored.clone();
    d.exclude.extend(extra.exclude.iter().cloned());
    d.trust.extend(extra.trust.iter().copied());
    d.include_unresolved.extend(extra.include_unresolved.iter().copied());
    d.include_all_unresolved |= extra.include_all_unresolved;
    d.trust_names.extend(extra.trust_names.iter().cloned());
    d.leave_out.extend(extra.leave_out.iter().copied());
    d
}

/// Generates the target's policies from the store, each workload with its own stored decisions
/// merged with `extra`.
#[allow(clippy::too_many_arguments)]
pub async fn review(
    store: &Store,
    cluster: i32,
    inventory: &Inventory,
    target: Target<'_>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    extra: &Decisions,
    dns: bool,
) -> Result<Reviewed> {
    store.reviews.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let catalog = store.load_catalog(cluster, inventory).await?;
    let (scope, namespace, only) = match &target {
        Target::Workload(w) => (Scope::Workload(w), w.namespace.as_str(), Some(BTreeSet::from([(*w).clone()]))),
        Target::Namespace { namespace, only } => (Scope::Namespace(namespace), *namespace, only.cloned()),
    };
    let mut connections = store.connections(cluster, scope, since, until, catalog).await?;
    // A namespace's connections are all there, so what they settle together holds (a DaemonSet
    // seen as several bare pods). One workload's are not: its peers' other pods are missing, and
    // its page must keep naming it as stored; its own connections still say where it listens,
    // which is what tells its replies from requests.
    match target {
        Target::Namespace { .. } => connections.settle(inventory),
        Target::Workload(_) => connections.settle_one_workload(inventory),
    };
    let mut opts = Options {
        namespaces: Some(BTreeSet::from([namespace.to_string()])),
        workloads: only,
        decisions: extra.clone(),
        per_workload: Default::default(),
        dns,
    };
    let targets = generate::targets(&connections.catalog, inventory, &opts);
    // One generation for all targets, each with its own stored decisions: generating per target
    // walked (and sorted) every connection of the namespace once per workload.
    let stored = store.decisions_of(cluster, &targets).await?;
    let mut decisions = Vec::new();
    for (w, v) in targets.into_iter().zip(stored) {
        let d = merged(&v.decisions, extra);
        opts.per_workload.insert(w.clone(), d.clone());
        decisions.push((w, d, v.version));
    }
    let mut all = generate::generate(inventory, &connections, &opts);
    all.warnings.sort();
    all.warnings.dedup();
    let verification = verify::verify(&all, inventory, &connections.catalog);
    Ok(Reviewed { connections, generation: all, verification, decisions })
}
