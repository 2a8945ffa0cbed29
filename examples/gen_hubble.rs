//! Writes synthetic `hubble observe -o json` lines for the benchmark (see BENCHMARKS.md).
//!
//! ```sh
//! cargo run --release --example gen_hubble -- --lines 420000 --out /var/tmp/flowgate-bench/hubble-420k.json
//! ```
//!
//! The lines follow the current Hubble schema (1.15+: `uuid`, `workloads`, `is_reply`,
//! `trace_reason`) and are shaped on the real samples in `tests/data/hubble`:
//! the same label sources, endpoint fields, `ethernet`, `event_type`, `Summary`, so that a line
//! averages about 1.2 KB and costs a parser what a real one costs.
//!
//! The cluster is fixed by the seed and does not grow with the number of lines: a few hundred
//! workloads in a few namespaces, each with a few dependencies, DNS to kube-dns, some external
//! APIs, Prometheus scraping, kubelet probes. Pods come and go (rollouts give Deployments new pod
//! names, StatefulSet pods come back under the same name with a new address, every CronJob run is a
//! new pod, freed addresses are handed out again), so pods and flows grow with the lines while
//! the distinct connections (workload, peer, port, protocol) stay in the low thousands. About half
//! of the lines are replies; a few are ICMP, L7 (DNS and HTTP) or policy drops.
//!
//! Deterministic: the same `--seed` and `--lines` give the same bytes. No `rand` crate: a
//! xorshift64* generator is all a benchmark input needs.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::CronJob => "CronJob",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

struct Pod {
    name: String,
    ip: String,
    node: usize,
    endpoint_id: u32,
}

struct Workload {
    ns: usize,
    name: String,
    kind: Kind,
    identity: u32,
    /// The `labels` array of a Hubble endpoint, already rendered (`"k8s:app=x",...`).
    labels: String,
    port: u16,
    proto: Proto,
    replicas: usize,
    /// ReplicaSet hash of the current rollout (Deployments).
    hash: String,
    pods: Vec<Pod>,
}

/// Who talks to whom; the set is fixed, so connections do not grow with the lines.
enum Peer {
    Workload(usize),
    World(usize),
}

enum Src {
    Workload(usize),
    /// Kubelet probes come from the node that runs the pod.
    Host,
}

struct Edge {
    src: Src,
    dst: Peer,
    port: u16,
    proto: Proto,
    /// The Service the client addressed, when it went through one.
    service: Option<(usize, String)>,
    dropped: bool,
}

const NAMESPACES: &[&str] =
    &["shop", "payments", "catalog", "identity", "data", "search", "monitoring", "ingress-nginx", "kube-system"];
/// Application namespaces: the first six.
const APP_NAMESPACES: usize = 6;
const STEMS: &[&str] = &[
    "cart",
    "checkout",
    "orders",
    "pricing",
    "inventory",
    "recommend",
    "review",
    "notify",
    "ledger",
    "invoice",
    "session",
    "profile",
    "media",
    "export",
    "audit",
    "quota",
];
const ROLES: &[&str] = &["api", "worker", "db", "cache", "gateway", "sync"];
const WORLD: &[(&str, &str)] = &[
    ("140.82.121.4", "api.github.com"),
    ("140.82.121.6", "github.com"),
    ("52.94.236.248", "sqs.eu-west-1.amazonaws.com"),
    ("52.218.97.35", "s3.eu-west-1.amazonaws.com"),
    ("3.5.64.130", "s3.eu-west-1.amazonaws.com"),
    ("54.187.174.169", "api.stripe.com"),
    ("54.187.205.235", "api.stripe.com"),
    ("151.101.1.140", "registry.npmjs.org"),
    ("151.101.65.140", "pypi.org"),
    ("142.250.179.138", "oauth2.googleapis.com"),
    ("142.250.185.74", "www.googleapis.com"),
    ("104.16.132.229", "api.cloudflare.com"),
    ("18.66.196.87", "sentry.io"),
    ("35.186.224.25", "hooks.slack.com"),
    ("13.107.42.14", "login.microsoftonline.com"),
    ("199.232.57.194", "api.sendgrid.com"),
    ("34.120.54.55", "api.segment.io"),
    ("185.199.108.133", "raw.githubusercontent.com"),
    ("104.18.32.7", "api.openai.com"),
    ("23.22.39.120", "api.twilio.com"),
];
const NODES: usize = 6;

