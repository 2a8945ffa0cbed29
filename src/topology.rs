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
        // Called for every flow with Hubble metadata: look up before cloning the key, which is
        // almost always there already.
        let sets = match self.workloads.get_mut(w) {
            Some(sets) => sets,
            None => self.workloads.entry(w.clone()).or_default(),
        };
        if sets.len() < MAX_LABEL_SETS && !sets.contains(labels) {
            sets.insert(labels.clone());
        }
    }

    /// Whether [`Catalog::learn`] would change nothing for these labels.
    pub fn knows(&self, w: &WorkloadRef, labels: &Labels) -> bool {
        self.described.contains(w)
            || self.workloads.get(w).is_some_and(|sets| sets.len() >= MAX_LABEL_SETS || sets.contains(labels))
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

    /// Folds one flow in (after enrichment). The caller applies the window, before enriching.
    pub fn add(&mut self, flow: &FlowRecord, enriched: &[Enriched]) {
        self.flows += 1;
        self.newest = Some(self.newest.map_or(flow.time, |n| n.max(flow.time)));
        for e in enriched {
            for (w, labels) in &e.learned {
                self.catalog.learn(w, labels);
            }
            for end in [&e.src, &e.dst] {
                if let Some(w) = end.workload()
                    && !self.catalog.workloads.contains_key(w)
                {
                    self.catalog.note_workload(w);
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
            if let Some(p) = &flow.process
                && stats.processes.len() < MAX_PROCESSES
                && !stats.processes.contains(p)
            {
                stats.processes.insert(p.clone());
            }
            if let Some((ns, name, port)) = &e.service {
                // Most flows repeat a Service already recorded; only a new one is formatted.
                if stats.services.len() < MAX_PROCESSES
                    && !stats.services.iter().any(|s| is_service(s, ns, name, *port))
                {
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

/// Whether `s` is `format!("{ns}/{name}:{port}")`, without formatting it.
fn is_service(s: &str, ns: &str, name: &str, port: u16) -> bool {
    let rest = s.strip_prefix(ns).and_then(|r| r.strip_prefix('/')).and_then(|r| r.strip_prefix(name));
    let Some(digits) = rest.and_then(|r| r.strip_prefix(':')) else { return false };
    // A formatted port has no sign and no leading zero, so parsing back is exact.
    !digits.starts_with(['+', '0']) && digits.parse::<u16>() == Ok(port) || digits == "0" && port == 0
}

/// `--since`/`--until`: an instant, or a duration back from the newest flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    At(Timestamp),
    Ago(jiff::SignedDuration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {0:?}: expected RFC 3339 (2026-11-25T10:00:00Z) or a duration such as 30m, 3h, 7d")]
pub struct TimeBoundError(pub String);

impl std::str::FromStr for TimeBound {
    type Err = TimeBoundError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TimeBoundError(s.to_string());
        if let Ok(t) = s.parse::<Timestamp>() {
            return Ok(TimeBound::At(t));
        }
        let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?);
        let n: i64 = num.parse().map_err(|_| err())?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(err()),
        };
        n.checked_mul(secs).map(|s| TimeBound::Ago(jiff::SignedDuration::from_secs(s))).ok_or_else(err)
    }
}

impl TimeBound {
    pub fn is_relative(&self) -> bool {
        matches!(self, TimeBound::Ago(_))
    }

    /// The instant, given the newest flow's time for relative bounds.
    pub fn resolve(&self, newest: Option<Timestamp>) -> Option<Timestamp> {
        match self {
            TimeBound::At(t) => Some(*t),
            TimeBound::Ago(d) => newest.and_then(|n| n.checked_sub(*d).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkloadKind;

    #[test]
    fn service_names_match_their_formatted_form_only() {
        let cases = [
            ("shop/web:80", true),
            ("shop/web:8080", false),
            ("shop/web:080", false),
            ("shop/web:+80", false),
            ("shop/webx:80", false),
            ("shop/we:80", false),
            ("shopx/web:80", false),
            ("shop/web80", false),
            ("shop:web:80", false),
            ("", false),
        ];
        for (s, want) in cases {
            assert_eq!(is_service(s, "shop", "web", 80), want, "{s}");
            assert_eq!(s == format!("shop/web:{}", 80), want, "{s}");
        }
        assert!(is_service("a/b:0", "a", "b", 0));
        assert!(is_service("a/b:65535", "a", "b", 65535));
    }

    #[test]
    fn knows_exactly_when_learn_changes_nothing() {
        let labels = |v: &str| Labels::from([("app".to_string(), v.to_string())]);
        let w = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
        let mut c = Catalog::default();
        for i in 0..MAX_LABEL_SETS + 3 {
            for l in [labels(&i.to_string()), labels("0")] {
                let before = c.workloads.clone();
                let knows = c.knows(&w, &l);
                c.learn(&w, &l);
                assert_eq!(knows, c.workloads == before, "set {i}");
            }
        }
        c.described.insert(w.clone());
        assert!(c.knows(&w, &labels("new")));
    }

    #[test]
    fn time_bounds() {
        let newest: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let cases = [
            ("3h", Some("2026-11-25T07:00:00Z")),
            ("30m", Some("2026-11-25T09:30:00Z")),
            ("7d", Some("2026-11-18T10:00:00Z")),
            ("2026-11-20T00:00:00Z", Some("2026-11-20T00:00:00Z")),
            ("yesterday", None),
            ("3x", None),
            ("h", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<TimeBound>().ok().and_then(|b| b.resolve(Some(newest)));
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{input}");
        }
    }
}
