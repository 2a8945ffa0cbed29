//! Hubble flows as JSON: `hubble observe -o json` (a bare flow), `-o jsonpb` and exporter files
//! (`{"flow": {...}, "node_name": ..., "time": ...}`), old and new schemas alike.
//!
//! Field names follow Cilium's `flow.proto` with proto names (`IP.source`,
//! `l4.TCP.destination_port`); the lowerCamel names of protobuf's default JSON mapping are accepted
//! as aliases for the fields we read. Enums may be names or proto numbers.
//!
//! This is the hot path of the whole tool (a busy cluster writes hundreds of thousands of flows a
//! second), so the line is deserialized into borrowed structs that skip everything we do not read
//! (`l7`, `ethernet`, `Summary`, ...) without building it, and owned strings are only made for a
//! record that becomes a flow: a reply costs one parse and nothing else.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::Deserialize;

use super::json::{Scalar, Str, is_blank, json_reason, utf8};
use super::{Item, SkipReason};
use crate::model::{FlowRecord, Labels, ObservedEndpoint, Port, Protocol, Reserved, Verdict, WorkloadKind};

/// One JSON object of any of the accepted shapes. A response envelope and a bare flow share this
/// struct (the envelope's `flow` is itself a `Flow`) so that a line is parsed once whatever its
/// shape; serde's `flatten` would have buffered the whole object instead.
#[derive(Deserialize)]
struct Flow<'a> {
    #[serde(borrow)]
    time: Option<Str<'a>>,
    #[serde(borrow)]
    uuid: Option<Str<'a>>,
    #[serde(borrow)]
    verdict: Option<Scalar<'a>>,
    #[serde(borrow, rename = "IP")]
    ip: Option<Ip<'a>>,
    l4: Option<L4>,
    #[serde(borrow)]
    source: Option<Endpoint<'a>>,
    #[serde(borrow)]
    destination: Option<Endpoint<'a>>,
    #[serde(borrow, rename = "Type", alias = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow, alias = "nodeName")]
    node_name: Option<Str<'a>>,
    #[serde(alias = "isReply")]
    is_reply: Option<bool>,
    reply: Option<bool>,
    #[serde(borrow, alias = "destinationService")]
    destination_service: Option<Service<'a>>,
    #[serde(borrow, alias = "trafficDirection")]
    traffic_direction: Option<Scalar<'a>>,
    /// The envelope's payload; `None` for a bare flow.
    #[serde(borrow)]
    flow: Option<Box<Flow<'a>>>,
    // Other GetFlowsResponse payloads (node_status, lost_events, ...) are ignored like any
    // unknown field; without `flow` or flow fields the object is "not a flow".
}

impl Flow<'_> {
    /// Whether a top-level object without `flow` is itself a flow.
    fn looks_like_flow(&self) -> bool {
        self.ip.is_some()
            || self.l4.is_some()
            || self.kind.is_some()
            || self.source.is_some()
            || self.destination.is_some()
            || self.verdict.is_some()
    }
}

#[derive(Deserialize)]
struct Ip<'a> {
    #[serde(borrow)]
    source: Option<Str<'a>>,
    #[serde(borrow)]
    destination: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct L4 {
    TCP: Option<Ports>,
    UDP: Option<Ports>,
    SCTP: Option<Ports>,
    // ICMPv4, ICMPv6 and future protocols are ignored: they have no ports.
}

#[derive(Deserialize)]
struct Ports {
    #[serde(alias = "sourcePort")]
    source_port: Option<u64>,
    #[serde(alias = "destinationPort")]
    destination_port: Option<u64>,
}

#[derive(Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    labels: Option<Vec<Str<'a>>>,
    #[serde(borrow, alias = "podName")]
    pod_name: Option<Str<'a>>,
    #[serde(borrow, alias = "clusterName")]
    cluster_name: Option<Str<'a>>,
    #[serde(borrow)]
    workloads: Option<Vec<Workload<'a>>>,
}

#[derive(Deserialize)]
struct Workload<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Service<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
}

/// Parses one Hubble record (a line, or one element of a JSON array).
///
/// Skips, in this order: blank lines, responses without a flow, `Type` other than L3_L4, replies,
/// and flows without TCP/UDP/SCTP ports. A missing `Type` (older or hand-written exports; proto's
/// UNKNOWN_TYPE) is taken as L3_L4. Only then are the fields a flow needs checked, so a reply with
/// an odd address is skipped, not reported.
pub fn parse_hubble_line(line: &[u8]) -> Result<Item, String> {
    if is_blank(line) {
        return Ok(Item::Skipped(SkipReason::Blank));
    }
    let text = utf8(line)?;
    let top: Flow = serde_json::from_str(text).map_err(|e| json_reason(&e))?;
    from_top(top)
}

