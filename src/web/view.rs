//! View models: the review tables' rows and the map's graph, built from a review. Pure: values in,
//! values out, so the pages and the JSON API show the same thing and tests need no server.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::enrich::Endpoint;
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
                processes: stats.processes.iter().cloned().collect(),
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
        Endpoint::Node { name, .. } => format!("node:{name}"),
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
                        json!({"id": ns, "kind": "namespace", "label": workload.namespace, "detail": {}, "parent": null})
                    });
                    (
                        "workload",
                        workload.name.clone(),
                        Value::String(ns),
                        json!({"Kind": workload.kind.as_str(), "Namespace": workload.namespace, "Name": workload.name}),
                    )
                }
                Endpoint::Node { name, ip } => {
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
        let detail = json!({
            "Flows": stats.flows.to_string(),
            "Decision": r.status.to_string(),
            "First seen": fmt_time(stats.first_seen),
            "Last seen": fmt_time(stats.last_seen),
            "Processes": stats.processes.iter().cloned().collect::<Vec<_>>().join(", "),
        });
        // A connection through a Service is drawn client -> Service -> backend.
        let via = stats.services.iter().next().and_then(|s| {
            let (svc, port) = s.rsplit_once(':')?;
            let (ns, name) = svc.split_once('/')?;
            Some((ns.to_string(), name.to_string(), port.to_string()))
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