struct Cluster {
    rng: Rng,
    workloads: Vec<Workload>,
    edges: Vec<Edge>,
    /// Edge indices, each repeated by its weight: picking one uniformly picks traffic realistically.
    traffic: Vec<usize>,
    /// Free pod addresses per node, handed out first-in first-out (as host-local IPAM does), so a
    /// freed address is reused by another pod a little later.
    free_ips: Vec<VecDeque<String>>,
    node_names: Vec<String>,
    dns: usize,
    ingress: usize,
    prometheus: usize,
    job_runs: u64,
}

impl Cluster {
    fn new(seed: u64) -> Cluster {
        let mut rng = Rng::new(seed);
        let node_names: Vec<String> =
            (0..NODES).map(|i| format!("gke-prod-pool-{}-{}-{}", i % 2 + 1, rng.alnum(8), rng.alnum(4))).collect();
        let free_ips = (0..NODES).map(|n| (2..255).map(|h| format!("10.244.{n}.{h}")).collect()).collect();
        let mut c = Cluster {
            rng,
            workloads: Vec::new(),
            edges: Vec::new(),
            traffic: Vec::new(),
            free_ips,
            node_names,
            dns: 0,
            ingress: 0,
            prometheus: 0,
            job_runs: 0,
        };
        c.add_workloads();
        c.add_edges();
        for w in 0..c.workloads.len() {
            c.start_pods(w);
        }
        c
    }

    fn add_workload(&mut self, ns: usize, name: &str, kind: Kind, port: u16, proto: Proto, replicas: usize) -> usize {
        let ns_name = NAMESPACES[ns];
        // Half the workloads run under the namespace's default service account.
        let account = if self.rng.chance(500) { name } else { "default" };
        let labels = format!(
            r#""k8s:app={name}","k8s:io.cilium.k8s.policy.cluster=prod","k8s:io.cilium.k8s.policy.serviceaccount={account}","k8s:io.kubernetes.pod.namespace={ns_name}""#
        );
        let identity = 10_000 + self.rng.range(0, 50_000) as u32;
        let hash = self.rng.alnum(10);
        self.workloads.push(Workload {
            ns,
            name: name.to_string(),
            kind,
            identity,
            labels,
            port,
            proto,
            replicas,
            hash,
            pods: Vec::new(),
        });
        self.workloads.len() - 1
    }

