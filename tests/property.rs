//! A verification mismatch in a generated set is a bug: random small clusters, random traffic and
//! random review decisions, and every generated set must verify against the very rows it came from.
//!
//! The clusters are built the way Hubble-only input builds them (workloads and label sets learned
//! from flows, no inventory) with the awkward cases real clusters have: workloads sharing `app`,
//! twins with identical labels, workloads without labels, the DNS server, nodes, external and
//! unresolved peers, undecided directions, decisions that differ per workload.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use flowgate::enrich::Endpoint;
use flowgate::inventory::Inventory;
use flowgate::model::{Cidr, Labels, PeerSpec, Port, Protocol, WorkloadKind, WorkloadRef};
use flowgate::policy::generate::{Decisions, Direction, Options, Status, generate};
use flowgate::policy::verify::verify;
use flowgate::topology::{Catalog, ConnKey, ConnStats, Connections};

#[path = "../fuzz/common/pipeline_case.rs"]
mod pipeline_case;

/// xorshift64*: deterministic, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

struct Case {
    conns: Connections,
    opts: Options,
    workloads: Vec<WorkloadRef>,
}

fn random_labels(rng: &mut Rng) -> Labels {
    let mut l = Labels::new();
    match rng.below(6) {
        0 => {}
        1 => {
            l.insert("app.kubernetes.io/name".into(), rng.pick(&["x", "y"]).to_string());
        }
        _ => {
            l.insert("app".into(), rng.pick(&["x", "y", "z"]).to_string());
        }
    }
    for (key, values) in
        [("version", &["v1", "v2"][..]), ("tier", &["fe", "be"][..]), ("track", &["stable", "canary"][..])]
    {
        if rng.chance(40) {
            l.insert(key.into(), rng.pick(values).to_string());
        }
    }
    if rng.chance(20) {
        l.insert("pod-template-hash".into(), format!("{:x}", rng.next() % 0xffff));
    }
    l
}

fn case(seed: u64) -> Case {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut catalog = Catalog::default();
    let mut workloads = Vec::new();
    if rng.chance(50) {
        let dns = WorkloadRef::new(WorkloadKind::Deployment, "kube-system", "kube-dns");
        catalog.learn(&dns, &Labels::from([("k8s-app".to_string(), "kube-dns".to_string())]));
        workloads.push(dns);
    }
    for i in 0..2 + rng.below(6) {
        let ns = *rng.pick(&["a", "a", "b"]);
        let w =
            WorkloadRef::new(*rng.pick(&[WorkloadKind::Deployment, WorkloadKind::StatefulSet]), ns, format!("w{i}"));
        let sets = 1 + rng.below(2);
        let base = random_labels(&mut rng);
        for _ in 0..sets {
            let mut l = base.clone();
            if rng.chance(30) {
                l.insert("zone".into(), rng.pick(&["1", "2"]).to_string());
            }
            if l.is_empty() {
                catalog.note_workload(&w);
            } else {
                catalog.learn(&w, &l);
            }
        }
        // A twin: another workload with exactly the same labels.
        if rng.chance(10)
            && let Some(l) = catalog.workloads.get(&w).and_then(|s| s.iter().next()).cloned()
        {
            let twin = WorkloadRef::new(WorkloadKind::Deployment, ns, format!("w{i}-twin"));
            catalog.learn(&twin, &l);
            workloads.push(twin);
        }
        workloads.push(w);
    }
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let others = [
        Endpoint::Node { name: "n1".into(), ip: ip("172.18.0.2") },
        Endpoint::External { ip: ip("192.229.173.207") },
        Endpoint::External { ip: ip("8.8.8.8") },
        Endpoint::Unresolved { ip: ip("10.244.9.9") },
    ];
    let ports =
        [(Protocol::Udp, 53), (Protocol::Tcp, 53), (Protocol::Tcp, 80), (Protocol::Tcp, 8080), (Protocol::Tcp, 40000)];
    let mut conns = Connections::new(catalog);
    let t: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for _ in 0..1 + rng.below(14) {
        let end = |rng: &mut Rng| -> Endpoint {
            if rng.chance(75) {
                Endpoint::Workload { workload: rng.pick(&workloads).clone() }
            } else {
                rng.pick(&others).clone()
            }
        };
        let (src, dst) = (end(&mut rng), end(&mut rng));
        if src.workload().is_none() && dst.workload().is_none() {
            continue;
        }
        let (protocol, port) = *rng.pick(&ports);
        let mut stats = ConnStats::new(t);
        stats.flows = 1 + rng.below(5) as u64;
        if rng.chance(15) {
            stats.undecided = stats.flows;
        }
        conns.map.insert(ConnKey { src, dst, port: Port::new(port).unwrap(), protocol }, stats);
    }
    let random_decisions = |rng: &mut Rng| {
        let mut d = Decisions::default();
        for w in &workloads {
            if rng.chance(15) {
                d.exclude.insert(PeerSpec::Workload(w.clone()));
            }
        }
        if rng.chance(30) {
            d.trust.insert(rng.pick(&["192.229.173.0/24", "8.8.8.8/32", "0.0.0.0/0"]).parse::<Cidr>().unwrap());
        }
        if rng.chance(20) {
            d.exclude.insert(PeerSpec::Net("192.229.173.207/32".parse().unwrap()));
        }
        if rng.chance(20) {
            d.include_unresolved.insert(ip("10.244.9.9"));
        }
        d.include_all_unresolved = rng.chance(5);
        if rng.chance(15) {
            d.leave_out.insert(if rng.chance(50) { Direction::Ingress } else { Direction::Egress });
        }
        d
    };
    let mut opts = Options { decisions: random_decisions(&mut rng), dns: rng.chance(80), ..Default::default() };
    if rng.chance(50) {
        for w in &workloads {
            if rng.chance(50) {
                opts.per_workload.insert(w.clone(), random_decisions(&mut rng));
            }
        }
    }
    if rng.chance(30) {
        opts.namespaces = Some(BTreeSet::from(["a".to_string()]));
    }
    Case { conns, opts, workloads }
}