fn from_top(mut top: Flow<'_>) -> Result<Item, String> {
    let (flow, outer_node, outer_time) = match top.flow.take() {
        Some(inner) => (*inner, top.node_name, top.time),
        None if top.looks_like_flow() => (top, None, None),
        None => return Ok(Item::Skipped(SkipReason::NotAFlow)),
    };
    convert(flow, outer_node, outer_time)
}

fn convert<'a>(f: Flow<'a>, outer_node: Option<Str<'a>>, outer_time: Option<Str<'a>>) -> Result<Item, String> {
    if let Some(kind) = &f.kind
        && !is_l3l4(kind)
    {
        return Ok(Item::Skipped(SkipReason::NotL3L4));
    }
    if f.is_reply == Some(true) || f.reply == Some(true) {
        return Ok(Item::Skipped(SkipReason::Reply));
    }
    let ip = f.ip.as_ref().ok_or("no IP section")?;
    let l4 = f.l4.as_ref().ok_or("no l4 section")?;
    let (protocol, ports) = if let Some(p) = &l4.TCP {
        (Protocol::Tcp, p)
    } else if let Some(p) = &l4.UDP {
        (Protocol::Udp, p)
    } else if let Some(p) = &l4.SCTP {
        (Protocol::Sctp, p)
    } else {
        return Ok(Item::Skipped(SkipReason::NoPorts));
    };

    let src_ip = parse_ip(ip.source.as_ref(), "IP.source")?;
    let dst_ip = parse_ip(ip.destination.as_ref(), "IP.destination")?;
    // protobuf's JSON mapping omits zero values, so an absent port and port 0 are the same thing.
    let dst_port = match ports.destination_port.unwrap_or(0) {
        0 => return Err(format!("l4.{protocol}.destination_port is 0 or missing")),
        p => u16::try_from(p)
            .ok()
            .and_then(Port::new)
            .ok_or_else(|| format!("l4.{protocol}.destination_port: {p} is not a valid port"))?,
    };
    let src_port = match ports.source_port.unwrap_or(0) {
        0 => None,
        p => Some(u16::try_from(p).map_err(|_| format!("l4.{protocol}.source_port: {p} is not a valid port"))?),
    };

    let time = f.time.as_ref().or(outer_time.as_ref()).ok_or("no time")?;
    let time: Timestamp = time.as_str().parse().map_err(|_| format!("time: {:?} is not RFC 3339", time.as_str()))?;

    let verdict = match &f.verdict {
        None => Verdict::Unknown,
        Some(v) => verdict(v),
    };

    let (src_meta, src_cluster) = f.source.as_ref().map(endpoint).unzip();
    let (dst_meta, dst_cluster) = f.destination.as_ref().map(endpoint).unzip();
    // A flow is reported by the node that saw it: the destination's for ingress, else the source's.
    let ingress = f
        .traffic_direction
        .as_ref()
        .is_some_and(|d| matches!(d, Scalar::Str(s) if s == "INGRESS") || matches!(d, Scalar::Uint(1)));
    let (first, second) = if ingress { (dst_cluster, src_cluster) } else { (src_cluster, dst_cluster) };
    let cluster = first.flatten().or(second.flatten()).map(str::to_string);

    let dst_service = f.destination_service.as_ref().and_then(|s| {
        let name = s.name.as_ref().map(Str::as_str).filter(|n| !n.is_empty())?;
        let ns = s.namespace.as_ref().map(Str::as_str).unwrap_or_default();
        Some((ns.to_string(), name.to_string()))
    });

    let node = f.node_name.as_ref().or(outer_node.as_ref()).map(Str::as_str).filter(|n| !n.is_empty());

    Ok(Item::Flow(FlowRecord {
        time,
        uuid: f.uuid.as_ref().map(Str::as_str).filter(|u| !u.is_empty()).map(str::to_string),
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol,
        verdict,
        process: None,
        node: node.map(str::to_string),
        cluster,
        bytes: None,
        packets: None,
        src_meta,
        dst_meta,
        dst_service,
    }))
}

