//! Hubble's gRPC messages, as far as Flowgate reads them: `observer.Observer/GetFlows` and the
//! parts of `flow.Flow` that [`crate::flows::hubble`] turns into a flow record.
//!
//! Written by hand from Cilium's public API (`api/v1/observer/observer.proto`,
//! `api/v1/flow/flow.proto`, Apache-2.0): the field numbers are the protocol, the names are
//! Rust's. Every field left out here (ethernet, L7 HTTP and Kafka, drop reasons, trace points,
//! ...) is skipped by the decoder like any unknown field, so a newer Relay that adds fields still
//! decodes. Enums are kept as their numbers (`i32`), as the JSON reader accepts them.

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn from_jiff(t: jiff::Timestamp) -> Timestamp {
        Timestamp { seconds: t.as_second(), nanos: t.subsec_nanosecond() }
    }

    /// `None` when out of range or denormalised (nanos outside 0..1e9).
    pub fn to_jiff(self) -> Option<jiff::Timestamp> {
        if !(0..1_000_000_000).contains(&self.nanos) {
            return None;
        }
        jiff::Timestamp::new(self.seconds, self.nanos).ok()
    }
}

/// `google.protobuf.BoolValue`: a bool that may be absent.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct BoolValue {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

/// `observer.GetFlowsRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct GetFlowsRequest {
    /// The last (or with `first`, the first) `number` flows; incompatible with `since`.
    #[prost(uint64, tag = "1")]
    pub number: u64,
    /// Keep streaming new flows after the buffered ones.
    #[prost(bool, tag = "3")]
    pub follow: bool,
    #[prost(message, optional, tag = "7")]
    pub since: Option<Timestamp>,
    #[prost(message, optional, tag = "8")]
    pub until: Option<Timestamp>,
    #[prost(bool, tag = "9")]
    pub first: bool,
}

/// `observer.GetFlowsResponse`: a flow, or a protocol message about the nodes.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct GetFlowsResponse {
    #[prost(oneof = "Response", tags = "1, 2, 3")]
    pub response: Option<Response>,
    #[prost(string, tag = "1000")]
    pub node_name: String,
    #[prost(message, optional, tag = "1001")]
    pub time: Option<Timestamp>,
}

/// Nearly every response is a flow: boxing it to shrink the rare variants would cost an
/// allocation a flow.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, ::prost::Oneof)]
pub enum Response {
    #[prost(message, tag = "1")]
    Flow(Flow),
    /// `relay.NodeStatusEvent`: which nodes take part in the stream.
    #[prost(message, tag = "2")]
    NodeStatus(NodeStatusEvent),
    /// `flow.LostEvent`: events a Hubble component dropped (its buffer overflowed).
    #[prost(message, tag = "3")]
    LostEvents(LostEvent),
}

/// `relay.NodeStatusEvent`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct NodeStatusEvent {
    /// `relay.NodeState`: 1 connected, 2 unavailable, 3 gone, 4 error.
    #[prost(int32, tag = "1")]
    pub state_change: i32,
    #[prost(string, repeated, tag = "2")]
    pub node_names: Vec<String>,
    #[prost(string, tag = "3")]
    pub message: String,
}

/// `flow.LostEvent`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct LostEvent {
    /// `flow.LostEventSource`: 1 perf ring buffer, 2 observer's events queue, 3 Relay's queue.
    #[prost(int32, tag = "1")]
    pub source: i32,
    #[prost(uint64, tag = "2")]
    pub num_events_lost: u64,
}

