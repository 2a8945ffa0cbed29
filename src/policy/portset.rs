//! Port and connection sets: the value `Evaluator::allowed` answers with.
//!
//! A NetworkPolicy allows ports per protocol, in ranges (`port`..`endPort`), so sets of inclusive
//! ranges are exact and stay small: a set is the sorted list of its maximal ranges, which makes
//! equality structural (two sets with the same ports compare equal, however they were built).

use std::fmt;
use std::str::FromStr;

use crate::model::Protocol;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortSetError {
    #[error("invalid connection set {0:?}: {1}")]
    Parse(String, &'static str),
}

/// A set of ports within 1-65535, kept as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 65535;

    pub fn empty() -> PortSet {
        PortSet { ranges: Vec::new() }
    }

    pub fn all() -> PortSet {
        PortSet { ranges: vec![(Self::MIN, Self::MAX)] }
    }

    /// `lo..=hi`, clipped to 1-65535; empty when `lo > hi`.
    pub fn range(lo: u16, hi: u16) -> PortSet {
        let lo = lo.max(Self::MIN);
        if lo > hi { PortSet::empty() } else { PortSet { ranges: vec![(lo, hi)] } }
    }

    pub fn single(p: u16) -> PortSet {
        PortSet::range(p, p)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn is_all(&self) -> bool {
        self.ranges == [(Self::MIN, Self::MAX)]
    }

    pub fn contains(&self, p: u16) -> bool {
        // Ranges are sorted: find the last range starting at or before p.
        let i = self.ranges.partition_point(|&(lo, _)| lo <= p);
        i > 0 && self.ranges[i - 1].1 >= p
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    pub fn union(&self, other: &PortSet) -> PortSet {
        let mut all: Vec<(u16, u16)> = self.ranges.iter().chain(&other.ranges).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(all.len());
        for (lo, hi) in all {
            match out.last_mut() {
                // Merge overlapping and adjacent ranges so the representation stays canonical.
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        PortSet { ranges: out }
    }

    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = (self.ranges[i], other.ranges[j]);
            let lo = a.0.max(b.0);
            let hi = a.1.min(b.1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        PortSet { ranges: out }
    }

    /// The ports of 1-65535 not in the set.
    pub fn complement(&self) -> PortSet {
        let mut out = Vec::new();
        let mut next = u32::from(Self::MIN);
        for &(lo, hi) in &self.ranges {
            if u32::from(lo) > next {
                out.push((next as u16, lo - 1));
            }
            next = u32::from(hi) + 1;
        }
        if next <= u32::from(Self::MAX) {
            out.push((next as u16, Self::MAX));
        }
        PortSet { ranges: out }
    }

    /// The ports of the set that are not in `other`.
    pub fn subtract(&self, other: &PortSet) -> PortSet {
        self.intersect(&other.complement())
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// Allowed ports for each protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConnSet {
    /// Indexed by `proto_index`: TCP, UDP, SCTP (the order of `Protocol::ALL`).
    by_proto: [PortSet; 3],
}

fn proto_index(p: Protocol) -> usize {
    match p {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    }
}

impl ConnSet {
    pub fn none() -> ConnSet {
        ConnSet::default()
    }

    pub fn all() -> ConnSet {
        ConnSet { by_proto: [PortSet::all(), PortSet::all(), PortSet::all()] }
    }

    pub fn ports(proto: Protocol, ports: PortSet) -> ConnSet {
        let mut c = ConnSet::none();
        c.by_proto[proto_index(proto)] = ports;
        c
    }

    pub fn get(&self, proto: Protocol) -> &PortSet {
        &self.by_proto[proto_index(proto)]
    }

    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        self.get(proto).contains(port)
    }

    pub fn is_empty(&self) -> bool {
        self.by_proto.iter().all(PortSet::is_empty)
    }

    pub fn is_all(&self) -> bool {
        self.by_proto.iter().all(PortSet::is_all)
    }

    pub fn add(&mut self, proto: Protocol, ports: &PortSet) {
        let i = proto_index(proto);
        self.by_proto[i] = self.by_proto[i].union(ports);
    }

    pub fn union_with(&mut self, other: &ConnSet) {
        for p in Protocol::ALL {
            self.add(p, other.get(p));
        }
    }

    pub fn intersect(&self, other: &ConnSet) -> ConnSet {
        let mut out = ConnSet::none();
        for p in Protocol::ALL {
            out.by_proto[proto_index(p)] = self.get(p).intersect(other.get(p));
        }
        out
    }

    /// Removes the connections of `other`.
    pub fn subtract_with(&mut self, other: &ConnSet) {
        for p in Protocol::ALL {
            let i = proto_index(p);
            if !other.by_proto[i].is_empty() {
                self.by_proto[i] = self.by_proto[i].subtract(&other.by_proto[i]);
            }
        }
    }
}

/// The np-guard netpol-analyzer spelling: `All Connections`, `No Connections`, or protocols in
/// alphabetical order with their ranges, e.g. `SCTP 1-65535,TCP 80,UDP 1-52,54-65535`.
impl fmt::Display for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for p in [Protocol::Sctp, Protocol::Tcp, Protocol::Udp] {
            let ports = self.get(p);
            if ports.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{p} {ports}")?;
        }
        Ok(())
    }
}

impl FromStr for ConnSet {
    type Err = PortSetError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim();
        let err = |why| PortSetError::Parse(raw.to_string(), why);
        if s.eq_ignore_ascii_case("All Connections") {
            return Ok(ConnSet::all());
        }
        if s.eq_ignore_ascii_case("No Connections") {
            return Ok(ConnSet::none());
        }
        let mut out = ConnSet::none();
        let mut current: Option<Protocol> = None;
        // Tokens are `PROTO RANGE` or a bare `RANGE` continuing the previous protocol.
        for token in s.split(',') {
            let token = token.trim();
            let range = match token.split_once(' ') {
                Some((proto, range)) => {
                    current = Some(proto.parse().map_err(|_| err("unknown protocol"))?);
                    range.trim()
                }
                None => token,
            };
            let proto = current.ok_or_else(|| err("a port range before any protocol"))?;
            let (lo, hi) = match range.split_once('-') {
                Some((lo, hi)) => (lo.parse::<u16>(), hi.parse::<u16>()),
                None => (range.parse::<u16>(), range.parse::<u16>()),
            };
            let (Ok(lo), Ok(hi)) = (lo, hi) else {
                return Err(err("a port is not a number"));
            };
            if lo == 0 || lo > hi {
                return Err(err("an empty port range"));
            }
            out.add(proto, &PortSet::range(lo, hi));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complement_and_subtract() {
        assert_eq!(PortSet::empty().complement(), PortSet::all());
        assert!(PortSet::all().complement().is_empty());
        let a = PortSet::range(1, 10).union(&PortSet::range(20, 65535));
        assert_eq!(a.complement(), PortSet::range(11, 19));
        assert_eq!(PortSet::all().subtract(&PortSet::single(80)).to_string(), "1-79,81-65535");
        let mut c = ConnSet::all();
        c.subtract_with(&ConnSet::ports(Protocol::Udp, PortSet::range(1, 52)));
        assert_eq!(c.to_string(), "SCTP 1-65535,TCP 1-65535,UDP 53-65535");
    }

    #[test]
    fn union_and_intersection_are_canonical() {
        let a = PortSet::range(1, 10).union(&PortSet::range(11, 20)).union(&PortSet::single(30));
        assert_eq!(a.ranges(), &[(1, 20), (30, 30)]);
        let b = PortSet::range(5, 30);
        assert_eq!(a.intersect(&b).ranges(), &[(5, 20), (30, 30)]);
        assert!(a.contains(1) && a.contains(20) && a.contains(30));
        assert!(!a.contains(21) && !a.contains(31) && !a.contains(0));
        assert!(PortSet::range(0, 65535).is_all());
        assert!(PortSet::range(9, 8).is_empty());
    }

    #[test]
    fn analyzer_spelling_round_trips() {
        let cases = [
            "All Connections",
            "No Connections",
            "TCP 8080",
            "TCP 10053-10054,UDP 10053",
            "SCTP 1-65535,TCP 1-65535,UDP 1-5352,5354-65535",
            "SCTP 9003,TCP 80,UDP 5353",
        ];
        for c in cases {
            let set: ConnSet = c.parse().unwrap();
            assert_eq!(set.to_string(), c);
        }
        assert!("TCP".parse::<ConnSet>().is_err());
        assert!("80".parse::<ConnSet>().is_err());
        assert!("ICMP 1".parse::<ConnSet>().is_err());
        assert!("TCP 9-8".parse::<ConnSet>().is_err());
    }
}
