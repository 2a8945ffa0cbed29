//! Hubble flows as JSON: `hubble observe -o json` (a bare flow), `-o jsonpb` and exporter files
//! (`{"flow": {...}, "node_name": ..., "time": ...}`), old and new schemas alike.
//!
//! Field names follow Cilium's `flow.proto` with proto names (`IP.source`,
//! `l4.TCP.destination_port`); the lowerCamel names of protobuf's default JSON mapping are accepted
//! as aliases for the fields we read. Enums may be names or proto numbers.
//!
//! This is the hot path of the whole tool (a busy cluster writes hundreds of thousands of flows a
//! second), so the line is read into borrowed structs that skip everything we do not read
//! (`ethernet`, `Summary`, all of `l7` but its type and DNS answer, ...) without building it, and owned strings are only made for a
//! record that becomes a flow: a reply costs one parse and nothing else. The reading is done by
//! [`fast`], a scanner of our own that builds the same structs serde's derive would and leaves
//! anything unusual to serde_json (which then gives the result, or the error, it always did).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use memchr::memchr;
use serde::Deserialize;

mod fast;

use super::json::{Scalar, Str, is_blank, json_reason, object, utf8};
use super::{Cleaned, Item, SkipReason};
use crate::dns::{DnsAnswer, MAX_ADDRESSES_PER_ANSWER, MAX_NAMES_PER_ADDRESS};
use crate::model::names::{MAX_LABELS, parse_label};
use crate::model::{
    DnsName, FlowRecord, FlowRole, Labels, Name, NameRule, ObservedEndpoint, Port, Protocol, Reserved, Verdict,
    WorkloadKind,
};

/// One JSON object of any of the accepted shapes. A response envelope and a bare flow share this
/// struct (the envelope's `flow` is itself a `Flow`) so that a line is parsed once whatever its
/// shape; serde's `flatten` would have buffered the whole object instead.
///
/// [`fast`] reads the same names: a field or alias added here is added there too (the
/// `every_field_name_reads_the_same_in_both_parsers` test spells each one).
#[derive(Debug, Deserialize)]
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
    /// Endpoints stay raw JSON until the record is known to be a flow; then [`side`] converts
    /// them, once per distinct endpoint text and parser thread.
    #[serde(borrow)]
    source: Option<Side<'a>>,
    #[serde(borrow)]
    destination: Option<Side<'a>>,
    #[serde(borrow, rename = "Type", alias = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    l7: Option<L7<'a>>,
    #[serde(borrow, alias = "nodeName")]
    node_name: Option<Str<'a>>,
    #[serde(alias = "isReply")]
    is_reply: Option<bool>,
    reply: Option<bool>,
    #[serde(borrow, alias = "destinationService")]
    destination_service: Option<Service<'a>>,
    #[serde(borrow, alias = "trafficDirection")]
    traffic_direction: Option<Scalar<'a>>,
    /// The names Cilium's FQDN cache holds for the destination (source) address.
    #[serde(borrow, alias = "destinationNames")]
    destination_names: Option<Vec<Str<'a>>>,
    #[serde(borrow, alias = "sourceNames")]
    source_names: Option<Vec<Str<'a>>>,
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

/// The L7 record's direction (a REQUEST is a connection someone opened) and, for DNS, the
/// answer: which addresses the queried name resolved to.
#[derive(Debug, Deserialize)]
struct L7<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    dns: Option<Dns<'a>>,
}

#[derive(Debug, Deserialize)]
struct Dns<'a> {
    #[serde(borrow)]
    query: Option<Str<'a>>,
    #[serde(borrow)]
    ips: Option<Vec<Str<'a>>>,
    /// 0 (left out by protobuf's JSON mapping) is NOERROR.
    rcode: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Ip<'a> {
    #[serde(borrow)]
    source: Option<Str<'a>>,
    #[serde(borrow)]
    destination: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct L4 {
    TCP: Option<Ports>,
    UDP: Option<Ports>,
    SCTP: Option<Ports>,
    // ICMPv4, ICMPv6 and future protocols are ignored: they have no ports.
}

#[derive(Debug, Deserialize)]
struct Ports {
    #[serde(alias = "sourcePort")]
    source_port: Option<u64>,
    #[serde(alias = "destinationPort")]
    destination_port: Option<u64>,
    /// TCP only; protobuf's JSON mapping leaves out the flags that are false.
    flags: Option<TcpFlags>,
}

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct TcpFlags {
    #[serde(default)]
    SYN: bool,
    #[serde(default)]
    ACK: bool,
}

#[derive(Debug, Deserialize)]
struct Endpoint<'a> {
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    labels: Option<LabelList<'a>>,
    #[serde(borrow, alias = "podName")]
    pod_name: Option<Str<'a>>,
    #[serde(borrow, alias = "clusterName")]
    cluster_name: Option<Str<'a>>,
    #[serde(borrow)]
    workloads: Option<Vec<Workload<'a>>>,
}

/// A flow end as read: the JSON text of a line's endpoint object, or a Relay message's fields.
#[derive(Debug)]
enum Side<'a> {
    Raw(&'a str),
    Parsed(Endpoint<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Side<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a serde_json::value::RawValue>::deserialize(d).map(|raw| Side::Raw(raw.get()))
    }
}

/// One endpoint's conversion, kept for the next flow with the same endpoint text.
struct Converted {
    meta: Arc<ObservedEndpoint>,
    cluster: Option<Arc<str>>,
    dropped: u32,
}

/// Bytes of endpoint text a parser thread remembers (the conversions they key take about as much
/// again); past this it starts again. A busy capture repeats a few thousand pods' endpoints over
/// and over, so most flows find both ends here and cost no label parsing, checking or allocation.
const ENDPOINT_CACHE_BYTES: usize = 4 << 20;
/// Longer endpoint texts are converted every time rather than kept.
const ENDPOINT_CACHE_MAX_TEXT: usize = 4096;

#[derive(Default)]
struct Cache {
    converted: rustc_hash::FxHashMap<Box<str>, Converted>,
    bytes: usize,
}

thread_local! {
    static CONVERTED: std::cell::RefCell<Cache> = Default::default();
}

/// Converts one flow end ([`endpoint`]), from the thread's cache when its text was seen before.
/// `field` names it in errors: `source`, `destination`.
fn side(s: &Side<'_>, field: &str, cleaned: &mut Cleaned) -> Result<(Arc<ObservedEndpoint>, Option<Arc<str>>), String> {
    let raw = match s {
        Side::Parsed(ep) => {
            let (meta, cluster) = endpoint(ep, cleaned);
            return Ok((Arc::new(meta), cluster.map(Arc::from)));
        }
        Side::Raw(raw) => *raw,
    };
    let hit = CONVERTED.with_borrow(|cache| {
        cache.converted.get(raw).map(|c| {
            cleaned.dropped += c.dropped;
            (c.meta.clone(), c.cluster.clone())
        })
    });
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let ep: Endpoint = serde_json::from_str(raw).map_err(|e| format!("{field}: {}", json_reason(&e)))?;
    let mut own = Cleaned::default();
    let (meta, cluster) = endpoint(&ep, &mut own);
    cleaned.dropped += own.dropped;
    let (meta, cluster) = (Arc::new(meta), cluster.map(Arc::<str>::from));
    if raw.len() <= ENDPOINT_CACHE_MAX_TEXT {
        CONVERTED.with_borrow_mut(|cache| {
            if cache.bytes + raw.len() > ENDPOINT_CACHE_BYTES {
                *cache = Cache::default();
            }
            cache.bytes += raw.len();
            let converted = Converted { meta: meta.clone(), cluster: cluster.clone(), dropped: own.dropped };
            cache.converted.insert(raw.into(), converted);
        });
    }
    Ok((meta, cluster))
}

