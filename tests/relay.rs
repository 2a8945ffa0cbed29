//! Hubble Relay as a source, against an in-process Relay: a tonic server speaking
//! `observer.Observer/GetFlows` that streams the real sample captures (tests/data/hubble), turned
//! from their JSON into protobuf messages here, honouring `since` and `follow` as Relay does.
//! The store is the machine's PostgreSQL (`#[sqlx::test]`).

#[path = "support/served.rs"]
mod served;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowgate::flows::{FlowFormat, Item, parse_hubble_proto};
use flowgate::ingest::{Clock, Meter, Options, Source, ingest_sources};
use flowgate::metrics::{FlowSource, Metrics};
use flowgate::relay::proto::{self, GetFlowsRequest, GetFlowsResponse};
use flowgate::relay::{Ended, RelayConfig, Since, StreamOptions, follow, stream_once};
use flowgate::retention::{DEFAULT_SKEW, Retention};
use flowgate::store::Store;
use futures_util::Stream;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

/// The captures streamed (the 5-flow files are the first lines of the 330- and 348-flow ones).
const SAMPLES: [&str; 5] = [
    "hubble-otel_basic-sample-10-flows.json",
    "hubble-otel_basic-sample-330-dns-flows.json",
    "hubble-otel_basic-sample-348-http-flows.json",
    "hubble-otel_basic-sample-400-icmpv4-flows.json",
    "hubble-otel_basic-sample-400-udp-flows.json",
];

fn sample_text() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hubble/");
    SAMPLES.iter().map(|f| std::fs::read_to_string(format!("{dir}{f}")).unwrap()).collect()
}

/// The samples' clock: a little after their last flow, so the retention keeps all of them.
fn now() -> Timestamp {
    "2021-11-11T00:00:00Z".parse().unwrap()
}

fn retention() -> Retention {
    Retention::new(SignedDuration::from_hours(24 * 365), DEFAULT_SKEW).unwrap()
}

// ---- The samples as Relay sends them -------------------------------------------------------

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default()
}

fn time(v: &Value) -> Option<proto::Timestamp> {
    v.as_str().map(|t| proto::Timestamp::from_jiff(t.parse().unwrap()))
}

fn number(v: &Value, names: &[&str]) -> i32 {
    match v {
        Value::String(n) => names.iter().position(|x| x == n).map(|i| i as i32).unwrap_or_else(|| panic!("{n}")),
        Value::Number(n) => n.as_i64().unwrap() as i32,
        _ => 0,
    }
}

fn endpoint(v: &Value) -> Option<proto::Endpoint> {
    v.as_object()?;
    Some(proto::Endpoint {
        id: v["ID"].as_u64().unwrap_or(0) as u32,
        identity: v["identity"].as_u64().unwrap_or(0) as u32,
        namespace: s(&v["namespace"]),
        labels: strings(&v["labels"]),
        pod_name: s(&v["pod_name"]),
        workloads: v["workloads"]
            .as_array()
            .map(|a| a.iter().map(|w| proto::Workload { name: s(&w["name"]), kind: s(&w["kind"]) }).collect())
            .unwrap_or_default(),
        cluster_name: s(&v["cluster_name"]),
    })
}

fn ports(v: &Value) -> (u32, u32) {
    (v["source_port"].as_u64().unwrap_or(0) as u32, v["destination_port"].as_u64().unwrap_or(0) as u32)
}

