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
            flows::read_path(path, inputs.format, threads, &mut scratch, |r| {
                if let Record::Flow(f) = r {
                    newest = Some(newest.map_or(f.time, |n: jiff::Timestamp| n.max(f.time)));
                }
            })?;
        }
    }
    let window = Window {
        since: inputs.since.and_then(|b| b.resolve(newest)),
        until: inputs.until.and_then(|b| b.resolve(newest)),
    };

    let mut connections = Connections::new(Catalog::from_inventory(&inv));
    let mut summary = Summary::default();
    // What the catalog knows it knows for good (its label sets only grow).
    let known_ends = KnownEnds::default();
    for path in &inputs.flows {
        flows::read_path(path, inputs.format, threads, &mut summary, |record| match record {
            Record::Flow(flow) if window.contains(flow.time) => {
                let catalog = &connections.catalog;
                let enriched = enrich_learning(&inv, &flow, |w, end| {
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
        })?;
    }
    let settled = connections.settle(&inv);
    Ok(Observed { inventory: inv, loaded, connections, flows: summary, window, settled })
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