/// An endpoint's `labels`, collected with one allocation: a plain `Vec` grows three or four times
/// for the usual 5-15 labels, and that showed in profiles of this hot path.
#[derive(Debug)]
struct LabelList<'a>(Vec<Str<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for LabelList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LabelList<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of labels")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(16);
                while let Some(s) = seq.next_element()? {
                    v.push(s);
                }
                Ok(LabelList(v))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Debug, Deserialize)]
struct Workload<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
struct Service<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
}

/// Parses one Hubble record (a line, or one element of a JSON array).
///
/// Skips, in this order: blank lines, responses without a flow, `Type` other than L3_L4 (except
/// L7 REQUEST records, which are flows of their connection, and DNS RESPONSEs that name
/// addresses, which are [`Item::Names`]), replies,
/// and flows without TCP/UDP/SCTP ports. A missing `Type` (older or hand-written exports; proto's
/// UNKNOWN_TYPE) is taken as L3_L4. Only then are the fields a flow needs checked, so a reply with
/// an odd address is skipped, not reported.
pub fn parse_hubble_line(line: &[u8]) -> Result<Item, String> {
    if is_blank(line) {
        return Ok(Item::Skipped(SkipReason::Blank));
    }
    if is_plain_reply(line) {
        return Ok(Item::Skipped(SkipReason::Reply));
    }
    parse_full(line)
}

/// The full parse, without the reply shortcut.
fn parse_full(line: &[u8]) -> Result<Item, String> {
    let text = object(utf8(line)?)?;
    if let Some(fast::Top { outer, inner }) = fast::flow(text) {
        return from_parts(outer, inner);
    }
    from_top(parse_serde(text)?)
}

/// Whether [`fast::flow`] keeps its promise on `line`: when it reads a record, serde reads the
/// same one. For the tests and the `hubble_line` fuzz target; `Err` says how they differ.
#[doc(hidden)]
pub fn check_fast_parse(line: &[u8]) -> Result<bool, String> {
    let Ok(text) = utf8(line).and_then(object) else { return Ok(false) };
    let Some(fast::Top { mut outer, inner }) = fast::flow(text) else { return Ok(false) };
    outer.flow = inner.map(Box::new);
    let fast = outer;
    match parse_serde(text) {
        Ok(reference) if format!("{fast:?}") == format!("{reference:?}") => Ok(true),
        Ok(reference) => Err(format!("fast read {fast:?}, serde {reference:?}")),
        Err(e) => Err(format!("fast read {fast:?}, serde refused: {e}")),
    }
}

/// serde_json's parse of a record: the reference [`fast::flow`] agrees with, and the one that
/// words the errors.
fn parse_serde(text: &str) -> Result<Flow<'_>, String> {
    serde_json::from_str(text).map_err(|e| json_reason(&e))
}

/// Replies are half of a busy capture and never become flows, so the compact form Hubble prints
/// (`"is_reply":true` in an `"Type":"L3_L4"` record) is recognised by substring scans instead
/// of a full parse, giving the same answer the parse would. Inside a JSON string these bytes
/// would be escaped (`\"is_reply\":true`), so they cannot match there. The trade-off: a damaged
/// reply line is skipped rather than reported, which loses nothing, since replies are dropped.
/// (memchr's reverse search has no SIMD form, so the line's end is searched forwards, as a window.)
fn is_plain_reply(line: &[u8]) -> bool {
    use std::sync::LazyLock;
    static KEY: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"is_reply\":"));
    static L3L4: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"Type\":\"L3_L4\""));
    // Hubble prints the fields in flow.proto's order, which puts `is_reply` in the line's last few
    // hundred bytes: looking there first spares a request line a search through all of it. Saying
    // "no" is always safe (the full parse decides), so a `false` found there ends the search.
    let tail = line.len().saturating_sub(REPLY_TAIL);
    // The rest of the line: all of it before the window, and a key that straddles its start.
    let before = &line[..(tail + KEY.needle().len() - 1).min(line.len())];
    let Some(at) = KEY.find(&line[tail..]).map(|i| tail + i).or_else(|| KEY.find(before)) else { return false };
    line[at + KEY.needle().len()..].starts_with(b"true") && L3L4.find(line).is_some()
}

/// How many of a line's last bytes [`is_plain_reply`] searches first.
const REPLY_TAIL: usize = 512;

fn from_top(mut top: Flow<'_>) -> Result<Item, String> {
    let inner = top.flow.take().map(|inner| *inner);
    from_parts(top, inner)
}

/// A record's top-level object and, for an envelope, the flow it holds.
fn from_parts<'a>(top: Flow<'a>, inner: Option<Flow<'a>>) -> Result<Item, String> {
    let (flow, outer_node, outer_time) = match inner {
        Some(inner) => (inner, top.node_name, top.time),
        None if top.looks_like_flow() => (top, None, None),
        None => return Ok(Item::Skipped(SkipReason::NotAFlow)),
    };
    convert(flow, outer_node, outer_time)
}

fn convert<'a>(f: Flow<'a>, outer_node: Option<Str<'a>>, outer_time: Option<Str<'a>>) -> Result<Item, String> {
    // With L7 visibility on, an export may hold only L7 records: their REQUESTs carry the
    // connection (addresses, L4 ports) and count as its flows; RESPONSEs and SAMPLEs do not,
    // but a DNS RESPONSE says which addresses the name it answers resolved to.
    if let Some(kind) = &f.kind
        && !is_l3l4(kind)
        && !(is_l7(kind) && f.l7.as_ref().and_then(|l| l.kind.as_ref()).is_some_and(is_request))
    {
        if is_l7(kind)
            && let Some(l7) = &f.l7
            && let Some(dns) = &l7.dns
            && !l7.kind.as_ref().is_some_and(is_request)
            && let Some(answer) = dns_answer(dns, f.time.as_ref().or(outer_time.as_ref()))?
        {
            return Ok(Item::Names(answer));
        }
        return Ok(Item::Skipped(SkipReason::NotL3L4));
    }
    if f.is_reply == Some(true) || f.reply == Some(true) {
        return Ok(Item::Skipped(SkipReason::Reply));
    }
    let l7_request = f.kind.as_ref().is_some_and(is_l7);
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

    let mut cleaned = Cleaned::default();
    let (src_meta, src_cluster) = f.source.as_ref().map(|e| side(e, "source", &mut cleaned)).transpose()?.unzip();
    let (dst_meta, dst_cluster) =
        f.destination.as_ref().map(|e| side(e, "destination", &mut cleaned)).transpose()?.unzip();
    // A flow is reported by the node that saw it: the destination's for ingress, else the source's.
    let ingress = f
        .traffic_direction
        .as_ref()
        .is_some_and(|d| matches!(d, Scalar::Str(s) if s == "INGRESS") || matches!(d, Scalar::Uint(1)));
    let (first, second) = if ingress { (dst_cluster, src_cluster) } else { (src_cluster, dst_cluster) };
    let cluster = first.flatten().or(second.flatten());

    let dst_service = f.destination_service.as_ref().and_then(|s| {
        let name = s.name.as_ref().map(Str::as_str).filter(|n| !n.is_empty())?;
        let ns = s.namespace.as_ref().map(Str::as_str).unwrap_or_default();
        Some((ns.to_string(), name.to_string()))
    });
    let dst_service = dst_service.filter(|(ns, name)| {
        let ok = (ns.is_empty() || Name::namespace(ns).is_ok()) && Name::of_kind("Service", name).is_ok();
        cleaned.dropped += u32::from(!ok);
        ok
    });

    let node = f.node_name.as_ref().or(outer_node.as_ref()).map(Str::as_str).filter(|n| !n.is_empty());
    let node = valid(node, NameRule::Dns1123Subdomain, &mut cleaned);
    let cluster = valid(cluster.as_deref(), NameRule::Dns1123Subdomain, &mut cleaned);
    // A uuid is 36 characters; anything much longer is not one, and the record's hash identifies
    // the flow instead.
    let uuid = f.uuid.as_ref().map(Str::as_str).filter(|u| !u.is_empty());
    let uuid = uuid.filter(|u| {
        cleaned.dropped += u32::from(u.len() > MAX_UUID_LEN);
        u.len() <= MAX_UUID_LEN
    });

    // `is_reply` when the agent set it (a BoolValue: absent means unknown, not false); else the
    // TCP handshake; an L7 REQUEST is the opening direction by definition. Anything else (flows
    // observed at TO_OVERLAY, older agents) is settled later by what the run has seen.
    let role = if f.is_reply == Some(false) || l7_request {
        FlowRole::Request
    } else {
        match ports.flags.as_ref() {
            Some(TcpFlags { SYN: true, ACK: true }) => return Ok(Item::Skipped(SkipReason::Reply)),
            Some(TcpFlags { SYN: true, ACK: false }) => FlowRole::Request,
            _ => FlowRole::Undecided,
        }
    };

    let dst_names = names(f.destination_names.as_deref(), &mut cleaned);
    let src_names = names(f.source_names.as_deref(), &mut cleaned);

    Ok(Item::Flow(
        FlowRecord {
            time,
            uuid: uuid.map(str::to_string),
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            protocol,
            verdict,
            process: None,
            node: node.map(str::to_string),
            cluster: cluster.map(str::to_string),
            bytes: None,
            packets: None,
            src_meta,
            dst_meta,
            dst_service,
            role,
            dst_names,
            src_names,
        },
        cleaned,
    ))
}