/// One exported line (`{"flow": ..., "node_name": ..., "time": ...}`) as the protobuf response
/// Relay would have sent, field by field as flow.proto names them.
fn response(line: &Value) -> GetFlowsResponse {
    let f = &line["flow"];
    let l4 = &f["l4"];
    let protocol = if let Some(t) = l4.get("TCP") {
        let (source_port, destination_port) = ports(t);
        let flags = t.get("flags").map(|fl| proto::TcpFlags {
            syn: fl["SYN"].as_bool().unwrap_or(false),
            ack: fl["ACK"].as_bool().unwrap_or(false),
        });
        Some(proto::L4::Tcp(proto::Tcp { source_port, destination_port, flags }))
    } else if let Some(u) = l4.get("UDP") {
        let (source_port, destination_port) = ports(u);
        Some(proto::L4::Udp(proto::Ports { source_port, destination_port }))
    } else if let Some(i) = l4.get("ICMPv4") {
        Some(proto::L4::IcmpV4(proto::Icmp {
            kind: i["type"].as_u64().unwrap_or(0) as u32,
            code: i["code"].as_u64().unwrap_or(0) as u32,
        }))
    } else {
        assert!(l4.is_null(), "{l4}");
        None
    };
    let l7 = f.get("l7").map(|l| proto::Layer7 {
        kind: number(&l["type"], &["UNKNOWN_L7_TYPE", "REQUEST", "RESPONSE", "SAMPLE"]),
        dns: l.get("dns").map(|d| proto::Dns {
            query: s(&d["query"]),
            ips: strings(&d["ips"]),
            rcode: d["rcode"].as_u64().unwrap_or(0) as u32,
        }),
    });
    let flow = proto::Flow {
        time: time(&f["time"]),
        verdict: number(
            &f["verdict"],
            &["VERDICT_UNKNOWN", "FORWARDED", "DROPPED", "ERROR", "AUDIT", "REDIRECTED", "TRACED", "TRANSLATED"],
        ),
        ip: f.get("IP").map(|ip| proto::Ip { source: s(&ip["source"]), destination: s(&ip["destination"]) }),
        l4: l4.as_object().map(|_| proto::Layer4 { protocol }),
        source: endpoint(&f["source"]),
        destination: endpoint(&f["destination"]),
        kind: number(&f["Type"], &["UNKNOWN_TYPE", "L3_L4", "L7", "SOCK"]),
        node_name: s(&f["node_name"]),
        source_names: strings(&f["source_names"]),
        destination_names: strings(&f["destination_names"]),
        l7,
        reply: f["reply"].as_bool().unwrap_or(false),
        destination_service: f
            .get("destination_service")
            .map(|d| proto::Service { name: s(&d["name"]), namespace: s(&d["namespace"]) }),
        traffic_direction: number(&f["traffic_direction"], &["TRAFFIC_DIRECTION_UNKNOWN", "INGRESS", "EGRESS"]),
        is_reply: f.get("is_reply").and_then(Value::as_bool).map(|value| proto::BoolValue { value }),
        uuid: s(&f["uuid"]),
    };
    GetFlowsResponse {
        response: Some(proto::Response::Flow(flow)),
        node_name: s(&line["node_name"]),
        time: time(&line["time"]),
    }
}

/// The samples' lines as Relay's responses, in time order (Relay merges its nodes by time).
fn sample_responses() -> Vec<GetFlowsResponse> {
    let mut v: Vec<GetFlowsResponse> =
        sample_text().lines().map(|l| response(&serde_json::from_str(l).unwrap())).collect();
    v.sort_by_key(flow_time);
    v
}

fn flow_time(r: &GetFlowsResponse) -> (i64, i32) {
    match &r.response {
        Some(proto::Response::Flow(f)) => f.time.map(|t| (t.seconds, t.nanos)).unwrap_or_default(),
        _ => (0, 0),
    }
}

// ---- The fake Relay -------------------------------------------------------------------------

/// What the fake Relay holds and what it did.
#[derive(Default)]
struct Relay {
    /// Its buffer, in time order; tests append to it as if new flows happened.
    buffer: Mutex<Vec<GetFlowsResponse>>,
    grown: Notify,
    /// Responses handed to gRPC to send, over all streams.
    produced: AtomicU64,
    /// The requests it was sent.
    requests: Mutex<Vec<GetFlowsRequest>>,
    /// The next stream breaks off (UNAVAILABLE) after this many responses.
    fail_after: Mutex<Option<usize>>,
    /// One past the furthest buffer index sent.
    sent_up_to: AtomicU64,
    /// Bumped to break every open stream, as a Relay that goes away does.
    generation: AtomicU64,
}

impl Relay {
    fn push(&self, more: impl IntoIterator<Item = GetFlowsResponse>) {
        self.buffer.lock().unwrap().extend(more);
        self.grown.notify_waiters();
    }

    /// Breaks the open streams (UNAVAILABLE).
    fn kill(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.grown.notify_waiters();
    }

