//! Connections: enriched flows folded into (source, destination, port, protocol) with counts,
//! first and last seen and the processes seen, plus the catalog of workloads and their labels
//! that selectors are computed from.
//!
//! Memory grows with the number of distinct connections, never with the number of flows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::Serialize;

use crate::dns::Names;
use crate::enrich::{Endpoint, Enriched, Inference, PendingIdentity, suffixed_base};
use crate::inventory::Inventory;
use crate::model::{FlowRecord, FlowRole, Labels, Port, Protocol, Verdict, WorkloadKind, WorkloadRef};
use crate::policy::selector::is_stable_key;

/// At most this many distinct process names are kept per connection.
pub const MAX_PROCESSES: usize = 8;
/// Ports from here up are where Linux (32768-60999), Windows and the IANA range (49152-65535) pick
/// a client's source port: a rule for one of them is almost always a reply read as a connection.
pub const EPHEMERAL_START: u16 = 32768;
/// Label sets kept per workload learned from flows (pods of one workload normally share them):
/// the smallest, as every capped list here ([`keep_smallest`]), so that what is kept does not
/// depend on the order flows come in, and folds merge exactly.
const MAX_LABEL_SETS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnKey {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub port: Port,
    pub protocol: Protocol,
}

/// What a connection's flows come to: counts, first and last seen, and the capped lists. The one
/// statistics type of every fold: the offline fold ([`Connections::add`]), an ingest batch's
/// connection-hours (`store::ingest::fold_hourly`, with `S = &str` borrowed from the batch's
/// words), and aggregate rows read back from the store, all through [`ConnStats::count`],
/// [`ConnStats::note`] and [`ConnStats::merge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnStats<S = String> {
    pub flows: u64,
    pub dropped: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub processes: BTreeSet<S>,
    /// Services the connection went through (`namespace/name:port`).
    pub services: BTreeSet<S>,
    /// Flows whose direction the source did not say and nothing seen since has settled: the
    /// connection may be a reply read backwards. Flagged on its row.
    pub undecided: u64,
    /// Source ports of the undecided flows (the [`MAX_PROCESSES`] smallest, as the store keeps
    /// them): a server's port here means the flows were its replies.
    pub reply_ports: BTreeSet<u16>,
}

impl<S: Ord + Clone> ConnStats<S> {
    pub fn new(t: Timestamp) -> Self {
        ConnStats {
            flows: 0,
            dropped: 0,
            first_seen: t,
            last_seen: t,
            processes: BTreeSet::new(),
            services: BTreeSet::new(),
            undecided: 0,
            reply_ports: BTreeSet::new(),
        }
    }

    /// Whether nothing says which end opened the connection.
    pub fn direction_undecided(&self) -> bool {
        self.undecided > 0 && self.undecided == self.flows
    }

    /// Counts one flow at `time`: dropped or not, and, when its direction is undecided, its source
    /// port.
    pub fn count(&mut self, time: Timestamp, dropped: bool, undecided: bool, src_port: Option<u16>) {
        self.flows += 1;
        self.dropped += u64::from(dropped);
        if undecided {
            self.undecided += 1;
            if let Some(p) = src_port {
                keep_smallest(&mut self.reply_ports, p);
            }
        }
        self.first_seen = self.first_seen.min(time);
        self.last_seen = self.last_seen.max(time);
    }

