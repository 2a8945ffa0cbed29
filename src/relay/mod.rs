//! Hubble Relay as a flow source: `observer.Observer/GetFlows` over gRPC (tonic), its flows
//! parsed by the same conversion as Hubble's JSON ([`crate::flows::parse_hubble_proto`]) and
//! written by the same collector and writers as a file ([`crate::ingest`]).
//!
//! An IO shell. What it guarantees:
//! - **Resume.** Every batch moves the cluster's stream mark ([`SOURCE`] in `stream_marks`) to
//!   its newest flow time, with the keys of the flows at exactly that time, in the batch's own
//!   transaction. A stream resumes at `since` = the mark, and the flows the mark covers (before
//!   it, or at it with a key it holds) are counted as duplicates, never twice in the
//!   aggregates; every later flow counts, in whatever order Relay sends it. Not recovered: a flow
//!   Relay sends after a later one (it merges its nodes' buffers by time) that had not arrived
//!   when the stream broke. What Relay no longer buffers when the stream resumes is lost, and
//!   says so in its `lost_events`, which are logged and counted as skipped records.
//! - **Backpressure.** The stream is read by the task that writes: while [`WRITERS`] batches are
//!   being written it reads nothing more, so gRPC's flow control slows Relay down. Memory is
//!   bounded by the batch being filled plus those in flight plus HTTP/2's window, whatever the
//!   rate; the lag (`flowgate_ingest_lag_seconds{source="relay"}`) says how far behind it is.
//! - **Flushes.** A batch is written when it is full or [`StreamOptions::flush_every`] after
//!   the last write, and when the stream ends, fails or is stopped (SIGTERM): what arrived whole
//!   is written.
//! - **Reconnects** with exponential backoff (`flowgate_relay_reconnects_total`).
//!
//! [`WRITERS`]: crate::ingest::WRITERS

pub mod proto;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::flows::{Item, LineError, SkipReason, parse_hubble_proto};
use crate::ingest::{Clock, Collector, IngestError, IngestReport, Meter, Writer};
use crate::retention::Retention;
use crate::store::Store;

/// The name of a cluster's Relay stream in `stream_marks`: one Relay serves a whole cluster.
pub const SOURCE: &str = "hubble-relay";

/// Where Relay is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    /// `host:port` (Hubble's own default is `localhost:4245`), or a URL with `http://` or
    /// `https://`. Without a scheme, TLS is used when any TLS setting is given.
    pub address: String,
    /// PEM CA bundle to verify Relay's certificate with (else the system's roots).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for Relay with mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The name Relay's certificate is checked against, when it differs from the address's host
    /// (Cilium's default certificates name `*.hubble-relay.cilium.io`).
    pub tls_server_name: Option<String>,
    /// Use TLS with the system's roots even without a CA or `https://`.
    pub tls: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("Hubble Relay {address}: {reason}")]
    Config { address: String, reason: String },
    #[error("connecting to Hubble Relay {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("Hubble Relay {address}: {status}")]
    Stream { address: String, status: Box<tonic::Status> },
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl RelayConfig {
    fn uses_tls(&self) -> bool {
        self.tls || self.ca.is_some() || self.client_cert.is_some() || self.tls_server_name.is_some()
    }

    fn uri(&self) -> String {
        let a = self.address.trim();
        if a.starts_with("http://") || a.starts_with("https://") {
            a.to_string()
        } else if self.uses_tls() {
            format!("https://{a}")
        } else {
            format!("http://{a}")
        }
    }

    fn config_err(&self, reason: impl std::fmt::Display) -> RelayError {
        RelayError::Config { address: self.address.clone(), reason: reason.to_string() }
    }

    /// The endpoint, with its TLS settings read (files that cannot be read fail here, before
    /// anything connects).
    pub fn endpoint(&self) -> Result<Endpoint, RelayError> {
        let uri = self.uri();
        let endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| self.config_err(format!("{uri:?}: {e}")))?;
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if !uri.starts_with("https://") {
            if self.uses_tls() {
                return Err(self.config_err("TLS settings were given for an http:// address"));
            }
            return Ok(endpoint);
        }
        let read = |what: &str, p: &PathBuf| {
            std::fs::read(p).map_err(|e| self.config_err(format!("{what} {}: {e}", p.display())))
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read("--hubble-ca", ca)?)),
            None => tls.with_native_roots(),
        };
        match (&self.client_cert, &self.client_key) {
            (Some(c), Some(k)) => {
                tls =
                    tls.identity(Identity::from_pem(read("--hubble-client-cert", c)?, read("--hubble-client-key", k)?))
            }
            (None, None) => {}
            _ => return Err(self.config_err("a client certificate needs its key, and a key its certificate")),
        }
        if let Some(name) = &self.tls_server_name {
            tls = tls.domain_name(name.clone());
        }
        endpoint.tls_config(tls).map_err(|e| self.config_err(format!("TLS: {e}")))
    }

    pub async fn connect(&self) -> Result<Channel, RelayError> {
        self.endpoint()?
            .connect()
            .await
            .map_err(|e| RelayError::Connect { address: self.address.clone(), reason: error_chain(&e) })
    }
}