    fn produced(&self) -> u64 {
        self.produced.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Observer(Arc<Relay>);

impl tonic::server::NamedService for Observer {
    const NAME: &'static str = "observer.Observer";
}

type Responses = Pin<Box<dyn Stream<Item = Result<GetFlowsResponse, tonic::Status>> + Send>>;

impl tonic::server::ServerStreamingService<GetFlowsRequest> for Observer {
    type Response = GetFlowsResponse;
    type ResponseStream = Responses;
    type Future = std::future::Ready<Result<tonic::Response<Responses>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<GetFlowsRequest>) -> Self::Future {
        let relay = self.0.clone();
        let request = request.into_inner();
        relay.requests.lock().unwrap().push(request.clone());
        let since = request.since.map(|t| (t.seconds, t.nanos)).unwrap_or((i64::MIN, 0));
        let fail_after = relay.fail_after.lock().unwrap().take();
        let start = relay.buffer.lock().unwrap().partition_point(|r| flow_time(r) < since);
        let generation = relay.generation.load(Ordering::SeqCst);
        // (relay, next index, sent in this stream)
        let stream = futures_util::stream::unfold((relay, start, 0usize), move |(relay, next, sent)| async move {
            if next != usize::MAX && (fail_after == Some(sent) || relay.generation.load(Ordering::SeqCst) != generation)
            {
                let status = tonic::Status::unavailable("fake relay: connection to the peer lost");
                return Some((Err(status), (relay, usize::MAX, sent)));
            }
            if next == usize::MAX {
                return None;
            }
            loop {
                let waker = relay.clone();
                let grown = waker.grown.notified();
                if relay.generation.load(Ordering::SeqCst) != generation {
                    let status = tonic::Status::unavailable("fake relay: going away");
                    return Some((Err(status), (relay, usize::MAX, sent)));
                }
                let item = relay.buffer.lock().unwrap().get(next).cloned();
                if let Some(r) = item {
                    relay.produced.fetch_add(1, Ordering::SeqCst);
                    relay.sent_up_to.fetch_max(next as u64 + 1, Ordering::SeqCst);
                    return Some((Ok(r), (relay, next + 1, sent + 1)));
                }
                if !request.follow {
                    return None;
                }
                grown.await;
            }
        });
        std::future::ready(Ok(tonic::Response::new(Box::pin(stream) as Responses)))
    }
}

impl tower::Service<axum::http::Request<tonic::body::Body>> for Observer {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<tonic::body::Body>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            if req.uri().path() != proto::GET_FLOWS {
                return Ok(tonic::Status::unimplemented(req.uri().path().to_string()).into_http());
            }
            let codec = tonic_prost::ProstCodec::<GetFlowsResponse, GetFlowsRequest>::default();
            Ok(tonic::server::Grpc::new(codec).server_streaming(svc, req).await)
        })
    }
}

/// Serves `relay` on `addr` (port 0: any) until the task is aborted; returns the address.
async fn serve(relay: Arc<Relay>, addr: &str) -> (String, tokio::task::JoinHandle<()>) {
    serve_with(relay, addr, tonic::transport::Server::builder()).await
}

async fn serve_with(
    relay: Arc<Relay>,
    addr: &str,
    mut builder: tonic::transport::Server,
) -> (String, tokio::task::JoinHandle<()>) {
    let incoming = tonic::transport::server::TcpIncoming::bind(addr.parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        builder.add_service(Observer(relay)).serve_with_incoming(incoming).await.unwrap();
    });
    (addr, task)
}

fn tls_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls").join(name)
}

// ---- What the store holds ---------------------------------------------------------------------

type Hour = (String, String, String, i32, String, i64, i64, String, String);

/// A cluster's connection-hours, the flows they count and its DNS names.
async fn stored(store: &Store, cluster: i32) -> (Vec<Hour>, i64, i64) {
    let hours = sqlx::query_as::<_, Hour>(
        "select bucket::text, src_endpoint, dst_endpoint, port, protocol, flows, dropped, first_seen::text, last_seen::text
         from conn_hourly where cluster_id = $1 order by 1, 2, 3, 4, 5",
    )
    .bind(cluster)
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let flows: i64 =
        sqlx::query_scalar("select coalesce(sum(flows), 0)::bigint from conn_hourly where cluster_id = $1")
            .bind(cluster)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    let names: i64 = sqlx::query_scalar("select count(*) from dns_names where cluster_id = $1")
        .bind(cluster)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    (hours, flows, names)
}