    /// Adds `value` to a capped list ([`keep_smallest`]), making the owned value (`own`) only when
    /// it is kept: most flows repeat a process or Service already there.
    pub fn note<'v, Q: Ord + ?Sized>(set: &mut BTreeSet<S>, value: &'v Q, own: impl FnOnce(&'v Q) -> S)
    where
        S: std::borrow::Borrow<Q>,
    {
        if set.contains(value) || (set.len() >= MAX_PROCESSES && set.last().is_some_and(|l| value > l.borrow())) {
            return;
        }
        keep_smallest(set, own(value));
    }

    pub fn merge(&mut self, other: &ConnStats<S>) {
        self.flows += other.flows;
        self.dropped += other.dropped;
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        merge_smallest(&mut self.processes, &other.processes);
        merge_smallest(&mut self.services, &other.services);
        self.undecided += other.undecided;
        merge_smallest(&mut self.reply_ports, &other.reply_ports);
    }
}

/// The one rule for the capped lists of a connection (processes, Services, reply ports): the
/// [`MAX_PROCESSES`] smallest distinct values. Unlike "the first seen" or "the most seen", it is
/// exactly mergeable (the smallest of a union are the smallest of the parts' smallest), so the
/// offline fold, a batch's fold, the SQL upserts (`(array_agg(distinct x collate "C"))[1:$cap]`:
/// by bytes, as Rust orders strings, whatever the database's collation; the cap bound
/// from this constant) and reading hours and days back all keep the same list for the same flows.
pub fn keep_smallest<T: Ord>(set: &mut BTreeSet<T>, value: T) {
    if set.len() >= MAX_PROCESSES && set.last().is_some_and(|last| value >= *last) {
        return;
    }
    if set.insert(value) && set.len() > MAX_PROCESSES {
        set.pop_last();
    }
}

/// The capped list of `values` ([`keep_smallest`]), as a stored row's array is read back.
pub fn smallest<T: Ord>(values: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    let mut set = BTreeSet::new();
    for v in values {
        keep_smallest(&mut set, v);
    }
    set
}

fn merge_smallest<T: Ord + Clone>(set: &mut BTreeSet<T>, other: &BTreeSet<T>) {
    for v in other {
        keep_smallest(set, v.clone());
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
        if !full(sets, labels) && !sets.contains(labels) {
            sets.insert(labels.clone());
            if sets.len() > MAX_LABEL_SETS {
                sets.pop_last();
            }
        }
    }

    /// Whether [`Catalog::learn`] would change nothing for these labels.
    pub fn knows(&self, w: &WorkloadRef, labels: &Labels) -> bool {
        self.described.contains(w)
            || self.workloads.get(w).is_some_and(|sets| full(sets, labels) || sets.contains(labels))
    }

    /// Adds what another fold of the same inventory learned: the same catalog as if one fold had
    /// seen both folds' flows.
    pub fn merge(&mut self, other: &Catalog) {
        for (w, sets) in &other.workloads {
            if sets.is_empty() {
                self.note_workload(w);
            }
            for labels in sets {
                self.learn(w, labels);
            }
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

/// Whether a workload's label sets are full and `labels` would not be among the smallest.
fn full(sets: &BTreeSet<Labels>, labels: &Labels) -> bool {
    sets.len() >= MAX_LABEL_SETS && sets.last().is_some_and(|last| labels >= last)
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

/// Connections by key. FxHash: the fold looks a key up for every flow, and SipHash's protection
/// against chosen collisions buys nothing where an attacker who controls the flows' endpoints can
/// only make the run slower, which [`crate::flows`]' bounds on record size already limit.
pub type ConnMap = rustc_hash::FxHashMap<ConnKey, ConnStats>;

#[derive(Debug, Clone, Default)]
pub struct Connections {
    pub map: ConnMap,
    pub catalog: Catalog,
    /// Flows folded in, and flows outside the window that were left out.
    pub flows: u64,
    pub outside_window: u64,
    pub newest: Option<Timestamp>,
    /// Connections with an end known only by its pod identity, until [`Connections::settle`].
    pending: HashMap<(ConnKey, Vec<PendingIdentity>), ConnStats>,
    /// How the workloads that no inventory described were recognised.
    pub inferred: BTreeMap<WorkloadRef, Inference>,
    /// The DNS names addresses were resolved from: the flows' own (`destination_names`) and the
    /// DNS answers read ([`Connections::add_answer`]).
    pub names: Names,
}

/// How a workload was recognised, when flows said it in more than one way: the first in
/// [`Inference`]'s order (the most direct evidence). An end whose label set the fold knows
/// already adds no inference (`enrich_learning`'s `known`), so where two ends with the same
/// labels name one workload in two ways, which fold met which end first can still decide. That
/// is the summary's "inferred from" line only; connections, catalog and policies do not depend
/// on it.
fn note_inference(inferred: &mut BTreeMap<WorkloadRef, Inference>, w: &WorkloadRef, how: Inference) {
    match inferred.get_mut(w) {
        Some(known) => *known = (*known).min(how),
        None => {
            inferred.insert(w.clone(), how);
        }
    }
}

/// What [`Connections::settle`] decided, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settled {
    /// Undecided flows found to be replies (dropped), and to be requests.
    pub replies: u64,
    pub requests: u64,
    /// Flows still undecided: their rows are flagged and never become a rule for an ephemeral port.
    pub undecided: u64,
    /// Flows whose identity-only end became a workload, and those whose identity matched none.
    pub identities: u64,
    pub unmatched_identities: u64,
    /// Bare pods folded into one DaemonSet: (the DaemonSet, how many pods).
    pub daemonsets: Vec<(WorkloadRef, usize)>,
}

impl Connections {
    pub fn new(catalog: Catalog) -> Self {
        Connections { catalog, ..Default::default() }
    }

    /// Folds one flow in (after enrichment). The caller applies the window, before enriching.
    pub fn add(&mut self, flow: &FlowRecord, enriched: Vec<Enriched>) {
        // Times are kept to the microsecond, as the store keeps them (PostgreSQL's precision), so
        // a connection reads the same from files and from the store.
        let time = jiff::Timestamp::from_microsecond(flow.time.as_microsecond()).unwrap_or(flow.time);
        self.flows += 1;
        self.newest = Some(self.newest.map_or(time, |n| n.max(time)));
        for (ip, names) in [(flow.dst_ip, &flow.dst_names), (flow.src_ip, &flow.src_names)] {
            for n in names {
                self.names.add(ip, n, time);
            }
        }
        for e in enriched {
            for (w, labels) in &e.learned {
                self.catalog.learn(w, labels);
            }
            for (w, how) in &e.inferred {
                note_inference(&mut self.inferred, w, *how);
            }
            let service = e.service;
            let key = ConnKey { src: e.src, dst: e.dst, port: e.port, protocol: e.protocol };
            // The ends of a connection seen before are in the catalog already.
            if !e.identities.is_empty() || !self.map.contains_key(&key) {
                for end in [&key.src, &key.dst] {
                    if let Some(w) = end.workload()
                        && !self.catalog.workloads.contains_key(w)
                    {
                        self.catalog.note_workload(w);
                    }
                }
            }
            let stats = if e.identities.is_empty() {
                self.map.entry(key).or_insert_with(|| ConnStats::new(time))
            } else {
                self.pending.entry((key, e.identities)).or_insert_with(|| ConnStats::new(time))
            };
            stats.count(time, flow.verdict == Verdict::Dropped, flow.role == FlowRole::Undecided, flow.src_port);
            if let Some(p) = &flow.process {
                ConnStats::note(&mut stats.processes, p.as_str(), str::to_owned);
            }
            if let Some((ns, name, port)) = &service
                && !stats.services.iter().any(|s| is_service(s, ns, name, *port))
            {
                keep_smallest(&mut stats.services, format!("{ns}/{name}:{port}"));
            }
        }
    }

    /// Adds another fold's connections (of the same inventory, over other flows): the same
    /// connections as one fold over both folds' flows, in any order, since every part of a fold
    /// adds up exactly (counts, first and last seen, the capped lists, the catalog's label sets,
    /// the names; for `inferred`, see [`note_inference`]). Call it before
    /// [`Connections::settle`], which needs the whole input.
    pub fn merge(&mut self, other: Connections) {
        use std::collections::hash_map::Entry;
        self.flows += other.flows;
        self.outside_window += other.outside_window;
        self.newest = self.newest.max(other.newest);
        self.catalog.merge(&other.catalog);
        for (w, how) in &other.inferred {
            note_inference(&mut self.inferred, w, *how);
        }
        self.names.merge(&other.names);
        for (key, stats) in other.map {
            match self.map.entry(key) {
                Entry::Occupied(mut e) => e.get_mut().merge(&stats),
                Entry::Vacant(e) => {
                    e.insert(stats);
                }
            }
        }
        for (key, stats) in other.pending {
            match self.pending.entry(key) {
                Entry::Occupied(mut e) => e.get_mut().merge(&stats),
                Entry::Vacant(e) => {
                    e.insert(stats);
                }
            }
        }
    }

    /// Records a DNS answer. The caller applies the window: an answer counts up to the window's
    /// end, whenever it came before it, since a lookup precedes the connections that use its
    /// addresses by up to its TTL (hours, for many APIs), and a window that starts after the
    /// lookup would otherwise miss the name.
    pub fn add_answer(&mut self, a: &crate::dns::DnsAnswer) {
        let time = jiff::Timestamp::from_microsecond(a.time.as_microsecond()).unwrap_or(a.time);
        for ip in &a.ips {
            self.names.add(*ip, &a.name, time);
        }
    }

    /// Settles what a single flow could not tell, now that the whole input has been seen:
    ///
    /// 1. Bare pods named `<base>-<suffix>` in one namespace that carry one and the same label set
    ///    are one DaemonSet's pods (Cilium leaves `controller-revision-hash` out of identities, so
    ///    Hubble shows them ownerless): they become `daemonset/<ns>/<base>`.
    /// 2. An end known only by its pod identity becomes the workload whose pods carry exactly
    ///    those (stable) labels, when there is one; else it stays unresolved.
    /// 3. A connection whose flows were all undecided is a reply when its source is known to
    ///    listen on one of the flows' source ports (it was reached there, or the inventory
    ///    declares the container port) and its destination is not known to listen on the port,
    ///    or when a privileged source port (< 1024) answers an ephemeral one; a request when its
    ///    destination is known to listen on the port. Replies are removed; what stays undecided
    ///    keeps its count for the row's flag.
    pub fn settle(&mut self, inv: &Inventory) -> Settled {
        let mut out = Settled::default();
        self.merge_daemonsets(&mut out);
        self.resolve_identities(&mut out);
        self.settle_directions(inv, &mut out);
        out
    }

    fn merge_daemonsets(&mut self, out: &mut Settled) {
        let mut groups: BTreeMap<(String, String), Vec<&WorkloadRef>> = BTreeMap::new();
        for (w, sets) in &self.catalog.workloads {
            if w.kind != WorkloadKind::Pod || self.catalog.described.contains(w) || sets.len() > 1 {
                continue;
            }
            if let Some(base) = suffixed_base(&w.name) {
                groups.entry((w.namespace.clone(), base.to_string())).or_default().push(w);
            }
        }
        let stable = |w: &WorkloadRef| -> Option<Labels> {
            let set = self.catalog.workloads[w].iter().next()?;
            Some(set.iter().filter(|(k, _)| is_stable_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        };
        let mut renames: HashMap<WorkloadRef, WorkloadRef> = HashMap::new();
        for ((ns, base), pods) in groups {
            if pods.len() < 2 {
                continue;
            }
            // The pods whose labels were reported must agree; a pod seen only as a destination
            // without labels joins its namesakes.
            let labelled: BTreeSet<Labels> = pods.iter().filter_map(|p| stable(p)).collect();
            if labelled.len() != 1 || labelled.iter().next().is_some_and(|l| l.is_empty()) {
                continue;
            }
            let ds = WorkloadRef::new(WorkloadKind::DaemonSet, ns, base);
            if self.catalog.described.contains(&ds) {
                continue;
            }
            out.daemonsets.push((ds.clone(), pods.len()));
            for p in pods {
                renames.insert(p.clone(), ds.clone());
            }
        }
        if renames.is_empty() {
            return;
        }
        for (old, new) in &renames {
            let sets = self.catalog.workloads.remove(old).unwrap_or_default();
            self.catalog.workloads.entry(new.clone()).or_default().extend(sets);
            self.inferred.remove(old);
            self.inferred.insert(new.clone(), Inference::SameLabels);
        }
        let rename = |e: &Endpoint| match e {
            Endpoint::Workload { workload } => {
                renames.get(workload).map(|w| Endpoint::Workload { workload: w.clone() })
            }
            _ => None,
        };
        self.map = rekey(std::mem::take(&mut self.map), |k| rekeyed(k, &rename));
        self.pending = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((k, ids), st)| ((rekeyed(&k, &rename).unwrap_or(k), ids), st))
            .fold(HashMap::new(), |mut m, (k, st)| {
                m.entry(k).and_modify(|s: &mut ConnStats| s.merge(&st)).or_insert(st);
                m
            });
    }

    fn resolve_identities(&mut self, out: &mut Settled) {
        if self.pending.is_empty() {
            return;
        }
        let index = IdentityIndex::from_catalog(&self.catalog);
        let mut resolved: Vec<(ConnKey, ConnStats, bool)> = Vec::new();
        for ((key, ids), st) in std::mem::take(&mut self.pending) {
            let (key, rest) = index.apply(key, ids);
            resolved.push((key, st, rest.is_empty()));
        }
        for (key, st, all) in resolved {
            if all {
                out.identities += st.flows;
            } else {
                out.unmatched_identities += st.flows;
            }
            self.map.entry(key).and_modify(|s| s.merge(&st)).or_insert(st);
        }
    }

    /// A connection read back from the store with an end known only by its identity; resolved
    /// by [`Connections::settle`] like one folded from a flow.
    pub fn add_pending(&mut self, key: ConnKey, identities: Vec<PendingIdentity>, stats: ConnStats) {
        self.flows += stats.flows;
        self.newest = Some(self.newest.map_or(stats.last_seen, |n| n.max(stats.last_seen)));
        match self.pending.get_mut(&(key.clone(), identities.clone())) {
            Some(s) => s.merge(&stats),
            None => {
                self.pending.insert((key, identities), stats);
            }
        }
    }

    /// Steps 2 and 3 of [`Connections::settle`], for one workload's connections: they hold where
    /// it is reached (so where it listens) but not its peers' other pods, so no DaemonSet is
    /// folded from them.
    pub fn settle_one_workload(&mut self, inv: &Inventory) -> Settled {
        let mut out = Settled::default();
        self.resolve_identities(&mut out);
        self.settle_directions(inv, &mut out);
        out
    }

    fn settle_directions(&mut self, inv: &Inventory, out: &mut Settled) {
        if !self.map.values().any(|s| s.undecided > 0) {
            return;
        }
        // Where each end is known to listen: reached there by a decided flow, or declared.
        let mut listens: BTreeSet<(&Endpoint, u16, Protocol)> = BTreeSet::new();
        for (k, s) in &self.map {
            if s.flows > s.undecided {
                listens.insert((&k.dst, k.port.get(), k.protocol));
            }
        }
        let declared = |e: &Endpoint, port: u16, proto: Protocol| -> bool {
            let Endpoint::Workload { workload } = e else { return false };
            inv.workloads.get(workload).is_some_and(|w| w.ports.iter().any(|p| p.port == port && p.protocol == proto))
                || inv.pods_of(workload).any(|p| p.ports.iter().any(|c| c.port == port && c.protocol == proto))
        };
        let listening =
            |e: &Endpoint, port: u16, proto: Protocol| listens.contains(&(e, port, proto)) || declared(e, port, proto);
        let mut replies = Vec::new();
        let mut requests = Vec::new();
        for (k, s) in &self.map {
            if s.undecided == 0 {
                continue;
            }
            if s.flows > s.undecided {
                // Decided flows of the same connection say what the others are.
                requests.push(k.clone());
                continue;
            }
            let port = k.port.get();
            let dst_listens = listening(&k.dst, port, k.protocol);
            let src_answers = s.reply_ports.iter().any(|sp| listening(&k.src, *sp, k.protocol));
            let privileged_to_ephemeral =
                port >= EPHEMERAL_START && !s.reply_ports.is_empty() && s.reply_ports.iter().all(|sp| *sp < 1024);
            if (src_answers || privileged_to_ephemeral) && !dst_listens {
                replies.push(k.clone());
            } else if dst_listens {
                requests.push(k.clone());
            }
        }
        drop(listens);
        for k in replies {
            if let Some(s) = self.map.remove(&k) {
                out.replies += s.flows;
            }
        }
        for k in requests {
            if let Some(s) = self.map.get_mut(&k) {
                out.requests += s.undecided;
                s.undecided = 0;
                s.reply_ports.clear();
            }
        }
        out.undecided = self.map.values().map(|s| s.undecided).sum();
    }

    /// The connections in a stable order.
    pub fn sorted(&self) -> Vec<(&ConnKey, &ConnStats)> {
        let mut v: Vec<_> = self.map.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

/// Pod identities -> workloads: (namespace, stable labels) to the workloads whose pods carry
/// exactly those labels. Shared by [`Connections::settle`] and the store's ingest, which resolves
/// what it can as flows arrive (and stores the rest for the review to settle).
#[derive(Debug, Clone, Default)]
pub struct IdentityIndex {
    map: HashMap<(String, Labels), BTreeSet<WorkloadRef>>,
}

fn stable_labels(l: &Labels) -> Labels {
    l.iter().filter(|(k, _)| is_stable_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl IdentityIndex {
    pub fn from_catalog(catalog: &Catalog) -> IdentityIndex {
        let mut index = IdentityIndex::default();
        for (w, sets) in &catalog.workloads {
            for l in sets {
                index.learn(w, l);
            }
        }
        index
    }

    pub fn learn(&mut self, w: &WorkloadRef, labels: &Labels) {
        let key = (w.namespace.clone(), stable_labels(labels));
        match self.map.get_mut(&key) {
            Some(ws) => {
                if !ws.contains(w) {
                    ws.insert(w.clone());
                }
            }
            None => {
                self.map.insert(key, BTreeSet::from([w.clone()]));
            }
        }
    }

    /// The one workload with this identity, if exactly one has it.
    pub fn resolve(&self, namespace: &str, labels: &Labels) -> Option<&WorkloadRef> {
        let ws = self.map.get(&(namespace.to_string(), stable_labels(labels)))?;
        if ws.len() == 1 { ws.iter().next() } else { None }
    }

    /// The key with every identity it can resolve put in place; the identities it cannot.
    pub fn apply(&self, mut key: ConnKey, ids: Vec<PendingIdentity>) -> (ConnKey, Vec<PendingIdentity>) {
        let mut rest = Vec::new();
        for id in ids {
            match self.resolve(&id.namespace, &id.labels) {
                Some(w) => {
                    let end = Endpoint::Workload { workload: w.clone() };
                    if id.src {
                        key.src = end;
                    } else {
                        key.dst = end;
                    }
                }
                None => rest.push(id),
            }
        }
        (key, rest)
    }
}

fn rekeyed(k: &ConnKey, f: &impl Fn(&Endpoint) -> Option<Endpoint>) -> Option<ConnKey> {
    let (src, dst) = (f(&k.src), f(&k.dst));
    if src.is_none() && dst.is_none() {
        return None;
    }
    Some(ConnKey { src: src.unwrap_or_else(|| k.src.clone()), dst: dst.unwrap_or_else(|| k.dst.clone()), ..k.clone() })
}

/// The map with some keys replaced; connections that now share a key are merged.
fn rekey(map: ConnMap, f: impl Fn(&ConnKey) -> Option<ConnKey>) -> ConnMap {
    let mut out = ConnMap::with_capacity_and_hasher(map.len(), Default::default());
    for (k, st) in map {
        let k = f(&k).unwrap_or(k);
        match out.get_mut(&k) {
            Some(s) => s.merge(&st),
            None => {
                out.insert(k, st);
            }
        }
    }
    out
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

    /// The one fold: counting flows one by one into owned or borrowed stats, or counting parts and
    /// merging them, gives the same statistics, whatever the split.
    #[test]
    fn counting_and_merging_agree_for_owned_and_borrowed_text() {
        let names: Vec<String> = (0..23).map(|i| format!("p{:02}", (i * 7) % 23)).collect();
        let t = |i: usize| Timestamp::from_second(1_000 + (i as i64 * 37) % 101).unwrap();
        let flow = |i: usize| (t(i), i.is_multiple_of(3), i.is_multiple_of(4), Some(40_000 + ((i * 13) % 17) as u16));
        let fold_owned = |range: std::ops::Range<usize>| {
            let mut s: ConnStats = ConnStats::new(t(range.start));
            for i in range {
                let (time, dropped, undecided, port) = flow(i);
                s.count(time, dropped, undecided, port);
                ConnStats::note(&mut s.processes, names[i].as_str(), str::to_owned);
            }
            s
        };
        let whole = fold_owned(0..23);
        assert_eq!(whole.processes.len(), MAX_PROCESSES);
        assert_eq!(whole.processes.iter().next().map(String::as_str), Some("p00"));
        for split in [1, 5, 8, 22] {
            let mut merged = fold_owned(0..split);
            merged.merge(&fold_owned(split..23));
            assert_eq!(merged, whole, "split at {split}");
        }
        let mut borrowed: ConnStats<&str> = ConnStats::new(t(0));
        for (i, name) in names.iter().enumerate() {
            let (time, dropped, undecided, port) = flow(i);
            borrowed.count(time, dropped, undecided, port);
            ConnStats::note(&mut borrowed.processes, name.as_str(), |n| n);
        }
        assert_eq!(
            borrowed.processes.iter().copied().collect::<Vec<_>>(),
            whole.processes.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(
            (
                borrowed.flows,
                borrowed.dropped,
                borrowed.undecided,
                borrowed.first_seen,
                borrowed.last_seen,
                &borrowed.reply_ports
            ),
            (whole.flows, whole.dropped, whole.undecided, whole.first_seen, whole.last_seen, &whole.reply_ports)
        );
    }

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
    fn capped_lists_keep_the_smallest_whatever_the_order_and_the_merges() {
        let names: Vec<String> = (0..20).map(|i| format!("p{:02}", (i * 7) % 20)).collect();
        let mut all = BTreeSet::new();
        for n in &names {
            keep_smallest(&mut all, n.clone());
        }
        let want: Vec<String> = (0..MAX_PROCESSES).map(|i| format!("p{i:02}")).collect();
        assert_eq!(all.iter().cloned().collect::<Vec<_>>(), want);
        // Folded in parts and merged, in either order: the same list.
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let part = |ns: &[String]| {
            let mut s = ConnStats::new(t);
            for n in ns {
                keep_smallest(&mut s.processes, n.clone());
            }
            s
        };
        let (a, b) = (part(&names[..9]), part(&names[9..]));
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(&b);
        ba.merge(&a);
        assert_eq!(ab.processes, all);
        assert_eq!(ba.processes, all);
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
    fn label_sets_kept_do_not_depend_on_order_or_merges() {
        let labels = |v: usize| Labels::from([("app".to_string(), format!("web-{v:02}"))]);
        let w = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
        let sets: Vec<Labels> = (0..MAX_LABEL_SETS + 9).map(labels).collect();
        let want: BTreeSet<Labels> = sets.iter().take(MAX_LABEL_SETS).cloned().collect();
        let learn = |order: &mut dyn Iterator<Item = &Labels>| {
            let mut c = Catalog::default();
            for l in order {
                c.learn(&w, l);
            }
            c
        };
        let forward = learn(&mut sets.iter());
        let backward = learn(&mut sets.iter().rev());
        assert_eq!(forward.workloads[&w], want);
        assert_eq!(backward.workloads[&w], want);
        // Two folds over halves (interleaved), merged either way round, keep what one fold keeps.
        let mut odd = learn(&mut sets.iter().skip(1).step_by(2));
        let even = learn(&mut sets.iter().step_by(2));
        let mut both = even.clone();
        both.merge(&odd);
        odd.merge(&even);
        assert_eq!(both.workloads, forward.workloads);
        assert_eq!(odd.workloads, forward.workloads);
        // A workload only noted (no labels) survives a merge.
        let mut noted = Catalog::default();
        let other = WorkloadRef::new(WorkloadKind::Pod, "shop", "debug");
        noted.note_workload(&other);
        both.merge(&noted);
        assert!(both.workloads[&other].is_empty());
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