/// An error with its causes, which tonic keeps out of its own message ("transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// `GetFlows`, as a stream of responses.
pub async fn get_flows(
    channel: Channel,
    request: proto::GetFlowsRequest,
) -> Result<tonic::Streaming<proto::GetFlowsResponse>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(error_chain(&e)))?;
    let path = axum::http::uri::PathAndQuery::from_static(proto::GET_FLOWS);
    let codec = tonic_prost::ProstCodec::<proto::GetFlowsRequest, proto::GetFlowsResponse>::default();
    Ok(grpc.server_streaming(tonic::Request::new(request), path, codec).await?.into_inner())
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// At the cluster's stream mark (where the last stream's written flows end); `fallback`
    /// before now if no stream wrote yet.
    Resume { fallback: SignedDuration },
    /// This long before now (`flowgate ingest --since 1h`).
    Ago(SignedDuration),
}

/// How a cluster's flows are taken from Relay.
#[derive(Clone)]
pub struct StreamOptions {
    pub cluster: i32,
    pub retention: Retention,
    pub clock: Clock,
    pub since: Since,
    /// Keep streaming new flows (`serve`), or end with the buffered ones (`ingest`).
    pub follow: bool,
    /// A partial batch is written this long after the last write.
    pub flush_every: Duration,
    /// Rows that fill a batch.
    pub batch_rows: usize,
    /// How often the stored inventory is checked for changes (a watcher records them).
    pub inventory_every: Duration,
    /// First and longest wait before reconnecting.
    pub backoff: (Duration, Duration),
    /// How batches are written (raw rows kept or not).
    pub write: crate::store::ingest::WriteOptions,
}

impl StreamOptions {
    pub fn new(cluster: i32, retention: Retention, since: Since, follow: bool) -> StreamOptions {
        StreamOptions {
            cluster,
            retention,
            clock: Clock::system(),
            since,
            follow,
            flush_every: Duration::from_secs(1),
            batch_rows: crate::ingest::BATCH_ROWS,
            inventory_every: Duration::from_secs(30),
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            write: Default::default(),
        }
    }
}

/// How one stream ended.
#[derive(Debug)]
pub enum Ended {
    /// Relay closed it (the end of the buffered flows without `follow`).
    Closed,
    /// Asked to stop.
    Stopped,
    Failed(RelayError),
}

