//! Flowgate's own flow format: one JSON object per line, for collectors other than Hubble.
//!
//! ```json
//! {"time":"2026-01-02T03:04:05Z","src_ip":"10.0.0.1","src_port":51234,"dst_ip":"10.0.0.2","dst_port":443,"protocol":"TCP"}
//! ```
//!
//! Required: `time` (RFC 3339), `src_ip`, `dst_ip`, `dst_port`, `protocol` (TCP, UDP or SCTP, any
//! case). Optional: `src_port` (0 means unknown), `process`, `node`, `cluster`, `bytes`,
//! `packets`, `verdict` (Hubble's names; default FORWARDED). Unknown fields are ignored; `null`
//! counts as absent. Numbers may also be given as strings of digits. Every error names its field.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::Deserialize;

use super::json::{Scalar, is_blank, json_reason, object, utf8};
use super::{Item, SkipReason};
use crate::model::{FlowRecord, Port, Protocol, Verdict};

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
}

/// Parses one Flowgate NDJSON record. Blank lines are skipped; everything else is a flow or an
/// error.
pub fn parse_ndjson_line(line: &[u8]) -> Result<Item, String> {
    if is_blank(line) {
        return Ok(Item::Skipped(SkipReason::Blank));
    }
    let text = object(utf8(line)?)?;
    let raw: Raw = serde_json::from_str(text).map_err(|e| json_reason(&e))?;
    convert(raw).map(Item::Flow)
}

fn convert(r: Raw<'_>) -> Result<FlowRecord, String> {
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
    Ok(FlowRecord {
        time,
        uuid: None,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol,
        verdict,
        process: text(r.process, "process")?,
        node: text(r.node, "node")?,
        cluster: text(r.cluster, "cluster")?,
        bytes: count(r.bytes, "bytes")?,
        packets: count(r.packets, "packets")?,
        src_meta: None,
        dst_meta: None,
        dst_service: None,
    })
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
