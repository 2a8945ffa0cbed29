//! Domain values shared by every module: protocols, ports, workload references, CIDRs, peers,
//! verdicts and the flow record that every reader produces.
//!
//! Raw strings stop here: each type has a fallible constructor (`FromStr`) whose error says what was
//! wrong, so the rest of the crate never re-checks a name or an address. Kubernetes names and
//! labels have their rules in [`names`].

pub mod names;

pub use names::{DnsName, LabelKey, LabelValue, Name, NameRule};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Label maps are ordered so that everything derived from them (selectors, YAML) is deterministic.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("unknown protocol {0:?} (expected TCP, UDP or SCTP)")]
    Protocol(String),
    #[error("invalid port {0:?} (expected 1-65535)")]
    Port(String),
    #[error(
        "unknown workload kind {0:?} (expected deployment, statefulset, daemonset, job, cronjob, replicaset or pod)"
    )]
    Kind(String),
    #[error("invalid workload {0:?} (expected KIND/NAMESPACE/NAME, e.g. deployment/shop/cassandra)")]
    Workload(String),
    #[error("invalid CIDR {0:?}: {1}")]
    Cidr(String, String),
    #[error("invalid peer {0:?}: expected KIND/NAMESPACE/NAME or an IP address or CIDR")]
    Peer(String),
    /// The name (an excerpt of it), the rule it breaks, and how.
    #[error("{0:?} is not a valid {1}: {2}")]
    Name(String, &'static str, &'static str),
    #[error("label key {0:?} is not valid: {1}")]
    LabelKey(String, &'static str),
    #[error("label value {0:?} is not valid: {1}")]
    LabelValue(String, &'static str),
    #[error("{0:?} is not a valid DNS name: {1}")]
    DnsName(String, &'static str),
}

/// The L4 protocols a NetworkPolicy can name. ICMP and other protocols never become connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Protocol::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Ok(Protocol::Udp)
        } else if s.eq_ignore_ascii_case("sctp") {
            Ok(Protocol::Sctp)
        } else {
            Err(ModelError::Protocol(names::excerpt(s)))
        }
    }
}

/// A destination port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Port(u16);

impl Port {
    pub fn new(p: u16) -> Option<Port> {
        (p != 0).then_some(Port(p))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Port {
    type Error = ModelError;
    fn try_from(p: u16) -> Result<Self, Self::Error> {
        Port::new(p).ok_or_else(|| ModelError::Port(p.to_string()))
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Port {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u16>().ok().and_then(Port::new).ok_or_else(|| ModelError::Port(names::excerpt(s)))
    }
}

/// What owns a set of pods. `Pod` is a bare pod; `ReplicaSet` only when no Deployment owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
    ReplicaSet,
    ReplicationController,
    Pod,
}

impl WorkloadKind {
    /// Lowercase, as used in PEER strings and URLs (`deployment/shop/cassandra`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::Job => "job",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::ReplicationController => "replicationcontroller",
            WorkloadKind::Pod => "pod",
        }
    }

    /// The Kubernetes `kind` spelling (`StatefulSet`).
    pub fn kube_kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::Pod => "Pod",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkloadKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let k = match s.to_ascii_lowercase().as_str() {
            "deployment" | "deploy" | "deployments" => WorkloadKind::Deployment,
            "statefulset" | "sts" | "statefulsets" => WorkloadKind::StatefulSet,
            "daemonset" | "ds" | "daemonsets" => WorkloadKind::DaemonSet,
            "cronjob" | "cj" | "cronjobs" => WorkloadKind::CronJob,
            "job" | "jobs" => WorkloadKind::Job,
            "replicaset" | "rs" | "replicasets" => WorkloadKind::ReplicaSet,
            "replicationcontroller" | "rc" => WorkloadKind::ReplicationController,
            "pod" | "po" | "pods" => WorkloadKind::Pod,
            _ => return Err(ModelError::Kind(names::excerpt(s))),
        };
        Ok(k)
    }
}

/// A workload: `kind/namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl WorkloadRef {
    /// From parts already known to be valid: names out of an [`Inventory`](crate::inventory::Inventory)
    /// or another reference. Anything from outside goes through [`WorkloadRef::parse`] (or `FromStr`).
    pub fn new(kind: WorkloadKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef { kind, namespace: namespace.into(), name: name.into() }
    }

    /// Checks the namespace (a DNS-1123 label) and the name (its kind's rule, [`NameRule::for_workload`]).
    pub fn parse(kind: WorkloadKind, namespace: &str, name: &str) -> Result<Self, ModelError> {
        Name::namespace(namespace)?;
        NameRule::for_workload(kind).check(name)?;
        Ok(WorkloadRef::new(kind, namespace, name))
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

impl FromStr for WorkloadRef {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('/');
        let (Some(kind), Some(ns), Some(name), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(ModelError::Workload(names::excerpt(s)));
        };
        WorkloadRef::parse(kind.parse()?, ns, name)
    }
}