    fn add_workloads(&mut self) {
        for ns in 0..APP_NAMESPACES {
            // 48 of the 96 stem-role names per namespace, a different half in each.
            for i in 0..STEMS.len() * ROLES.len() {
                if (i + ns) % 2 == 1 {
                    continue;
                }
                let (stem, role) = (STEMS[i % STEMS.len()], ROLES[i / STEMS.len()]);
                let name = format!("{stem}-{role}");
                let (kind, port, proto, replicas) = match role {
                    "db" => (Kind::StatefulSet, 5432, Proto::Tcp, 3),
                    "cache" => (Kind::StatefulSet, 6379, Proto::Tcp, 3),
                    "sync" if i % 3 == 0 => (Kind::CronJob, 8080, Proto::Tcp, 1),
                    "sync" => (Kind::Deployment, 9000, Proto::Tcp, 1),
                    "gateway" => (Kind::Deployment, 8443, Proto::Tcp, 3),
                    "worker" if i % 5 == 0 => (Kind::Deployment, 8125, Proto::Udp, 2),
                    "worker" => (Kind::Deployment, 50051, Proto::Tcp, 2),
                    _ => (Kind::Deployment, 8080, Proto::Tcp, 1 + i % 4),
                };
                self.add_workload(ns, &name, kind, port, proto, replicas);
            }
        }
        let mon = APP_NAMESPACES;
        self.prometheus = self.add_workload(mon, "prometheus-server", Kind::StatefulSet, 9090, Proto::Tcp, 2);
        self.add_workload(mon, "grafana", Kind::Deployment, 3000, Proto::Tcp, 1);
        self.add_workload(mon, "node-exporter", Kind::DaemonSet, 9100, Proto::Tcp, NODES);
        self.add_workload(mon, "alertmanager", Kind::StatefulSet, 9093, Proto::Tcp, 2);
        self.ingress = self.add_workload(mon + 1, "ingress-nginx-controller", Kind::Deployment, 443, Proto::Tcp, 3);
        self.dns = self.add_workload(mon + 2, "coredns", Kind::Deployment, 53, Proto::Udp, 2);
        self.workloads[self.dns].labels.push_str(r#","k8s:k8s-app=kube-dns""#);
        self.add_workload(mon + 2, "metrics-server", Kind::Deployment, 10250, Proto::Tcp, 1);
    }

    fn add_edges(&mut self) {
        let n = self.workloads.len();
        let apps: Vec<usize> = (0..n).filter(|&w| self.workloads[w].ns < APP_NAMESPACES).collect();
        let add = |c: &mut Cluster, src: Src, dst: Peer, port, proto, service, weight: usize, dropped| {
            c.edges.push(Edge { src, dst, port, proto, service, dropped });
            let e = c.edges.len() - 1;
            c.traffic.extend(std::iter::repeat_n(e, weight));
        };
        for &w in &apps {
            // Dependencies: mostly in the own namespace.
            let deps = self.rng.range(3, 10) as usize;
            for _ in 0..deps {
                let d = loop {
                    let d = *self.rng.pick(&apps);
                    let same = self.workloads[d].ns == self.workloads[w].ns;
                    if d != w && self.workloads[d].kind != Kind::CronJob && (same || self.rng.chance(300)) {
                        break d;
                    }
                };
                let (port, proto) = (self.workloads[d].port, self.workloads[d].proto);
                let svc = Some((self.workloads[d].ns, self.workloads[d].name.clone()));
                let weight = self.rng.range(1, 8) as usize;
                add(self, Src::Workload(w), Peer::Workload(d), port, proto, svc, weight, false);
            }
            let dns = self.dns;
            let kube_dns = Some((self.workloads[dns].ns, "kube-dns".to_string()));
            add(self, Src::Workload(w), Peer::Workload(dns), 53, Proto::Udp, kube_dns.clone(), 6, false);
            if self.rng.chance(250) {
                add(self, Src::Workload(w), Peer::Workload(dns), 53, Proto::Tcp, kube_dns, 1, false);
            }
            if self.rng.chance(150) {
                for _ in 0..self.rng.range(1, 3) {
                    let x = self.rng.below(WORLD.len());
                    add(self, Src::Workload(w), Peer::World(x), 443, Proto::Tcp, None, 2, false);
                }
            }
            let prom = self.prometheus;
            add(self, Src::Workload(prom), Peer::Workload(w), 9090, Proto::Tcp, None, 1, false);
            add(self, Src::Host, Peer::Workload(w), self.workloads[w].port.max(1024), Proto::Tcp, None, 1, false);
            if self.workloads[w].name.ends_with("-gateway") {
                let ing = self.ingress;
                add(self, Src::Workload(ing), Peer::Workload(w), 8443, Proto::Tcp, None, 6, false);
            }
        }
        // Attempts the cluster's current policies deny: a fixed few, rarely tried.
        for _ in 0..40 {
            let (a, b) = (*self.rng.pick(&apps), *self.rng.pick(&apps));
            if a != b && self.workloads[a].kind != Kind::CronJob {
                let port = self.workloads[b].port;
                add(self, Src::Workload(a), Peer::Workload(b), port, Proto::Tcp, None, 1, true);
            }
        }
    }

    fn start_pod(&mut self, w: usize, ordinal: usize) -> Pod {
        let wl = &self.workloads[w];
        let node = match wl.kind {
            Kind::DaemonSet => ordinal % NODES,
            _ => self.rng.below(NODES),
        };
        let name = match wl.kind {
            Kind::Deployment => format!("{}-{}-{}", wl.name, wl.hash, self.rng.alnum(5)),
            Kind::StatefulSet => format!("{}-{ordinal}", wl.name),
            Kind::DaemonSet => format!("{}-{}", wl.name, self.rng.alnum(5)),
            Kind::CronJob => {
                self.job_runs += 1;
                format!("{}-{}-{}", wl.name, 29_410_000 + self.job_runs, self.rng.alnum(5))
            }
        };
        let ip = self.free_ips[node].pop_front().expect("a node ran out of pod addresses");
        Pod { name, ip, node, endpoint_id: self.rng.range(100, 4000) as u32 }
    }

    fn start_pods(&mut self, w: usize) {
        let pods: Vec<Pod> = (0..self.workloads[w].replicas).map(|i| self.start_pod(w, i)).collect();
        let old = std::mem::replace(&mut self.workloads[w].pods, pods);
        for p in old {
            self.free_ips[p.node].push_back(p.ip);
        }
    }

    /// Time passes: some Deployments roll out, some StatefulSet pods restart, every CronJob runs.
    fn churn(&mut self) {
        for w in 0..self.workloads.len() {
            match self.workloads[w].kind {
                Kind::Deployment if self.rng.chance(60) => {
                    self.workloads[w].hash = self.rng.alnum(10);
                    self.start_pods(w);
                }
                Kind::StatefulSet if self.rng.chance(40) => {
                    let i = self.rng.below(self.workloads[w].pods.len());
                    let pod = self.start_pod(w, i);
                    let old = std::mem::replace(&mut self.workloads[w].pods[i], pod);
                    self.free_ips[old.node].push_back(old.ip);
                }
                Kind::CronJob => self.start_pods(w),
                _ => {}
            }
        }
    }
}

/// One end of a flow as Hubble shows it.
enum End<'a> {
    Pod(&'a Workload, &'a Pod),
    Host(&'a str),
    World(&'a str),
}

impl End<'_> {
    fn ip(&self) -> &str {
        match self {
            End::Pod(_, p) => &p.ip,
            End::Host(ip) | End::World(ip) => ip,
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            End::Pod(w, p) => {
                write!(
                    out,
                    r#"{{"ID":{},"identity":{},"namespace":"{}","labels":[{}],"pod_name":"{}","workloads":[{{"name":"{}","kind":"{}"}}]}}"#,
                    p.endpoint_id,
                    w.identity,
                    NAMESPACES[w.ns],
                    w.labels,
                    p.name,
                    w.name,
                    w.kind.name()
                )
                .unwrap();
            }
            End::Host(_) => out.push_str(r#"{"identity":1,"labels":["reserved:host"]}"#),
            End::World(_) => out.push_str(r#"{"identity":2,"labels":["reserved:world"]}"#),
        }
    }
}

struct Line<'a> {
    time: &'a str,
    node: &'a str,
    /// Whether the datapath reports MAC addresses (some clusters' flows have `ethernet`, some not).
    ethernet: bool,
    src: &'a End<'a>,
    dst: &'a End<'a>,
    /// `"TCP":{...}` or `"UDP":{...}` or `"ICMPv4":{...}`, without the braces of `l4`.
    l4: &'a str,
    kind: &'a str,
    event_type: &'a str,
    verdict: &'a str,
    egress: bool,
    observation: Option<&'a str>,
    trace_reason: Option<&'a str>,
    reply: bool,
    service: Option<(&'a str, &'a str)>,
    dst_names: Option<&'a str>,
    l7: Option<&'a str>,
    extra: &'a str,
    summary: &'a str,
}

fn render(rng: &mut Rng, l: &Line, out: &mut String) {
    write!(out, r#"{{"flow":{{"time":"{}","uuid":"{}","verdict":"{}",{}"#, l.time, rng.uuid(), l.verdict, l.extra)
        .unwrap();
    if l.ethernet {
        write!(out, r#""ethernet":{{"source":"{}","destination":"{}"}},"#, rng.mac(), rng.mac()).unwrap();
    }
    write!(
        out,
        r#""IP":{{"source":"{}","destination":"{}","ipVersion":"IPv4"}},"l4":{{{}}},"source":"#,
        l.src.ip(),
        l.dst.ip(),
        l.l4
    )
    .unwrap();
    l.src.write(out);
    out.push_str(r#","destination":"#);
    l.dst.write(out);
    write!(out, r#","Type":"{}","node_name":"{}","#, l.kind, l.node).unwrap();
    if let Some(names) = l.dst_names {
        write!(out, r#""destination_names":["{names}"],"#).unwrap();
    }
    if let Some(l7) = l.l7 {
        write!(out, r#""l7":{l7},"#).unwrap();
    }
    write!(
        out,
        r#""event_type":{},"traffic_direction":"{}","#,
        l.event_type,
        if l.egress { "EGRESS" } else { "INGRESS" }
    )
    .unwrap();
    if let Some(o) = l.observation {
        write!(out, r#""trace_observation_point":"{o}","#).unwrap();
    }
    if let Some(r) = l.trace_reason {
        write!(out, r#""trace_reason":"{r}","#).unwrap();
    }
    write!(out, r#""is_reply":{},"#, l.reply).unwrap();
    if let Some((ns, name)) = l.service {
        write!(out, r#""destination_service":{{"name":"{name}","namespace":"{ns}"}},"#).unwrap();
    }
    write!(out, r#""Summary":"{}"}},"node_name":"{}","time":"{}"}}"#, l.summary, l.node, l.time).unwrap();
    out.push('\n');
}

/// RFC 3339 with nanoseconds, the way Hubble prints it.
struct Clock {
    nanos: i128,
    second: i64,
    prefix: String,
}

impl Clock {
    fn new() -> Clock {
        let start: jiff::Timestamp = "2026-11-25T09:00:00Z".parse().unwrap();
        Clock { nanos: start.as_nanosecond(), second: i64::MIN, prefix: String::new() }
    }

    fn advance(&mut self, rng: &mut Rng) -> String {
        // About 2 ms a line on average: 420k lines span a quarter of an hour.
        self.nanos += rng.range(1, 4_000_000) as i128;
        let second = self.nanos.div_euclid(1_000_000_000) as i64;
        if second != self.second {
            self.second = second;
            let t = jiff::Timestamp::from_second(second).unwrap();
            self.prefix = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        }
        format!("{}.{:09}Z", self.prefix, self.nanos.rem_euclid(1_000_000_000))
    }
}

const TCP_REQUEST: &[(&str, &str)] = &[
    (r#""SYN":true"#, "SYN"),
    (r#""ACK":true"#, "ACK"),
    (r#""PSH":true,"ACK":true"#, "ACK, PSH"),
    (r#""PSH":true,"ACK":true"#, "ACK, PSH"),
    (r#""FIN":true,"ACK":true"#, "ACK, FIN"),
];
const TCP_REPLY: &[(&str, &str)] = &[
    (r#""SYN":true,"ACK":true"#, "SYN, ACK"),
    (r#""ACK":true"#, "ACK"),
    (r#""PSH":true,"ACK":true"#, "ACK, PSH"),
    (r#""FIN":true,"ACK":true"#, "ACK, FIN"),
];

fn main() -> io::Result<()> {
    let mut lines: u64 = 420_000;
    let mut out_path = "-".to_string();
    let mut seed: u64 = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--lines" => lines = value().parse().unwrap_or_else(|_| usage("--lines takes a number")),
            "--out" => out_path = value(),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage("--seed takes a number")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let sink: Box<dyn Write> = if out_path == "-" {
        Box::new(io::stdout().lock())
    } else {
        if let Some(dir) = std::path::Path::new(&out_path).parent() {
            std::fs::create_dir_all(dir)?;
        }
        Box::new(std::fs::File::create(&out_path)?)
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);

    let mut c = Cluster::new(seed);
    // The line generator has its own stream, so the cluster does not change with `--lines`.
    let mut rng = Rng::new(seed ^ 0xF10E);
    let mut clock = Clock::new();
    let mut buf = String::with_capacity(64 * 1024);
    let mut written: u64 = 0;
    let mut bytes: u64 = 0;
    let mut next_churn = 20_000;
    let host_ips: Vec<String> = (0..NODES).map(|n| format!("10.132.0.{}", 10 + n)).collect();

    while written < lines {
        if written >= next_churn {
            c.churn();
            next_churn += 20_000;
        }
        buf.clear();
        let roll = rng.below(1000);
        let e = &c.edges[c.traffic[rng.below(c.traffic.len())]];
        let (src_w, src_node_ip) = match e.src {
            Src::Workload(w) => (Some(w), None),
            Src::Host => (None, Some(())),
        };
        let dst_w = match e.dst {
            Peer::Workload(d) => Some(d),
            Peer::World(_) => None,
        };
        let dst_end = match (&e.dst, dst_w) {
            (_, Some(d)) => {
                let wl = &c.workloads[d];
                End::Pod(wl, &wl.pods[rng.below(wl.pods.len())])
            }
            (Peer::World(x), _) => End::World(WORLD[*x].0),
            _ => unreachable!(),
        };
        let src_end = match (src_w, src_node_ip) {
            (Some(w), _) => {
                let wl = &c.workloads[w];
                End::Pod(wl, &wl.pods[rng.below(wl.pods.len())])
            }
            _ => {
                // Probes come from the node that runs the destination pod.
                let End::Pod(_, p) = &dst_end else { unreachable!() };
                End::Host(&host_ips[p.node])
            }
        };
        let node_of = |end: &End| match end {
            End::Pod(_, p) => Some(p.node),
            _ => None,
        };
        let src_node = node_of(&src_end).or(node_of(&dst_end)).unwrap_or(0);
        let dst_node = node_of(&dst_end).unwrap_or(src_node);
        let sport = rng.range(32768, 60999);
        let proto_name = if e.proto == Proto::Tcp { "TCP" } else { "UDP" };
        let service = e.service.as_ref().map(|(ns, name)| (NAMESPACES[*ns], name.as_str()));
        let dst_names = match e.dst {
            Peer::World(x) => Some(WORLD[x].1),
            _ => None,
        };
        let node_name = |n: usize| c.node_names[n].as_str();
        // One node pool's datapath reports MAC addresses, the other's does not, as in the samples.
        let ethernet = |n: usize| n % 2 == 1;

        if e.dropped {
            let time = clock.advance(&mut rng);
            let l4 = format!(r#""TCP":{{"source_port":{sport},"destination_port":{},"flags":{{"SYN":true}}}}"#, e.port);
            render(
                &mut rng,
                &Line {
                    time: &time,
                    node: node_name(src_node),
                    ethernet: ethernet(src_node),
                    src: &src_end,
                    dst: &dst_end,
                    l4: &l4,
                    kind: "L3_L4",
                    event_type: r#"{"type":5}"#,
                    verdict: "DROPPED",
                    egress: true,
                    observation: None,
                    trace_reason: None,
                    reply: false,
                    service,
                    dst_names,
                    l7: None,
                    extra: r#""drop_reason":133,"drop_reason_desc":"POLICY_DENIED","#,
                    summary: "TCP Flags: SYN",
                },
                &mut buf,
            );
        } else if roll < 12 {
            // ICMP echo between the two ends: no ports, nothing a NetworkPolicy port names.
            for reply in [false, true] {
                let time = clock.advance(&mut rng);
                let (a, b) = if reply { (&dst_end, &src_end) } else { (&src_end, &dst_end) };
                let (l4, summary) = if reply {
                    (r#""ICMPv4":{}"#, "ICMPv4 EchoReply")
                } else {
                    (r#""ICMPv4":{"type":8}"#, "ICMPv4 EchoRequest")
                };
                render(
                    &mut rng,
                    &Line {
                        time: &time,
                        node: node_name(src_node),
                        ethernet: ethernet(src_node),
                        src: a,
                        dst: b,
                        l4,
                        kind: "L3_L4",
                        event_type: r#"{"type":4}"#,
                        verdict: "FORWARDED",
                        egress: true,
                        observation: Some("TO_STACK"),
                        trace_reason: Some(if reply { "REPLY" } else { "NEW" }),
                        reply,
                        service: None,
                        dst_names: None,
                        l7: None,
                        extra: "",
                        summary,
                    },
                    &mut buf,
                );
            }
        } else if roll < 50 && (e.port == 53 || e.port == 8080) && src_w.is_some() {
            // The L7 proxy's view of the same request and its response.
            for reply in [false, true] {
                let time = clock.advance(&mut rng);
                let (a, b) = if reply { (&dst_end, &src_end) } else { (&src_end, &dst_end) };
                let (ap, bp) = if reply { (e.port as u64, sport) } else { (sport, e.port as u64) };
                let l4 = format!(r#""{proto_name}":{{"source_port":{ap},"destination_port":{bp}}}"#);
                let (l7, summary) = if e.port == 53 {
                    let q = format!(
                        "{}.{}.svc.cluster.local.",
                        c.workloads[rng.below(c.workloads.len())].name,
                        NAMESPACES[rng.below(APP_NAMESPACES)]
                    );
                    if reply {
                        let answer = format!("10.96.{}.{}", rng.below(255), rng.below(255));
                        (
                            format!(
                                r#"{{"type":"RESPONSE","latency_ns":"{}","dns":{{"query":"{q}","ips":["{answer}"],"ttl":30,"rcode":0,"qtypes":["A"],"rrtypes":["A"],"observation_source":"proxy"}}}}"#,
                                rng.range(100_000, 3_000_000),
                            ),
                            format!(r#"DNS Answer \"{answer}\" TTL: 30 (Proxy {q} A)"#),
                        )
                    } else {
                        (
                            format!(
                                r#"{{"type":"REQUEST","dns":{{"query":"{q}","qtypes":["A"],"observation_source":"proxy"}}}}"#
                            ),
                            format!("DNS Query {q} A"),
                        )
                    }
                } else {
                    let host = match b {
                        End::Pod(w, _) if !reply => w.name.as_str(),
                        End::Pod(_, _) | End::Host(_) | End::World(_) => "localhost",
                    };
                    let url = format!("http://{host}:8080/api/v1/items/{}", rng.range(1, 99_999));
                    let http = format!(
                        r#"{{"type":"{}","latency_ns":"{}","http":{{"code":{},"method":"GET","url":"{url}","protocol":"HTTP/1.1","headers":[{{"key":":authority","value":"{host}:8080"}},{{"key":"Accept","value":"application/json"}},{{"key":"User-Agent","value":"okhttp/4.12.0"}},{{"key":"X-Request-Id","value":"{}"}}]}}}}"#,
                        if reply { "RESPONSE" } else { "REQUEST" },
                        if reply { rng.range(500_000, 90_000_000) } else { 0 },
                        if reply { 200 } else { 0 },
                        rng.uuid()
                    );
                    let summary = if reply {
                        format!("HTTP/1.1 200 {}ms (GET {url})", rng.range(1, 90))
                    } else {
                        format!("HTTP/1.1 GET {url}")
                    };
                    (http, summary)
                };
                render(
                    &mut rng,
                    &Line {
                        time: &time,
                        node: node_name(src_node),
                        ethernet: ethernet(src_node),
                        src: a,
                        dst: b,
                        l4: &l4,
                        kind: "L7",
                        event_type: r#"{"type":129}"#,
                        verdict: "FORWARDED",
                        egress: true,
                        observation: None,
                        trace_reason: None,
                        reply,
                        service: if reply { None } else { service },
                        dst_names: None,
                        l7: Some(&l7),
                        extra: "",
                        summary: &summary,
                    },
                    &mut buf,
                );
            }
        } else {
            // A request and its reply, seen leaving the source's node and, when the ends are on
            // different nodes, arriving at the destination's too.
            let views: &[bool] =
                if dst_w.is_some() && src_w.is_some() && src_node != dst_node { &[true, false] } else { &[true] };
            let egress_view = src_w.is_some();
            for &at_source in views {
                let node = if at_source { src_node } else { dst_node };
                let egress = at_source && egress_view;
                for reply in [false, true] {
                    let time = clock.advance(&mut rng);
                    let (a, b) = if reply { (&dst_end, &src_end) } else { (&src_end, &dst_end) };
                    let (ap, bp) = if reply { (e.port as u64, sport) } else { (sport, e.port as u64) };
                    let (l4, summary) = if e.proto == Proto::Tcp {
                        let (flags, names) = *rng.pick(if reply { TCP_REPLY } else { TCP_REQUEST });
                        (
                            format!(r#""TCP":{{"source_port":{ap},"destination_port":{bp},"flags":{{{flags}}}}}"#),
                            format!("TCP Flags: {names}"),
                        )
                    } else {
                        (format!(r#""UDP":{{"source_port":{ap},"destination_port":{bp}}}"#), "UDP".to_string())
                    };
                    let observation = match (at_source, reply) {
                        (true, false) => "TO_STACK",
                        (true, true) => "TO_ENDPOINT",
                        (false, false) => "TO_ENDPOINT",
                        (false, true) => "TO_STACK",
                    };
                    render(
                        &mut rng,
                        &Line {
                            time: &time,
                            node: node_name(node),
                            ethernet: ethernet(node),
                            src: a,
                            dst: b,
                            l4: &l4,
                            kind: "L3_L4",
                            event_type: if reply { r#"{"type":4,"sub_type":3}"# } else { r#"{"type":4}"# },
                            verdict: "FORWARDED",
                            egress,
                            observation: Some(observation),
                            trace_reason: Some(if reply { "REPLY" } else { "NEW" }),
                            reply,
                            service: if reply { None } else { service },
                            dst_names: if reply { None } else { dst_names },
                            l7: None,
                            extra: "",
                            summary: &summary,
                        },
                        &mut buf,
                    );
                }
            }
        }
        // Whole events only, so a request never loses its reply; stop at the line count.
        let mut take = buf.as_str();
        let room = lines - written;
        let n = take.matches('\n').count() as u64;
        if n > room {
            let cut = take.match_indices('\n').nth(room as usize - 1).map_or(take.len(), |(i, _)| i + 1);
            take = &take[..cut];
        }
        out.write_all(take.as_bytes())?;
        written += n.min(room);
        bytes += take.len() as u64;
    }
    out.flush()?;
    eprintln!("gen_hubble: {written} lines, {bytes} bytes ({:.0} bytes/line)", bytes as f64 / written.max(1) as f64);
    Ok(())
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("gen_hubble: {msg}");
    }
    eprintln!("usage: gen_hubble [--lines N (420000)] [--out FILE (stdout)] [--seed N (1)]");
    std::process::exit(if msg.is_empty() { 0 } else { 2 });
}
