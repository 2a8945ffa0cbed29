//! The offline pipeline behind the CLI: files in, connections and verified policies out (`check`
//! simulates over them with `policy::simulate`).
//!
//! This is an IO shell: it reads the inventory and flow files and hands values to the pure core
//! (`enrich`, `topology`, `policy`). Everything it returns is data; printing is the CLI's job (`cli/`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::enrich::{KnownEnds, enrich_learning};
use crate::flows::{self, FlowFormat, Record, Summary};
use crate::inventory::{self, Inventory, Loaded};
use crate::model::{WorkloadKind, WorkloadRef};
use crate::policy::generate::{self, Generation, Options};
use crate::policy::verify::{self, Verification};
use crate::topology::{Catalog, Connections, Settled, TimeBound, Window};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{0}")]
    Inventory(#[from] inventory::LoadError),
    #[error("{0}")]
    Flows(#[from] flows::FlowsError),
    #[error("{0}")]
    Usage(String),
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub inventory: Vec<PathBuf>,
    pub flows: Vec<String>,
    pub format: FlowFormat,
    pub since: Option<TimeBound>,
    pub until: Option<TimeBound>,
    pub cluster_cidrs: Vec<IpNet>,
    /// Parser threads; 0 means one per core.
    pub threads: usize,
}

/// Everything observed: the inventory and the connections folded from the flows.
pub struct Observed {
    pub inventory: Inventory,
    pub loaded: Loaded,
    pub connections: Connections,
    pub flows: Summary,
    pub window: Window,
    /// What the whole input settled that single flows could not (directions, identities,
    /// DaemonSets).
    pub settled: Settled,
}

fn threads(n: usize) -> usize {
    if n > 0 { n } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
}

/// Reads the inventory, then every flow file, enriching and folding flows as they stream by.
/// A relative `--since`/`--until` needs the newest flow's time first, so the files are read twice
/// (standard input cannot be, and is refused with a relative bound).
pub fn observe(inputs: &Inputs) -> Result<Observed, OfflineError> {
    let loaded = inventory::load_paths(&inputs.inventory)?;
    let mut inv = Inventory::build(&loaded.objects);
    inv.add_cluster_cidrs(&inputs.cluster_cidrs);
    let threads = threads(inputs.threads);

    let relative = inputs.since.is_some_and(|b| b.is_relative()) || inputs.until.is_some_and(|b| b.is_relative());
    let mut newest = None;
    if relative {
        if inputs.flows.iter().any(|f| f == "-") {
            return Err(OfflineError::Usage(
                "a relative --since/--until needs the newest flow first and cannot read standard input twice; give an RFC 3339 time".into(),
            ));
        }
        let mut scratch = Summary::default();
        for path in &inputs.flows {
            let folds = flows::fold_path(
                path,
                inputs.format,
                threads,
                &mut scratch,
                || None,
                |newest: &mut Option<jiff::Timestamp>, r| {
                    if let Record::Flow(f) = r {
                        *newest = (*newest).max(Some(f.time));
                    }
                },
            )?;
            newest = folds.into_iter().fold(newest, Option::max);
        }
    }
    let window = Window {
        since: inputs.since.and_then(|b| b.resolve(newest)),
        until: inputs.until.and_then(|b| b.resolve(newest)),
    };

    // Each parser thread folds what it parses into connections of its own, merged at the end:
    // the fold does not depend on the order flows come in.
    let catalog = Catalog::from_inventory(&inv);
    let mut connections = Connections::new(catalog.clone());
    let mut summary = Summary::default();
    for path in &inputs.flows {
        let folds = flows::fold_path(
            path,
            inputs.format,
            threads,
            &mut summary,
            || Fold { connections: Connections::new(catalog.clone()), known_ends: KnownEnds::default() },
            |fold, record| fold.take(&inv, window, record),
        )?;
        for fold in folds {
            connections.merge(fold.connections);
        }
    }
    let settled = connections.settle(&inv);
    Ok(Observed { inventory: inv, loaded, connections, flows: summary, window, settled })
}

/// One parser thread's share of the flows, enriched and folded.
struct Fold {
    connections: Connections,
    /// The ends whose label sets the fold's catalog knows, by the end as this thread's parser
    /// shares it. Known stays known: a label set leaves the catalog only for a smaller one.
    known_ends: KnownEnds,
}

impl Fold {
    fn take(&mut self, inv: &Inventory, window: Window, record: Record) {
        let connections = &mut self.connections;
        match record {
            Record::Flow(flow) if window.contains(flow.time) => {
                let (catalog, known_ends) = (&connections.catalog, &self.known_ends);
                let enriched = enrich_learning(inv, &flow, |w, end| {
                    known_ends.get(end).is_some() || {
                        let known = catalog.knows(w, &end.labels);
                        if known {
                            known_ends.insert(end, ());
                        }
                        known
                    }
                });
                connections.add(&flow, enriched);
            }
            Record::Flow(_) => connections.outside_window += 1,
            // Answers up to the window's end count (see `Connections::add_answer`).
            Record::Names(answer) if window.until.is_none_or(|u| answer.time <= u) => connections.add_answer(&answer),
            Record::Names(_) => {}
        }
    }
}

/// How the CLI names the workloads to generate for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadArg {
    /// `KIND/NAME`, in whichever selected namespace has it.
    Named(WorkloadKind, String),
    Full(WorkloadRef),
}