impl TryFrom<String> for WorkloadRef {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WorkloadRef> for String {
    fn from(w: WorkloadRef) -> String {
        w.to_string()
    }
}

/// An IPv4 or IPv6 network in canonical form (no host bits set). A bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn net(&self) -> IpNet {
        self.0
    }
    pub fn host(ip: IpAddr) -> Cidr {
        Cidr(IpNet::from(ip))
    }
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.network(), self.0.prefix_len())
    }
}

impl FromStr for Cidr {
    type Err = ModelError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Cidr::host(ip));
        }
        let net: IpNet = s.parse().map_err(|_| {
            ModelError::Cidr(names::excerpt(raw), "not an address/prefix such as 10.0.0.0/8 or 2001:db8::/32".into())
        })?;
        if net.trunc() != net {
            return Err(ModelError::Cidr(
                names::excerpt(raw),
                format!("host bits are set; did you mean {}?", net.trunc()),
            ));
        }
        Ok(Cidr(net))
    }
}

impl TryFrom<String> for Cidr {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

/// What `--exclude` and the review decisions name: a workload or an address range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PeerSpec {
    Workload(WorkloadRef),
    Net(Cidr),
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSpec::Workload(w) => w.fmt(f),
            PeerSpec::Net(c) => c.fmt(f),
        }
    }
}

impl FromStr for PeerSpec {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('/') && s.split('/').count() == 3 {
            return s.parse().map(PeerSpec::Workload);
        }
        match s.parse::<Cidr>() {
            Ok(c) => Ok(PeerSpec::Net(c)),
            Err(e @ ModelError::Cidr(_, _)) if s.contains('/') && s.parse::<IpNet>().is_ok() => Err(e),
            Err(_) => Err(ModelError::Peer(names::excerpt(s))),
        }
    }
}

/// `8080/TCP`: a destination port and its protocol, as `flowgate explain` and the explain API
/// take them.
pub fn parse_port_proto(s: &str) -> Result<(Port, Protocol), String> {
    s.split_once('/')
        .and_then(|(p, proto)| Some((p.parse::<Port>().ok()?, proto.parse::<Protocol>().ok()?)))
        .ok_or_else(|| format!("{s:?}: expected a port and a protocol such as 8080/TCP"))
}

impl TryFrom<String> for PeerSpec {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PeerSpec> for String {
    fn from(p: PeerSpec) -> String {
        p.to_string()
    }
}

/// What the datapath did with a flow, as Hubble reports it; collectors without one say Forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    #[default]
    Forwarded,
    Dropped,
    Error,
    Audit,
    Redirected,
    Traced,
    Translated,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forwarded => "FORWARDED",
            Verdict::Dropped => "DROPPED",
            Verdict::Error => "ERROR",
            Verdict::Audit => "AUDIT",
            Verdict::Redirected => "REDIRECTED",
            Verdict::Traced => "TRACED",
            Verdict::Translated => "TRANSLATED",
            Verdict::Unknown => "UNKNOWN",
        }
    }

    /// Unknown strings map to `Unknown` rather than failing: a new Hubble verdict must not cost a flow.
    pub fn parse_lenient(s: &str) -> Verdict {
        match s.to_ascii_uppercase().as_str() {
            "FORWARDED" => Verdict::Forwarded,
            "DROPPED" => Verdict::Dropped,
            "ERROR" => Verdict::Error,
            "AUDIT" => Verdict::Audit,
            "REDIRECTED" => Verdict::Redirected,
            "TRACED" => Verdict::Traced,
            "TRANSLATED" => Verdict::Translated,
            _ => Verdict::Unknown,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cilium's reserved identities, carried by Hubble as `reserved:<name>` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reserved {
    Host,
    RemoteNode,
    KubeApiserver,
    World,
    Health,
    Init,
    Ingress,
    Unmanaged,
    Unknown,
}

/// How a workload the inventory does not know was recognised from a flow source's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inference {
    /// Hubble's `workloads` field (Hubble 1.15+) named it.
    HubbleWorkloads,
    /// `<deployment>-<pod-template-hash>-<suffix>`.
    PodTemplateHash,
    /// `<statefulset>-<ordinal>`.
    Ordinal,
    /// A `job-name` label, and the name `<job>-<suffix>`.
    JobName,
    /// A `job-name` label `<cronjob>-<scheduled time>`.
    CronJobName,
    /// `<daemonset>-<suffix>` with `controller-revision-hash` or `pod-template-generation`.
    RevisionHash,
    /// Several `<name>-<suffix>` pods with one label set: one DaemonSet's pods on several nodes.
    SameLabels,
    /// Nothing told it from a bare pod.
    BarePod,
}

/// A value worked out from the rest of its struct at most once, the first time it is asked for:
/// it takes no part in comparisons, and a clone carries it. Only for structs that are not changed
/// once shared (a flow's endpoints, behind their `Arc`).
#[derive(Clone, Default)]
pub struct Memo<T>(std::sync::OnceLock<T>);

