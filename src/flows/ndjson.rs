//! Flowgate's own flow format: one JSON object per line, for collectors other than Hubble.
//!
//! ```json
//! {"time":"2026-01-02T03:04:05Z","src_ip":"10.0.0.1","src_port":51234,"dst_ip":"10.0.0.2","dst_port":443,"protocol":"TCP"}
//! ```
//!
//! Required: `time` (RFC 3339), `src_ip`, `dst_ip`, `dst_port`, `protocol` (TCP, UDP or SCTP, any
//! case). Optional: `src_port` (0 means unknown), `process`, `node`, `cluster`, `bytes`,
//! `packets`, `verdict` (Hubble's names; default FORWARDED), `is_reply` (true: the answering
//! direction, skipped like Hubble's replies) and `tcp_flags` (`"SYN"`, `"SYN,ACK"`, ...: SYN+ACK is
//! a reply, SYN alone a request, other flags leave the direction undecided). A record with neither
//! is a request: socket-level collectors report connections from the side that opened them.
//! Unknown fields are ignored; `null` counts as absent. Numbers may also be given as strings of
//! digits. Every error names its field. A `process` longer than [`MAX_PROCESS_LEN`] bytes is cut
//! short (ending with `…`); a `node` or `cluster` that is not a DNS-1123 subdomain is left out.
//! Both are counted on the record ([`Cleaned`]), which still becomes a flow. `dst_names` lists the
//! DNS names the destination address was resolved from (as Hubble's `destination_names` does),
//! for a collector that sees the lookups; a name that is not one is left out and counted too.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::Deserialize;

use super::json::{List, Scalar, is_blank, json_reason, object, utf8};
use super::{Cleaned, Item, MAX_PROCESS_LEN, SkipReason, cap_text};
use crate::dns::MAX_NAMES_PER_ADDRESS;
use crate::model::{DnsName, FlowRecord, FlowRole, NameRule, Port, Protocol, Verdict};

/// Every field as a raw JSON value, so that the checks below (not serde) word the errors.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    time: Option<Scalar<'a>>,
    #[serde(borrow)]
    src_ip: Option<Scalar<'a>>,
    #[serde(borrow)]
    src_port: Option<Scalar<'a>>,
    #[serde(borrow)]
    dst_ip: Option<Scalar<'a>>,
    #[serde(borrow)]
    dst_port: Option<Scalar<'a>>,
    #[serde(borrow)]
    protocol: Option<Scalar<'a>>,
    #[serde(borrow)]
    process: Option<Scalar<'a>>,
    #[serde(borrow)]
    node: Option<Scalar<'a>>,
    #[serde(borrow)]
    cluster: Option<Scalar<'a>>,
    #[serde(borrow)]
    bytes: Option<Scalar<'a>>,
    #[serde(borrow)]
    packets: Option<Scalar<'a>>,
    #[serde(borrow)]
    verdict: Option<Scalar<'a>>,
    #[serde(borrow)]
    is_reply: Option<Scalar<'a>>,
    #[serde(borrow)]
    tcp_flags: Option<Scalar<'a>>,
    #[serde(borrow)]
    dst_names: Option<List<'a>>,
}

/// Parses one Flowgate NDJSON record. Blank lines are skipped; everything else is a flow or an
/// error.
pub fn parse_ndjson_line(line: &[u8]) -> Result<Item, String> {
    if is_blank(line) {
        return Ok(Item::Skipped(SkipReason::Blank));
    }
    let text = object(utf8(line)?)?;
    let raw: Raw = serde_json::from_str(text).map_err(|e| json_reason(&e))?;
    convert(raw)
}

