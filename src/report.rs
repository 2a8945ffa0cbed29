//! The report of a review: the table rows, the map's graph and the summaries the CLI prints, built
//! from a review. Pure: values in, values out, so the CLI's tables and JSON, the pages and the JSON
//! API show the same rows, and tests need no server.
//!
//! Text from the cluster and from flows is untrusted. Askama escapes HTML and `map.js` sets
//! `textContent`, but neither stops a character that reorders or hides what is shown around it
//! (U+202E turns `evil\u{202e}gpj.exe` into `evilexe.jpg`): [`visible`] spells those out, in the
//! templates (the `visible` filter), in the map's JSON and in the CLI's tables.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::dns::Names;
use crate::enrich::Endpoint;
use crate::flows::{MAX_PROCESS_LEN, cap_text};
use crate::inventory::Inventory;
use crate::model::{Cidr, WorkloadRef};
use crate::policy::eval::SideDecision;
use crate::policy::generate::{Decisions, Direction, ExcludeReason, Generated, Generation, ReviewRow, Status, to_yaml};
use crate::policy::simulate::{Effect, Simulated, Simulation, side_words};
use crate::policy::verify::{self, Verification};
use crate::policy::{Dialect, cilium};
use crate::review::Reviewed;
use crate::topology::{ConnStats, Connections};

/// One line of the Ingress or Egress table (and of `flowgate connections`).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `kind/namespace/name` of the workload that gets the policy.
    pub workload: String,
    pub direction: Direction,
    /// `kind/namespace/name`, a node, or an address.
    pub peer: String,
    /// `in-cluster`, `node`, `external` or `unresolved`.
    pub peer_class: &'static str,
    /// The key the decision form sends back (`Endpoint::key`).
    pub peer_key: String,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub port: u16,
    pub protocol: &'static str,
    pub flows: u64,
    pub dropped: u64,
    pub first_seen: jiff::Timestamp,
    pub last_seen: jiff::Timestamp,
    /// The processes that opened it (the smallest few, `topology::MAX_PROCESSES`).
    pub processes: Vec<String>,
    /// The Services it went through, `namespace/name:port`.
    pub services: Vec<String>,
    /// `allowed`, `excluded` or `no_rule_needed` ([`Status::kind`]).
    pub status: &'static str,
    /// Why it is excluded ([`Status::reason`]).
    pub reason: Option<&'static str>,
    /// The decision in words ([`Status`]'s Display).
    pub decision: String,
    /// The decision as a CiliumNetworkPolicy has it, where that differs ([`ReviewRow::cilium`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cilium_decision: Option<String>,
    /// Ticked: the policy allows it.
    pub allowed: bool,
    /// Whether a person can change it (node traffic and unselectable peers cannot).
    pub editable: bool,
    /// Nothing said which end opened the connection: it may be a reply read backwards.
    pub undecided: bool,
    /// Not seen in the later half of the connections' span ([`crate::policy::safety::stale`]): a
    /// dependency that is gone?
    pub stale: bool,
    /// What applying the proposed policy does to it, when the review was simulated
    /// ([`with_simulation`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    /// The deciding policies of that outcome, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_reason: Option<String>,
    /// The DNS names an external or unresolved peer's address was resolved from (DNS answers,
    /// the flows' destination names), smallest first, at most [`crate::dns::MAX_NAMES_PER_ADDRESS`].
    pub names: Vec<String>,
    /// Flows per bin across the window, where the page read them ([`Strip`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<Strip>,
}

/// What names one table row across the page: `direction|peer key|port/protocol`. The table's
/// `<tr data-row>` and the map's edges (`rows`) carry it, so the map's drawer can act on the row.
pub fn row_key(direction: Direction, peer_key: &str, port: u16, protocol: &str) -> String {
    // Shown characters only ([`visible`]), as everything else in the page's attributes and the
    // graph; both ends spell it the same way, so they still match.
    format!("{}|{}|{port}/{protocol}", direction.as_str(), visible(peer_key))
}

impl Row {
    /// This row's [`row_key`].
    pub fn key(&self) -> String {
        row_key(self.direction, &self.peer_key, self.port, self.protocol)
    }