#[test]
fn every_generated_set_verifies() {
    let inv = Inventory::build(&[]);
    let mut policies = 0;
    let mut failures = Vec::new();
    for seed in 0..3000 {
        let c = case(seed);
        let g = generate(&inv, &c.conns, &c.opts);
        let v = verify(&g, &inv, &c.conns.catalog);
        policies += g.policies.len();
        // The same rules spelled as CiliumNetworkPolicies, read as Cilium reads them.
        let cilium = flowgate::policy::cilium::render(&g);
        let vc = flowgate::policy::verify::verify_cilium(&g, &cilium.policies, &inv, &c.conns.catalog, &c.conns.names);
        for (dialect, v) in [(flowgate::policy::Dialect::Kubernetes, v), (flowgate::policy::Dialect::Cilium, vc)] {
            if !v.ok() {
                let rows: Vec<String> = v
                    .mismatches
                    .iter()
                    .map(|(r, d)| {
                        format!(
                            "{} {:?} {} -> {} {}: {} but allowed={}",
                            r.workload,
                            r.direction,
                            r.key.src,
                            r.key.dst,
                            r.key.port,
                            r.status_in(dialect),
                            d.allowed
                        )
                    })
                    .collect();
                let labels: BTreeMap<String, String> = c
                    .workloads
                    .iter()
                    .map(|w| (w.to_string(), format!("{:?}", c.conns.catalog.workloads.get(w))))
                    .collect();
                failures.push(format!("seed {seed}, {dialect:?}:\n  {}\n  labels: {labels:?}", rows.join("\n  ")));
            }
        }
    }
    assert!(policies > 3000, "the cases produce policies ({policies})");
    assert!(
        failures.is_empty(),
        "{} of 3000 cases do not verify; first:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n")
    );
}