/// The record's direction: `None` for a reply.
fn role(is_reply: Option<Scalar<'_>>, flags: Option<Scalar<'_>>) -> Result<Option<FlowRole>, String> {
    match present(is_reply) {
        Some(Scalar::Bool(true)) => return Ok(None),
        Some(Scalar::Bool(false)) => return Ok(Some(FlowRole::Request)),
        Some(other) => return Err(format!("is_reply: expected true or false, found {}", other.describe())),
        None => {}
    }
    let flags = match present(flags) {
        None => return Ok(Some(FlowRole::Request)),
        Some(Scalar::Str(s)) => s,
        Some(other) => {
            return Err(format!("tcp_flags: expected a string such as \"SYN,ACK\", found {}", other.describe()));
        }
    };
    let (mut syn, mut ack) = (false, false);
    for f in flags.split([',', '|', ' ']).filter(|f| !f.is_empty()) {
        match f.to_ascii_uppercase().as_str() {
            "SYN" => syn = true,
            "ACK" => ack = true,
            "FIN" | "RST" | "PSH" | "URG" | "ECE" | "CWR" | "NS" => {}
            _ => {
                return Err(format!("tcp_flags: {f:?} is not a TCP flag (SYN, ACK, FIN, RST, PSH, URG, ECE, CWR, NS)"));
            }
        }
    }
    Ok(Some(match (syn, ack) {
        (true, true) => return Ok(None),
        (true, false) => FlowRole::Request,
        _ => FlowRole::Undecided,
    }))
}

fn convert(r: Raw<'_>) -> Result<Item, String> {
    let time = required(r.time, "time")?;
    let time: Timestamp = match &time {
        Scalar::Str(s) => s.parse().map_err(|_| format!("time: {s:?} is not RFC 3339"))?,
        other => return Err(format!("time: {} is not RFC 3339", other.describe())),
    };
    let src_ip = ip(required(r.src_ip, "src_ip")?, "src_ip")?;
    let dst_ip = ip(required(r.dst_ip, "dst_ip")?, "dst_ip")?;
    let dst_port = port(&required(r.dst_port, "dst_port")?, "dst_port")?;
    let src_port = match present(r.src_port) {
        None => None,
        Some(p) if p.as_u64() == Some(0) => None,
        Some(p) => Some(port(&p, "src_port")?.get()),
    };
    let protocol = match required(r.protocol, "protocol")? {
        Scalar::Str(s) => s.parse::<Protocol>().map_err(|_| format!("protocol: {s:?} is not TCP, UDP or SCTP"))?,
        other => return Err(format!("protocol: {} is not TCP, UDP or SCTP", other.describe())),
    };
    let verdict = match present(r.verdict) {
        None => Verdict::Forwarded,
        Some(Scalar::Str(s)) => Verdict::parse_lenient(&s),
        Some(other) => return Err(format!("verdict: expected a string, found {}", other.describe())),
    };
    let Some(role) = role(r.is_reply, r.tcp_flags)? else {
        return Ok(Item::Skipped(SkipReason::Reply));
    };
    let mut cleaned = Cleaned::default();
    let process = text(r.process, "process")?.map(|p| {
        let (p, cut) = cap_text(p, MAX_PROCESS_LEN);
        cleaned.truncated += u32::from(cut);
        p
    });
    let mut name = |s: Option<String>| {
        let ok = s.as_deref().is_none_or(|s| NameRule::Dns1123Subdomain.is_valid(s));
        cleaned.dropped += u32::from(!ok);
        s.filter(|_| ok)
    };
    let node = name(text(r.node, "node")?);
    let cluster = name(text(r.cluster, "cluster")?);
    let dst_names = dns_names(r.dst_names, &mut cleaned)?;
    let flow = FlowRecord {
        time,
        uuid: None,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol,
        verdict,
        process,
        node,
        cluster,
        bytes: count(r.bytes, "bytes")?,
        packets: count(r.packets, "packets")?,
        src_meta: None,
        dst_meta: None,
        dst_service: None,
        role,
        dst_names,
        src_names: Vec::new(),
    };
    Ok(Item::Flow(flow, cleaned))
}