/// One stream: connects, asks for the flows since `since`, and writes them until the stream
/// ends, fails or `stop` resolves; what was received is written in every case. The report
/// counts this stream's records.
pub async fn stream_once(
    store: &Store,
    config: &RelayConfig,
    options: &StreamOptions,
    meter: &Meter,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> (IngestReport, Ended) {
    let mut report = IngestReport::default();
    match stream_inner(store, config, options, meter, stop, &mut report).await {
        Ok(ended) => (report, ended),
        Err(e) => (report, Ended::Failed(e)),
    }
}

async fn stream_inner(
    store: &Store,
    config: &RelayConfig,
    options: &StreamOptions,
    meter: &Meter,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    report: &mut IngestReport,
) -> Result<Ended, RelayError> {
    let cluster = options.cluster;
    let now = options.clock.now();
    let mark = store.stream_mark(cluster, SOURCE).await.map_err(IngestError::from)?;
    let marked = mark.as_ref().and_then(|m| crate::store::from_micros(m.time_us).ok());
    // Whatever `since` says, the flows the mark covers count as written.
    let since = match (options.since, marked) {
        (Since::Ago(d), _) => now.checked_sub(d).unwrap_or(Timestamp::MIN),
        (Since::Resume { .. }, Some(mark)) => mark,
        (Since::Resume { fallback }, None) => now.checked_sub(fallback).unwrap_or(Timestamp::MIN),
    };
    let stamp = store.inventory_stamp(cluster).await.map_err(IngestError::from)?;
    let inventory = Arc::new(store.load_inventory(cluster).await.map_err(IngestError::from)?);
    let mut collector = Collector::new(store, cluster, inventory, options.retention, now, meter.clone()).await?;
    collector.batch_rows = options.batch_rows.max(1);
    collector.for_stream(SOURCE, mark);
    let channel = config.connect().await?;
    let request = proto::GetFlowsRequest {
        follow: options.follow,
        since: Some(proto::Timestamp::from_jiff(since)),
        ..Default::default()
    };
    let stream_err =
        |status: tonic::Status| RelayError::Stream { address: config.address.clone(), status: Box::new(status) };
    let mut stream = get_flows(channel, request).await.map_err(stream_err)?;
    tracing::info!("Hubble Relay {}: streaming flows since {since}", config.address);

    let name = format!("hubble-relay {}", config.address);
    let mut writer = Writer::new(store, cluster, meter.clone(), now, options.write);
    collector.writes_to(&writer);
    let mut tick = tokio::time::interval(options.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inventory_checked = tokio::time::Instant::now();
    let mut stamp = stamp;
    let mut record = 0u64;
    let mut lost = 0u64;
    let mut store_failed = false;
    let ended = loop {
        tokio::select! {
            biased;
            _ = stopped(stop) => break Ended::Stopped,
            _ = tick.tick() => {
                if let Some(partial) = collector.flush() && writer.submit(partial).await.is_err() {
                    store_failed = true;
                    break Ended::Stopped;
                }
                // A stream outlives the moment it began: the window moves with the clock, and the
                // inventory with what the watcher records.
                let now = options.clock.now();
                collector.window = options.retention.window(now).not_before(Some(collector.window.oldest));
                if inventory_checked.elapsed() >= options.inventory_every {
                    inventory_checked = tokio::time::Instant::now();
                    let fresh = store.inventory_stamp(cluster).await.map_err(IngestError::from)?;
                    if fresh != stamp {
                        stamp = fresh;
                        collector.set_inventory(Arc::new(store.load_inventory(cluster).await.map_err(IngestError::from)?));
                    }
                }
            }
            message = stream.message() => {
                let response = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => break Ended::Closed,
                    Err(status) => break Ended::Failed(stream_err(status)),
                };
                record += 1;
                let item = match &response.response {
                    Some(proto::Response::Flow(f)) => parse_hubble_proto(f, &response.node_name, response.time)
                        .map_err(|reason| LineError { line: record, reason }),
                    Some(proto::Response::LostEvents(l)) => {
                        lost += l.num_events_lost;
                        tracing::warn!("Hubble Relay {}: {} events lost (source {})", config.address, l.num_events_lost, l.source);
                        Ok(Item::Skipped(SkipReason::NotAFlow))
                    }
                    Some(proto::Response::NodeStatus(n)) => {
                        tracing::info!("Hubble Relay {}: nodes {:?}: state {} {}", config.address, n.node_names, n.state_change, n.message);
                        Ok(Item::Skipped(SkipReason::NotAFlow))
                    }
                    None => Ok(Item::Skipped(SkipReason::NotAFlow)),
                };
                let item = crate::ingest::judge(item, &collector.window, record, false);
                if let Err(e) = &item && collector.summary.errors < 10 {
                    tracing::warn!("{name}: record {}: {}", e.line, e.reason);
                }
                if let Some(full) = collector.take(&name, item) && writer.submit(full).await.is_err() {
                    store_failed = true;
                    break Ended::Stopped;
                }
            }
        }
    };
    if !store_failed && let Some(last) = collector.flush() {
        let _ = writer.submit(last).await;
    }
    let written = writer.finish().await;
    let (summary, expired) = (&collector.summary, collector.expired);
    report.absorb(summary, expired, collector.read_twice, *written.as_ref().unwrap_or(&Default::default()));
    if lost > 0 {
        tracing::warn!("{name}: Relay reported {lost} events lost in this stream");
    }
    written?;
    Ok(ended)
}

/// Resolves once `stop` says so (its guard dropped inside, so that the futures that wait on it
/// stay `Send`).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Streams from Relay until `stop`: each stream resumes where the store ends, and a stream that
/// ends or fails is opened again after a backoff that doubles up to its longest, and starts again
/// from the shortest once a stream has delivered flows.
pub async fn follow(
    store: Store,
    config: RelayConfig,
    options: StreamOptions,
    meter: Meter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (shortest, longest) = options.backoff;
    let mut wait = shortest;
    loop {
        let (report, ended) = stream_once(&store, &config, &options, &meter, &mut stop).await;
        if report.lines > 0 {
            tracing::info!("Hubble Relay {}: stream ended: {report}", config.address);
        }
        match ended {
            Ended::Stopped => {
                if *stop.borrow() {
                    return;
                }
            }
            Ended::Closed => tracing::warn!("Hubble Relay {}: the stream ended; reconnecting", config.address),
            Ended::Failed(e) => tracing::warn!("{e}; reconnecting in {:.1}s", wait.as_secs_f64()),
        }
        if report.lines > 0 {
            wait = shortest;
        }
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(longest);
        meter.metrics.relay_reconnects.inc();
    }
}