/// The samples ingested as the files they are, into `name`: what the stream must store.
async fn reference(store: &Store, name: &str) -> (Vec<Hour>, i64, i64) {
    let id = store.cluster_id(name, true).await.unwrap();
    let inv = Arc::new(store.load_inventory(id).await.unwrap());
    let options = Options {
        format: FlowFormat::Hubble,
        threads: 1,
        retention: retention(),
        now: now(),
        write: Default::default(),
    };
    let source = Source::Bytes { name: "samples".into(), bytes: sample_text().into_bytes() };
    let r = ingest_sources(store, id, inv, vec![source], &options).await.unwrap();
    assert_eq!(r.rejected, 0, "{r}");
    assert!(r.accepted > 500 && r.dns_answers > 0, "{r}");
    stored(store, id).await
}

fn options(cluster: i32, follow: bool) -> StreamOptions {
    let mut o = StreamOptions::new(cluster, retention(), Since::Resume { fallback: retention().keep() }, follow);
    o.clock = Clock::fixed(now());
    o.flush_every = Duration::from_millis(50);
    o.batch_rows = 100;
    o.backoff = (Duration::from_millis(20), Duration::from_millis(200));
    o
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- Tests ------------------------------------------------------------------------------------

/// One stream without `follow` (`flowgate ingest --hubble-relay`) stores exactly what ingesting
/// the same captures as files stores: the protobuf path and the JSON path are one conversion.
#[sqlx::test(migrations = false)]
async fn a_stream_stores_what_the_files_store(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let want = reference(&store, "files").await;
    let relay = Arc::new(Relay::default());
    relay.push(sample_responses());
    let (addr, _server) = serve(relay.clone(), "127.0.0.1:0").await;

    let id = store.cluster_id("relay", true).await.unwrap();
    let config = RelayConfig { address: addr, ..Default::default() };
    let metrics = Arc::new(Metrics::default());
    let meter = Meter::new(&metrics, FlowSource::Relay);
    let (_stop_tx, mut stop) = watch::channel(false);
    let (report, ended) = stream_once(&store, &config, &options(id, false), &meter, &mut stop).await;
    assert!(matches!(ended, Ended::Closed), "{ended:?}");
    assert_eq!(stored(&store, id).await, want);
    assert_eq!((report.accepted as i64, report.duplicate, report.rejected), (want.1, 0, 0), "{report}");
    assert_eq!(report.lines, relay.produced());
    // The request: from a year back (nothing stored yet), without follow.
    let requests = relay.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].follow);
    assert_eq!(requests[0].since, Some(proto::Timestamp::from_jiff(now() - SignedDuration::from_hours(24 * 365))));
    let relay_counts = metrics.flows(FlowSource::Relay);
    assert_eq!(relay_counts.accepted.get() as i64, want.1);
    assert_eq!(relay_counts.received.get(), report.lines);
}

/// A followed stream that breaks off, and a Relay that goes away and comes back with new flows:
/// each stream resumes at the stream's mark (the newest flow it wrote), nothing is lost, nothing
/// is counted twice, and what Relay sends again at the mark is counted as duplicates.
#[sqlx::test(migrations = false)]
async fn a_stream_that_drops_resumes_without_losing_or_doubling(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let want = reference(&store, "files").await;
    let all = sample_responses();
    let split = all.len() * 2 / 3;
    let relay = Arc::new(Relay::default());
    relay.push(all[..split].iter().cloned());
    *relay.fail_after.lock().unwrap() = Some(split / 2);
    let (addr, server) = serve(relay.clone(), "127.0.0.1:0").await;

    let id = store.cluster_id("relay", true).await.unwrap();
    let config = RelayConfig { address: addr.clone(), ..Default::default() };
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop) = watch::channel(false);
    let following =
        tokio::spawn(follow(store.clone(), config, options(id, true), Meter::new(&metrics, FlowSource::Relay), stop));

    // The first stream breaks off halfway; the second resumes and takes the rest of the buffer.
    wait_until("the second stream", || async { relay.requests.lock().unwrap().len() >= 2 }).await;
    wait_until("the first two thirds", || async { relay.sent_up_to.load(Ordering::SeqCst) as usize >= split }).await;
    let requests = relay.requests.lock().unwrap().clone();
    assert!(requests.iter().all(|r| r.follow));
    // The first stream stored up to its newest flow (the records before are replies, L7
    // responses and ICMP too): the second asks from there.
    let newest_first = all[..split / 2]
        .iter()
        .filter_map(|r| match &r.response {
            Some(proto::Response::Flow(f)) => match parse_hubble_proto(f, &r.node_name, r.time) {
                Ok(Item::Flow(flow, _)) => Some(flow.time),
                _ => None,
            },
            _ => None,
        })
        .max()
        .unwrap();
    // (The store keeps microseconds.)
    let newest_first = Timestamp::from_microsecond(newest_first.as_microsecond()).unwrap();
    assert_eq!(requests[1].since.unwrap().to_jiff(), Some(newest_first));

    // Relay goes away; flows go on happening; it comes back on the same address.
    relay.kill();
    server.abort();
    let _ = server.await;
    relay.push(all[split..].iter().cloned());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _server) = serve(relay.clone(), &addr).await;

    wait_until("every flow", || async { stored(&store, id).await.1 >= want.1 }).await;
    // Give a doubled write every chance to land before comparing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), following).await.expect("stops when told").unwrap();

    assert_eq!(stored(&store, id).await, want);
    let counts = metrics.flows(FlowSource::Relay);
    assert_eq!(counts.accepted.get() as i64, want.1);
    // The overlaps were sent again and recognised.
    assert!(counts.duplicate.get() > 0);
    assert!(metrics.relay_reconnects.get() >= 2, "{}", metrics.relay_reconnects.get());
    assert!(relay.requests.lock().unwrap().len() >= 3);
}

