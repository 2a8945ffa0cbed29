//! Flow sources and their formats: Hubble JSON (`hubble observe -o json|jsonpb`, Hubble exporter
//! files, or a JSON array of either) and Flowgate's own NDJSON.
//!
//! The line parsers ([`parse_hubble_line`], [`parse_ndjson_line`]) are pure: bytes in, an [`Item`]
//! or a reason out. The IO edge (the `read` submodule) splits a `BufRead` into records (lines, or the
//! elements of a JSON array, streamed), bounds their length, detects the format per file, and
//! hands records to the parsers on the calling thread ([`FlowReader`]) or on worker threads
//! ([`read_parallel`]), always delivering results in input order.
//!
//! A bad record costs only itself: it becomes a [`LineError`] and reading goes on. A bad field
//! of a good record costs only itself: a name or label that breaks Kubernetes' rules (a Hubble
//! endpoint's namespace, pod name, labels, workload; the node; the Service) is treated as absent,
//! a process name longer than [`MAX_PROCESS_LEN`] is cut short, and the record says so
//! ([`Cleaned`]), so the flow still counts.

mod hubble;
mod json;
mod ndjson;
pub mod progress;
mod read;
mod summary;

use std::fmt;
use std::str::FromStr;

use crate::model::FlowRecord;

#[doc(hidden)]
pub use hubble::check_fast_parse;
pub use hubble::{parse_hubble_line, parse_hubble_proto};
pub use ndjson::parse_ndjson_line;
pub use read::{FlowReader, MAX_RECORD_LEN, Record, fold_parallel, fold_path, open, read_parallel, read_path};
pub use summary::{FileLineError, KEEP_ERRORS, Summary};

/// What one record (a line, or an element of a JSON array) turned into.
// Skips are counted and dropped at once, so the size of the small variant costs nothing; boxing the
// flow would cost an allocation per flow on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Flow(FlowRecord, Cleaned),
    /// A DNS answer (Hubble's L7 DNS RESPONSE records): which addresses a name resolved to.
    Names(crate::dns::DnsAnswer),
    /// A valid record that is deliberately not a flow; counted, not reported.
    Skipped(SkipReason),
}

/// What a parser left out of or cut short in a record that still became a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Fields that broke Kubernetes' name or label rules (or their length caps) and were treated
    /// as absent: a namespace, pod name, label, workload, Service, node or cluster name.
    pub dropped: u32,
    /// Fields cut to their length cap (a process name).
    pub truncated: u32,
}

impl Cleaned {
    pub fn is_empty(self) -> bool {
        self.dropped == 0 && self.truncated == 0
    }
}

/// The longest process name kept, in bytes: real ones are short (`java`, `/usr/bin/curl`), and
/// every connection row, page and stored flow carries them. Longer ones are cut at a character
/// boundary and end with `…`, rather than costing the flow: a process name says nothing a policy
/// needs.
pub const MAX_PROCESS_LEN: usize = 256;

/// `s` if it fits in `max` bytes, else its longest prefix that fits with `…` after it; and
/// whether it was cut.
pub fn cap_text(s: String, max: usize) -> (String, bool) {
    const MARK: &str = "…";
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max.saturating_sub(MARK.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}{MARK}", &s[..end]), true)
}

/// Why a valid record does not become a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The reply direction of a connection (`is_reply` or the legacy `reply`): the request
    /// direction already says who talked to whom, and a reply would invert it.
    Reply,
    /// A Hubble event of another `Type` (L7, SOCK): the proxy's L7 records repeat connections that
    /// the L3/L4 trace already saw. (L7 REQUESTs are flows, and DNS answers with addresses
    /// [`Item::Names`]; a DNS answer without any, such as NXDOMAIN, is skipped as this.)
    NotL3L4,
    /// No TCP, UDP or SCTP section (ICMP and friends): nothing a NetworkPolicy port can name.
    NoPorts,
    /// An empty or whitespace-only line.
    Blank,
    /// A Hubble response that carries no flow (`node_status`, `lost_events`, agent/debug events).
    NotAFlow,
}

impl SkipReason {
    pub const ALL: [SkipReason; 5] =
        [SkipReason::Reply, SkipReason::NotL3L4, SkipReason::NoPorts, SkipReason::Blank, SkipReason::NotAFlow];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Reply => "reply",
            SkipReason::NotL3L4 => "not L3/L4",
            SkipReason::NoPorts => "no ports",
            SkipReason::Blank => "blank",
            SkipReason::NotAFlow => "not a flow",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that could not be read or parsed. `line` is 1-based: the record's line, or for an
/// element of a JSON array the line on which the element starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub reason: String,
}

impl LineError {
    /// `FILE:LINE: reason`, the form editors and CI logs link to.
    pub fn in_file(&self, file: &str) -> FileLineError {
        FileLineError { file: file.to_string(), line: self.line, reason: self.reason.clone() }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Which parser a file's records go to. `Auto` decides per file from its first non-blank content:
/// a JSON array is Hubble, an object with `src_ip` is Flowgate NDJSON, an object with `flow`,
/// `IP`, `Type` or another Hubble response key is Hubble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowFormat {
    #[default]
    Auto,
    Hubble,
    Ndjson,
}

impl FlowFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowFormat::Auto => "auto",
            FlowFormat::Hubble => "hubble",
            FlowFormat::Ndjson => "ndjson",
        }
    }
}

impl fmt::Display for FlowFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlowFormat {
    type Err = FlowsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(FlowFormat::Auto),
            "hubble" => Ok(FlowFormat::Hubble),
            "ndjson" => Ok(FlowFormat::Ndjson),
            _ => Err(FlowsError::Format(s.to_string())),
        }
    }
}

/// Failures of a whole source (as opposed to one record, which is a [`LineError`]).
#[derive(Debug, thiserror::Error)]
pub enum FlowsError {
    #[error("unknown flow format {0:?} (expected auto, hubble or ndjson)")]
    Format(String),
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_text_cuts_at_a_char_boundary_with_a_marker() {
        assert_eq!(cap_text("java".into(), 8), ("java".to_string(), false));
        let (s, cut) = cap_text("x".repeat(1_000_000), MAX_PROCESS_LEN);
        assert!(cut && s.len() == MAX_PROCESS_LEN && s.ends_with('…'), "{} bytes", s.len());
        // 'é' is two bytes: 256 less 3 bytes of marker cuts inside the 127th; the cut moves back.
        let (s, cut) = cap_text("é".repeat(300), MAX_PROCESS_LEN);
        assert!(cut && s.len() == 255 && s.ends_with('…'), "{s}");
        assert_eq!(s.chars().filter(|c| *c == 'é').count(), 126);
    }
}