/// Found by the pipeline fuzz target: two workloads with the DNS server's labels (coredns and
/// kube-dns, twins no selector can tell apart) and a client querying one of them. The DNS rule
/// every policy carries reaches both, so the client's row must say allowed.
#[test]
fn a_dns_query_to_a_twin_of_the_dns_server_is_allowed_as_the_dns_rule_allows_it() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let dns = Labels::from([("k8s-app".to_string(), "kube-dns".to_string())]);
    let coredns = WorkloadRef::new(WorkloadKind::Deployment, "kube-system", "coredns");
    let kube_dns = WorkloadRef::new(WorkloadKind::Deployment, "kube-system", "kube-dns");
    let web = WorkloadRef::new(WorkloadKind::StatefulSet, "a", "web");
    catalog.learn(&coredns, &dns);
    catalog.learn(&kube_dns, &dns);
    catalog.learn(&web, &Labels::from([("app".to_string(), "web".to_string())]));
    let mut conns = Connections::new(catalog);
    let mut stats = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
    stats.flows = 1;
    let key = ConnKey {
        src: Endpoint::Workload { workload: web.clone() },
        dst: Endpoint::Workload { workload: coredns },
        port: Port::new(53).unwrap(),
        protocol: Protocol::Udp,
    };
    conns.map.insert(key, stats);
    let g = generate(&inv, &conns, &Options::default());
    let v = verify(&g, &inv, &conns.catalog);
    assert!(v.ok(), "{:?}", v.mismatches);
    assert!(g.review.iter().any(|r| r.workload == web && r.status == flowgate::policy::generate::Status::Allowed));
}

/// Found by the pipeline fuzz target (this session): a client of reviews-v1, -v2 and -v3, where
/// one of reviews-v2's pods carries another app label (`app=ratings`). The three peers were
/// collapsed into one `app=reviews` rule, which misses that pod. A collapsed label must be on
/// every pod of every workload it stands for.
#[test]
fn peers_collapse_into_one_label_only_when_it_is_on_all_their_pods() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let labels = |app: &str, version: &str| {
        Labels::from([("app".to_string(), app.to_string()), ("version".to_string(), version.to_string())])
    };
    let w = |name: &str| WorkloadRef::new(WorkloadKind::Deployment, "bookinfo", name);
    catalog.learn(&w("productpage-v1"), &labels("productpage", "v1"));
    for v in ["v1", "v2", "v3"] {
        catalog.learn(&w(&format!("reviews-{v}")), &labels("reviews", v));
    }
    catalog.learn(&w("reviews-v2"), &labels("ratings", "v2"));
    catalog.learn(&w("ratings-v1"), &labels("ratings", "v1"));
    let mut conns = Connections::new(catalog);
    for v in ["v1", "v2", "v3"] {
        let mut stats = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
        stats.flows = 1;
        let key = ConnKey {
            src: Endpoint::Workload { workload: w("productpage-v1") },
            dst: Endpoint::Workload { workload: w(&format!("reviews-{v}")) },
            port: Port::new(9080).unwrap(),
            protocol: Protocol::Tcp,
        };
        conns.map.insert(key, stats);
    }
    let g = generate(&inv, &conns, &Options::default());
    let v = verify(&g, &inv, &conns.catalog);
    assert!(v.ok(), "{:?}", v.mismatches);
    let yaml = flowgate::policy::generate::to_yaml(&g.policies).unwrap();
    let productpage = yaml.split("---").find(|d| d.contains("name: productpage-v1")).unwrap();
    // reviews-v1 and -v3 may share one rule; reviews-v2 keeps a selector of its own.
    assert!(productpage.contains("version: v2"), "{productpage}");
}