/// Parses one flow of a Hubble Relay stream (`GetFlowsResponse.flow`), with the response's node
/// and time as the envelope's. The message is viewed as the JSON record it would be printed as
/// (strings borrowed, enums as their numbers, proto3's empty values as absent), so both arrive at
/// one conversion: the same skips, checks, cleaning and errors.
pub fn parse_hubble_proto(
    f: &crate::relay::proto::Flow,
    outer_node: &str,
    outer_time: Option<crate::relay::proto::Timestamp>,
) -> Result<Item, String> {
    use crate::relay::proto;
    fn opt(s: &str) -> Option<Str<'_>> {
        (!s.is_empty()).then_some(Str(Cow::Borrowed(s)))
    }
    fn list(v: &[String]) -> Option<Vec<Str<'_>>> {
        (!v.is_empty()).then(|| v.iter().map(|s| Str(Cow::Borrowed(s.as_str()))).collect())
    }
    fn number(n: i32) -> Scalar<'static> {
        // A negative enum (only a broken sender writes one) matches no known value.
        Scalar::Uint(u64::try_from(n).unwrap_or(u64::MAX))
    }
    fn time(t: Option<proto::Timestamp>) -> Result<Option<Str<'static>>, String> {
        match t {
            None => Ok(None),
            Some(t) => match t.to_jiff() {
                Some(j) => Ok(Some(Str(Cow::Owned(j.to_string())))),
                None => Err(format!("time: {}s {}ns is not a valid timestamp", t.seconds, t.nanos)),
            },
        }
    }
    fn endpoint(e: &proto::Endpoint) -> Endpoint<'_> {
        Endpoint {
            namespace: opt(&e.namespace),
            labels: Some(LabelList(e.labels.iter().map(|s| Str(Cow::Borrowed(s.as_str()))).collect())),
            pod_name: opt(&e.pod_name),
            cluster_name: opt(&e.cluster_name),
            workloads: Some(e.workloads.iter().map(|w| Workload { name: opt(&w.name), kind: opt(&w.kind) }).collect()),
        }
    }
    let ports = |source: u32, destination: u32, flags: Option<TcpFlags>| Ports {
        source_port: Some(u64::from(source)),
        destination_port: Some(u64::from(destination)),
        flags,
    };
    let l4 = f.l4.as_ref().map(|l| {
        let mut out = L4 { TCP: None, UDP: None, SCTP: None };
        match &l.protocol {
            Some(proto::L4::Tcp(t)) => {
                let flags = t.flags.map(|fl| TcpFlags { SYN: fl.syn, ACK: fl.ack });
                out.TCP = Some(ports(t.source_port, t.destination_port, flags));
            }
            Some(proto::L4::Udp(p)) => out.UDP = Some(ports(p.source_port, p.destination_port, None)),
            Some(proto::L4::Sctp(p)) => out.SCTP = Some(ports(p.source_port, p.destination_port, None)),
            Some(proto::L4::IcmpV4(_) | proto::L4::IcmpV6(_)) | None => {}
        }
        out
    });
    let view = Flow {
        time: time(f.time)?,
        uuid: opt(&f.uuid),
        verdict: Some(number(f.verdict)),
        ip: f.ip.as_ref().map(|ip| Ip { source: opt(&ip.source), destination: opt(&ip.destination) }),
        l4,
        source: f.source.as_ref().map(|e| Side::Parsed(endpoint(e))),
        destination: f.destination.as_ref().map(|e| Side::Parsed(endpoint(e))),
        kind: Some(number(f.kind)),
        l7: f.l7.as_ref().map(|l| L7 {
            kind: Some(number(l.kind)),
            dns: l.dns.as_ref().map(|d| Dns {
                query: opt(&d.query),
                ips: list(&d.ips),
                rcode: Some(u64::from(d.rcode)),
            }),
        }),
        node_name: opt(&f.node_name),
        is_reply: f.is_reply.map(|b| b.value),
        reply: f.reply.then_some(true),
        destination_service: f
            .destination_service
            .as_ref()
            .map(|s| Service { name: opt(&s.name), namespace: opt(&s.namespace) }),
        traffic_direction: Some(number(f.traffic_direction)),
        destination_names: list(&f.destination_names),
        source_names: list(&f.source_names),
        flow: None,
    };
    convert(view, opt(outer_node), time(outer_time)?)
}

/// A flow end's names: the valid ones, at most [`MAX_NAMES_PER_ADDRESS`] (the smallest, as
/// [`crate::dns::Names`] keeps them); each one left out is counted.
fn names(raw: Option<&[Str<'_>]>, cleaned: &mut Cleaned) -> Vec<DnsName> {
    let Some(raw) = raw else { return Vec::new() };
    let mut out: Vec<DnsName> = Vec::new();
    for s in raw {
        match DnsName::parse(s.as_str()) {
            Ok(n) => out.push(n),
            Err(_) => cleaned.dropped += 1,
        }
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_NAMES_PER_ADDRESS {
        cleaned.dropped += (out.len() - MAX_NAMES_PER_ADDRESS) as u32;
        out.truncate(MAX_NAMES_PER_ADDRESS);
    }
    out
}

/// A DNS RESPONSE's answer: its query and addresses. `None` when it names none (NXDOMAIN, an
/// answer without A or AAAA records, a response that failed); an error when its name or an
/// address is not one, so that a damaged answer is reported where it is, not silently lost.
/// At most [`MAX_ADDRESSES_PER_ANSWER`] addresses are kept.
fn dns_answer(dns: &Dns<'_>, time: Option<&Str<'_>>) -> Result<Option<DnsAnswer>, String> {
    let ips = dns.ips.as_deref().unwrap_or_default();
    if dns.rcode.unwrap_or(0) != 0 || ips.is_empty() {
        return Ok(None);
    }
    let query = dns.query.as_ref().ok_or("l7.dns.query is missing")?;
    let name = DnsName::parse(query.as_str()).map_err(|e| format!("l7.dns.query: {e}"))?;
    let mut out = Vec::with_capacity(ips.len().min(MAX_ADDRESSES_PER_ANSWER));
    for (i, ip) in ips.iter().take(MAX_ADDRESSES_PER_ANSWER).enumerate() {
        let ip: IpAddr =
            ip.as_str().parse().map_err(|_| format!("l7.dns.ips[{i}]: {:?} is not an IP address", ip.as_str()))?;
        out.push(ip);
    }
    let time = time.ok_or("no time")?;
    let time: Timestamp = time.as_str().parse().map_err(|_| format!("time: {:?} is not RFC 3339", time.as_str()))?;
    Ok(Some(DnsAnswer { time, name, ips: out }))
}

/// The longest `uuid` taken as one.
const MAX_UUID_LEN: usize = 64;

/// `s` if it follows `rule`; else nothing, counted.
fn valid<'s>(s: Option<&'s str>, rule: NameRule, cleaned: &mut Cleaned) -> Option<&'s str> {
    let s = s?;
    if rule.is_valid(s) {
        Some(s)
    } else {
        cleaned.dropped += 1;
        None
    }
}