impl<T> Memo<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Memo<T> {}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// What a flow source says about one end of a flow besides its address (Hubble's endpoint fields).
/// Enrichment prefers the inventory and falls back to this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedEndpoint {
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    /// Kubernetes labels with Cilium's `k8s:` source prefix removed; Cilium-internal labels
    /// (`io.cilium.*`, `io.kubernetes.pod.namespace`) are dropped by the reader.
    pub labels: Labels,
    pub reserved: Option<Reserved>,
    /// Hubble 1.15+ `workloads[{name, kind}]`: the pod's top-level owner.
    pub workload: Option<(WorkloadKind, String)>,
    /// The workload these fields name ([`crate::enrich::observed_workload`]), worked out once per
    /// endpoint however many flows share it.
    #[serde(skip)]
    pub owner: Memo<Option<(WorkloadRef, Inference)>>,
}

/// Which way a flow goes relative to its connection. Replies never become a `FlowRecord` (the
/// reader skips them); a flow whose direction the source did not say (no `is_reply`, no telling
/// TCP flags: older agents, flows observed at `TO_OVERLAY`) is `Undecided` until what the run has
/// seen settles it (`topology::Connections::settle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowRole {
    /// The opening direction: the source connected to the destination's port.
    #[default]
    Request,
    Undecided,
}

/// One flow as a reader produced it, before enrichment. Reply packets and non-L3/L4 events never
/// become a `FlowRecord`: the reader skips and counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    pub time: Timestamp,
    /// Hubble's flow uuid, used to store a flow once.
    pub uuid: Option<String>,
    pub src_ip: IpAddr,
    pub src_port: Option<u16>,
    pub dst_ip: IpAddr,
    pub dst_port: Port,
    pub protocol: Protocol,
    pub verdict: Verdict,
    pub process: Option<String>,
    pub node: Option<String>,
    pub cluster: Option<String>,
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    /// Shared: a reader converts each distinct endpoint once and hands the same one to every flow
    /// it is an end of.
    pub src_meta: Option<std::sync::Arc<ObservedEndpoint>>,
    pub dst_meta: Option<std::sync::Arc<ObservedEndpoint>>,
    /// Hubble's `destination_service` (namespace, name) when the flow went through a Service.
    pub dst_service: Option<(String, String)>,
    pub role: FlowRole,
    /// The DNS names the destination (source) address was resolved from, as the flow source knew
    /// them (Hubble's `destination_names`, `source_names`): at most
    /// [`crate::dns::MAX_NAMES_PER_ADDRESS`], each checked.
    pub dst_names: Vec<DnsName>,
    pub src_names: Vec<DnsName>,
}

impl FlowRecord {
    /// A forwarded flow between two addresses and nothing else known about it (no uuid, source
    /// port, process, metadata): what a stored connection-hour can still say of its flows.
    pub fn between(time: Timestamp, src_ip: IpAddr, dst_ip: IpAddr, dst_port: Port, protocol: Protocol) -> FlowRecord {
        FlowRecord {
            time,
            uuid: None,
            src_ip,
            src_port: None,
            dst_ip,
            dst_port,
            protocol,
            verdict: Verdict::Forwarded,
            process: None,
            node: None,
            cluster: None,
            bytes: None,
            packets: None,
            src_meta: None,
            dst_meta: None,
            dst_service: None,
            role: Default::default(),
            dst_names: Vec::new(),
            src_names: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_peers() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("deployment/shop/cassandra", Ok("deployment/shop/cassandra")),
            ("sts/shop/mongo", Ok("statefulset/shop/mongo")),
            ("10.0.0.1", Ok("10.0.0.1/32")),
            ("192.229.173.0/24", Ok("192.229.173.0/24")),
            ("2001:db8::/32", Ok("2001:db8::/32")),
            ("192.229.173.7/24", Err(())),
            ("widget/shop/x", Err(())),
            ("deployment/Shop/x", Err(())),
            ("deployment/shop", Err(())),
            ("300.1.1.1", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            let got = input.parse::<PeerSpec>().map(|p| p.to_string()).map_err(|_| ());
            assert_eq!(got.as_deref().map_err(|_| ()), *want, "input {input:?}");
        }
    }

    #[test]
    fn cidr_error_suggests_network() {
        let err = "192.229.173.7/24".parse::<Cidr>().unwrap_err().to_string();
        assert!(err.contains("192.229.173.0/24"), "{err}");
    }

    #[test]
    fn workload_refs_follow_their_kinds_rules() {
        for good in ["deployment/shop/web.v2", "statefulset/shop/db", "cronjob/shop/backup"] {
            assert!(good.parse::<WorkloadRef>().is_ok(), "{good:?}");
        }
        let long_cronjob = format!("cronjob/shop/{}", "a".repeat(53));
        for bad in [
            "deployment/sh.op/web",
            "statefulset/shop/db.v2",
            "deployment/shop/UPPER_case",
            "deployment/shop/<img>",
            "pod/shop/web\u{202e}",
            &long_cronjob,
        ] {
            assert!(bad.parse::<WorkloadRef>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn protocol_and_port() {
        assert_eq!("udp".parse::<Protocol>().unwrap(), Protocol::Udp);
        assert!("icmp".parse::<Protocol>().is_err());
        assert!("0".parse::<Port>().is_err());
        assert!("65536".parse::<Port>().is_err());
        assert_eq!("53".parse::<Port>().unwrap().get(), 53);
    }
}