/// Found by the pipeline fuzz target: Hubble calls 10.156.0.2 `world` (external) although it lies
/// in the private ranges that stand for the cluster when there is no inventory, and the decisions
/// trust `0.0.0.0/0`. The trusted range's `except` leaves the cluster's ranges out, so the
/// allowed row was blocked by its own policy. The address now gets a block of its own.
#[test]
fn a_trusted_external_address_inside_the_cluster_ranges_gets_its_own_block() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let web = WorkloadRef::new(WorkloadKind::Deployment, "a", "web");
    catalog.learn(&web, &Labels::from([("app".to_string(), "web".to_string())]));
    let mut conns = Connections::new(catalog);
    let mut stats = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
    stats.flows = 1;
    let inside: IpAddr = "10.156.0.2".parse().unwrap();
    let outside: IpAddr = "203.0.113.7".parse().unwrap();
    for ip in [inside, outside] {
        let key = ConnKey {
            src: Endpoint::Workload { workload: web.clone() },
            dst: Endpoint::External { ip },
            port: Port::new(443).unwrap(),
            protocol: Protocol::Tcp,
        };
        conns.map.insert(key, stats.clone());
    }
    let opts = Options {
        decisions: Decisions { trust: BTreeSet::from(["0.0.0.0/0".parse::<Cidr>().unwrap()]), ..Decisions::default() },
        ..Options::default()
    };
    let g = generate(&inv, &conns, &opts);
    let v = verify(&g, &inv, &conns.catalog);
    assert!(v.ok(), "{:?}", v.mismatches);
    let yaml = flowgate::policy::generate::to_yaml(&g.policies).unwrap();
    assert!(yaml.contains("cidr: 10.156.0.2/32"), "{yaml}");
    // The address outside the cluster keeps the trusted range, with the cluster's ranges left out.
    assert!(yaml.contains("cidr: 0.0.0.0/0") && yaml.contains("- 10.0.0.0/8"), "{yaml}");
}

/// Found by the pipeline fuzz target: the cluster DNS's pods seen with two label sets that share
/// no stable label, only one of which carries the DNS server's `k8s-app: kube-dns`. No selector
/// picks out all of coredns, so its client's row is excluded; the DNS rule every policy carries
/// still reaches the pods with the DNS labels. Verification took the workload as its first label
/// set (the one the DNS rule reaches) and called that a contradiction; it now tries every set.
#[test]
fn a_dns_server_whose_pods_share_no_label_is_verified_pod_by_pod() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let client = WorkloadRef::new(WorkloadKind::Deployment, "bookinfo", "ratings-v1");
    let coredns = WorkloadRef::new(WorkloadKind::Deployment, "kube-system", "coredns");
    catalog.learn(&client, &Labels::from([("app".to_string(), "ratings".to_string())]));
    catalog.learn(&coredns, &Labels::from([("k8s-app".to_string(), "kube-dns".to_string())]));
    catalog.learn(&coredns, &Labels::from([("k8s-app".to_string(), "kube-dns2".to_string())]));
    let mut conns = Connections::new(catalog);
    let mut stats = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
    stats.flows = 1;
    let key = ConnKey {
        src: Endpoint::Workload { workload: client.clone() },
        dst: Endpoint::Workload { workload: coredns.clone() },
        port: Port::new(53).unwrap(),
        protocol: Protocol::Udp,
    };
    conns.map.insert(key.clone(), stats);
    let opts = Options { workloads: Some(BTreeSet::from([client.clone()])), ..Options::default() };
    let g = generate(&inv, &conns, &opts);
    let row = g.review.iter().find(|r| r.workload == client && r.key == key).unwrap();
    assert!(matches!(row.status, Status::Excluded(_)), "{:?}", row.status);
    let v = verify(&g, &inv, &conns.catalog);
    assert!(v.ok(), "{:?}", v.mismatches);
    assert_eq!(v.blocked, 1);
}