fn is_l7(kind: &Scalar) -> bool {
    matches!(kind, Scalar::Str(s) if s == "L7") || matches!(kind, Scalar::Uint(2))
}

/// flow.proto L7FlowType: 1 REQUEST, 2 RESPONSE, 3 SAMPLE.
fn is_request(kind: &Scalar) -> bool {
    matches!(kind, Scalar::Str(s) if s == "REQUEST") || matches!(kind, Scalar::Uint(1))
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

/// An endpoint's metadata, and the cluster it says it belongs to. What breaks Kubernetes' name and
/// label rules is left out as if Hubble had not sent it, and counted in `cleaned`: a bad
/// namespace or pod name, each bad label, labels beyond [`MAX_LABELS`], a bad workload name.
fn endpoint<'e>(ep: &'e Endpoint<'_>, cleaned: &mut Cleaned) -> (ObservedEndpoint, Option<&'e str>) {
    let mut labels = Labels::new();
    let mut reserved = None;
    let mut cluster: Option<&'e str> = None;
    let mut label_ns: Option<&'e str> = None;
    for label in ep.labels.iter().flat_map(|l| &l.0) {
        let label = label.as_str();
        // `source:key=value`. A label without a source is taken as a Kubernetes label; keys and
        // values cannot contain ':', so the first ':' before any '=' ends the source.
        let (source, rest) = match (memchr(b':', label.as_bytes()), memchr(b'=', label.as_bytes())) {
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
                } else if !key.starts_with(CILIUM_PREFIX) {
                    if parse_label(key, value).is_ok() {
                        labels.insert(key.to_string(), value.to_string());
                    } else {
                        cleaned.dropped += 1;
                    }
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
    if labels.len() > MAX_LABELS {
        let first_over = labels.keys().nth(MAX_LABELS).cloned().unwrap_or_default();
        cleaned.dropped += labels.split_off(&first_over).len() as u32;
    }
    let nonempty = |s: &'e Option<Str>| s.as_ref().map(Str::as_str).filter(|s| !s.is_empty());
    let workload = ep.workloads.iter().flatten().find_map(|w| {
        let kind = w.kind.as_ref()?.as_str().parse::<WorkloadKind>().ok()?;
        let name = w.name.as_ref().map(Str::as_str).filter(|n| !n.is_empty())?;
        Some((kind, name))
    });
    let workload = workload.filter(|(kind, name)| {
        let ok = NameRule::for_workload(*kind).is_valid(name);
        cleaned.dropped += u32::from(!ok);
        ok
    });
    let namespace = valid(nonempty(&ep.namespace), NameRule::Dns1123Label, cleaned)
        .or_else(|| valid(label_ns.filter(|s| !s.is_empty()), NameRule::Dns1123Label, cleaned));
    let meta = ObservedEndpoint {
        namespace: namespace.map(str::to_string),
        pod_name: valid(nonempty(&ep.pod_name), NameRule::Dns1123Subdomain, cleaned).map(str::to_string),
        labels,
        reserved,
        workload: workload.map(|(kind, name)| (kind, name.to_string())),
        owner: Default::default(),
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A current-schema flow (Hubble 1.15+): uuid, workloads, is_reply.
    fn base() -> Value {
        json!({
            "time": "2026-03-01T10:00:00.5Z",
            "uuid": "4f1c0a6e-0000-4000-8000-000000000001",
            "verdict": "FORWARDED",
            "IP": {"source": "10.0.1.5", "destination": "10.0.2.7", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 51234, "destination_port": 8080, "flags": {"SYN": true}}},
            "source": {
                "ID": 12, "identity": 3456, "namespace": "shop", "pod_name": "web-7d9f-abcde",
                "labels": ["k8s:app=web", "k8s:io.cilium.k8s.policy.cluster=prod",
                           "k8s:io.cilium.k8s.policy.serviceaccount=web", "k8s:io.kubernetes.pod.namespace=shop",
                           "k8s:io.cilium.k8s.namespace.labels.team=a", "container:foo=bar"],
                "workloads": [{"name": "web", "kind": "Deployment"}]
            },
            "destination": {
                "identity": 789, "namespace": "shop", "pod_name": "cart-0",
                "labels": ["k8s:app=cart", "k8s:tier=backend", "k8s:io.cilium.k8s.policy.cluster=prod"],
                "workloads": [{"name": "cart", "kind": "StatefulSet"}]
            },
            "Type": "L3_L4",
            "node_name": "node-a",
            "is_reply": false,
            "destination_service": {"name": "cart", "namespace": "shop"},
            "traffic_direction": "EGRESS",
            "l7": {"http": {"headers": [{"key": "a", "value": "b"}]}},
            "Summary": "TCP Flags: SYN"
        })
    }

    fn with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v = base();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn remove(path: &'static str) -> impl FnOnce(&mut Value) {
        move |v| {
            let (parent, key) = path.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
        }
    }

    fn set(path: &'static str, value: Value) -> impl FnOnce(&mut Value) {
        move |v| *v.pointer_mut(path).unwrap() = value
    }

    fn flow(line: &[u8]) -> FlowRecord {
        match parse_hubble_line(line) {
            Ok(Item::Flow(f, _)) => f,
            other => panic!("expected a flow from {}, got {other:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn full_record() {
        let f = flow(&with(|_| {}));
        assert_eq!(f.time, "2026-03-01T10:00:00.5Z".parse::<Timestamp>().unwrap());
        assert_eq!(f.uuid.as_deref(), Some("4f1c0a6e-0000-4000-8000-000000000001"));
        assert_eq!(f.src_ip, "10.0.1.5".parse::<IpAddr>().unwrap());
        assert_eq!(f.src_port, Some(51234));
        assert_eq!(f.dst_ip, "10.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst_port.get(), 8080);
        assert_eq!(f.protocol, Protocol::Tcp);
        assert_eq!(f.verdict, Verdict::Forwarded);
        assert_eq!(f.node.as_deref(), Some("node-a"));
        assert_eq!(f.cluster.as_deref(), Some("prod"));
        assert_eq!(f.dst_service, Some(("shop".into(), "cart".into())));
        assert_eq!((f.process, f.bytes, f.packets), (None, None, None));
        let src = f.src_meta.unwrap();
        assert_eq!(src.namespace.as_deref(), Some("shop"));
        assert_eq!(src.pod_name.as_deref(), Some("web-7d9f-abcde"));
        // Cilium's own labels and other sources are gone; k8s: is stripped.
        assert_eq!(src.labels, Labels::from([("app".into(), "web".into())]));
        assert_eq!(src.reserved, None);
        assert_eq!(src.workload, Some((WorkloadKind::Deployment, "web".into())));
        let dst = f.dst_meta.unwrap();
        assert_eq!(dst.labels, Labels::from([("app".into(), "cart".into()), ("tier".into(), "backend".into())]));
        assert_eq!(dst.workload, Some((WorkloadKind::StatefulSet, "cart".into())));
    }

    #[test]
    fn skips_and_errors() {
        use SkipReason::*;
        type Want = Result<SkipReason, &'static str>;
        // (case, line, Ok(skip reason) | Err(part of the reason)); Ok(Reply) etc. Flows are below.
        let cases: Vec<(&str, Vec<u8>, Want)> = vec![
            ("blank", b"  \t ".to_vec(), Ok(Blank)),
            ("is_reply", with(set("/is_reply", json!(true))), Ok(Reply)),
            ("legacy reply", with(|v| v["reply"] = json!(true)), Ok(Reply)),
            (
                "reply wins over bad IP",
                with(|v| {
                    v["reply"] = json!(true);
                    v["IP"]["source"] = json!("nope");
                }),
                Ok(Reply),
            ),
            ("L7", with(set("/Type", json!("L7"))), Ok(NotL3L4)),
            (
                "SYN+ACK without is_reply",
                with(|v| {
                    v.as_object_mut().unwrap().remove("is_reply");
                    v["l4"]["TCP"]["flags"] = json!({"SYN": true, "ACK": true});
                }),
                Ok(Reply),
            ),
            (
                "L7 RESPONSE",
                with(|v| {
                    v["Type"] = json!("L7");
                    v["l7"] = json!({"type": "RESPONSE"});
                }),
                Ok(NotL3L4),
            ),
            ("SOCK", with(set("/Type", json!("SOCK"))), Ok(NotL3L4)),
            ("Type as number", with(set("/Type", json!(2))), Ok(NotL3L4)),
            (
                "L7 reply counts as L7",
                with(|v| {
                    v["Type"] = json!("L7");
                    v["is_reply"] = json!(true);
                }),
                Ok(NotL3L4),
            ),
            ("ICMPv4", with(set("/l4", json!({"ICMPv4": {"type": 8}}))), Ok(NoPorts)),
            ("ICMPv6", with(set("/l4", json!({"ICMPv6": {"type": 128}}))), Ok(NoPorts)),
            (
                "node status",
                br#"{"node_status":{"state":"NODE_CONNECTED"},"node_name":"n","time":"2026-03-01T10:00:00Z"}"#.to_vec(),
                Ok(NotAFlow),
            ),
            (
                "lost events",
                br#"{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":7}}"#.to_vec(),
                Ok(NotAFlow),
            ),
            ("empty object", b"{}".to_vec(), Ok(NotAFlow)),
            ("no IP", with(remove("/IP")), Err("no IP section")),
            ("no l4", with(remove("/l4")), Err("no l4 section")),
            ("no source address", with(remove("/IP/source")), Err("IP.source is missing")),
            (
                "bad address",
                with(set("/IP/destination", json!("10.0.0.300"))),
                Err(r#"IP.destination: "10.0.0.300" is not an IP address"#),
            ),
            ("port 0", with(set("/l4/TCP/destination_port", json!(0))), Err("l4.TCP.destination_port is 0 or missing")),
            ("port missing", with(remove("/l4/TCP/destination_port")), Err("l4.TCP.destination_port is 0 or missing")),
            (
                "port too big",
                with(set("/l4/TCP/destination_port", json!(70000))),
                Err("l4.TCP.destination_port: 70000 is not a valid port"),
            ),
            (
                "source port too big",
                with(set("/l4/TCP/source_port", json!(70000))),
                Err("l4.TCP.source_port: 70000 is not a valid port"),
            ),
            ("no time", with(remove("/time")), Err("no time")),
            ("bad time", with(set("/time", json!("yesterday"))), Err(r#"time: "yesterday" is not RFC 3339"#)),
            ("truncated", with(|_| {})[..300].to_vec(), Err("invalid JSON at column")),
            ("not an object", b" [1,2]".to_vec(), Err("expected a JSON object")),
            ("wrong type", with(set("/is_reply", json!("yes"))), Err("unexpected JSON at column")),
            ("invalid UTF-8", b"{\"uuid\":\"\xff\"}".to_vec(), Err("invalid UTF-8 at byte 10")),
        ];
        for (name, line, want) in cases {
            let got = parse_hubble_line(&line);
            match (&want, &got) {
                (Ok(reason), Ok(Item::Skipped(r))) if r == reason => {}
                (Err(part), Err(reason)) if reason.contains(part) => {}
                _ => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn flow_variants() {
        // (case, line, check)
        type Check = fn(&FlowRecord) -> bool;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("UDP", with(set("/l4", json!({"UDP": {"source_port": 5353, "destination_port": 53}}))), |f| {
                f.protocol == Protocol::Udp && f.dst_port.get() == 53
            }),
            ("SCTP", with(set("/l4", json!({"SCTP": {"source_port": 1, "destination_port": 2905}}))), |f| {
                f.protocol == Protocol::Sctp && f.src_port == Some(1)
            }),
            ("source port 0 is unknown", with(set("/l4/TCP/source_port", json!(0))), |f| f.src_port.is_none()),
            ("dropped is kept", with(set("/verdict", json!("DROPPED"))), |f| f.verdict == Verdict::Dropped),
            ("new verdict", with(set("/verdict", json!("SOMETHING_NEW"))), |f| f.verdict == Verdict::Unknown),
            ("verdict as number", with(set("/verdict", json!(5))), |f| f.verdict == Verdict::Redirected),
            ("no verdict", with(remove("/verdict")), |f| f.verdict == Verdict::Unknown),
            ("no Type", with(remove("/Type")), |_| true),
            ("UNKNOWN_TYPE", with(set("/Type", json!("UNKNOWN_TYPE"))), |_| true),
            ("is_reply false is a request", with(|v| v["l4"]["TCP"]["flags"] = json!({"ACK": true})), |f| {
                f.role == FlowRole::Request
            }),
            ("no is_reply, SYN: request", with(remove("/is_reply")), |f| f.role == FlowRole::Request),
            (
                "no is_reply, ACK: undecided",
                with(|v| {
                    v.as_object_mut().unwrap().remove("is_reply");
                    v["l4"]["TCP"]["flags"] = json!({"ACK": true, "PSH": true});
                }),
                |f| f.role == FlowRole::Undecided,
            ),
            (
                "no is_reply, UDP: undecided",
                with(|v| {
                    v.as_object_mut().unwrap().remove("is_reply");
                    v["l4"] = json!({"UDP": {"source_port": 53, "destination_port": 40000}});
                }),
                |f| f.role == FlowRole::Undecided,
            ),
            (
                "no is_reply, L7 REQUEST: request",
                with(|v| {
                    v.as_object_mut().unwrap().remove("is_reply");
                    v["Type"] = json!("L7");
                    v["l7"] = json!({"type": "REQUEST"});
                    v["l4"] = json!({"UDP": {"source_port": 40000, "destination_port": 53}});
                }),
                |f| f.role == FlowRole::Request,
            ),
            (
                "L7 REQUEST is a flow",
                with(|v| {
                    v["Type"] = json!("L7");
                    v["l7"] = json!({"type": "REQUEST", "http": {"method": "GET"}});
                }),
                |f| f.dst_port.get() > 0,
            ),
            ("IPv6", with(set("/IP", json!({"source": "fd00::1", "destination": "fd00::2"}))), |f| {
                f.src_ip.is_ipv6() && f.dst_ip.is_ipv6()
            }),
            ("no uuid (old schema)", with(remove("/uuid")), |f| f.uuid.is_none()),
            (
                "no endpoints",
                with(|v| {
                    v.as_object_mut().unwrap().remove("source");
                    v.as_object_mut().unwrap().remove("destination");
                }),
                |f| f.src_meta.is_none() && f.dst_meta.is_none() && f.cluster.is_none(),
            ),
            (
                "reserved labels",
                with(|v| {
                    v["source"] = json!({"identity": 1, "labels": ["reserved:host", "reserved:kube-apiserver"]});
                    v["destination"] =
                        json!({"identity": 2, "labels": ["reserved:world-ipv4", "cidr:0.0.0.0/0", "fqdn:example.com"]});
                }),
                |f| {
                    let (s, d) = (f.src_meta.as_ref().unwrap(), f.dst_meta.as_ref().unwrap());
                    s.reserved == Some(Reserved::KubeApiserver)
                        && d.reserved == Some(Reserved::World)
                        && d.labels.is_empty()
                },
            ),
            (
                "every reserved name",
                with(|v| {
                    v["source"] = json!({"labels": ["reserved:remote-node"]});
                    v["destination"] = json!({"labels": ["reserved:something-new"]});
                }),
                |f| {
                    f.src_meta.as_ref().unwrap().reserved == Some(Reserved::RemoteNode)
                        && f.dst_meta.as_ref().unwrap().reserved == Some(Reserved::Unknown)
                },
            ),
            ("label without value or source", with(set("/source/labels", json!(["k8s:flag", "app=x"]))), |f| {
                let l = &f.src_meta.as_ref().unwrap().labels;
                l.get("flag").map(String::as_str) == Some("") && l.get("app").map(String::as_str) == Some("x")
            }),
            (
                "escaped label is unescaped",
                String::from_utf8(with(|_| {})).unwrap().replace("k8s:app=web", r"k8s:app=w\u0065b").into_bytes(),
                |f| f.src_meta.as_ref().unwrap().labels.get("app").map(String::as_str) == Some("web"),
            ),
            ("namespace from label", with(remove("/source/namespace")), |f| {
                f.src_meta.as_ref().unwrap().namespace.as_deref() == Some("shop")
            }),
            (
                "ingress: cluster of the destination",
                with(|v| {
                    v["traffic_direction"] = json!("INGRESS");
                    v["destination"]["labels"] = json!(["k8s:io.cilium.k8s.policy.cluster=west"]);
                }),
                |f| f.cluster.as_deref() == Some("west"),
            ),
            ("cluster_name field wins", with(|v| v["source"]["cluster_name"] = json!("east")), |f| {
                f.cluster.as_deref() == Some("east")
            }),
            (
                "unknown workload kind is dropped",
                with(set("/source/workloads", json!([{"name": "x", "kind": "Rollout"}]))),
                |f| f.src_meta.as_ref().unwrap().workload.is_none(),
            ),
            ("service without name", with(set("/destination_service", json!({"namespace": "shop"}))), |f| {
                f.dst_service.is_none()
            }),
            (
                "lowerCamel names",
                with(|v| {
                    v["l4"] = json!({"TCP": {"sourcePort": 1000, "destinationPort": 443}});
                    v["isReply"] = v["is_reply"].take();
                    v.as_object_mut().unwrap().remove("is_reply");
                    v["source"]["podName"] = v["source"]["pod_name"].take();
                    v["source"].as_object_mut().unwrap().remove("pod_name");
                }),
                |f| {
                    f.dst_port.get() == 443
                        && f.src_port == Some(1000)
                        && f.src_meta.as_ref().unwrap().pod_name.as_deref() == Some("web-7d9f-abcde")
                },
            ),
        ];
        for (name, line, check) in cases {
            let f = flow(&line);
            assert!(check(&f), "{name}: {f:#?}");
        }
    }

    #[test]
    fn bad_names_and_labels_are_left_out_and_counted() {
        let many: Vec<String> = (0..100).map(|i| format!("k8s:k{i:03}=v")).collect();
        let line = with(|v| {
            v["source"]["namespace"] = json!("Shop_X");
            v["source"]["pod_name"] = json!("<img src=x onerror=alert(1)>");
            v["source"]["labels"] = json!([
                "k8s:app=web",
                "k8s:tier=<img src=x onerror=alert(1)>",
                "k8s:a:b=c",
                "k8s:=x",
                "k8s:rtl=x\u{202e}",
                "k8s:zw\u{200b}=x",
                "k8s:io.kubernetes.pod.namespace=shop"
            ]);
            v["source"]["workloads"] = json!([{"name": "UPPER", "kind": "Deployment"}]);
            v["destination"]["labels"] = json!(many);
            v["destination_service"] = json!({"name": "Cart!", "namespace": "shop"});
            v["node_name"] = json!("node/a");
        });
        let Ok(Item::Flow(f, cleaned)) = parse_hubble_line(&line) else { panic!("not a flow") };
        let src = f.src_meta.as_ref().unwrap();
        // The bad namespace field is as if absent: the namespace label says it.
        assert_eq!(src.namespace.as_deref(), Some("shop"));
        assert_eq!((src.pod_name.as_deref(), &src.workload), (None, &None));
        assert_eq!(src.labels, Labels::from([("app".to_string(), "web".to_string())]));
        let dst = f.dst_meta.as_ref().unwrap();
        assert_eq!(dst.labels.len(), MAX_LABELS);
        assert_eq!((f.dst_service.as_ref(), f.node.as_deref()), (None, None));
        // namespace, pod, 5 labels, workload; 36 labels over the cap; Service; node.
        assert_eq!(cleaned, Cleaned { dropped: 1 + 1 + 5 + 1 + 36 + 1 + 1, truncated: 0 });
        let Ok(Item::Flow(_, cleaned)) = parse_hubble_line(&with(|_| {})) else { panic!() };
        assert!(cleaned.is_empty());
    }

    #[test]
    fn a_repeated_endpoint_is_converted_once_and_counted_every_time() {
        let line = with(|v| {
            v["source"]["labels"] = json!(["k8s:app=web", "k8s:tier=<b>", "k8s:other=x"]);
            v["uuid"] = json!("first");
        });
        let again = with(|v| {
            v["source"]["labels"] = json!(["k8s:app=web", "k8s:tier=<b>", "k8s:other=x"]);
            v["uuid"] = json!("second");
        });
        let Ok(Item::Flow(a, ca)) = parse_hubble_line(&line) else { panic!("not a flow") };
        let Ok(Item::Flow(b, cb)) = parse_hubble_line(&again) else { panic!("not a flow") };
        // The second flow shares the first one's conversion of the same endpoint text...
        assert!(Arc::ptr_eq(a.src_meta.as_ref().unwrap(), b.src_meta.as_ref().unwrap()));
        assert_eq!(a.src_meta.as_ref().unwrap().labels.len(), 2);
        // ...and its bad label is still counted for it.
        assert_eq!((ca.dropped, cb.dropped), (1, 1));
        // A different text is a different endpoint, and a broken one is its record's error,
        // every time it comes (errors are not kept).
        let other = with(|v| v["source"]["labels"] = json!(["k8s:app=api"]));
        let Ok(Item::Flow(c, _)) = parse_hubble_line(&other) else { panic!("not a flow") };
        assert_eq!(c.src_meta.as_ref().unwrap().labels.get("app").map(String::as_str), Some("api"));
        let broken = with(|v| v["source"]["labels"] = json!(7));
        for _ in 0..2 {
            let err = parse_hubble_line(&broken).unwrap_err();
            assert!(err.starts_with("source: "), "{err}");
        }
    }

    #[test]
    fn envelope() {
        let inner = with(|v| {
            v.as_object_mut().unwrap().remove("node_name");
            v.as_object_mut().unwrap().remove("time");
        });
        let line = format!(
            r#"{{"flow":{},"node_name":"outer-node","time":"2026-03-01T11:00:00Z"}}"#,
            String::from_utf8(inner).unwrap()
        );
        let f = flow(line.as_bytes());
        assert_eq!(f.node.as_deref(), Some("outer-node"));
        assert_eq!(f.time, "2026-03-01T11:00:00Z".parse::<Timestamp>().unwrap());
        // The flow's own fields win over the envelope's.
        let line = format!(r#"{{"flow":{},"node_name":"outer"}}"#, String::from_utf8(with(|_| {})).unwrap());
        assert_eq!(flow(line.as_bytes()).node.as_deref(), Some("node-a"));
    }

    /// The first lines of the 10-flows sample, checked field by field against the file.
    #[test]
    fn real_sample_lines() {
        let text = include_str!("../../tests/data/hubble/hubble-otel_basic-sample-10-flows.json");
        let lines: Vec<&str> = text.lines().collect();
        // Line 1 carries the legacy `reply: true` only.
        assert_eq!(parse_hubble_line(lines[0].as_bytes()), Ok(Item::Skipped(SkipReason::Reply)));
        let f = flow(lines[1].as_bytes());
        assert_eq!(f.time, "2021-06-16T16:52:13.136893596Z".parse::<Timestamp>().unwrap());
        assert_eq!((f.src_ip.to_string(), f.src_port), ("10.0.2.1".to_string(), Some(42044)));
        assert_eq!((f.dst_ip.to_string(), f.dst_port.get()), ("10.0.2.16".to_string(), 15020));
        assert_eq!(f.node.as_deref(), Some("gke-ilya-otel-demo-1-ilya-otel-demo-1-6114bb84-zr1l"));
        // INGRESS: the destination's cluster label.
        assert_eq!(f.cluster.as_deref(), Some("default"));
        assert_eq!(f.uuid, None);
        assert_eq!(f.src_meta.as_ref().unwrap().reserved, Some(Reserved::Host));
        let dst = f.dst_meta.unwrap();
        assert_eq!(dst.namespace.as_deref(), Some("bookinfo"));
        assert_eq!(dst.pod_name.as_deref(), Some("reviews-v1-545db77b95-s6jb8"));
        let want: Labels = [("app", "reviews"), ("security.istio.io/tlsMode", "istio"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(dst.labels, want);
    }

    #[test]
    fn the_reply_shortcut_agrees_with_the_full_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
        let mut shortcut = 0;
        for entry in std::fs::read_dir(&dir).expect("the Hubble samples beside the repository") {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            for line in std::fs::read(&path).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if is_plain_reply(line) {
                    shortcut += 1;
                    assert_eq!(
                        parse_full(line),
                        Ok(Item::Skipped(SkipReason::Reply)),
                        "{}",
                        String::from_utf8_lossy(line)
                    );
                }
                assert_eq!(parse_hubble_line(line), parse_full(line));
            }
        }
        assert!(shortcut > 50, "the samples hold replies in the compact form ({shortcut})");
    }

    /// Every line of the real captures, as the reader hands them over.
    fn real_lines() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hubble");
        let mut out = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json")) {
            let data = std::fs::read(&path).unwrap();
            out.extend(data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
        }
        out
    }

    #[test]
    fn the_fast_reader_reads_every_real_record_as_serde_does() {
        let lines = real_lines();
        assert!(lines.len() > 1000, "{} lines", lines.len());
        for line in &lines {
            assert_eq!(check_fast_parse(line), Ok(true), "{}", String::from_utf8_lossy(line));
        }
        // And the base record of these tests, in each of its variants below.
        assert_eq!(check_fast_parse(&with(|_| {})), Ok(true));
    }

    /// Every name serde's structs read, in both spellings where there are two, so that a name
    /// only one parser knows shows here: the fast reader would skip it and read a different record.
    #[test]
    fn every_field_name_reads_the_same_in_both_parsers() {
        let ports = |src: &str, dst: &str| json!({src: 40000, dst: 53, "flags": {"SYN": true, "ACK": false}});
        let spell = |v: &mut Value, camel: bool| {
            let n = |snake: &'static str, lower: &'static str| if camel { lower } else { snake };
            let o = v.as_object_mut().unwrap();
            o.remove("l4");
            o.insert(
                "l4".into(),
                json!({"UDP": ports(n("source_port", "sourcePort"), n("destination_port", "destinationPort"))}),
            );
            o.remove("Type");
            o.insert(n("Type", "type").into(), json!("L3_L4"));
            let moved = [
                ("node_name", "nodeName", json!("node-a")),
                ("is_reply", "isReply", json!(false)),
                ("destination_service", "destinationService", json!({"name": "cart", "namespace": "shop"})),
                ("traffic_direction", "trafficDirection", json!("INGRESS")),
                ("destination_names", "destinationNames", json!(["api.example.com"])),
                ("source_names", "sourceNames", json!(["web.example.com"])),
            ];
            for (snake, lower, value) in moved {
                o.remove(snake);
                o.insert(n(snake, lower).into(), value);
            }
        };
        for camel in [false, true] {
            let bare = with(|v| spell(v, camel));
            let mut envelope = base();
            spell(&mut envelope, camel);
            envelope["verdict"] = json!(1);
            let envelope = json!({"flow": envelope, "node_name": "node-b", "time": "2026-03-01T10:00:01Z"});
            let tcp = with(|v| v["l4"] = json!({"TCP": ports("source_port", "destination_port")}));
            let sctp = with(|v| v["l4"] = json!({"SCTP": ports("source_port", "destination_port")}));
            let dns = dns_response("api.example.com.", json!(["1.2.3.4"]), Some(0));
            for line in [bare, serde_json::to_vec(&envelope).unwrap(), tcp, sctp, dns.to_string().into_bytes()] {
                assert_eq!(check_fast_parse(&line), Ok(true), "{}", String::from_utf8_lossy(&line));
            }
        }
        // And each name is read, not skipped: the record says what was written.
        let f = flow(&with(|v| spell(v, true)));
        assert_eq!((f.src_port, f.dst_port.get(), f.protocol), (Some(40000), 53, Protocol::Udp));
        assert_eq!(f.node.as_deref(), Some("node-a"));
        assert_eq!(f.dst_service, Some(("shop".into(), "cart".into())));
        assert_eq!((f.dst_names.len(), f.src_names.len(), f.role), (1, 1, FlowRole::Request));
    }

    /// Damaged and unusual records: whatever the fast reader accepts, serde reads the same way;
    /// the rest goes to serde. The mutations are those a JSON scanner gets wrong: truncation, a
    /// byte deleted, a structural or escape byte put in, whitespace, a key given twice.
    #[test]
    fn the_fast_reader_accepts_only_what_serde_reads_the_same() {
        let mut lines: Vec<Vec<u8>> = real_lines().into_iter().step_by(97).collect();
        lines.push(with(|_| {}));
        lines.push(with(set("/l4", json!({"UDP": {"sourcePort": 53, "destinationPort": 5353}}))));
        lines.push(dns_response("api.example.com.", json!(["1.2.3.4"]), None).to_string().into_bytes());
        let inserts: &[&[u8]] = &[
            b"\"",
            b"\\",
            b"\\u00e9",
            b"\\x",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"0",
            b"-",
            b".",
            b"e",
            b"1e5",
            b"null",
            b"true",
            b" ",
            b"\t",
            b"\x01",
            b"\"time\":\"2026-01-01T00:00:00Z\",",
            b"\"is_reply\":false,",
            b"\"l4\":{},",
            b"\"IP\":null,",
            b"\"flow\":{},",
            b"99999999999999999999",
        ];
        let (mut accepted, mut declined) = (0, 0);
        let mut check = |line: &[u8]| match check_fast_parse(line) {
            Ok(true) => accepted += 1,
            Ok(false) => declined += 1,
            Err(e) => panic!("{e}\nline: {}", String::from_utf8_lossy(line)),
        };
        for line in &lines {
            // Every seventh byte, and every place a key may start.
            let keys = (1..line.len()).filter(|&i| matches!(line[i - 1], b'{' | b','));
            let mut at_all: Vec<usize> = (0..line.len()).step_by(7).chain(keys).collect();
            at_all.sort();
            at_all.dedup();
            for at in at_all {
                check(&line[..at]);
                let mut cut = line.clone();
                cut.remove(at);
                check(&cut);
                for ins in inserts {
                    let mut l = line.clone();
                    l.splice(at..at, ins.iter().copied());
                    check(&l);
                }
            }
        }
        // Both sides of the contract were exercised.
        assert!(accepted > 1000 && declined > 1000, "accepted {accepted}, declined {declined}");
    }

    #[test]
    fn the_reply_shortcut_answers_as_the_parse_does() {
        let reply = with(|v| v["is_reply"] = json!(true));
        let request = with(|v| v["is_reply"] = json!(false));
        let unsaid = with(|v| v.as_object_mut().unwrap().retain(|k, _| k != "is_reply"));
        let untyped = with(|v| {
            v["is_reply"] = json!(true);
            v.as_object_mut().unwrap().retain(|k, _| k != "Type");
        });
        // In a string the bytes are escaped and cannot match.
        let quoted = with(|v| {
            v["is_reply"] = json!(false);
            v["Summary"] = json!("\"is_reply\":true \"Type\":\"L3_L4\"");
        });
        // Further from the end than the window searched first.
        let far = with(|v| {
            v["is_reply"] = json!(true);
            v["zz_padding"] = json!("x".repeat(2 * REPLY_TAIL));
        });
        let far_request = with(|v| v["zz_padding"] = json!("x".repeat(2 * REPLY_TAIL)));
        let got: Vec<bool> =
            [&reply, &request, &unsaid, &untyped, &quoted, &far, &far_request].map(|l| is_plain_reply(l)).to_vec();
        assert_eq!(got, [true, false, false, false, false, true, false]);
        for line in [reply, request, unsaid, untyped, quoted, far, far_request] {
            assert_eq!(parse_hubble_line(&line), parse_full(&line));
        }
    }

    /// A DNS RESPONSE as Cilium's DNS proxy reports it (the shape of the real DNS sample's).
    fn dns_response(query: &str, ips: Value, rcode: Option<u64>) -> Value {
        let mut dns = json!({"query": query, "ips": ips, "ttl": 30, "observation_source": "proxy", "qtypes": ["A"]});
        if let Some(r) = rcode {
            dns["rcode"] = json!(r);
        }
        json!({"flow": {
            "time": "2026-11-25T10:00:27Z", "verdict": "FORWARDED",
            "IP": {"source": "10.96.0.10", "destination": "10.244.0.11", "ipVersion": "IPv4"},
            "l4": {"UDP": {"source_port": 53, "destination_port": 40123}},
            "Type": "L7", "l7": {"type": "RESPONSE", "dns": dns},
            "is_reply": true, "traffic_direction": "EGRESS"
        }})
    }

    #[test]
    fn dns_answers_name_their_addresses() {
        let parse = |v: &Value| parse_hubble_line(v.to_string().as_bytes());
        let Ok(Item::Names(a)) = parse(&dns_response("API.example.com.", json!(["192.229.173.207", "::1"]), None))
        else {
            panic!("a DNS answer")
        };
        assert_eq!(a.name.as_str(), "api.example.com");
        assert_eq!(a.ips, ["192.229.173.207".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(a.time, "2026-11-25T10:00:27Z".parse::<Timestamp>().unwrap());
        // NXDOMAIN, or no address: nothing to learn, skipped as L7 records are.
        for v in [dns_response("x.example.com.", json!(["1.2.3.4"]), Some(3)), dns_response("x.", json!([]), None)] {
            assert_eq!(parse(&v), Ok(Item::Skipped(SkipReason::NotL3L4)), "{v}");
        }
        // A DNS REQUEST is still a flow of its connection.
        let mut req = dns_response("x.example.com.", json!(null), None);
        req["flow"]["l7"]["type"] = json!("REQUEST");
        req["flow"]["is_reply"] = json!(false);
        assert!(matches!(parse(&req), Ok(Item::Flow(..))));
        // A damaged answer says where and why.
        for (v, want) in [
            (dns_response("*.evil", json!(["1.2.3.4"]), None), "l7.dns.query: \"*.evil\" is not a valid DNS name"),
            (dns_response("a.example", json!(["1.2.3.4", "x"]), None), "l7.dns.ips[1]: \"x\" is not an IP address"),
        ] {
            let e = parse(&v).unwrap_err();
            assert!(e.starts_with(want), "{e}");
        }
        // At most 32 addresses of one answer.
        let many: Vec<String> = (0..100).map(|i| format!("192.0.2.{i}")).collect();
        let Ok(Item::Names(a)) = parse(&dns_response("cdn.example", json!(many), None)) else { panic!() };
        assert_eq!(a.ips.len(), MAX_ADDRESSES_PER_ANSWER);
    }

    #[test]
    fn destination_names_are_kept_checked_and_capped() {
        let mut v = base();
        v["destination_names"] = json!(["API.example.com", "*.bad", "b.example.com", "api.example.com"]);
        v["source_names"] = json!(["client.example.org"]);
        let Ok(Item::Flow(f, cleaned)) = parse_hubble_line(v.to_string().as_bytes()) else { panic!() };
        let names = |ns: &[DnsName]| ns.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&f.dst_names), ["api.example.com", "b.example.com"]);
        assert_eq!(names(&f.src_names), ["client.example.org"]);
        assert_eq!(cleaned.dropped, 1, "the wildcard");
        let many: Vec<String> = (0..20).map(|i| format!("h{i:02}.example")).collect();
        v["destination_names"] = json!(many);
        let Ok(Item::Flow(f, cleaned)) = parse_hubble_line(v.to_string().as_bytes()) else { panic!() };
        assert_eq!(f.dst_names.len(), MAX_NAMES_PER_ADDRESS);
        assert_eq!(cleaned.dropped, 12);
    }

    #[test]
    fn the_real_dns_sample_answers_with_service_addresses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/hubble/hubble-otel_basic-sample-330-dns-flows.json");
        let mut names = crate::dns::Names::new();
        for line in std::fs::read(&path).unwrap().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(Item::Names(a)) = parse_hubble_line(line) {
                names.add_answer(&a);
            }
        }
        // jq: [.flow.l7.dns | select(.ips) | {query, ips}] | unique
        let zipkin: DnsName = "zipkin.istio-system.svc.cluster.local".parse().unwrap();
        assert_eq!(names.addresses_of(&zipkin), std::collections::BTreeSet::from(["10.160.4.20".parse().unwrap()]));
        assert_eq!(names.len(), 8, "eight Service addresses were looked up");
    }
}