/// `flow.Flow`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Flow {
    #[prost(message, optional, tag = "1")]
    pub time: Option<Timestamp>,
    /// `flow.Verdict`: 1 FORWARDED, 2 DROPPED, 3 ERROR, 4 AUDIT, 5 REDIRECTED, 6 TRACED,
    /// 7 TRANSLATED.
    #[prost(int32, tag = "2")]
    pub verdict: i32,
    #[prost(message, optional, tag = "5")]
    pub ip: Option<Ip>,
    #[prost(message, optional, tag = "6")]
    pub l4: Option<Layer4>,
    #[prost(message, optional, tag = "8")]
    pub source: Option<Endpoint>,
    #[prost(message, optional, tag = "9")]
    pub destination: Option<Endpoint>,
    /// `flow.FlowType`: 0 UNKNOWN_TYPE, 1 L3_L4, 2 L7, 3 SOCK.
    #[prost(int32, tag = "10")]
    pub kind: i32,
    #[prost(string, tag = "11")]
    pub node_name: String,
    #[prost(string, repeated, tag = "13")]
    pub source_names: Vec<String>,
    #[prost(string, repeated, tag = "14")]
    pub destination_names: Vec<String>,
    #[prost(message, optional, tag = "15")]
    pub l7: Option<Layer7>,
    /// Deprecated by `is_reply`: false and absent are the same here.
    #[prost(bool, tag = "16")]
    pub reply: bool,
    #[prost(message, optional, tag = "21")]
    pub destination_service: Option<Service>,
    /// `flow.TrafficDirection`: 1 INGRESS, 2 EGRESS.
    #[prost(int32, tag = "22")]
    pub traffic_direction: i32,
    #[prost(message, optional, tag = "26")]
    pub is_reply: Option<BoolValue>,
    #[prost(string, tag = "34")]
    pub uuid: String,
}

/// `flow.IP`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Ip {
    #[prost(string, tag = "1")]
    pub source: String,
    #[prost(string, tag = "2")]
    pub destination: String,
}

/// `flow.Layer4`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Layer4 {
    #[prost(oneof = "L4", tags = "1, 2, 3, 4, 5")]
    pub protocol: Option<L4>,
}

#[derive(Clone, PartialEq, ::prost::Oneof)]
pub enum L4 {
    #[prost(message, tag = "1")]
    Tcp(Tcp),
    #[prost(message, tag = "2")]
    Udp(Ports),
    /// ICMP has no ports; its type and code are not read.
    #[prost(message, tag = "3")]
    IcmpV4(Icmp),
    #[prost(message, tag = "4")]
    IcmpV6(Icmp),
    #[prost(message, tag = "5")]
    Sctp(Ports),
}

/// `flow.TCP`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Tcp {
    #[prost(uint32, tag = "1")]
    pub source_port: u32,
    #[prost(uint32, tag = "2")]
    pub destination_port: u32,
    #[prost(message, optional, tag = "3")]
    pub flags: Option<TcpFlags>,
}

/// `flow.UDP` and `flow.SCTP`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Ports {
    #[prost(uint32, tag = "1")]
    pub source_port: u32,
    #[prost(uint32, tag = "2")]
    pub destination_port: u32,
}

/// `flow.ICMPv4` and `flow.ICMPv6`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Icmp {
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    #[prost(uint32, tag = "2")]
    pub code: u32,
}

/// `flow.TCPFlags`, the two that tell a request from a reply.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct TcpFlags {
    #[prost(bool, tag = "2")]
    pub syn: bool,
    #[prost(bool, tag = "5")]
    pub ack: bool,
}

/// `flow.Endpoint`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Endpoint {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(uint32, tag = "2")]
    pub identity: u32,
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// `source:key=value`, as in the JSON export.
    #[prost(string, repeated, tag = "4")]
    pub labels: Vec<String>,
    #[prost(string, tag = "5")]
    pub pod_name: String,
    #[prost(message, repeated, tag = "6")]
    pub workloads: Vec<Workload>,
    /// Cilium 1.16+; with Cluster Mesh, the cluster the endpoint belongs to.
    #[prost(string, tag = "7")]
    pub cluster_name: String,
}

/// `flow.Workload`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Workload {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub kind: String,
}

/// `flow.Service`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Service {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
}

/// `flow.Layer7`, its type and DNS record.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Layer7 {
    /// `flow.L7FlowType`: 1 REQUEST, 2 RESPONSE, 3 SAMPLE.
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(message, optional, tag = "100")]
    pub dns: Option<Dns>,
}

/// `flow.DNS`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Dns {
    #[prost(string, tag = "1")]
    pub query: String,
    #[prost(string, repeated, tag = "2")]
    pub ips: Vec<String>,
    #[prost(uint32, tag = "6")]
    pub rcode: u32,
}

