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

/// What was observed for a namespace in a window.
pub struct Reviewed {
    pub inventory: Inventory,
    pub connections: Connections,
    pub generation: Generation,
    pub verification: Verification,
    /// The decisions version each generated workload's policy was built with.
    pub versions: Vec<(WorkloadRef, i32)>,
}

/// Merges CLI-level decisions into stored ones (a union: the CLI adds exclusions and trust).
fn merged(stored: &Decisions, extra: &Decisions) -> Decisions {
    let mut d = stored.clone();
    d.exclude.extend(extra.exclude.iter().cloned());
    d.trust.extend(extra.trust.iter().copied());
    d.include_unresolved.extend(extra.include_unresolved.iter().copied());
    d.include_all_unresolved |= extra.include_all_unresolved;
    d
}

/// Generates the policies of `namespace` (or only `workloads`) from the store, each workload with
/// its own stored decisions merged with `extra`.
pub async fn generate_from_store(
    store: &Store,
    cluster: i32,
    namespace: &str,
    workloads: Option<&BTreeSet<WorkloadRef>>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    extra: &Decisions,
    dns: bool,
) -> Result<Reviewed> {
    let inventory = store.load_inventory(cluster).await?;
    let catalog = store.load_catalog(cluster, &inventory).await?;
    let connections = store.connections(cluster, Scope::Namespace(namespace), since, until, catalog).await?;
    let base = Options {
        namespaces: Some(BTreeSet::from([namespace.to_string()])),
        workloads: workloads.cloned(),
        decisions: extra.clone(),
        dns,
    };
    let targets = generate::targets(&connections.catalog, &inventory, &base);
    let mut all = Generation::default();
    let mut versions = Vec::new();
    for w in targets {
        let stored = store.decisions(cluster, &w).await?;
        let opts = Options {
            workloads: Some(BTreeSet::from([w.clone()])),
            decisions: merged(&stored.decisions, extra),
            ..base.clone()
        };
        let g = generate::generate(&inventory, &connections, &opts);
        all.policies.extend(g.policies);
        all.review.extend(g.review);
        all.warnings.extend(g.warnings);
        versions.push((w, stored.version));
    }
    all.warnings.sort();
    all.warnings.dedup();
    let verification = verify::verify(&all, &inventory, &connections.catalog);
    Ok(Reviewed { inventory, connections, generation: all, verification, versions })
}