/// A store that cannot keep up (its aggregate table locked by another transaction) stops the
/// stream being read: the fake Relay can hand gRPC only a bounded number of responses beyond what
/// the collector and the writers hold, whatever its buffer; once the store is back, all of it
/// lands.
#[sqlx::test(migrations = false)]
async fn a_slow_store_applies_backpressure_with_bounded_memory(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let id = store.cluster_id("relay", true).await.unwrap();
    // Forty copies of the captures, an hour apart: ~78,000 responses.
    let base = sample_responses();
    let copies = 40;
    let mut all = Vec::with_capacity(base.len() * copies);
    for c in 0..copies as i64 {
        for r in &base {
            let mut r = r.clone();
            if let Some(proto::Response::Flow(f)) = &mut r.response {
                f.time.as_mut().unwrap().seconds += c * 3600;
            }
            if let Some(t) = &mut r.time {
                t.seconds += c * 3600;
            }
            r.time = None;
            all.push(r);
        }
    }
    all.sort_by_key(flow_time);
    let total = all.len() as u64;
    let relay = Arc::new(Relay::default());
    relay.push(all);
    let (addr, _server) = serve(relay.clone(), "127.0.0.1:0").await;

    // The slow store: every batch waits for this lock.
    let mut blocker = store.pool.begin().await.unwrap();
    sqlx::query("lock table conn_hourly in share mode").execute(&mut *blocker).await.unwrap();

    let config = RelayConfig { address: addr, ..Default::default() };
    let metrics = Arc::new(Metrics::default());
    let mut opts = options(id, false);
    opts.clock = Clock::fixed(now() + SignedDuration::from_hours(48));
    let ingest = {
        let (store, metrics) = (store.clone(), metrics.clone());
        tokio::spawn(async move {
            let (_stop_tx, mut stop) = watch::channel(false);
            stream_once(&store, &config, &opts, &Meter::new(&metrics, FlowSource::Relay), &mut stop).await
        })
    };
    // Let it run against the locked store until it stops pulling.
    let mut last = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = relay.produced();
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let held = relay.produced();
    // (Not read from the tables: the blocked batch holds a lock on the flows' new partition.)
    let stored_so_far = metrics.flows(FlowSource::Relay).accepted.get();
    println!(
        "backpressure: {held} of {total} responses taken while the store was blocked; {stored_so_far} rows stored"
    );
    assert_eq!(stored_so_far, 0);
    // Two batches being written, one being filled (100 rows each; replies and other skipped
    // records make a batch of rows take about twice as many responses), plus what gRPC holds:
    // HTTP/2's 64 KiB window and the server's send buffer (hyper's 400 KiB), at 150-700 bytes a
    // response. Measured: ~3,300 of 44,240; the bound does not grow with the buffer.
    assert!(held > 200, "{held}");
    assert!(held < 10_000, "{held} of {total}");

    blocker.rollback().await.unwrap();
    let (report, ended) = tokio::time::timeout(Duration::from_secs(120), ingest).await.unwrap().unwrap();
    assert!(matches!(ended, Ended::Closed), "{ended:?}");
    assert_eq!(report.lines, total);
    let (_, flows, _) = stored(&store, id).await;
    assert_eq!(report.accepted as i64, flows);
    // Each copy holds the same distinct flows.
    let one_copy = {
        let c = store.cluster_id("one", true).await.unwrap();
        let (_stop_tx, mut stop) = watch::channel(false);
        let relay = Arc::new(Relay::default());
        relay.push(base);
        let (addr, _server) = serve(relay, "127.0.0.1:0").await;
        let config = RelayConfig { address: addr, ..Default::default() };
        let (r, _) = stream_once(&store, &config, &options(c, false), &Meter::unread(), &mut stop).await;
        r.accepted as i64
    };
    assert_eq!(flows, one_copy * copies as i64);
    // The lag it reports is how far behind the (fixed) clock its newest written flow is.
    assert!(metrics.flows(FlowSource::Relay).lag_seconds.get() > 0.0);
}