    /// The effect as the table says it.
    pub fn effect_text(&self) -> &'static str {
        match self.effect {
            None => "",
            Some(Effect::Allowed) => "allowed",
            Some(Effect::WouldBreak) => "would break",
            Some(Effect::Blocked) => "blocked already",
            Some(Effect::NewlyAllowed) => "newly allowed",
            Some(Effect::NotSubject) => "not subject (node)",
        }
    }
}

/// Most bins an activity strip has: a week of hours is drawn 4 hours a bin, not 168 bars.
pub const MAX_STRIP_BINS: usize = 48;

const HOUR_US: i64 = 3_600_000_000;

/// How a window `[start, end]` (microseconds since the epoch) is cut into a strip's bins: the
/// start moved back to its hour (the aggregates' buckets), whole hours a bin, at most
/// [`MAX_STRIP_BINS`] bins, the last one holding `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripBins {
    /// The first bin's start (an hour's).
    pub start_us: i64,
    pub bin_hours: i64,
    pub bins: usize,
}

impl StripBins {
    /// `None` for a window that ends before it starts.
    pub fn new(start_us: i64, end_us: i64) -> Option<StripBins> {
        let start_us = start_us.div_euclid(HOUR_US) * HOUR_US;
        if end_us < start_us {
            return None;
        }
        // The hours the window touches, its last one included.
        let hours = (end_us - start_us) / HOUR_US + 1;
        let bin_hours = (hours + MAX_STRIP_BINS as i64 - 1) / MAX_STRIP_BINS as i64;
        let bins = ((hours + bin_hours - 1) / bin_hours) as usize;
        Some(StripBins { start_us, bin_hours, bins })
    }

    /// The bin an hourly bucket starting at `bucket_us` falls in, if inside the window.
    pub fn bin_of(&self, bucket_us: i64) -> Option<usize> {
        if bucket_us < self.start_us {
            return None;
        }
        let i = ((bucket_us - self.start_us) / HOUR_US / self.bin_hours) as usize;
        (i < self.bins).then_some(i)
    }
}

/// A connection's flows per bin across the window, read from the hourly aggregates: the row's
/// activity strip, so that a dependency that went quiet is seen rather than worked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Strip {
    pub bin_hours: i64,
    pub counts: Vec<u64>,
}

impl Strip {
    pub fn new(bins: &StripBins) -> Strip {
        Strip { bin_hours: bins.bin_hours, counts: vec![0; bins.bins] }
    }

    /// The bars to draw: (bin, height 1..=10) for every bin with flows, the height by the square
    /// root of its share of the busiest bin (so one flow beside thousands still shows).
    pub fn bars(&self) -> Vec<(usize, u32)> {
        let max = self.counts.iter().copied().max().unwrap_or(0);
        if max == 0 {
            return Vec::new();
        }
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, ((((*c as f64) / (max as f64)).sqrt() * 10.0).round() as u32).clamp(1, 10)))
            .collect()
    }

    /// The strip in words, for its title and screen readers.
    pub fn describe(&self) -> String {
        let unit = if self.bin_hours == 1 { "hour".to_string() } else { format!("{} hours", self.bin_hours) };
        let quiet = self.counts.iter().rev().take_while(|c| **c == 0).count();
        let busy = self.counts.iter().filter(|c| **c > 0).count();
        let tail = match quiet {
            _ if busy == 0 => "no flows in the hourly detail".to_string(),
            0 => "active in the last bin".to_string(),
            q => format!("none in the last {} h", q as i64 * self.bin_hours),
        };
        format!("Flows per {unit} across the window, {} bins, {busy} with flows: {tail}", self.counts.len())
    }

    /// The strip's width in its own units (one per bin).
    pub fn width(&self) -> usize {
        self.counts.len()
    }
}

