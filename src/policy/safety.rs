//! Safety warnings about a generated set, said above the YAML and in the CLI summary: what the
//! traffic alone cannot show, and what tends to break production on the first apply.
//!
//! - An exposed workload (a LoadBalancer or NodePort Service, externalIPs, a hostPort) whose
//!   policy isolates ingress without any rule from outside the cluster: in the window nothing came
//!   from outside, but its clients are there (loud).
//! - A backend of an Ingress whose policy isolates ingress and admits nothing on the pod port the
//!   Ingress reaches: no request came through the ingress controller in the window (loud).
//! - An ipBlock inside the cluster's own ranges: pod addresses change, a pod that gets one tomorrow
//!   inherits the access.
//! - An ipBlock that covers the whole internet (`/0`) or the cluster's ranges.
//! - An allowed connection not seen for the later half of the window: a stale dependency?
//! - An allowed connection whose flows were dropped: something already blocks it.

use ipnet::IpNet;
use jiff::Timestamp;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;

use super::generate::{Generation, Status};
use crate::inventory::{BackendPort, Inventory};
use crate::model::{Protocol, WorkloadRef};
use crate::topology::Connections;

/// One warning about one workload's policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Safety {
    pub workload: String,
    /// `exposed`, `ingress-backend`, `ipblock-in-cluster`, `ipblock-too-wide`, `stale`, `dropped`.
    pub kind: &'static str,
    /// Said first and loudest: applying would likely cut off real clients.
    pub loud: bool,
    pub message: String,
}

/// How `w` is reachable from outside the cluster: its Services' types and its hostPorts.
pub fn exposure(inv: &Inventory, conns: &Connections, w: &WorkloadRef) -> Vec<String> {
    let mut out = Vec::new();
    let label_sets = conns.catalog.workloads.get(w);
    for svc in inv.services.iter().filter(|s| s.namespace == w.namespace) {
        let (Some(how), Some(sel)) = (svc.exposed, &svc.selector) else { continue };
        let backs = label_sets.is_some_and(|sets| sets.iter().any(|l| sel.iter().all(|(k, v)| l.get(k) == Some(v))));
        if backs {
            out.push(format!("{how} Service {}/{}", svc.namespace, svc.name));
        }
    }
    if let Some(info) = inv.workloads.get(w)
        && !info.host_ports.is_empty()
    {
        let ports: Vec<String> = info.host_ports.iter().map(u16::to_string).collect();
        out.push(format!("hostPort {}", ports.join(", ")));
    }
    out.sort();
    out.dedup();
    out
}