/// Relay behind mutual TLS (tests/data/tls): with its CA, the name on its certificate and a
/// client certificate, the stream works; without the client certificate Relay refuses it; without
/// the CA (the system's roots) the client refuses Relay; each failure says where.
#[sqlx::test(migrations = false)]
async fn relay_over_mutual_tls(pool: PgPool) {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let store = Store::from_pool(pool).await.unwrap();
    let id = store.cluster_id("relay", true).await.unwrap();
    let relay = Arc::new(Relay::default());
    relay.push(sample_responses().into_iter().take(200));
    let read = |f: &str| std::fs::read(tls_file(f)).unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read("relay.pem"), read("relay.key")))
        .client_ca_root(Certificate::from_pem(read("ca.pem")));
    let builder = tonic::transport::Server::builder().tls_config(tls).unwrap();
    let (addr, _server) = serve_with(relay.clone(), "127.0.0.1:0", builder).await;
    let port = addr.rsplit(':').next().unwrap().to_string();

    let full = RelayConfig {
        address: format!("127.0.0.1:{port}"),
        ca: Some(tls_file("ca.pem")),
        client_cert: Some(tls_file("client.pem")),
        client_key: Some(tls_file("client.key")),
        tls_server_name: Some("relay.test".into()),
        tls: false,
    };
    let (_stop_tx, mut stop) = watch::channel(false);
    let (report, ended) = stream_once(&store, &full, &options(id, false), &Meter::unread(), &mut stop).await;
    assert!(matches!(ended, Ended::Closed), "{ended:?}");
    assert_eq!(report.lines, 200);
    assert!(report.accepted > 0, "{report}");

    let without_cert = RelayConfig { client_cert: None, client_key: None, ..full.clone() };
    let (_, ended) = stream_once(&store, &without_cert, &options(id, false), &Meter::unread(), &mut stop).await;
    let Ended::Failed(e) = ended else { panic!("Relay took a client without a certificate: {ended:?}") };
    assert!(e.to_string().contains(&format!("Hubble Relay 127.0.0.1:{port}")), "{e}");

    let without_ca = RelayConfig { ca: None, tls: true, ..full.clone() };
    let (_, ended) = stream_once(&store, &without_ca, &options(id, false), &Meter::unread(), &mut stop).await;
    let Ended::Failed(e) = ended else { panic!("a certificate no system root signed was trusted: {ended:?}") };
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // Plain gRPC to a TLS port fails too, and a key without its certificate is refused before
    // anything connects.
    let plain = RelayConfig { address: format!("127.0.0.1:{port}"), ..Default::default() };
    let (_, ended) = stream_once(&store, &plain, &options(id, false), &Meter::unread(), &mut stop).await;
    assert!(matches!(ended, Ended::Failed(_)), "{ended:?}");
    let half = RelayConfig { client_cert: None, ..full };
    let e = half.endpoint().unwrap_err().to_string();
    assert!(e.contains("a client certificate needs its key"), "{e}");
}