/// Found by the pipeline fuzz target: one address seen as a node (`remote-node`) and, on the same
/// port, as an unresolved address (a host-network pod shares its node's address). The node's /32
/// rule admits both, so the unresolved row, excluded by default, was contradicted by its own
/// policy. It is now allowed, with a warning that says by which rule.
#[test]
fn an_unresolved_address_that_a_node_rule_admits_is_allowed_and_said_so() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let web = WorkloadRef::new(WorkloadKind::Deployment, "a", "web");
    catalog.learn(&web, &Labels::from([("app".to_string(), "web".to_string())]));
    let mut conns = Connections::new(catalog);
    let mut stats = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
    stats.flows = 1;
    let ip: IpAddr = "10.244.1.193".parse().unwrap();
    for dst in [Endpoint::Node { ip, name: "worker-1".into() }, Endpoint::Unresolved { ip }] {
        let key = ConnKey {
            src: Endpoint::Workload { workload: web.clone() },
            dst,
            port: Port::new(9080).unwrap(),
            protocol: Protocol::Tcp,
        };
        conns.map.insert(key, stats.clone());
    }
    let g = generate(&inv, &conns, &Options::default());
    verify_in_both_dialects(&g, &inv, &conns);
    let row = g.review.iter().find(|r| matches!(r.key.dst, Endpoint::Unresolved { .. })).unwrap();
    assert_eq!(row.status, Status::Allowed);
    // Cilium's node rule is an entity, which an address does not match: there it stays excluded.
    assert!(matches!(row.cilium, Some(Status::Excluded(_))), "{:?}", row.cilium);
    assert!(g.warnings.iter().any(|w| w.contains("as a CiliumNetworkPolicy it stays excluded")), "{:?}", g.warnings);
    // The table row says both: allowed, and excluded as Cilium has it; the node's row one.
    let rows = flowgate::report::rows(&g.review, &conns, None);
    let shown: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.peer_class, r.cilium_decision.as_deref())).collect();
    assert_eq!(shown, [("unresolved", Some("excluded (unresolved)")), ("node", None)], "{shown:?}");
    assert!(
        g.warnings.iter().any(|w| w.contains("the rule for the node at 10.244.1.193 admits it")),
        "{:?}",
        g.warnings
    );
    // With the address excluded by a decision, neither row gets a rule.
    let opts = Options {
        decisions: Decisions {
            exclude: BTreeSet::from(["10.244.1.193/32".parse::<PeerSpec>().unwrap()]),
            ..Decisions::default()
        },
        ..Options::default()
    };
    let g = generate(&inv, &conns, &opts);
    assert!(verify(&g, &inv, &conns.catalog).ok());
    assert!(g.review.iter().all(|r| r.status != Status::Allowed || r.key.dst.ip().is_none()), "{:?}", g.review);
}

/// Found by the pipeline fuzz target (`fuzz/findings/pipeline-node-row-excluded-but-admitted`):
/// one address seen on the same ephemeral port as an unresolved address, in flows that say they
/// are requests, and as a node (`remote-node`), in a flow whose direction nothing settled. With
/// every unresolved address included, the unresolved row gets a /32 rule; the node row, excluded
/// as a likely reply, is admitted by that very rule (an ipBlock cannot tell the node from the
/// unresolved address), a verification mismatch. It is now allowed, with a warning naming the
/// rule; without the inclusion both stay excluded and no rule names the address.
#[test]
fn an_undecided_node_row_that_an_included_address_rule_admits_is_allowed_and_said_so() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let ratings = WorkloadRef::new(WorkloadKind::Deployment, "bookinfo", "ratings-v1");
    catalog.learn(&ratings, &Labels::from([("app".to_string(), "ratings".to_string())]));
    let mut conns = Connections::new(catalog);
    let ip: IpAddr = "10.244.1.29".parse().unwrap();
    let mut request = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
    request.flows = 1;
    let mut undecided = request.clone();
    undecided.undecided = 1;
    for (dst, stats) in
        [(Endpoint::Unresolved { ip }, request), (Endpoint::Node { ip, name: ip.to_string() }, undecided)]
    {
        let key = ConnKey {
            src: Endpoint::Workload { workload: ratings.clone() },
            dst,
            port: Port::new(58634).unwrap(),
            protocol: Protocol::Tcp,
        };
        conns.map.insert(key, stats);
    }
    let opts = Options {
        decisions: Decisions { include_unresolved: BTreeSet::from([ip]), ..Decisions::default() },
        ..Options::default()
    };
    let g = generate(&inv, &conns, &opts);
    verify_in_both_dialects(&g, &inv, &conns);
    assert!(g.review.iter().all(|r| r.status == Status::Allowed), "{:?}", g.review);
    // Cilium's /32 is a CIDR rule, which a node does not match: there the node row stays excluded.
    let node = g.review.iter().find(|r| matches!(r.key.dst, Endpoint::Node { .. })).unwrap();
    assert!(matches!(node.cilium, Some(Status::Excluded(_))), "{:?}", node.cilium);
    assert!(
        g.warnings
            .iter()
            .any(|w| w.contains("node/10.244.1.29") && w.contains("the rule for 10.244.1.29/32 admits it")),
        "{:?}",
        g.warnings
    );
    // Without the inclusion neither row gets a rule, and both say excluded.
    let g = generate(&inv, &conns, &Options::default());
    assert!(verify(&g, &inv, &conns.catalog).ok());
    assert!(g.review.iter().all(|r| matches!(r.status, Status::Excluded(_))), "{:?}", g.review);
}