/// `dst_names`: a list of strings. A string that is no DNS name is left out (the flow is still
/// good, as with a bad node name), and so is every name past the smallest
/// [`MAX_NAMES_PER_ADDRESS`]; both are counted on the record.
fn dns_names(raw: Option<List<'_>>, cleaned: &mut Cleaned) -> Result<Vec<DnsName>, String> {
    let items = match raw {
        None | Some(List::Not(Scalar::Null)) => return Ok(Vec::new()),
        Some(List::Items(items)) => items,
        Some(List::Not(other)) => {
            return Err(format!("dst_names: expected a list of DNS names, found {}", other.describe()));
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Scalar::Str(s) => match DnsName::parse(&s) {
                Ok(n) => out.push(n),
                Err(_) => cleaned.dropped += 1,
            },
            other => return Err(format!("dst_names[{i}]: expected a string, found {}", other.describe())),
        }
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_NAMES_PER_ADDRESS {
        cleaned.dropped += (out.len() - MAX_NAMES_PER_ADDRESS) as u32;
        out.truncate(MAX_NAMES_PER_ADDRESS);
    }
    Ok(out)
}

/// `null` is how many JSON writers spell "not set".
fn present(v: Option<Scalar<'_>>) -> Option<Scalar<'_>> {
    v.filter(|v| *v != Scalar::Null)
}

fn required<'a>(v: Option<Scalar<'a>>, field: &str) -> Result<Scalar<'a>, String> {
    present(v).ok_or_else(|| format!("missing field {field}"))
}

fn ip(v: Scalar<'_>, field: &str) -> Result<IpAddr, String> {
    match &v {
        Scalar::Str(s) => s.parse().map_err(|_| format!("{field}: {s:?} is not an IP address")),
        other => Err(format!("{field}: {} is not an IP address", other.describe())),
    }
}

fn port(v: &Scalar<'_>, field: &str) -> Result<Port, String> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .and_then(Port::new)
        .ok_or_else(|| format!("{field}: {} is not a valid port", v.describe()))
}

fn count(v: Option<Scalar<'_>>, field: &str) -> Result<Option<u64>, String> {
    match present(v) {
        None => Ok(None),
        Some(v) => {
            v.as_u64().map(Some).ok_or_else(|| format!("{field}: {} is not a non-negative integer", v.describe()))
        }
    }
}