/// The rows with what applying the proposal does to each (rows of connections the simulation did
/// not cover keep `None`).
pub fn with_simulation(mut rows: Vec<Row>, review: &[ReviewRow], sim: &Simulation<'_>) -> Vec<Row> {
    let by_row: std::collections::HashMap<(String, Direction, String, u16, &'static str), &Simulated<'_>> = review
        .iter()
        .filter_map(|r| {
            let s = sim.effect(&r.key)?;
            Some(((r.workload.to_string(), r.direction, r.peer().key(), r.key.port.get(), r.key.protocol.as_str()), s))
        })
        .collect();
    for row in &mut rows {
        if let Some(s) =
            by_row.get(&(row.workload.clone(), row.direction, row.peer_key.clone(), row.port, row.protocol))
        {
            row.effect = Some(s.effect);
            row.effect_reason = Some(s.reason());
        }
    }
    rows
}

/// Whether a character would change or hide what is shown around it: the bidirectional controls
/// (U+202A-U+202E, U+2066-U+2069, U+061C), zero-width characters and direction marks
/// (U+200B-U+200F, U+2060-U+2064), the byte order mark (U+FEFF), line and paragraph separators,
/// and control characters other than tab and line breaks (a YAML document keeps its lines).
fn hidden(c: char) -> bool {
    matches!(c,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}'
        | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{2028}' | '\u{2029}')
        || (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// `s` with every [`hidden`] character as a visible escape (`\u{202e}`); borrowed when there is
/// none, which is nearly always.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn shown(s: &str) -> String {
    visible(s).into_owned()
}

/// A time as pages show it: `2026-11-25 10:00:49 UTC` (to the second).
pub fn when(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The rows of a review, of one workload or (`None`) of all, sorted by workload, direction (ingress
/// first), peer, port and protocol. A row whose connection is not in `conns` is left out.
pub fn rows(review: &[ReviewRow], conns: &Connections, workload: Option<&WorkloadRef>) -> Vec<Row> {
    let span = crate::policy::safety::span(conns, None);
    let mut out: Vec<Row> = review
        .iter()
        .filter(|r| workload.is_none_or(|w| &r.workload == w))
        .filter_map(|r| Some(row(r, conns.map.get(&r.key)?, &conns.names, span)))
        .collect();
    out.sort_by(|a, b| {
        (&a.workload, a.direction, &a.peer, a.port, a.protocol).cmp(&(
            &b.workload,
            b.direction,
            &b.peer,
            b.port,
            b.protocol,
        ))
    });
    out
}

fn row(r: &ReviewRow, stats: &ConnStats, names: &Names, span: Option<(jiff::Timestamp, jiff::Timestamp)>) -> Row {
    let peer = r.peer();
    let names = match peer {
        Endpoint::External { ip } | Endpoint::Unresolved { ip } => names.of(ip).map(|n| n.to_string()).collect(),
        _ => Vec::new(),
    };
    let editable =
        !matches!(r.status, Status::NoRuleNeeded | Status::LeftOut | Status::Excluded(ExcludeReason::NoSelector(_)));
    Row {
        workload: r.workload.to_string(),
        direction: r.direction,
        peer: peer.label(),
        peer_class: peer.class(),
        peer_key: peer.key(),
        src: r.key.src.clone(),
        dst: r.key.dst.clone(),
        port: r.key.port.get(),
        protocol: r.key.protocol.as_str(),
        flows: stats.flows,
        dropped: stats.dropped,
        first_seen: stats.first_seen,
        last_seen: stats.last_seen,
        // Parsers cap process names; rows stored before they did are capped here.
        processes: stats.processes.iter().map(|p| cap_text(p.clone(), MAX_PROCESS_LEN).0).collect(),
        services: stats.services.iter().cloned().collect(),
        status: r.status.kind(),
        reason: r.status.reason(),
        decision: r.status.to_string(),
        cilium_decision: r.cilium.as_ref().map(ToString::to_string),
        allowed: matches!(r.status, Status::Allowed | Status::LeftOut),
        editable,
        undecided: r.undecided,
        stale: span.is_some_and(|s| crate::policy::safety::stale(stats.last_seen, s)),
        effect: None,
        effect_reason: None,
        names,
        activity: None,
    }
}

/// The rows as `flowgate connections` prints them: a header, then one tab-separated line per row,
/// untrusted text with hidden characters spelled out ([`visible`]).
pub fn rows_table(rows: &[Row]) -> String {
    let mut out =
        String::from("WORKLOAD\tDIRECTION\tPEER\tCLASS\tPORT\tFLOWS\tFIRST SEEN\tLAST SEEN\tPROCESS\tDECISION\n");
    for r in rows {
        let processes = if r.processes.is_empty() { "-".to_string() } else { r.processes.join(",") };
        let undecided = if r.undecided { " [direction undecided]" } else { "" };
        let peer = if r.names.is_empty() { r.peer.clone() } else { format!("{} ({})", r.peer, r.names.join(", ")) };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}{undecided}",
            visible(&r.workload),
            r.direction.as_str(),
            visible(&peer),
            r.peer_class,
            r.port,
            r.protocol,
            r.flows,
            r.first_seen,
            r.last_seen,
            visible(&processes),
            visible(&r.decision),
        );
    }
    out
}

/// A review's policies in one dialect: the YAML, that spelling's own warnings and its
/// verification against the review (the evaluator reads the dialect it was written in).
pub struct Spelled {
    pub dialect: Dialect,
    pub yaml: String,
    /// How many policies the YAML holds.
    pub policies: usize,
    pub warnings: Vec<String>,
    pub verification: Verification,
}

impl Spelled {
    /// Every policy of the review.
    pub fn new(r: &Reviewed, inv: &Inventory, dialect: Dialect) -> Result<Spelled, String> {
        Spelled::of(r, inv, dialect, None)
    }

    /// The policies of the review, or of one workload only (its page, its download), verified
    /// together: the review's own verification for NetworkPolicy, the rendered policies' for
    /// Cilium.
    pub fn of(
        r: &Reviewed,
        inv: &Inventory,
        dialect: Dialect,
        workload: Option<&WorkloadRef>,
    ) -> Result<Spelled, String> {
        let keep = |g: &Generated| workload.is_none_or(|w| &g.workload == w);
        match dialect {
            Dialect::Kubernetes => {
                let mine: Vec<Generated> = r.generation.policies.iter().filter(|g| keep(g)).cloned().collect();
                let warnings = r
                    .generation
                    .kube_warnings
                    .iter()
                    .filter(|(w, _)| workload.is_none_or(|t| t == w))
                    .map(|(_, warning)| warning.clone())
                    .collect();
                Ok(Spelled {
                    dialect,
                    yaml: to_yaml(&mine)?,
                    policies: mine.len(),
                    warnings,
                    verification: r.verification.clone(),
                })
            }
            Dialect::Cilium => {
                // All of them are verified (a workload's connections need its peers' policies
                // too); the YAML holds the ones asked for.
                let all = cilium::render(&r.generation);
                let verification = verify::verify_cilium(
                    &r.generation,
                    &all.policies,
                    inv,
                    &r.connections.catalog,
                    &r.connections.names,
                );
                let mine = cilium::render_some(&r.generation, keep);
                Ok(Spelled {
                    dialect,
                    yaml: cilium::to_yaml(&mine.policies)?,
                    policies: mine.policies.len(),
                    warnings: mine.warnings,
                    verification,
                })
            }
        }
    }
}

/// What a generation and its verification come to, as counts and the mismatched rows.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub policies: usize,
    pub connections: usize,
    pub allowed: usize,
    pub excluded: usize,
    /// Kept connections the policies allow.
    pub verified_allowed: usize,
    /// Excluded connections the policies block.
    pub verified_blocked: usize,
    /// Node connections, which need no rule (not evaluated).
    pub not_evaluated: usize,
    /// Rows whose verdict differs from their status: `workload direction peer:port/protocol
    /// expected STATUS but the policies allow|block it`.
    pub mismatches: Vec<String>,
}

impl Summary {
    pub fn new(generation: &Generation, verification: &Verification) -> Summary {
        let count = |f: fn(&Status) -> bool| generation.review.iter().filter(|r| f(&r.status)).count();
        Summary {
            policies: generation.policies.len(),
            connections: generation.review.len(),
            allowed: count(|s| *s == Status::Allowed),
            excluded: count(|s| matches!(s, Status::Excluded(_))),
            verified_allowed: verification.allowed,
            verified_blocked: verification.blocked,
            not_evaluated: verification.not_evaluated,
            mismatches: verification
                .mismatches
                .iter()
                .map(|(row, d)| {
                    let to = match row.direction {
                        Direction::Ingress => "from",
                        Direction::Egress => "to",
                    };
                    format!(
                        "{} {} {to} {}:{}/{} expected {} but the policies {}",
                        visible(&row.workload.to_string()),
                        row.direction.as_str(),
                        visible(&row.peer().label()),
                        row.key.port,
                        row.key.protocol,
                        visible(&row.status.to_string()),
                        if d.allowed { "allow it" } else { "block it" }
                    )
                })
                .collect(),
        }
    }

    /// `generated 5 policies from 12 connections (9 allowed, 2 excluded)`.
    pub fn generated(&self) -> String {
        format!(
            "generated {} policies from {} connections ({} allowed, {} excluded)",
            self.policies, self.connections, self.allowed, self.excluded
        )
    }

    /// `9 allowed connections allowed, 2 excluded connections blocked, 0 mismatches`, and the node
    /// connections that need no rule when there are any.
    pub fn verified(&self) -> String {
        let nodes = if self.not_evaluated > 0 {
            format!(" ({} node connections need no rule)", self.not_evaluated)
        } else {
            String::new()
        };
        format!(
            "{} allowed connections allowed, {} excluded connections blocked, {} mismatches{nodes}",
            self.verified_allowed,
            self.verified_blocked,
            self.mismatches.len()
        )
    }
}

/// One evaluated connection of `flowgate check`: allowed or blocked once the policies are applied,
/// by what, and what applying them changes.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub port: u16,
    pub protocol: &'static str,
    pub flows: u64,
    pub last_seen: jiff::Timestamp,
    pub processes: Vec<String>,
    /// `allowed`, `BLOCKED`, or `not subject (node)`.
    pub verdict: &'static str,
    pub egress: String,
    pub ingress: String,
    /// What applying the policies does to it ([`Effect`]).
    pub effect: Effect,
    /// The deciding policies in words ([`crate::policy::simulate::explain`]).
    pub reason: String,
    #[serde(skip)]
    pub blocked: bool,
    /// From a node and not allowed: node traffic is not subject to NetworkPolicy.
    #[serde(skip)]
    pub not_subject: bool,
}