/// A Relay that is not there fails the one-shot ingest with where and why, and the follower
/// keeps trying, counting its reconnects, until told to stop.
#[sqlx::test(migrations = false)]
async fn an_unreachable_relay_is_reported_and_retried(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let id = store.cluster_id("relay", true).await.unwrap();
    // A port nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let config = RelayConfig { address: addr.clone(), ..Default::default() };
    let (stop_tx, mut stop) = watch::channel(false);
    let (_, ended) = stream_once(&store, &config, &options(id, false), &Meter::unread(), &mut stop).await;
    let Ended::Failed(e) = ended else { panic!("{ended:?}") };
    let message = e.to_string();
    assert!(message.starts_with(&format!("connecting to Hubble Relay {addr}: ")), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");

    let metrics = Arc::new(Metrics::default());
    let following = tokio::spawn(follow(
        store.clone(),
        config,
        options(id, true),
        Meter::new(&metrics, FlowSource::Relay),
        stop.clone(),
    ));
    wait_until("three reconnects", || async { metrics.relay_reconnects.get() >= 3 }).await;
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), following).await.expect("stops when told").unwrap();
}

/// Runs `flowgate ARGS` off the runtime's thread (which serves the fake Relay meanwhile).
async fn flowgate(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || std::process::Command::new(env!("CARGO_BIN_EXE_flowgate")).args(args).output())
        .await
        .unwrap()
        .unwrap()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn db_url(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!("postgres://{}@{}:{}/{}", o.get_username(), o.get_host(), o.get_port(), o.get_database().unwrap())
}

/// The commands, as users run them: `flowgate ingest --hubble-relay` (one shot) stores what the
/// files store and says so; `flowgate serve --hubble-relay` streams into its cluster and stops on
/// SIGTERM with what it received written.
#[sqlx::test(migrations = false)]
async fn the_commands_stream_from_relay(pool: PgPool) {
    let store = Store::from_pool(pool.clone()).await.unwrap();
    let want = reference(&store, "files").await;
    let relay = Arc::new(Relay::default());
    relay.push(sample_responses());
    let (addr, _server) = serve(relay.clone(), "127.0.0.1:0").await;
    let url = db_url(&pool);
    // The captures are from 2021: a retention (and a --since) that reaches back to them.
    let out = flowgate(args(&[
        "ingest",
        "--cluster",
        "once",
        "--hubble-relay",
        &addr,
        "--since",
        "3650d",
        "--retention",
        "3650d",
        // The captures are from 2021: keep their hours (the default rolls hours older than 30 days
        // into their days).
        "--hourly-horizon",
        "3650d",
        "--database-url",
        &url,
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!(" {} accepted, 0 duplicate,", want.1)), "{stderr}");
    let once = store.cluster_id("once", false).await.unwrap();
    assert_eq!(stored(&store, once).await, want);
    assert!(!relay.requests.lock().unwrap()[0].follow);

    // A Relay that is not there: where and why, exit code 3.
    let out =
        flowgate(args(&["ingest", "--cluster", "once", "--hubble-relay", "127.0.0.1:1", "--database-url", &url])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("connecting to Hubble Relay 127.0.0.1:1"), "{stderr}");
    // TLS files that cannot be read fail before anything connects: the input's fault, 2.
    let out = flowgate(args(&[
        "ingest",
        "--cluster",
        "once",
        "--hubble-relay",
        &addr,
        "--hubble-ca",
        "/nonexistent/ca.pem",
        "--database-url",
        &url,
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--hubble-ca /nonexistent/ca.pem"), "{stderr}");

    let url2 = url.clone();
    let addr2 = addr.clone();
    let mut served = tokio::task::spawn_blocking(move || {
        served::Served::start(&url2, &["--cluster", "live", "--hubble-relay", &addr2, "--retention", "3650d"], None)
    })
    .await
    .unwrap();
    let live = {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(id) = store.cluster_id("live", false).await
                && stored(&store, id).await.1 >= want.1
            {
                break id;
            }
            assert!(std::time::Instant::now() < deadline, "serve stored too little:\n{}", served.stderr);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let status = tokio::task::spawn_blocking(move || {
        let status = served.terminate(Duration::from_secs(20));
        (status, served.stderr.clone())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{}", status.1);
    assert!(status.1.contains("streaming flows from Hubble Relay"), "{}", status.1);
    assert_eq!(stored(&store, live).await, want);
    assert!(relay.requests.lock().unwrap().iter().any(|r| r.follow));
}
