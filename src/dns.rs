//! DNS names seen for addresses: which names an address was resolved from, and when.
//!
//! Two sources say it: Hubble's L7 DNS answers (`l7.dns.query` and its `ips`, a
//! [`DnsAnswer`]) and the names Cilium's FQDN cache gives a flow's ends (`destination_names`,
//! `source_names`, kept on the [`FlowRecord`](crate::model::FlowRecord)). Both are folded into
//! [`Names`], offline as the flows stream by and in the store (`store::names`), so a review can
//! show what an external address is, a person can trust a name instead of a range, and the
//! Cilium dialect can write `toFQDNs`.
//!
//! Names come from answers pods received, so they are untrusted and bounded: each is a checked
//! [`DnsName`], an answer keeps at most [`MAX_ADDRESSES_PER_ANSWER`] addresses, and an address at
//! most [`MAX_NAMES_PER_ADDRESS`] names (the smallest, the rule of every capped list here:
//! exactly mergeable, so the offline fold and the store keep the same ones; a CDN address that
//! serves thousands of names keeps eight).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use jiff::Timestamp;

use crate::model::DnsName;

/// Names kept per address (the smallest ones).
pub const MAX_NAMES_PER_ADDRESS: usize = 8;
/// Addresses kept of one DNS answer, in the answer's order; real answers hold a handful.
pub const MAX_ADDRESSES_PER_ANSWER: usize = 32;

/// One DNS answer: `name` resolved to `ips` at `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub time: Timestamp,
    pub name: DnsName,
    pub ips: Vec<IpAddr>,
}

/// When a name was seen for an address: first and last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first: Timestamp,
    pub last: Timestamp,
}

/// Names per address, each with when it was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    by_ip: BTreeMap<IpAddr, BTreeMap<DnsName, Seen>>,
}

impl Names {
    pub fn new() -> Names {
        Names::default()
    }

    /// Records that `name` resolved to `ip` at `time`. An IPv4 address written as `::ffff:a.b.c.d`
    /// is the IPv4 address.
    pub fn add(&mut self, ip: IpAddr, name: &DnsName, time: Timestamp) {
        self.add_seen(ip, name, Seen { first: time, last: time });
    }

    /// Records a name seen from `seen.first` to `seen.last` (a stored row, a merged fold).
    pub fn add_seen(&mut self, ip: IpAddr, name: &DnsName, seen: Seen) {
        let names = self.by_ip.entry(ip.to_canonical()).or_default();
        if let Some(s) = names.get_mut(name) {
            s.first = s.first.min(seen.first);
            s.last = s.last.max(seen.last);
            return;
        }
        if names.len() >= MAX_NAMES_PER_ADDRESS && names.last_key_value().is_some_and(|(last, _)| name > last) {
            return;
        }
        names.insert(name.clone(), seen);
        if names.len() > MAX_NAMES_PER_ADDRESS {
            names.pop_last();
        }
    }

    /// Every address of an answer, as seen at its time.
    pub fn add_answer(&mut self, a: &DnsAnswer) {
        for ip in &a.ips {
            self.add(*ip, &a.name, a.time);
        }
    }

    pub fn merge(&mut self, other: &Names) {
        for (ip, names) in &other.by_ip {
            for (name, seen) in names {
                self.add_seen(*ip, name, *seen);
            }
        }
    }

    /// The names `ip` was resolved from, smallest first.
    pub fn of(&self, ip: &IpAddr) -> impl Iterator<Item = &DnsName> {
        self.by_ip.get(&ip.to_canonical()).into_iter().flat_map(|m| m.keys())
    }

    /// Whether `ip` was resolved from `name`.
    pub fn resolves(&self, name: &DnsName, ip: &IpAddr) -> bool {
        self.by_ip.get(&ip.to_canonical()).is_some_and(|m| m.contains_key(name))
    }

    /// The addresses `name` resolved to, in address order.
    pub fn addresses_of(&self, name: &DnsName) -> BTreeSet<IpAddr> {
        self.by_ip.iter().filter(|(_, m)| m.contains_key(name)).map(|(ip, _)| *ip).collect()
    }

    /// Every (address, name, seen), in address then name order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, &DnsName, Seen)> {
        self.by_ip.iter().flat_map(|(ip, m)| m.iter().map(move |(n, s)| (*ip, n, *s)))
    }

    /// Addresses with at least one name.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> DnsName {
        s.parse().unwrap()
    }
    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_keep_first_and_last_seen_and_the_smallest_few() {
        let ip: IpAddr = "192.229.173.207".parse().unwrap();
        let mut names = Names::new();
        names.add(ip, &n("api.example.com"), t("2026-11-25T10:00:00Z"));
        names.add("::ffff:192.229.173.207".parse().unwrap(), &n("api.example.com"), t("2026-11-25T09:00:00Z"));
        let (_, _, seen) = names.iter().next().unwrap();
        assert_eq!((seen.first, seen.last), (t("2026-11-25T09:00:00Z"), t("2026-11-25T10:00:00Z")));
        assert_eq!(names.len(), 1, "the mapped address is the IPv4 one");
        assert!(names.resolves(&n("api.example.com"), &ip));
        assert_eq!(names.addresses_of(&n("api.example.com")), BTreeSet::from([ip]));

        // A CDN address behind many names keeps the smallest eight, whatever the order they came in.
        let many: Vec<DnsName> = (0..20).map(|i| n(&format!("h{i:02}.cdn.example"))).collect();
        let (mut fwd, mut back) = (Names::new(), Names::new());
        for name in &many {
            fwd.add(ip, name, t("2026-11-25T10:00:00Z"));
        }
        for name in many.iter().rev() {
            back.add(ip, name, t("2026-11-25T10:00:00Z"));
        }
        assert_eq!(fwd, back);
        let kept: Vec<&DnsName> = fwd.of(&ip).collect();
        assert_eq!(kept.len(), MAX_NAMES_PER_ADDRESS);
        assert_eq!(kept.first().map(|n| n.as_str()), Some("h00.cdn.example"));
        // Merging halves gives the whole.
        let (mut a, mut b) = (Names::new(), Names::new());
        for (i, name) in many.iter().enumerate() {
            if i % 2 == 0 { &mut a } else { &mut b }.add(ip, name, t("2026-11-25T10:00:00Z"));
        }
        a.merge(&b);
        assert_eq!(a, fwd);
    }
}