impl CheckRow {
    pub fn new(s: &Simulated<'_>) -> CheckRow {
        let (allowed, from_node) = (s.after.allowed, s.effect == Effect::NotSubject);
        CheckRow {
            src: s.key.src.clone(),
            dst: s.key.dst.clone(),
            port: s.key.port.get(),
            protocol: s.key.protocol.as_str(),
            flows: s.stats.flows,
            last_seen: s.stats.last_seen,
            processes: s.stats.processes.iter().map(|p| cap_text(p.clone(), MAX_PROCESS_LEN).0).collect(),
            verdict: match (allowed, from_node) {
                (true, _) => "allowed",
                (false, true) => "not subject (node)",
                (false, false) => "BLOCKED",
            },
            egress: side(&s.after.egress),
            ingress: side(&s.after.ingress),
            effect: s.effect,
            reason: s.reason(),
            blocked: !allowed && !from_node,
            not_subject: from_node,
        }
    }

    /// `src -> dst port/protocol (N flows, last seen T, process p): reason`, for the CLI's list of
    /// what applying the policies would break.
    pub fn summary(&self) -> String {
        let processes =
            if self.processes.is_empty() { String::new() } else { format!(", process {}", self.processes.join(",")) };
        visible(&format!(
            "{} -> {} {}/{} ({} flows, last seen {}{processes}): {}",
            self.src, self.dst, self.port, self.protocol, self.flows, self.last_seen, self.reason
        ))
        .into_owned()
    }
}

