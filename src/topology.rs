//! Connections: enriched flows folded into (source, destination, port, protocol) with counts,
//! first and last seen and the processes seen, plus the catalog of workloads and their labels
//! that selectors are computed from.
//!
//! Memory grows with the number of distinct connections, never with the number of flows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::Serialize;

use crate::enrich::{Endpoint, Enriched};
use crate::inventory::Inventory;
use crate::model::{FlowRecord, Labels, Port, Protocol, Verdict, WorkloadRef};

/// At most this many distinct process names are kept per connection.
pub const MAX_PROCESSES: usize = 8;
/// Label sets kept per workload learned from flows (pods of one workload normally share them).
const MAX_LABEL_SETS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnKey {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub port: Port,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnStats {
    pub flows: u64,
    pub dropped: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub processes: BTreeSet<String>,
    /// Services the connection went through (`namespace/name:port`).
    pub services: BTreeSet<String>,
}

impl ConnStats {
    fn new(t: Timestamp) -> Self {
        ConnStats {
            flows: 0,
            dropped: 0,
            first_seen: t,
            last_seen: t,
            processes: BTreeSet::new(),
            services: BTreeSet::new(),
        }
    }

    pub fn merge(&mut self, other: &ConnStats) {
        self.flows += other.flows;
        self.dropped += other.dropped;
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        for p in &other.processes {
            if self.processes.len() >= MAX_PROCESSES {
                break;
            }
            self.processes.insert(p.clone());
        }
        self.services.extend(other.services.iter().cloned());
    }
}

/// Which workloads exist and what labels their pods carry: from the inventory first, then from
/// what flow sources reported for pods the inventory does not know.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub workloads: BTreeMap<WorkloadRef, BTreeSet<Labels>>,
    /// Workloads the inventory described; flow sources do not add labels to these.
    described: BTreeSet<WorkloadRef>,
}

impl Catalog {
    pub fn from_inventory(inv: &Inventory) -> Catalog {
        let mut c = Catalog::default();
        for (w, info) in &inv.workloads {
            let sets = c.workloads.entry(w.clone()).or_default();
            if let Some(l) = &info.template_labels {
                sets.insert(l.clone());
            }
        }
        for p in &inv.pods {
            c.workloads.entry(p.owner.clone()).or_default().insert(p.labels.clone());
        }
        c.described = c.workloads.iter().filter(|(_, l)| !l.is_empty()).map(|(w, _)| w.clone()).collect();
        c
    }

    /// Records labels a flow source reported; ignored for workloads the inventory described.
    pub fn learn(&mut self, w: &WorkloadRef, labels: &Labels) {
        if self.described.contains(w) {
            return;
        }
        let sets = self.workloads.entry(w.clone()).or_default();
        if sets.len() < MAX_LABEL_SETS && !sets.contains(labels) {
            sets.insert(labels.clone());
        }
    }

    pub fn note_workload(&mut self, w: &WorkloadRef) {
        self.workloads.entry(w.clone()).or_default();
    }

    pub fn in_namespace<'a>(
        &'a self,
        ns: &'a str,
    ) -> impl Iterator<Item = (&'a WorkloadRef, &'a BTreeSet<Labels>)> + 'a {
        self.workloads.iter().filter(move |(w, _)| w.namespace == ns)
    }

    pub fn namespaces(&self) -> BTreeSet<&str> {
        self.workloads.keys().map(|w| w.namespace.as_str()).collect()
    }
}

/// Optional time window on flows; both ends inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Window {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| s <= t) && self.until.is_none_or(|u| t <= u)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Connections {
    pub map: HashMap<ConnKey, ConnStats>,
    pub catalog: Catalog,
    /// Flows folded in, and flows outside the window that were left out.
    pub flows: u64,
    pub outside_window: u64,
    pub newest: Option<Timestamp>,
}

impl Connections {
    pub fn new(catalog: Catalog) -> Self {
        Connections { catalog, ..Default::default() }
    }

    /// Folds one flow in (after enrichment). Flows outside `window` are counted and dropped.
    pub fn add(&mut self, flow: &FlowRecord, enriched: &[Enriched], window: &Window) {
        if !window.contains(flow.time) {
            self.outside_window += 1;
            return;
        }
        self.flows += 1;
        self.newest = Some(self.newest.map_or(flow.time, |n| n.max(flow.time)));
        for e in enriched {
            for (w, labels) in &e.learned {
                self.catalog.learn(w, labels);
            }
            for end in [&e.src, &e.dst] {
                if let Some(w) = end.workload() {
                    if !self.catalog.workloads.contains_key(w) {
                        self.catalog.note_workload(w);
                    }
                }
            }
            let key = ConnKey { src: e.src.clone(), dst: e.dst.clone(), port: e.port, protocol: e.protocol };
            let stats = self.map.entry(key).or_insert_with(|| ConnStats::new(flow.time));
            stats.flows += 1;
            if flow.verdict == Verdict::Dropped {
                stats.dropped += 1;
            }
            stats.first_seen = stats.first_seen.min(flow.time);
            stats.last_seen = stats.last_seen.max(flow.time);
            if let Some(p) = &flow.process {
                if stats.processes.len() < MAX_PROCESSES && !stats.processes.contains(p) {
                    stats.processes.insert(p.clone());
                }
            }
            if let Some((ns, name, port)) = &e.service {
                if stats.services.len() < MAX_PROCESSES {
                    stats.services.insert(format!("{ns}/{name}:{port}"));
                }
            }
        }
    }

    /// The connections in a stable order.
    pub fn sorted(&self) -> Vec<(&ConnKey, &ConnStats)> {
        let mut v: Vec<_> = self.map.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}