/// The Ingress backends `w` serves: (Ingress `ns/name`, Service `name:port`, the pod port and
/// protocol it reaches), sorted. An Ingress reaches its backends through the ingress
/// controller's pods, so a policy must admit the controller on that pod port.
pub fn ingress_backends(inv: &Inventory, conns: &Connections, w: &WorkloadRef) -> Vec<(String, String, u16, Protocol)> {
    let label_sets = conns.catalog.workloads.get(w);
    let template = inv.workloads.get(w).and_then(|i| i.template_labels.as_ref());
    let backs = |sel: &crate::model::Labels| {
        let matches = |l: &crate::model::Labels| sel.iter().all(|(k, v)| l.get(k) == Some(v));
        label_sets.is_some_and(|sets| sets.iter().any(matches)) || template.is_some_and(matches)
    };
    let container_ports = inv.workloads.get(w).map(|i| i.ports.as_slice()).unwrap_or_default();
    let mut out = Vec::new();
    for ing in inv.ingresses.iter().filter(|i| i.namespace == w.namespace) {
        for (svc_name, port) in &ing.backends {
            let Some(svc) = inv.services.iter().find(|s| s.namespace == w.namespace && &s.name == svc_name) else {
                continue;
            };
            if !svc.selector.as_ref().is_some_and(backs) {
                continue;
            }
            let svc_port = svc.ports.iter().find(|p| match port {
                BackendPort::Number(n) => p.port == *n,
                BackendPort::Name(n) => p.name.as_deref() == Some(n.as_str()),
            });
            let Some(sp) = svc_port else { continue };
            if let Some(target) = sp.target_on(container_ports) {
                out.push((
                    format!("{}/{}", ing.namespace, ing.name),
                    format!("{}:{}", svc.name, sp.port),
                    target,
                    sp.protocol,
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether some ingress rule of `p` admits `port`/`proto` on the pods it selects, from any peer
/// (`named` are the pods' container port names for that number).
fn admits_port(p: &NetworkPolicy, port: u16, proto: Protocol, named: &[&str]) -> bool {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    p.spec.iter().flat_map(|s| s.ingress.iter().flatten()).any(|r| match r.ports.as_deref() {
        None | Some([]) => true,
        Some(ports) => ports.iter().any(|pp| {
            pp.protocol.as_deref().unwrap_or("TCP") == proto.as_str()
                && match &pp.port {
                    None => true,
                    Some(IntOrString::Int(n)) => {
                        let end = pp.end_port.unwrap_or(*n);
                        (*n..=end).contains(&i32::from(port))
                    }
                    Some(IntOrString::String(name)) => named.contains(&name.as_str()),
                }
        }),
    })
}

fn ip_blocks(p: &NetworkPolicy) -> impl Iterator<Item = &str> {
    let spec = p.spec.iter();
    let ingress = spec.clone().flat_map(|s| s.ingress.iter().flatten()).flat_map(|r| r.from.iter().flatten());
    let egress = spec.flat_map(|s| s.egress.iter().flatten()).flat_map(|r| r.to.iter().flatten());
    ingress.chain(egress).filter_map(|peer| peer.ip_block.as_ref().map(|b| b.cidr.as_str()))
}

fn isolates_ingress(p: &NetworkPolicy) -> bool {
    super::diff::isolates(p, super::generate::Direction::Ingress)
}

fn ingress_from_outside(p: &NetworkPolicy) -> bool {
    p.spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .any(|r| r.from.as_ref().is_none_or(|f| f.iter().any(|peer| peer.ip_block.is_some())))
}

/// The span staleness is judged over: `window` (the reviewed window's start and end), else the
/// connections' own (the first first-seen to the newest flow).
pub fn span(conns: &Connections, window: Option<(Timestamp, Timestamp)>) -> Option<(Timestamp, Timestamp)> {
    window.or_else(|| {
        let first = conns.map.values().map(|s| s.first_seen).min()?;
        Some((first, conns.newest?))
    })
}

/// Whether a connection last seen at `last_seen` is stale over `(start, end)`: not seen in the
/// later half of a span of an hour or more (a dependency that is gone?).
pub fn stale(last_seen: Timestamp, (start, end): (Timestamp, Timestamp)) -> bool {
    let half = (end.as_second() - start.as_second()) / 2;
    half >= 1800 && last_seen.as_second() < end.as_second() - half
}

/// The warnings for every policy of `generation`, over the connections it came from. `window` is
/// the reviewed window (its start, its end); without it, the connections' own span.
pub fn warnings(
    generation: &Generation,
    inv: &Inventory,
    conns: &Connections,
    window: Option<(Timestamp, Timestamp)>,
) -> Vec<Safety> {
    let mut out = Vec::new();
    let span = span(conns, window);
    for g in &generation.policies {
        let name = g.workload.to_string();
        let mut warn = |kind, loud, message: String| {
            out.push(Safety { workload: name.clone(), kind, loud, message });
        };
        let exposed = exposure(inv, conns, &g.workload);
        if !exposed.is_empty() && isolates_ingress(&g.policy) && !ingress_from_outside(&g.policy) {
            warn(
                "exposed",
                true,
                format!(
                    "{} is reachable from outside the cluster ({}), but its policy admits no traffic from outside: nothing came from there in this window, yet its clients may be there. Add their ranges as trusted CIDRs, or leave Ingress out of this policy.",
                    g.workload,
                    exposed.join("; ")
                ),
            );
        }
        if isolates_ingress(&g.policy) {
            let container_ports = inv.workloads.get(&g.workload).map(|i| i.ports.as_slice()).unwrap_or_default();
            for (ingress, svc, port, proto) in ingress_backends(inv, conns, &g.workload) {
                let named: Vec<&str> = container_ports
                    .iter()
                    .filter(|c| c.port == port && c.protocol == proto)
                    .filter_map(|c| c.name.as_deref())
                    .collect();
                if !admits_port(&g.policy, port, proto, &named) {
                    warn(
                        "ingress-backend",
                        true,
                        format!(
                            "{} is a backend of Ingress {ingress} (Service {svc}, pod port {port}/{proto}), but its policy admits nothing on {port}/{proto}: no request came through the ingress controller in this window, yet they will. Allow the controller's connection, or leave Ingress out of this policy.",
                            g.workload
                        ),
                    );
                }
            }
        }
        for cidr in ip_blocks(&g.policy) {
            let Ok(net) = cidr.parse::<IpNet>() else { continue };
            if net.prefix_len() == 0 {
                warn(
                    "ipblock-too-wide",
                    true,
                    format!("{}: ipBlock {cidr} is every address (the whole internet)", g.workload),
                );
            } else if let Some(range) = inv.cluster_cidrs.iter().find(|r| r.contains(&net)) {
                warn(
                    "ipblock-in-cluster",
                    false,
                    format!(
                        "{}: ipBlock {cidr} lies inside the cluster's range {range}: pod addresses are reused, and a pod that gets this one later inherits the access; prefer a selector (decide who the address was)",
                        g.workload
                    ),
                );
            } else if let Some(range) = inv.cluster_cidrs.iter().find(|r| net.contains(*r)) {
                warn(
                    "ipblock-too-wide",
                    false,
                    format!(
                        "{}: ipBlock {cidr} covers the cluster's range {range} (its `except` keeps that out)",
                        g.workload
                    ),
                );
            }
        }
    }
    for r in generation.review.iter().filter(|r| r.status == Status::Allowed) {
        let Some(stats) = conns.map.get(&r.key) else { continue };
        let peer = r.peer().label();
        let what = format!("{} {} {}:{}/{}", r.workload, r.direction.as_str(), peer, r.key.port, r.key.protocol);
        if let Some(span) = span
            && stale(stats.last_seen, span)
        {
            out.push(Safety {
                workload: r.workload.to_string(),
                kind: "stale",
                loud: false,
                message: format!(
                    "{what}: allowed, but last seen {}, not in the later half of the window: a dependency that is gone?",
                    stats.last_seen
                ),
            });
        }
        if stats.dropped > 0 {
            out.push(Safety {
                workload: r.workload.to_string(),
                kind: "dropped",
                loud: false,
                message: format!(
                    "{what}: allowed, but {} of its {} flows were dropped: something (a policy in force?) blocks it already",
                    stats.dropped, stats.flows
                ),
            });
        }
    }
    out.sort_by(|a, b| (!a.loud, &a.workload, a.kind, &a.message).cmp(&(!b.loud, &b.workload, b.kind, &b.message)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's two Ingresses: one names its Service port by name and reaches a named container
    /// port, the other by number; a workload behind no Ingress has none.
    #[test]
    fn ingress_backends_resolve_service_and_container_ports() {
        let loaded = crate::inventory::parse_text(crate::web::demo::INVENTORY, "demo");
        let inv = Inventory::build(&loaded.objects);
        let conns = Connections::default();
        let w = |s: &str| s.parse::<WorkloadRef>().unwrap();
        assert_eq!(
            ingress_backends(&inv, &conns, &w("deployment/example-java-app/example-java-app-javaapp")),
            [(
                "example-java-app/example-java-app".to_string(),
                "example-java-app-javaapp:80".to_string(),
                8080,
                Protocol::Tcp
            )]
        );
        assert_eq!(
            ingress_backends(&inv, &conns, &w("deployment/monitoring/grafana")),
            [("monitoring/grafana".to_string(), "grafana:80".to_string(), 3000, Protocol::Tcp)]
        );
        assert!(ingress_backends(&inv, &conns, &w("deployment/example-java-app/example-java-app-redis")).is_empty());
    }
}