fn side(s: &SideDecision) -> String {
    match s {
        SideDecision::NotApplicable => "-".into(),
        SideDecision::NotIsolated => "not isolated".into(),
        SideDecision::AllowedBy(p) => format!("allowed by {}", crate::policy::eval::join_allowing(p)),
        SideDecision::Blocked { isolated_by } => format!("blocked (isolated by {})", isolated_by.join(",")),
        SideDecision::Admin(a) => a.to_string(),
    }
}

/// The check rows as `flowgate check` prints them.
pub fn check_table(rows: &[CheckRow]) -> String {
    let mut out = String::from("SOURCE\tDESTINATION\tPORT\tFLOWS\tVERDICT\tEGRESS\tINGRESS\tEFFECT\n");
    for c in rows {
        let _ = writeln!(
            out,
            "{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}",
            visible(&c.src.to_string()),
            visible(&c.dst.to_string()),
            c.port,
            c.protocol,
            c.flows,
            c.verdict,
            visible(&c.egress),
            visible(&c.ingress),
            c.effect.as_str()
        );
    }
    out
}

/// What the trusted-CIDR field says about a range: outside the cluster or not, and which
/// observed addresses of this workload it covers.
#[derive(Debug, Clone, Serialize)]
pub struct TrustInfo {
    pub cidr: String,
    pub outside_cluster: bool,
    pub covers: Vec<String>,
}