fn is_l3l4(kind: &Scalar) -> bool {
    match kind {
        Scalar::Str(s) => s == "L3_L4" || s == "UNKNOWN_TYPE" || s.is_empty(),
        // flow.proto FlowType: 0 UNKNOWN_TYPE, 1 L3_L4, 2 L7, 3 SOCK.
        Scalar::Uint(n) => *n <= 1,
        Scalar::Null => true,
        _ => false,
    }
}

fn verdict(v: &Scalar) -> Verdict {
    match v {
        // The common spelling first: parse_lenient allocates.
        Scalar::Str(s) if s == "FORWARDED" => Verdict::Forwarded,
        Scalar::Str(s) if s == "DROPPED" => Verdict::Dropped,
        Scalar::Str(s) => Verdict::parse_lenient(s),
        // flow.proto Verdict numbers.
        Scalar::Uint(n) => match n {
            1 => Verdict::Forwarded,
            2 => Verdict::Dropped,
            3 => Verdict::Error,
            4 => Verdict::Audit,
            5 => Verdict::Redirected,
            6 => Verdict::Traced,
            7 => Verdict::Translated,
            _ => Verdict::Unknown,
        },
        _ => Verdict::Unknown,
    }
}

fn parse_ip(s: Option<&Str>, field: &str) -> Result<IpAddr, String> {
    let s = s.ok_or_else(|| format!("{field} is missing"))?.as_str();
    s.parse().map_err(|_| format!("{field}: {s:?} is not an IP address"))
}

/// Labels whose key starts with this are Cilium's own (namespace labels, service account, cluster,
/// policy bookkeeping), not the pod's.
const CILIUM_PREFIX: &str = "io.cilium.";
const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";

/// An endpoint's metadata, and the cluster it says it belongs to.
fn endpoint<'e>(ep: &'e Endpoint<'_>) -> (ObservedEndpoint, Option<&'e str>) {
    let mut labels = Labels::new();
    let mut reserved = None;
    let mut cluster: Option<&'e str> = None;
    let mut label_ns: Option<&'e str> = None;
    for label in ep.labels.iter().flatten() {
        let label = label.as_str();
        // `source:key=value`. A label without a source is taken as a Kubernetes label; keys and
        // values cannot contain ':', so the first ':' before any '=' ends the source.
        let (source, rest) = match (label.find(':'), label.find('=')) {
            (Some(c), Some(e)) if c < e => (&label[..c], &label[c + 1..]),
            (Some(c), None) => (&label[..c], &label[c + 1..]),
            _ => ("k8s", label),
        };
        match source {
            "k8s" => {
                let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
                if key == CLUSTER_LABEL {
                    cluster = Some(value);
                } else if key == NAMESPACE_LABEL {
                    label_ns = Some(value);
                } else if !key.starts_with(CILIUM_PREFIX) && !key.is_empty() {
                    labels.insert(key.to_string(), value.to_string());
                }
            }
            "reserved" => {
                let r = reserved_identity(rest);
                // A host that also serves the API server carries both; the narrower one is what a
                // policy should name.
                if reserved.is_none() || r == Reserved::KubeApiserver {
                    reserved = Some(r);
                }
            }
            // cidr:, fqdn:, container:, unspec:, ... say nothing a Kubernetes policy selects on.
            _ => {}
        }
    }
    let nonempty = |s: &Option<Str>| s.as_ref().map(Str::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let workload = ep.workloads.iter().flatten().find_map(|w| {
        let kind = w.kind.as_ref()?.as_str().parse::<WorkloadKind>().ok()?;
        let name = w.name.as_ref().map(Str::as_str).filter(|n| !n.is_empty())?;
        Some((kind, name.to_string()))
    });
    let meta = ObservedEndpoint {
        namespace: nonempty(&ep.namespace).or_else(|| label_ns.filter(|s| !s.is_empty()).map(str::to_string)),
        pod_name: nonempty(&ep.pod_name),
        labels,
        reserved,
        workload,
    };
    let cluster = ep.cluster_name.as_ref().map(Str::as_str).or(cluster).filter(|s| !s.is_empty());
    (meta, cluster)
}

fn reserved_identity(name: &str) -> Reserved {
    match name {
        "host" => Reserved::Host,
        "remote-node" => Reserved::RemoteNode,
        "kube-apiserver" => Reserved::KubeApiserver,
        // Dual-stack clusters (Cilium 1.15+) split world by family.
        "world" | "world-ipv4" | "world-ipv6" => Reserved::World,
        "health" => Reserved::Health,
        "init" => Reserved::Init,
        "ingress" => Reserved::Ingress,
        "unmanaged" => Reserved::Unmanaged,
        _ => Reserved::Unknown,
    }
}