fn text(v: Option<Scalar<'_>>, field: &str) -> Result<Option<String>, String> {
    match present(v) {
        None => Ok(None),
        Some(Scalar::Str(s)) => Ok((!s.is_empty()).then(|| s.into_owned())),
        Some(other) => Err(format!("{field}: expected a string, found {}", other.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"time":"2026-01-02T03:04:05Z","src_ip":"10.0.0.1","src_port":51234,"dst_ip":"10.0.0.2","dst_port":443,"protocol":"TCP"}"#;

    /// `GOOD` with one field replaced (or removed, for `None`).
    fn with(field: &str, value: Option<&str>) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        match value {
            Some(raw) => v.insert(field.to_string(), serde_json::from_str(raw).unwrap()),
            None => v.remove(field),
        };
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn minimal_record() {
        let Ok(Item::Flow(f, _)) = parse_ndjson_line(GOOD.as_bytes()) else { panic!() };
        assert_eq!(f.time, "2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap());
        assert_eq!(f.src_ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(f.src_port, Some(51234));
        assert_eq!(f.dst_ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst_port.get(), 443);
        assert_eq!(f.protocol, Protocol::Tcp);
        assert_eq!(f.verdict, Verdict::Forwarded);
        assert_eq!((f.uuid, f.process, f.node, f.cluster, f.bytes, f.packets), (None, None, None, None, None, None));
        assert_eq!((f.src_meta, f.dst_meta, f.dst_service), (None, None, None));
    }

    #[test]
    fn optional_fields() {
        let line = r#"{"time":"2026-01-02T03:04:05.123+01:00","src_ip":"fd00::1","dst_ip":"fd00::2","dst_port":"53",
            "protocol":"udp","process":"coredns","node":"n1","cluster":"prod","bytes":1200,"packets":"3",
            "verdict":"dropped","extra":{"ignored":[1,2]}}"#
            .replace('\n', "");
        let Ok(Item::Flow(f, _)) = parse_ndjson_line(line.as_bytes()) else { panic!() };
        assert_eq!(f.time, "2026-01-02T02:04:05.123Z".parse::<Timestamp>().unwrap());
        assert_eq!(f.src_port, None);
        assert_eq!((f.dst_port.get(), f.protocol), (53, Protocol::Udp));
        assert_eq!(f.process.as_deref(), Some("coredns"));
        assert_eq!(f.node.as_deref(), Some("n1"));
        assert_eq!(f.cluster.as_deref(), Some("prod"));
        assert_eq!((f.bytes, f.packets), (Some(1200), Some(3)));
        assert_eq!(f.verdict, Verdict::Dropped);
    }

    #[test]
    fn direction_fields() {
        use FlowRole::*;
        // (field, value, Ok(Some(role)) | Ok(None) for a reply | Err(part of the reason))
        type Case<'a> = (&'a str, &'a str, Result<Option<FlowRole>, &'a str>);
        let cases: &[Case] = &[
            ("is_reply", "false", Ok(Some(Request))),
            ("is_reply", "true", Ok(None)),
            ("is_reply", "null", Ok(Some(Request))),
            ("is_reply", r#""yes""#, Err(r#"is_reply: expected true or false, found "yes""#)),
            ("tcp_flags", r#""SYN""#, Ok(Some(Request))),
            ("tcp_flags", r#""syn,ack""#, Ok(None)),
            ("tcp_flags", r#""ACK|PSH""#, Ok(Some(Undecided))),
            ("tcp_flags", r#""FIN ACK""#, Ok(Some(Undecided))),
            ("tcp_flags", r#""SYN,BOGUS""#, Err(r#"tcp_flags: "BOGUS" is not a TCP flag"#)),
            ("tcp_flags", "[1]", Err("tcp_flags: expected a string")),
        ];
        for (field, value, want) in cases {
            let got = parse_ndjson_line(with(field, Some(value)).as_bytes());
            match (want, &got) {
                (Ok(Some(role)), Ok(Item::Flow(f, _))) if f.role == *role => {}
                (Ok(None), Ok(Item::Skipped(SkipReason::Reply))) => {}
                (Err(part), Err(reason)) if reason.contains(part) => {}
                _ => panic!("{field}={value}: want {want:?}, got {got:?}"),
            }
        }
        // is_reply wins over the flags.
        let line = with("is_reply", Some("false")).replace('}', r#","tcp_flags":"SYN,ACK"}"#);
        assert!(matches!(parse_ndjson_line(line.as_bytes()), Ok(Item::Flow(f, _)) if f.role == Request));
    }

    #[test]
    fn field_rules() {
        // (field, replacement JSON or None to remove, Ok(()) or the exact error)
        let cases: &[(&str, Option<&str>, Result<(), &str>)] = &[
            ("protocol", Some(r#""sctp""#), Ok(())),
            ("protocol", Some(r#""ICMP""#), Err(r#"protocol: "ICMP" is not TCP, UDP or SCTP"#)),
            ("protocol", Some("6"), Err("protocol: 6 is not TCP, UDP or SCTP")),
            ("protocol", None, Err("missing field protocol")),
            ("src_ip", None, Err("missing field src_ip")),
            ("src_ip", Some("null"), Err("missing field src_ip")),
            ("src_ip", Some(r#""10.0.0.256""#), Err(r#"src_ip: "10.0.0.256" is not an IP address"#)),
            ("dst_ip", Some("167772161"), Err("dst_ip: 167772161 is not an IP address")),
            ("dst_port", Some("0"), Err("dst_port: 0 is not a valid port")),
            ("dst_port", Some("65536"), Err("dst_port: 65536 is not a valid port")),
            ("dst_port", Some("-1"), Err("dst_port: -1 is not a valid port")),
            ("dst_port", Some("80.5"), Err("dst_port: 80.5 is not a valid port")),
            ("dst_port", Some(r#""http""#), Err(r#"dst_port: "http" is not a valid port"#)),
            ("dst_port", None, Err("missing field dst_port")),
            ("src_port", Some("0"), Ok(())),
            ("src_port", None, Ok(())),
            ("src_port", Some("70000"), Err("src_port: 70000 is not a valid port")),
            ("time", Some(r#""yesterday""#), Err(r#"time: "yesterday" is not RFC 3339"#)),
            ("time", Some("1767322800"), Err("time: 1767322800 is not RFC 3339")),
            ("time", None, Err("missing field time")),
            ("bytes", Some("-5"), Err("bytes: -5 is not a non-negative integer")),
            ("packets", Some(r#"[1]"#), Err("packets: an array is not a non-negative integer")),
            ("process", Some("7"), Err("process: expected a string, found 7")),
            ("process", Some(r#""""#), Ok(())),
            ("verdict", Some(r#""WHATEVER""#), Ok(())),
            ("verdict", Some("true"), Err("verdict: expected a string, found true")),
            ("unknown_field", Some(r#"{"a":[1,{"b":2}]}"#), Ok(())),
        ];
        for (field, value, want) in cases {
            let line = with(field, *value);
            let got = parse_ndjson_line(line.as_bytes()).map(|_| ());
            assert_eq!(got.as_ref().map(|_| ()).map_err(String::as_str), *want, "{field} = {value:?}");
        }
    }

    #[test]
    fn long_processes_are_cut_and_bad_names_left_out() {
        let process = format!("\"{}\"", "p".repeat(1_000_000));
        let line = with("process", Some(&process));
        let Ok(Item::Flow(f, cleaned)) = parse_ndjson_line(line.as_bytes()) else { panic!() };
        let p = f.process.unwrap();
        assert!(p.len() <= MAX_PROCESS_LEN && p.ends_with('…') && p.starts_with("ppp"), "{} bytes", p.len());
        assert_eq!(cleaned, Cleaned { dropped: 0, truncated: 1 });

        let line = with("node", Some(r#""<img src=x>""#)).replace('}', r#","cluster":"Prod_1"}"#);
        let Ok(Item::Flow(f, cleaned)) = parse_ndjson_line(line.as_bytes()) else { panic!() };
        assert_eq!((f.node, f.cluster), (None, None));
        assert_eq!(cleaned, Cleaned { dropped: 2, truncated: 0 });
        let Ok(Item::Flow(_, cleaned)) = parse_ndjson_line(GOOD.as_bytes()) else { panic!() };
        assert!(cleaned.is_empty());
    }

    #[test]
    fn malformed_lines() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"time\":", "invalid JSON at column 8: EOF while parsing a value"),
            (b"[]", "expected a JSON object"),
            (b"42", "expected a JSON object"),
            (b"{\"src_ip\":\"\xc3\x28\"}", "invalid UTF-8 at byte 12"),
        ];
        for (line, want) in cases {
            assert_eq!(parse_ndjson_line(line), Err(want.to_string()), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse_ndjson_line(b"\t \r"), Ok(Item::Skipped(SkipReason::Blank)));
        assert_eq!(parse_ndjson_line(b""), Ok(Item::Skipped(SkipReason::Blank)));
    }

    #[test]
    fn dst_names_are_checked_and_errors_name_the_field() {
        let line = with("dst_names", Some(r#"["API.example.com.", "*.bad", "api.example.com"]"#));
        let Ok(Item::Flow(f, cleaned)) = parse_ndjson_line(line.as_bytes()) else { panic!() };
        assert_eq!(f.dst_names.iter().map(|n| n.as_str()).collect::<Vec<_>>(), ["api.example.com"]);
        assert_eq!(cleaned.dropped, 1);
        let line = with("dst_names", Some("null"));
        assert!(matches!(parse_ndjson_line(line.as_bytes()), Ok(Item::Flow(f, _)) if f.dst_names.is_empty()));
        for (value, want) in [
            (r#""api.example.com""#, "dst_names: expected a list of DNS names, found \"api.example.com\""),
            ("[1]", "dst_names[0]: expected a string, found 1"),
            ("{}", "dst_names: expected a list of DNS names, found an object"),
        ] {
            assert_eq!(parse_ndjson_line(with("dst_names", Some(value)).as_bytes()), Err(want.to_string()), "{value}");
        }
    }
}