pub fn trust_info(d: &Decisions, rows: &[Row], inv: &Inventory) -> Vec<TrustInfo> {
    d.trust
        .iter()
        .map(|c: &Cidr| {
            let net = c.net();
            let overlaps = inv.cluster_cidrs.iter().any(|r| r.contains(&net.network()) || net.contains(&r.network()));
            let mut covers: Vec<String> = rows
                .iter()
                .filter(|r| matches!(r.peer_class, "external" | "unresolved"))
                .filter(|r| r.peer.parse().is_ok_and(|ip| c.contains(&ip)))
                .map(|r| r.peer.clone())
                .collect();
            covers.sort();
            covers.dedup();
            TrustInfo { cidr: c.to_string(), outside_cluster: !overlaps, covers }
        })
        .collect()
}

/// What the trusted-names list says about a name: the external addresses it was seen resolving
/// to, and which of them this workload's rows reach.
#[derive(Debug, Clone, Serialize)]
pub struct NameInfo {
    pub name: String,
    pub addresses: Vec<String>,
    pub covers: Vec<String>,
}

pub fn name_info(d: &Decisions, rows: &[Row], names: &Names) -> Vec<NameInfo> {
    d.trust_names
        .iter()
        .map(|n| {
            let addresses: Vec<String> = names.addresses_of(n).iter().map(|ip| ip.to_string()).collect();
            let mut covers: Vec<String> = rows
                .iter()
                .filter(|r| r.peer_class == "external" && r.names.iter().any(|x| x == n.as_str()))
                .map(|r| r.peer.clone())
                .collect();
            covers.sort();
            covers.dedup();
            NameInfo { name: n.to_string(), addresses, covers }
        })
        .collect()
}

fn node_id(e: &Endpoint) -> String {
    match e {
        Endpoint::Workload { workload } => format!("w:{workload}"),
        Endpoint::Node { name, .. } => format!("node:{}", visible(name)),
        Endpoint::External { ip } | Endpoint::Unresolved { ip } => format!("ip:{ip}"),
    }
}

fn status_class(s: &Status, peer: &Endpoint) -> &'static str {
    match s {
        Status::Allowed => "allowed",
        Status::NoRuleNeeded => "no-rule",
        Status::LeftOut => "allowed",
        Status::Excluded(_) if matches!(peer, Endpoint::Unresolved { .. }) => "unresolved",
        Status::Excluded(_) => "excluded",
    }
}

/// Notes on an edge that it draws the table row `row` ([`row_key`]); an edge through a Service may
/// draw several.
fn add_row(edge: &mut Value, row: &str) {
    if let Some(rows) = edge["rows"].as_array_mut()
        && !rows.iter().any(|r| r.as_str() == Some(row))
    {
        rows.push(Value::String(row.to_string()));
    }
}