/// The same contradiction with a trusted range instead of a /32, in both directions (found
/// while analysing the finding above): the range's rule, there for an external address on a
/// port, admits on that port every other address of the range outside its `except`: an external
/// one whose direction nothing settled, and an unresolved one (a pod identity that matched no
/// workload, at a public address). Those rows are allowed too, and said so.
#[test]
fn addresses_excluded_by_default_that_a_trusted_range_admits_are_allowed_and_said_so() {
    let inv = Inventory::build(&[]);
    let mut catalog = Catalog::default();
    let web = WorkloadRef::new(WorkloadKind::Deployment, "a", "web");
    catalog.learn(&web, &Labels::from([("app".to_string(), "web".to_string())]));
    let mut conns = Connections::new(catalog);
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let mut request = ConnStats::new("2026-11-25T10:00:00Z".parse().unwrap());
    request.flows = 1;
    let mut undecided = request.clone();
    undecided.undecided = 1;
    let me = || Endpoint::Workload { workload: web.clone() };
    let rows = [
        // Egress to the range on an ephemeral port: one address decided, one not.
        (me(), Endpoint::External { ip: ip("8.8.8.8") }, 40000, request.clone()),
        (me(), Endpoint::External { ip: ip("8.8.4.4") }, 40000, undecided),
        // Ingress from the range: an external address and an unresolved one.
        (Endpoint::External { ip: ip("8.8.8.8") }, me(), 443, request.clone()),
        (Endpoint::Unresolved { ip: ip("8.8.4.4") }, me(), 443, request),
    ];
    for (src, dst, port, stats) in rows {
        conns.map.insert(ConnKey { src, dst, port: Port::new(port).unwrap(), protocol: Protocol::Tcp }, stats);
    }
    let opts = Options {
        decisions: Decisions { trust: BTreeSet::from(["8.8.0.0/16".parse::<Cidr>().unwrap()]), ..Decisions::default() },
        ..Options::default()
    };
    let g = generate(&inv, &conns, &opts);
    verify_in_both_dialects(&g, &inv, &conns);
    assert!(g.review.iter().all(|r| r.status == Status::Allowed), "{:?}", g.review);
    // Addresses admitted by a range are admitted by Cilium's CIDR rule for it too.
    assert!(g.review.iter().all(|r| r.cilium.is_none()), "{:?}", g.review);
    assert_eq!(
        g.warnings.iter().filter(|w| w.contains("the rule for 8.8.0.0/16 admits it")).count(),
        2,
        "{:?}",
        g.warnings
    );
}

/// The generation verifies as NetworkPolicies and as CiliumNetworkPolicies, each against its own
/// reading of the rules.
fn verify_in_both_dialects(g: &flowgate::policy::generate::Generation, inv: &Inventory, conns: &Connections) {
    let v = verify(g, inv, &conns.catalog);
    assert!(v.ok(), "NetworkPolicy: {:?}", v.mismatches);
    let cilium = flowgate::policy::cilium::render(g);
    let v = flowgate::policy::verify::verify_cilium(g, &cilium.policies, inv, &conns.catalog, &conns.names);
    assert!(v.ok(), "CiliumNetworkPolicy: {:?}", v.mismatches);
}

/// Every finding the pipeline fuzz target kept (`fuzz/findings/`) replays clean through the very
/// case the fuzzer runs, except those fuzz/README.md lists as open.
#[test]
fn every_fixed_fuzz_finding_replays_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let open: Vec<&str> = readme
        .lines()
        .filter(|l| l.contains("(open)"))
        .filter_map(|l| l.split('`').nth(1))
        .filter_map(|p| p.strip_prefix("findings/"))
        .collect();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(dir.join("findings")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.starts_with("pipeline-") || open.contains(&name.as_str()) {
            continue;
        }
        replayed += 1;
        if let Err(e) = pipeline_case::run(&std::fs::read(&path).unwrap()) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(replayed >= 6, "the findings are there ({replayed})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