/// The gRPC method path of `Observer.GetFlows`.
pub const GET_FLOWS: &str = "/observer.Observer/GetFlows";

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Bytes as Cilium's generated code writes them, assembled by hand from flow.proto's field
    /// numbers: a response (node_name 1000) holding a flow with time, verdict, IP, TCP with SYN,
    /// a source endpoint with labels and a workload, and is_reply = false.
    #[test]
    fn decodes_the_wire_format_of_flow_proto() {
        use prost::encoding::{WireType, encode_key};
        fn bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
            encode_key(tag, WireType::LengthDelimited, out);
            prost::encoding::encode_varint(b.len() as u64, out);
            out.extend_from_slice(b);
        }
        fn varint(tag: u32, v: u64, out: &mut Vec<u8>) {
            encode_key(tag, WireType::Varint, out);
            prost::encoding::encode_varint(v, out);
        }
        let mut time = Vec::new();
        varint(1, 1_700_000_000, &mut time);
        varint(2, 5, &mut time);
        let mut ip = Vec::new();
        bytes(1, b"10.0.0.1", &mut ip);
        bytes(2, b"10.0.0.2", &mut ip);
        let mut flags = Vec::new();
        varint(2, 1, &mut flags);
        let mut tcp = Vec::new();
        varint(1, 40000, &mut tcp);
        varint(2, 8080, &mut tcp);
        bytes(3, &flags, &mut tcp);
        let mut l4 = Vec::new();
        bytes(1, &tcp, &mut l4);
        let mut workload = Vec::new();
        bytes(1, b"web", &mut workload);
        bytes(2, b"Deployment", &mut workload);
        let mut src = Vec::new();
        varint(2, 1234, &mut src);
        bytes(3, b"shop", &mut src);
        bytes(4, b"k8s:app=web", &mut src);
        bytes(5, b"web-1", &mut src);
        bytes(6, &workload, &mut src);
        let mut is_reply = Vec::new();
        varint(1, 0, &mut is_reply);
        let mut flow = Vec::new();
        bytes(1, &time, &mut flow);
        varint(2, 1, &mut flow);
        // An ethernet section (4) and a Summary (100000): fields left out here, skipped.
        bytes(4, b"\x0a\x02ab", &mut flow);
        bytes(5, &ip, &mut flow);
        bytes(6, &l4, &mut flow);
        bytes(8, &src, &mut flow);
        varint(10, 1, &mut flow);
        bytes(11, b"node-a", &mut flow);
        bytes(26, &is_reply, &mut flow);
        bytes(100000, b"TCP Flags: SYN", &mut flow);
        let mut resp = Vec::new();
        bytes(1, &flow, &mut resp);
        bytes(1000, b"node-a", &mut resp);

        let r = GetFlowsResponse::decode(resp.as_slice()).unwrap();
        // What we encode, we decode.
        assert_eq!(GetFlowsResponse::decode(r.encode_to_vec().as_slice()).unwrap(), r);
        assert_eq!(r.node_name, "node-a");
        let Some(Response::Flow(f)) = r.response else { panic!("{r:?}") };
        assert_eq!(f.time, Some(Timestamp { seconds: 1_700_000_000, nanos: 5 }));
        assert_eq!((f.verdict, f.kind, f.node_name.as_str()), (1, 1, "node-a"));
        assert_eq!(f.ip.as_ref().map(|i| (i.source.as_str(), i.destination.as_str())), Some(("10.0.0.1", "10.0.0.2")));
        let Some(Layer4 { protocol: Some(L4::Tcp(t)) }) = f.l4 else { panic!("{:?}", f.l4) };
        assert_eq!(
            (t.source_port, t.destination_port, t.flags),
            (40000, 8080, Some(TcpFlags { syn: true, ack: false }))
        );
        let s = f.source.unwrap();
        assert_eq!((s.identity, s.namespace.as_str(), s.pod_name.as_str()), (1234, "shop", "web-1"));
        assert_eq!(s.labels, ["k8s:app=web"]);
        assert_eq!(s.workloads, [Workload { name: "web".into(), kind: "Deployment".into() }]);
        // Present and false, which is not the same as absent.
        assert_eq!(f.is_reply, Some(BoolValue { value: false }));
    }

    #[test]
    fn timestamps_convert_both_ways_and_refuse_denormalised_ones() {
        let t: jiff::Timestamp = "2026-11-10T10:40:56.8718501Z".parse().unwrap();
        assert_eq!(Timestamp::from_jiff(t).to_jiff(), Some(t));
        assert_eq!(Timestamp { seconds: 0, nanos: -1 }.to_jiff(), None);
        assert_eq!(Timestamp { seconds: 0, nanos: 1_000_000_000 }.to_jiff(), None);
        assert_eq!(Timestamp { seconds: i64::MAX, nanos: 0 }.to_jiff(), None);
    }
}