impl std::str::FromStr for WorkloadArg {
    type Err = crate::model::ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.matches('/').count() == 2 {
            return s.parse().map(WorkloadArg::Full);
        }
        let (kind, name) =
            s.split_once('/').ok_or_else(|| crate::model::ModelError::Workload(crate::model::names::excerpt(s)))?;
        let kind: WorkloadKind = kind.parse()?;
        crate::model::NameRule::for_workload(kind).check(name)?;
        Ok(WorkloadArg::Named(kind, name.to_string()))
    }
}

/// Resolves `--workload` arguments against what was observed; an unknown one is an error that
/// lists what exists.
pub fn resolve_workloads(
    catalog: &Catalog,
    namespaces: Option<&BTreeSet<String>>,
    args: &[WorkloadArg],
) -> Result<Option<BTreeSet<WorkloadRef>>, OfflineError> {
    if args.is_empty() {
        return Ok(None);
    }
    let in_scope = |w: &WorkloadRef| namespaces.is_none_or(|ns| ns.contains(&w.namespace));
    let mut out = BTreeSet::new();
    for arg in args {
        let found: Vec<&WorkloadRef> = catalog
            .workloads
            .keys()
            .filter(|w| in_scope(w))
            .filter(|w| match arg {
                WorkloadArg::Full(f) => *w == f,
                WorkloadArg::Named(kind, name) => w.kind == *kind && &w.name == name,
            })
            .collect();
        if found.is_empty() {
            let known: Vec<String> = catalog.workloads.keys().filter(|w| in_scope(w)).map(|w| w.to_string()).collect();
            let shown = known.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
            let name = match arg {
                WorkloadArg::Full(f) => f.to_string(),
                WorkloadArg::Named(k, n) => format!("{k}/{n}"),
            };
            return Err(OfflineError::Usage(format!(
                "--workload {name}: no such workload in the selected namespaces (known: {})",
                if shown.is_empty() { "none".to_string() } else { shown }
            )));
        }
        out.extend(found.into_iter().cloned());
    }
    Ok(Some(out))
}

/// Generates and verifies.
pub fn generate_and_verify(obs: &Observed, opts: &Options) -> (Generation, Verification) {
    let generation = generate::generate(&obs.inventory, &obs.connections, opts);
    let verification = verify::verify(&generation, &obs.inventory, &obs.connections.catalog);
    (generation, verification)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::topology::TimeBound;

    /// What a fold came to, in a form to compare.
    fn folded(c: &Connections, settled: &Settled, summary: &Summary) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{} {} {:?}\n{settled:?}\n{summary}",
            c.sorted(),
            c.catalog.workloads,
            c.inferred,
            c.names,
            c.flows,
            c.outside_window,
            c.newest,
        )
    }

    #[test]
    fn folding_on_several_threads_observes_what_one_ordered_fold_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
        let mut flows: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        flows.sort();
        assert!(flows.len() >= 5);
        let inv = Inventory::build(&[]);
        // Every real capture, and a window that cuts through them (flows and answers left out).
        for since in [None, Some("2021-10-04T12:00:00Z".parse::<Timestamp>().unwrap())] {
            // One fold, every record in file order on this thread, as the reader delivers them.
            let window = Window { since, until: None };
            let mut fold =
                Fold { connections: Connections::new(Catalog::from_inventory(&inv)), known_ends: KnownEnds::default() };
            let mut summary = Summary::default();
            for path in &flows {
                flows::read_path(path, FlowFormat::Auto, 1, &mut summary, |r| fold.take(&inv, window, r)).unwrap();
            }
            let settled = fold.connections.settle(&inv);
            let want = folded(&fold.connections, &settled, &summary);
            assert!(fold.connections.flows > 300 && !fold.connections.map.is_empty());
            for threads in [1, 2, 3] {
                let since = since.map(TimeBound::At);
                let obs = observe(&Inputs { flows: flows.clone(), since, threads, ..Default::default() }).unwrap();
                assert_eq!(folded(&obs.connections, &obs.settled, &obs.flows), want, "{threads} threads");
            }
        }
    }
}