/// The map: the review's workloads and peers (namespaces as groups, Services between client and
/// backend when the connection went through one), edges labelled port/protocol with a status.
///
/// With a simulation, a connection applying the proposal would break has the status `would-break`
/// (whatever its own status), and each edge's details say what applying it does.
pub fn graph(
    review: &[ReviewRow],
    conns: &Connections,
    focus: Option<&WorkloadRef>,
    sim: Option<&Simulation<'_>>,
) -> Value {
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut edges: BTreeMap<String, Value> = BTreeMap::new();
    let span = crate::policy::safety::span(conns, None);
    let add_node = |nodes: &mut BTreeMap<String, Value>, e: &Endpoint| -> String {
        let id = node_id(e);
        if !nodes.contains_key(&id) {
            let (kind, label, parent, detail) = match e {
                Endpoint::Workload { workload } => {
                    let ns = format!("ns:{}", workload.namespace);
                    nodes.entry(ns.clone()).or_insert_with(|| {
                        json!({"id": ns, "kind": "namespace", "label": shown(&workload.namespace), "detail": {}, "parent": null})
                    });
                    (
                        "workload",
                        shown(&workload.name),
                        Value::String(ns),
                        json!({"Kind": workload.kind.as_str(), "Namespace": shown(&workload.namespace), "Name": shown(&workload.name)}),
                    )
                }
                Endpoint::Node { name, ip } => {
                    let name = shown(name);
                    ("node", format!("node {name}"), Value::Null, json!({"Node": name, "IP": ip.to_string()}))
                }
                Endpoint::External { ip } => {
                    ("external", ip.to_string(), Value::Null, json!({"IP": ip.to_string(), "Class": "external"}))
                }
                Endpoint::Unresolved { ip } => (
                    "unresolved",
                    ip.to_string(),
                    Value::Null,
                    json!({"IP": ip.to_string(), "Class": "unresolved (matches no object)"}),
                ),
            };
            nodes.insert(
                id.clone(),
                json!({"id": id, "kind": kind, "label": label, "detail": detail, "parent": parent}),
            );
        }
        id
    };
    for r in review {
        if focus.is_some_and(|f| &r.workload != f) {
            continue;
        }
        // In a namespace view both ends may be targets: draw each connection once.
        if focus.is_none()
            && r.direction == Direction::Ingress
            && r.key.src.workload().is_some_and(|w| w.namespace == r.workload.namespace)
        {
            continue;
        }
        let Some(stats) = conns.map.get(&r.key) else { continue };
        let peer = r.peer();
        let src = add_node(&mut nodes, &r.key.src);
        let dst = add_node(&mut nodes, &r.key.dst);
        let simulated = sim.and_then(|s| s.effect(&r.key));
        let status = match simulated {
            Some(s) if s.effect == Effect::WouldBreak => "would-break",
            _ => status_class(&r.status, peer),
        };
        let label = format!("{}/{}", r.key.port, r.key.protocol);
        let row = row_key(r.direction, &peer.key(), r.key.port.get(), r.key.protocol.as_str());
        let processes: Vec<String> =
            stats.processes.iter().map(|p| shown(&cap_text(p.clone(), MAX_PROCESS_LEN).0)).collect();
        let mut detail = json!({
            "Flows": stats.flows.to_string(),
            "Decision": shown(&r.status.to_string()),
            "First seen": when(stats.first_seen),
            "Last seen": when(stats.last_seen),
            "Processes": processes.join(", "),
        });
        if let Some(s) = simulated {
            detail["If applied"] =
                Value::String(shown(&format!("{}: {}", s.effect.as_str().replace('_', " "), s.reason())));
            // Explained side by side, as `flowgate explain` does: who selects each end, whether
            // that direction is isolated, which rule allows it or why nothing does.
            for (title, today, after, dir) in [
                ("Source's egress", &s.before.egress, &s.after.egress, "egress"),
                ("Destination's ingress", &s.before.ingress, &s.after.ingress, "ingress"),
            ] {
                let (today, after) = (side_words(today, dir), side_words(after, dir));
                detail[title] = Value::String(shown(&if today == after {
                    format!("today and if applied: {today}")
                } else {
                    format!("today: {today}; if applied: {after}")
                }));
            }
        }
        if span.is_some_and(|sp| crate::policy::safety::stale(stats.last_seen, sp)) {
            detail["Stale"] = Value::String("not seen in the later half of the window".into());
        }
        if stats.dropped > 0 {
            detail["Dropped"] = Value::String(format!("{} of {} flows", stats.dropped, stats.flows));
        }
        // A connection through a Service is drawn client -> Service -> backend.
        let via = stats.services.iter().next().and_then(|s| {
            let (svc, port) = s.rsplit_once(':')?;
            let (ns, name) = svc.split_once('/')?;
            Some((shown(ns), shown(name), shown(port)))
        });
        match via {
            Some((ns, name, svc_port)) => {
                let sid = format!("svc:{ns}/{name}");
                let parent = format!("ns:{ns}");
                nodes.entry(parent.clone()).or_insert_with(
                    || json!({"id": parent, "kind": "namespace", "label": ns, "detail": {}, "parent": null}),
                );
                nodes.entry(sid.clone()).or_insert_with(|| {
                    json!({"id": sid, "kind": "service", "label": format!("svc {name}"), "detail": {"Service": format!("{ns}/{name}")}, "parent": parent})
                });
                let e1 = format!("{src}>{sid}:{svc_port}/{}", r.key.protocol);
                add_row(edges.entry(e1.clone()).or_insert_with(|| {
                    json!({"id": e1, "source": src, "target": sid, "label": format!("{svc_port}/{}", r.key.protocol), "status": status, "detail": detail, "rows": []})
                }), &row);
                let e2 = format!("{sid}>{dst}:{label}");
                add_row(edges.entry(e2.clone()).or_insert_with(|| {
                    json!({"id": e2, "source": sid, "target": dst, "label": label, "status": status, "detail": detail, "rows": []})
                }), &row);
            }
            None => {
                let id = format!("{src}>{dst}:{label}");
                add_row(edges.entry(id.clone()).or_insert_with(|| {
                    json!({"id": id, "source": src, "target": dst, "label": label, "status": status, "detail": detail, "rows": []})
                }), &row);
            }
        }
    }
    if let Some(f) = focus {
        add_node(&mut nodes, &Endpoint::Workload { workload: f.clone() });
    }
    json!({
        "focus": focus.map(|f| f.to_string()),
        "nodes": nodes.into_values().collect::<Vec<_>>(),
        "edges": edges.into_values().collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_bins_cut_a_window_into_whole_hours() {
        let h = HOUR_US;
        // 24 h from 10:20: the start moves back to 10:00, 25 hours are touched, one a bin is too
        // many, so two hours a bin.
        let b = StripBins::new(10 * h + 20 * 60_000_000, 34 * h + 20 * 60_000_000).unwrap();
        assert_eq!(b, StripBins { start_us: 10 * h, bin_hours: 1, bins: 25 });
        assert_eq!(b.bin_of(10 * h), Some(0));
        assert_eq!(b.bin_of(34 * h), Some(24));
        assert_eq!(b.bin_of(35 * h), None);
        assert_eq!(b.bin_of(9 * h), None);
        // A week: 169 hours, 4 a bin, 43 bins.
        let w = StripBins::new(0, 168 * h).unwrap();
        assert_eq!((w.bin_hours, w.bins), (4, 43));
        assert_eq!(w.bin_of(167 * h), Some(41));
        assert_eq!(w.bin_of(168 * h), Some(42));
        assert!(StripBins::new(5 * h, 4 * h).is_none());
    }

    #[test]
    fn strip_bars_and_words() {
        let s = Strip { bin_hours: 1, counts: vec![0, 1000, 1, 0, 0] };
        assert_eq!(s.bars(), vec![(1, 10), (2, 1)]);
        assert_eq!(s.describe(), "Flows per hour across the window, 5 bins, 2 with flows: none in the last 2 h");
        let quiet = Strip { bin_hours: 4, counts: vec![0; 3] };
        assert!(quiet.bars().is_empty());
        assert!(quiet.describe().ends_with("no flows in the hourly detail"), "{}", quiet.describe());
        let busy = Strip { bin_hours: 4, counts: vec![3, 0, 9] };
        assert_eq!(busy.bars(), vec![(0, 6), (2, 10)]);
        assert!(
            busy.describe().starts_with("Flows per 4 hours") && busy.describe().ends_with("active in the last bin")
        );
    }

    #[test]
    fn visible_spells_out_what_would_reorder_or_hide_text() {
        let cases = [
            ("example-java-app", "example-java-app"),
            ("evil\u{202e}gpj.exe", "evil\\u{202e}gpj.exe"),
            ("a\u{200b}b\u{feff}", "a\\u{200b}b\\u{feff}"),
            ("\u{202a}\u{202b}\u{202c}\u{202d}", "\\u{202a}\\u{202b}\\u{202c}\\u{202d}"),
            ("\u{2066}x\u{2069}", "\\u{2066}x\\u{2069}"),
            ("\u{200e}\u{200f}\u{061c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("bell\u{7}esc\u{1b}", "bell\\u{7}esc\\u{1b}"),
            // Lines and tabs stay (the YAML keeps its shape); HTML is askama's to escape.
            ("a:\n\tb <img>", "a:\n\tb <img>"),
            ("日本語 é", "日本語 é"),
        ];
        for (input, want) in cases {
            assert_eq!(visible(input), want, "{input:?}");
        }
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
    }
}
