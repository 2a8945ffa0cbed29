//! View models: the review tables' rows and the map's graph, built from a review. Pure: values in,
//! values out, so the pages and the JSON API show the same thing and tests need no server.
//!
//! Text from the cluster and from flows is untrusted. Askama escapes HTML and `map.js` sets
//! `textContent`, but neither stops a character that reorders or hides what is shown around it
//! (U+202E turns `evil\u{202e}gpj.exe` into `evilexe.jpg`): [`visible`] spells those out, in the
//! templates (the `visible` filter) and in the map's JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::enrich::Endpoint;
use crate::flows::{MAX_PROCESS_LEN, cap_text};
use crate::inventory::Inventory;
use crate::model::{Cidr, WorkloadRef};
use crate::policy::generate::{Decisions, Direction, ExcludeReason, ReviewRow, Status};
use crate::topology::Connections;

/// One line of the Ingress or Egress table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub direction: Direction,
    /// `kind/namespace/name`, a node, or an address.
    pub peer: String,
    /// `in-cluster`, `node`, `external` or `unresolved`.
    pub peer_class: &'static str,
    /// The key the decision form sends back (`Endpoint::key`).
    pub peer_key: String,
    pub port: u16,
    pub protocol: &'static str,
    pub processes: Vec<String>,
    pub services: Vec<String>,
    pub flows: u64,
    pub dropped: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Ticked: the policy allows it.
    pub allowed: bool,
    /// Whether a person can change it (node traffic and unselectable peers cannot).
    pub editable: bool,
    pub status: String,
    /// Nothing said which end opened the connection: it may be a reply read backwards.
    pub undecided: bool,
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

/// Rows one review table renders; the rest are counted in [`Table::more`]. A workload with
/// thousands of peers (a namespace's DNS server, an ingress controller) would otherwise make a
/// page of megabytes that the browser lays out row by row; the JSON API lists them all.
pub const MAX_TABLE_ROWS: usize = 1_000;

/// One review table (Ingress or Egress) as the page renders it.
#[derive(Debug, Clone)]
pub struct Table {
    pub title: &'static str,
    /// The tab's element id.
    pub tab: &'static str,
    /// At most [`MAX_TABLE_ROWS`], in the table's order.
    pub rows: Vec<Row>,
    /// How many rows were left out.
    pub more: usize,
}

impl Table {
    pub fn new(title: &'static str, tab: &'static str, mut rows: Vec<Row>, max: usize) -> Table {
        let more = rows.len().saturating_sub(max);
        rows.truncate(max);
        Table { title, tab, rows, more }
    }
}

fn fmt_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The rows of one workload's review, ingress first, each direction sorted by peer then port.
pub fn rows(review: &[ReviewRow], conns: &Connections, workload: &WorkloadRef) -> Vec<Row> {
    let mut out: Vec<Row> = review
        .iter()
        .filter(|r| &r.workload == workload)
        .filter_map(|r| {
            let stats = conns.map.get(&r.key)?;
            let peer = match r.direction {
                Direction::Ingress => &r.key.src,
                Direction::Egress => &r.key.dst,
            };
            let editable = !matches!(r.status, Status::NoRuleNeeded | Status::Excluded(ExcludeReason::NoSelector(_)));
            Some(Row {
                direction: r.direction,
                peer: peer.label(),
                peer_class: peer.class(),
                peer_key: peer.key(),
                port: r.key.port.get(),
                protocol: r.key.protocol.as_str(),
                // Parsers cap process names; rows stored before they did are capped here.
                processes: stats.processes.iter().map(|p| cap_text(p.clone(), MAX_PROCESS_LEN).0).collect(),
                services: stats.services.iter().cloned().collect(),
                flows: stats.flows,
                dropped: stats.dropped,
                first_seen: fmt_time(stats.first_seen),
                last_seen: fmt_time(stats.last_seen),
                allowed: r.status == Status::Allowed,
                editable,
                status: r.status.to_string(),
                undecided: r.undecided,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.direction, &a.peer, a.port, a.protocol).cmp(&(b.direction, &b.peer, b.port, b.protocol)));
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
        Status::Excluded(_) if matches!(peer, Endpoint::Unresolved { .. }) => "unresolved",
        Status::Excluded(_) => "excluded",
    }
}

/// The map: the review's workloads and peers (namespaces as groups, Services between client and
/// backend when the connection went through one), edges labelled port/protocol with a status.
pub fn graph(review: &[ReviewRow], conns: &Connections, focus: Option<&WorkloadRef>) -> Value {
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    let mut edges: BTreeMap<String, Value> = BTreeMap::new();
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
        let peer = if r.direction == Direction::Ingress { &r.key.src } else { &r.key.dst };
        let src = add_node(&mut nodes, &r.key.src);
        let dst = add_node(&mut nodes, &r.key.dst);
        let status = status_class(&r.status, peer);
        let label = format!("{}/{}", r.key.port, r.key.protocol);
        let processes: Vec<String> =
            stats.processes.iter().map(|p| shown(&cap_text(p.clone(), MAX_PROCESS_LEN).0)).collect();
        let detail = json!({
            "Flows": stats.flows.to_string(),
            "Decision": shown(&r.status.to_string()),
            "First seen": fmt_time(stats.first_seen),
            "Last seen": fmt_time(stats.last_seen),
            "Processes": processes.join(", "),
        });
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
                edges.entry(e1.clone()).or_insert_with(|| {
                    json!({"id": e1, "source": src, "target": sid, "label": format!("{svc_port}/{}", r.key.protocol), "status": status, "detail": detail})
                });
                let e2 = format!("{sid}>{dst}:{label}");
                edges.entry(e2.clone()).or_insert_with(|| {
                    json!({"id": e2, "source": sid, "target": dst, "label": label, "status": status, "detail": detail})
                });
            }
            None => {
                let id = format!("{src}>{dst}:{label}");
                edges.entry(id.clone()).or_insert_with(|| {
                    json!({"id": id, "source": src, "target": dst, "label": label, "status": status, "detail": detail})
                });
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

    #[test]
    fn tables_render_at_most_their_cap() {
        let row = Row {
            direction: Direction::Ingress,
            peer: "p".into(),
            peer_class: "in-cluster",
            peer_key: "p".into(),
            port: 80,
            protocol: "TCP",
            processes: vec![],
            services: vec![],
            flows: 1,
            dropped: 0,
            first_seen: String::new(),
            last_seen: String::new(),
            allowed: true,
            editable: true,
            status: String::new(),
            undecided: false,
        };
        let t = Table::new("Ingress", "tab-ingress", vec![row.clone(); 5], 3);
        assert_eq!((t.rows.len(), t.more), (3, 2));
        let t = Table::new("Ingress", "tab-ingress", vec![row; 2], 3);
        assert_eq!((t.rows.len(), t.more), (2, 0));
    }
}
