//! Writing enriched flows, aggregation first: one transaction per batch folds the batch's new
//! flows into the hourly and daily connection aggregates (upserts of a row per connection-hour and
//! -day, not a row per flow). Raw flow rows are written only when asked (`keep_flows`, for
//! forensics); they never decide what is counted.
//!
//! What is new is decided without them, in the same transaction as the aggregates, so that
//! re-ingesting, resuming a killed ingest, two writers at once and a resumed stream count every
//! flow once:
//!
//! - **Files and request bodies** are cut into chunks at content-defined boundaries
//!   ([`is_boundary`]: after a flow whose key hashes to 0 modulo [`CHUNK_AVG`], or at
//!   [`CHUNK_MAX`] flows), so the same flows are cut the same way wherever they arrive. A chunk
//!   written is recorded in `ingest_ledger` (first key, length, digest of its keys in order); one
//!   recorded already is skipped; one that began like a recorded chunk that had ended with its
//!   source (`open`: the end of a file that later grew, a body sent again with more) skips that
//!   chunk's flows and adds the rest. Writers take a transaction lock per chunk start, so two that
//!   write the same chunk at once write it once. Not recognised: flows re-sent in a chunk that
//!   starts elsewhere (two different files that overlap: the overlap counts again up to the first
//!   boundary inside it) or a shorter copy of an open chunk.
//! - **Ordered streams** (Hubble Relay) keep a watermark per source (`stream_marks`): the newest
//!   flow time written and the keys written at that time. A stream that starts again skips the
//!   flows before its mark; flows after it always count, in whatever order they come.
//!
//! Within one ingest, a flow whose key was read before (the same Hubble uuid twice) is counted
//! once ([`crate::ingest::Collector`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;

use super::{DAY_US, HOUR_US, Result, Store, micros};
use crate::dns::Names;
use crate::enrich::{Endpoint, Enriched, KnownEnds};
use crate::model::{FlowRecord, FlowRole, Labels, ObservedEndpoint, Verdict, WorkloadRef};
use crate::topology::{ConnStats, MAX_PROCESSES};

/// One raw flow row, ready for the database: made only when the raw flows are kept
/// (`--keep-flows`); the aggregates are folded from [`Part`]s. The endpoint texts are shared by
/// every row of a batch with the same end (made once per endpoint, not per flow).
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub time_us: i64,
    /// The row's identity ([`flow_key`], mixed for the further rows of a fanned-out flow).
    pub key: u128,
    pub src_ip: IpAddr,
    pub src_port: Option<i32>,
    pub dst_ip: IpAddr,
    pub dst_port: i32,
    pub protocol: &'static str,
    pub verdict: &'static str,
    pub src_endpoint: Arc<str>,
    pub dst_endpoint: Arc<str>,
    pub src_namespace: Arc<str>,
    pub dst_namespace: Arc<str>,
    pub service: Option<String>,
    pub process: Option<String>,
    pub node: Option<String>,
    pub bytes: Option<i64>,
    pub packets: Option<i64>,
    /// The source did not say which way the flow goes (`FlowRole::Undecided`).
    pub undecided: bool,
}

/// What one flow (one row of a flow that fans out) adds to its connection-hour: folded while
/// reading, it costs no allocation and about 40 bytes, instead of a row of strings per flow. A
/// batch keeps its parts (rather than only their sums) because the ledger decides per flow which
/// are new: all of a chunk, none, or the rest of an open chunk past its written prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// Index into [`Batch::hours`].
    pub hour: u32,
    pub time_us: i64,
    pub src_port: Option<u16>,
    pub dropped: bool,
    /// The source did not say which way the flow goes (`FlowRole::Undecided`).
    pub undecided: bool,
    /// Index into the batch's words, or [`NO_WORD`].
    pub process: u32,
    /// The Service it went through (`namespace/name:port`), index into the batch's words, or
    /// [`NO_WORD`].
    pub service: u32,
}

/// A [`Part`] without a process or Service.
pub const NO_WORD: u32 = u32::MAX;

/// A connection-hour of a batch: what its parts add to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourConn {
    pub bucket_us: i64,
    pub src_endpoint: Arc<str>,
    pub dst_endpoint: Arc<str>,
    pub src_namespace: Arc<str>,
    pub dst_namespace: Arc<str>,
    pub port: i32,
    pub protocol: &'static str,
}

/// A batch's process names and Service texts, each made once and numbered ([`Part::process`],
/// [`Part::service`]).
#[derive(Debug, Default)]
struct Words {
    texts: Vec<Arc<str>>,
    processes: rustc_hash::FxHashMap<Box<str>, u32>,
    services: rustc_hash::FxHashMap<(String, String, u16), u32>,
}

impl Words {
    fn add(texts: &mut Vec<Arc<str>>, text: Arc<str>) -> u32 {
        texts.push(text);
        texts.len() as u32 - 1
    }

    fn process(&mut self, p: Option<&str>) -> u32 {
        let Some(p) = p else { return NO_WORD };
        if let Some(&id) = self.processes.get(p) {
            return id;
        }
        let id = Words::add(&mut self.texts, p.into());
        self.processes.insert(p.into(), id);
        id
    }

    /// A Service (namespace, name, port) as `namespace/name:port`.
    fn service(&mut self, s: Option<&(String, String, u16)>) -> u32 {
        let Some(s) = s else { return NO_WORD };
        if let Some(&id) = self.services.get(s) {
            return id;
        }
        let (ns, name, port) = s;
        let id = Words::add(&mut self.texts, format!("{ns}/{name}:{port}").into());
        self.services.insert(s.clone(), id);
        id
    }

    fn get(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(|w| &**w)
    }
}

/// Each endpoint's key and namespace text, made once and numbered, kept from batch to batch (up
/// to [`Ends::MAX`]): an end is looked up by its endpoint, and two endpoints with the same key
/// text are the same end.
#[derive(Debug, Clone, Default)]
struct Ends {
    by_endpoint: rustc_hash::FxHashMap<Endpoint, u32>,
    by_text: rustc_hash::FxHashMap<Arc<str>, u32>,
    texts: Vec<(Arc<str>, Arc<str>)>,
}

impl Ends {
    /// Bounded: a batch's endpoints, not the cluster's history.
    const MAX: usize = 65_536;

    fn of(&mut self, ep: &Endpoint) -> u32 {
        if let Some(&id) = self.by_endpoint.get(ep) {
            return id;
        }
        let id = self.text(ep.key(), namespace_of(ep));
        self.by_endpoint.insert(ep.clone(), id);
        id
    }

    fn text(&mut self, key: String, namespace: String) -> u32 {
        if let Some(&id) = self.by_text.get(key.as_str()) {
            return id;
        }
        let id = self.texts.len() as u32;
        let key: Arc<str> = key.into();
        self.texts.push((key.clone(), namespace.into()));
        self.by_text.insert(key, id);
        id
    }
}

/// When a label set was last seen, moved on through a shared reference (the enrichment's `known`
/// test holds the batch shared while it runs).
#[derive(Debug, Default)]
pub struct Seen(std::sync::atomic::AtomicI64);

impl Seen {
    fn new(t: Timestamp) -> Seen {
        Seen(std::sync::atomic::AtomicI64::new(micros(t)))
    }
    fn at_least(&self, t: Timestamp) {
        self.0.fetch_max(micros(t), std::sync::atomic::Ordering::Relaxed);
    }
    pub fn micros(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A chunk boundary falls after about one flow in this many.
pub const CHUNK_AVG: u64 = 4096;
/// A chunk ends at this many flows even without a boundary.
pub const CHUNK_MAX: usize = 16_384;

/// Whether a chunk ends after the flow with this key: a property of the key alone, so the same
/// flows are cut the same way in every file, body and position.
pub fn is_boundary(key: u128) -> bool {
    let folded = (key as u64) ^ ((key >> 64) as u64);
    folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52 == 0
}

/// One flow of a chunk: its rows in the batch (none when it does not count: expired, read
/// before in this ingest, or held), and the chunk's digest up to and including it.
#[derive(Debug, Clone, Copy)]
struct Record {
    key: u128,
    rows: (u32, u32),
    prefix: u128,
    /// Dated in the future (rejected for now): a later ingest that accepts it counts it then.
    held: bool,
}

/// Flows cut at content-defined boundaries: the unit the ledger records.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub first: u128,
    records: Vec<Record>,
    /// Ended with its source, not at a boundary.
    pub open: bool,
    newest_us: i64,
}

impl Chunk {
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    pub fn digest(&self) -> u128 {
        self.records.last().map_or(0, |r| r.prefix)
    }
}

/// A chunk the ledger holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub first: u128,
    pub digest: u128,
    pub records: usize,
    /// Its flows that were held (dated in the future) and not counted.
    pub held: Vec<u128>,
}

/// How many of `chunk`'s first flows were written before, and the entry that says so: all of
/// them when the chunk is recorded; those of a recorded chunk that it begins with (one that ended
/// with its source, and this one goes on), which it then replaces; else none.
pub fn written_before<'a>(chunk: &Chunk, entries: &'a [LedgerEntry]) -> (usize, Option<&'a LedgerEntry>) {
    let n = chunk.len();
    let mine = entries.iter().filter(|e| e.first == chunk.first);
    if let Some(e) = mine.clone().find(|e| e.records == n && e.digest == chunk.digest()) {
        return (n, Some(e));
    }
    let prefix = mine
        .filter(|e| e.records >= 1 && e.records < n && chunk.records[e.records - 1].prefix == e.digest)
        .max_by_key(|e| e.records);
    match prefix {
        Some(e) => (e.records, Some(e)),
        None => (0, None),
    }
}

/// A stream's watermark after a batch: its newest flow time and the keys of the flows at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    pub time_us: i64,
    pub keys: Vec<u128>,
}

impl Mark {
    /// Keys kept at the mark's time: flows sharing one microsecond are few.
    const MAX_KEYS: usize = 1024;

    fn note(&mut self, time_us: i64, key: u128) {
        if time_us > self.time_us {
            self.time_us = time_us;
            self.keys.clear();
        }
        if time_us == self.time_us && self.keys.len() < Self::MAX_KEYS && !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Whether a flow at `time_us` with `key` lies before the mark (was written before it).
    pub fn covers(&self, time_us: i64, key: u128) -> bool {
        time_us < self.time_us || time_us == self.time_us && self.keys.contains(&key)
    }
}

/// A batch: its flows folded into connection-hours as they are read (a [`Part`] per flow, raw
/// rows only when kept), workload labels learned from flow metadata, and what tells which of its
/// flows are new: its chunks (files, bodies) or its stream's mark.
#[derive(Debug)]
pub struct Batch {
    /// One per row a flow makes (a flow that fans out to several workloads makes one each).
    pub parts: Vec<Part>,
    /// The connection-hours the parts add to.
    pub hours: Vec<HourConn>,
    hour_ids: rustc_hash::FxHashMap<(u32, u32, i64, i32, &'static str), u32>,
    /// Process names and Service texts of the parts, each once.
    words: Words,
    /// Raw rows, one per part, when [`Batch::keep_rows`] (`--keep-flows`); else empty.
    pub rows: Vec<FlowRow>,
    keep_rows: bool,
    /// Label sets learned per workload, with when last seen (a cell, so that the enrichment's
    /// `known` test can move it on without the labels being copied again: see [`Batch::knows`]).
    pub learned: BTreeMap<WorkloadRef, BTreeMap<Labels, Arc<Seen>>>,
    /// The ends [`Batch::knows`] found learned, with their cell: a busy end is looked up by its
    /// labels once a batch.
    known_ends: KnownEnds<Arc<Seen>>,
    /// Each endpoint's key and namespace text, made once and carried on to the next batch.
    ends: Ends,
    /// DNS names seen for addresses: the flows' own and the DNS answers read with them.
    pub names: Names,
    /// Complete chunks, and open ones ended with their source.
    chunks: Vec<Chunk>,
    /// The chunk being filled (files and bodies).
    current: Option<Chunk>,
    /// The stream this batch belongs to (`None`: files and bodies, chunked), and its mark.
    stream: Option<(String, Mark)>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            parts: Vec::new(),
            hours: Vec::new(),
            hour_ids: Default::default(),
            words: Words::default(),
            rows: Vec::new(),
            keep_rows: false,
            learned: BTreeMap::new(),
            known_ends: KnownEnds::default(),
            ends: Ends::default(),
            names: Names::default(),
            chunks: Vec::new(),
            current: None,
            stream: None,
        }
    }
}

/// Emptied part and row buffers the writers hand back, so that the next batch fills memory
/// already in use instead of growing a fresh vector (a profile of `ingest` put a quarter of its
/// samples in the kernel clearing the pages of growing row vectors). At most [`RowPool::KEEP`]
/// are kept.
#[derive(Debug, Clone, Default)]
pub struct RowPool(Arc<std::sync::Mutex<Vec<Buffers>>>);

/// A batch's part and row buffers.
type Buffers = (Vec<Part>, Vec<FlowRow>);

impl RowPool {
    /// Buffers kept: the writers' batches in flight and one more.
    pub const KEEP: usize = 3;

    fn take(&self) -> Option<Buffers> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// A written batch's buffers, emptied, for a later batch.
    pub fn give(&self, batch: &mut Batch) {
        let (mut parts, mut rows) = (std::mem::take(&mut batch.parts), std::mem::take(&mut batch.rows));
        parts.clear();
        rows.clear();
        let mut spare = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < Self::KEEP {
            spare.push((parts, rows));
        }
    }
}

impl Batch {
    /// The next batch ([`Batch::next`]) with its rows in a buffer from `pool`, or one as large
    /// as this batch's grew to.
    pub fn next_with(&mut self, pool: &RowPool) -> Batch {
        let mut b = self.next();
        (b.parts, b.rows) = pool
            .take()
            .unwrap_or_else(|| (Vec::with_capacity(self.parts.capacity()), Vec::with_capacity(self.rows.capacity())));
        b
    }

    /// A batch of an ordered stream named `source` (a Hubble Relay): not chunked, its flows
    /// counted against the stream's mark.
    pub fn for_stream(source: &str) -> Batch {
        Batch { stream: Some((source.to_string(), Mark { time_us: i64::MIN, keys: Vec::new() })), ..Batch::default() }
    }

    /// A fresh batch of the same kind (the same stream, or chunked; raw rows kept or not), with
    /// the endpoint texts made so far.
    pub fn next(&mut self) -> Batch {
        let mut b = match &self.stream {
            Some((s, _)) => Batch::for_stream(s),
            None => Batch::default(),
        };
        b.keep_rows = self.keep_rows;
        if self.ends.texts.len() < Ends::MAX {
            b.ends = std::mem::take(&mut self.ends);
        }
        b
    }

    /// Makes raw rows for the flows too (`--keep-flows`), from this batch on.
    pub fn keep_rows(&mut self, keep: bool) {
        self.keep_rows = keep;
    }

    pub fn keeps_rows(&self) -> bool {
        self.keep_rows
    }

    /// Rows (parts) in the batch.
    pub fn len(&self) -> usize {
        self.parts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.chunks.is_empty() && self.current.is_none()
    }
    /// Whether nothing at all would be written.
    pub fn is_void(&self) -> bool {
        self.is_empty() && self.learned.is_empty() && self.names.is_empty()
    }

    /// Whether the batch may be cut here: no chunk half filled.
    pub fn at_boundary(&self) -> bool {
        self.current.is_none()
    }

    /// Ends the chunk being filled, as its source ended.
    pub fn end_source(&mut self) {
        if let Some(mut c) = self.current.take() {
            c.open = true;
            self.chunks.push(c);
        }
    }

    /// Notes a flow (`key`: [`flow_key`]) in its chunk or the stream's mark, with the rows pushed
    /// for it since `rows_from`.
    fn note(&mut self, key: u128, time_us: i64, rows_from: usize) {
        self.note_held(key, time_us, rows_from, false);
    }

    fn note_held(&mut self, key: u128, time_us: i64, rows_from: usize, held: bool) {
        let rows = (rows_from as u32, self.parts.len() as u32);
        if let Some((_, mark)) = &mut self.stream {
            mark.note(time_us, key);
            return;
        }
        let chunk = self.current.get_or_insert_with(|| Chunk {
            first: key,
            records: Vec::with_capacity(CHUNK_AVG as usize),
            open: false,
            newest_us: time_us,
        });
        let before = chunk.records.last().map_or(CHUNK_SEED, |r| r.prefix);
        chunk.records.push(Record { key, rows, prefix: chain(before, key), held });
        chunk.newest_us = chunk.newest_us.max(time_us);
        if is_boundary(key) || chunk.records.len() >= CHUNK_MAX {
            let done = self.current.take().expect("the chunk being filled");
            self.chunks.push(done);
        }
    }

    /// A flow that is part of its source but adds nothing (older than the retention, or read
    /// before in this ingest): it still takes its place in its chunk.
    pub fn skip(&mut self, key: u128, flow: &FlowRecord) {
        let from = self.parts.len();
        self.note(key, micros(flow.time), from);
    }

    /// A flow rejected for now (dated in the future): it takes its place in its chunk, and the
    /// ledger remembers it was not counted. Streams have no chunks and keep no mark for it.
    pub fn hold(&mut self, key: u128, flow: &FlowRecord) {
        if self.stream.is_none() {
            let from = self.parts.len();
            self.note_held(key, micros(flow.time), from, true);
        }
    }

    /// Adds a flow (`key`: [`flow_key`]) and its enrichment, folded into its connection-hours. A
    /// flow that fans out to several workloads (a Service backed by more than one) becomes one
    /// part (and raw row) each, keyed apart.
    pub fn push(&mut self, key: u128, flow: &FlowRecord, enriched: &[Enriched]) {
        for (ip, names) in [(flow.dst_ip, &flow.dst_names), (flow.src_ip, &flow.src_names)] {
            for n in names {
                self.names.add(ip, n, flow.time);
            }
        }
        let from = self.parts.len();
        let time_us = micros(flow.time);
        let bucket_us = time_us.div_euclid(HOUR_US) * HOUR_US;
        let process = self.words.process(flow.process.as_deref());
        for (i, e) in enriched.iter().enumerate() {
            for (w, labels) in &e.learned {
                // Looked up by reference: a workload's labels are cloned once per batch, not per flow.
                let sets = match self.learned.get_mut(w) {
                    Some(sets) => sets,
                    None => self.learned.entry(w.clone()).or_default(),
                };
                match sets.get(labels) {
                    Some(seen) => seen.at_least(flow.time),
                    None => {
                        sets.insert(labels.clone(), Arc::new(Seen::new(flow.time)));
                    }
                }
            }
            // An end known only by its pod identity keeps it in its key, for the review to settle.
            let ends = &mut self.ends;
            let mut end = |ep: &Endpoint, src: bool| -> u32 {
                match e.identities.iter().find(|i| i.src == src) {
                    Some(id) => ends.text(
                        Endpoint::identity_key(ep.ip().unwrap_or(if src { flow.src_ip } else { flow.dst_ip }), id),
                        id.namespace.clone(),
                    ),
                    None => ends.of(ep),
                }
            };
            let (src, dst) = (end(&e.src, true), end(&e.dst, false));
            let (port, protocol) = (i32::from(e.port.get()), e.protocol.as_str());
            let hour = match self.hour_ids.get(&(src, dst, bucket_us, port, protocol)) {
                Some(&h) => h,
                None => {
                    let h = self.hours.len() as u32;
                    let ((src_endpoint, src_namespace), (dst_endpoint, dst_namespace)) =
                        (ends.texts[src as usize].clone(), ends.texts[dst as usize].clone());
                    self.hours.push(HourConn {
                        bucket_us,
                        src_endpoint,
                        dst_endpoint,
                        src_namespace,
                        dst_namespace,
                        port,
                        protocol,
                    });
                    self.hour_ids.insert((src, dst, bucket_us, port, protocol), h);
                    h
                }
            };
            let service = self.words.service(e.service.as_ref());
            self.parts.push(Part {
                hour,
                time_us,
                src_port: flow.src_port,
                dropped: flow.verdict == Verdict::Dropped,
                undecided: flow.role == FlowRole::Undecided,
                process,
                service,
            });
            if self.keep_rows {
                let h = &self.hours[hour as usize];
                self.rows.push(FlowRow {
                    time_us,
                    key: if i == 0 { key } else { mix(key, i as u64) },
                    src_ip: flow.src_ip,
                    src_port: flow.src_port.map(i32::from),
                    dst_ip: flow.dst_ip,
                    dst_port: port,
                    protocol,
                    verdict: flow.verdict.as_str(),
                    src_endpoint: h.src_endpoint.clone(),
                    dst_endpoint: h.dst_endpoint.clone(),
                    src_namespace: h.src_namespace.clone(),
                    dst_namespace: h.dst_namespace.clone(),
                    service: self.words.get(service).map(str::to_string),
                    process: flow.process.clone(),
                    node: flow.node.clone(),
                    bytes: flow.bytes.and_then(|b| i64::try_from(b).ok()),
                    packets: flow.packets.and_then(|b| i64::try_from(b).ok()),
                    undecided: flow.role == FlowRole::Undecided,
                });
            }
        }
        self.note(key, time_us, from);
    }

    /// Whether the batch has learned `labels` for `w` already; if so, moves its last seen on to
    /// `time`. For [`crate::enrich::enrich_learning`]: a label set already learned is not copied
    /// out of every flow again.
    /// `end` is the flow's end as the parsers share it, whose labels were learned for `w` (the
    /// one workload that end names).
    pub fn knows(&self, w: &WorkloadRef, end: &Arc<ObservedEndpoint>, time: Timestamp) -> bool {
        if let Some(seen) = self.known_ends.get(end) {
            seen.at_least(time);
            return true;
        }
        match self.learned.get(w).and_then(|sets| sets.get(&end.labels)) {
            Some(seen) => {
                seen.at_least(time);
                self.known_ends.insert(end, seen.clone());
                true
            }
            None => false,
        }
    }

    /// The newest flow time among the batch's parts.
    pub fn newest_us(&self) -> Option<i64> {
        self.parts.iter().map(|p| p.time_us).max()
    }
}

const CHUNK_SEED: u128 = 0x6c62272e07bb014262b821756295c58d;

/// The digest of a chunk's keys in order, one key further.
fn chain(digest: u128, key: u128) -> u128 {
    let mut h = Fnv128(digest);
    h.write(&key.to_le_bytes());
    h.finish()
}

fn namespace_of(e: &Endpoint) -> String {
    e.workload().map(|w| w.namespace.clone()).unwrap_or_default()
}

/// A flow's identity: Hubble's uuid when it has one, else a hash of everything the record says,
/// so the same line ingested twice is recognised.
pub fn flow_key(flow: &FlowRecord) -> u128 {
    if let Some(u) = flow.uuid.as_deref().and_then(parse_uuid) {
        return u;
    }
    let mut h = Fnv128::default();
    h.write(&flow.time.as_nanosecond().to_le_bytes());
    h.write(ip_text(&flow.src_ip, &mut [0; 48]));
    h.write(&flow.src_port.unwrap_or(0).to_le_bytes());
    h.write(ip_text(&flow.dst_ip, &mut [0; 48]));
    h.write(&flow.dst_port.get().to_le_bytes());
    h.write(flow.protocol.as_str().as_bytes());
    h.write(flow.verdict.as_str().as_bytes());
    for s in [&flow.process, &flow.node, &flow.cluster, &flow.uuid] {
        h.write(s.as_deref().unwrap_or("\u{0}").as_bytes());
    }
    h.write(&flow.bytes.unwrap_or(0).to_le_bytes());
    h.write(&flow.packets.unwrap_or(0).to_le_bytes());
    h.finish()
}

/// An address as `to_string` prints it, written into `buf` instead of a new string.
fn ip_text<'b>(ip: &IpAddr, buf: &'b mut [u8; 48]) -> &'b [u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // The longest address text is 45 bytes.
    let _ = write!(cursor, "{ip}");
    let n = cursor.position() as usize;
    &buf[..n]
}

fn mix(k: u128, i: u64) -> u128 {
    let mut h = Fnv128::default();
    h.write(&k.to_le_bytes());
    h.write(&i.to_le_bytes());
    h.finish()
}

/// FNV-1a over 128 bits: stable across Rust releases and platforms, unlike std's hasher, which
/// matters because keys are stored.
struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Self {
        Fnv128(0x6c62272e07bb014262b821756295c58d)
    }
}

impl Fnv128 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
        }
        // A separator, so that ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
    }
    fn finish(&self) -> u128 {
        self.0
    }
}

/// A uuid's 128 bits: 36 characters, 32 of them hex digits, the rest dashes (read without
/// allocating: every Hubble flow has one).
fn parse_uuid(s: &str) -> Option<u128> {
    if s.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    let mut digits = 0;
    for b in s.bytes() {
        if b == b'-' {
            continue;
        }
        v = (v << 4) | u128::from((b as char).to_digit(16)?);
        digits += 1;
    }
    (digits == 32).then_some(v)
}

fn uuid_text(k: u128) -> String {
    let h = format!("{k:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// What one batch did, in rows (a flow that fans out to several workloads is a row each).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub inserted: u64,
    pub duplicates: u64,
    /// Rows written to the aggregate tables (hourly and daily), the ledger and, when kept, the
    /// raw flows: what the batch cost the store.
    pub store_rows: u64,
}

/// One connection-hour of a batch: what its parts add to `conn_hourly` (or, summed by
/// [`fold_daily`], a connection-day: what they add to `conn_daily`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hourly<'a> {
    pub bucket_us: i64,
    pub src_endpoint: &'a str,
    pub dst_endpoint: &'a str,
    pub src_namespace: &'a str,
    pub dst_namespace: &'a str,
    pub port: i32,
    pub protocol: &'static str,
    /// The one statistics type, its lists borrowed from the batch's rows: sorted, distinct, at
    /// most [`MAX_PROCESSES`], as the stored arrays are.
    pub stats: ConnStats<&'a str>,
}

/// Sums parts into their connection-hours (`hours`, their process and Service texts in
/// `words`), sorted by `conn_hourly`'s key (source, hour, destination, port, protocol).
pub fn fold_hourly<'a>(
    hours: &'a [HourConn],
    words: &'a [Arc<str>],
    parts: impl IntoIterator<Item = &'a Part>,
) -> Vec<Hourly<'a>> {
    let mut sums: Vec<Option<ConnStats<&'a str>>> = vec![None; hours.len()];
    for p in parts {
        // The part's time came from a timestamp, to the microsecond: always in range.
        let time = jiff::Timestamp::from_microsecond(p.time_us).unwrap_or_default();
        let stats = sums[p.hour as usize].get_or_insert_with(|| ConnStats::new(time));
        stats.count(time, p.dropped, p.undecided, p.src_port);
        for (set, id) in [(&mut stats.processes, p.process), (&mut stats.services, p.service)] {
            if let Some(w) = words.get(id as usize) {
                ConnStats::note(set, &**w, |v| v);
            }
        }
    }
    let mut out: Vec<Hourly<'a>> = sums
        .into_iter()
        .zip(hours)
        .filter_map(|(stats, h)| {
            Some(Hourly {
                bucket_us: h.bucket_us,
                src_endpoint: &h.src_endpoint,
                dst_endpoint: &h.dst_endpoint,
                src_namespace: &h.src_namespace,
                dst_namespace: &h.dst_namespace,
                port: h.port,
                protocol: h.protocol,
                stats: stats?,
            })
        })
        .collect();
    out.sort_unstable_by(|a, b| {
        (a.src_endpoint, a.bucket_us, a.dst_endpoint, a.port, a.protocol).cmp(&(
            b.src_endpoint,
            b.bucket_us,
            b.dst_endpoint,
            b.port,
            b.protocol,
        ))
    });
    out
}

/// Rows as the columns that `unnest` turns back into rows.
struct FlowColumns<'a> {
    time: Vec<i64>,
    key: Vec<String>,
    src_ip: Vec<IpAddr>,
    src_port: Vec<Option<i32>>,
    dst_ip: Vec<IpAddr>,
    dst_port: Vec<i32>,
    protocol: Vec<&'static str>,
    verdict: Vec<&'static str>,
    src_ep: Vec<&'a str>,
    dst_ep: Vec<&'a str>,
    service: Vec<Option<&'a str>>,
    process: Vec<Option<&'a str>>,
    node: Vec<Option<&'a str>>,
    bytes: Vec<Option<i64>>,
    packets: Vec<Option<i64>>,
    undecided: Vec<bool>,
}

impl<'a> FlowColumns<'a> {
    fn new(rows: &[&'a FlowRow]) -> Self {
        FlowColumns {
            time: rows.iter().map(|r| r.time_us).collect(),
            key: rows.iter().map(|r| uuid_text(r.key)).collect(),
            src_ip: rows.iter().map(|r| r.src_ip).collect(),
            src_port: rows.iter().map(|r| r.src_port).collect(),
            dst_ip: rows.iter().map(|r| r.dst_ip).collect(),
            dst_port: rows.iter().map(|r| r.dst_port).collect(),
            protocol: rows.iter().map(|r| r.protocol).collect(),
            verdict: rows.iter().map(|r| r.verdict).collect(),
            src_ep: rows.iter().map(|r| &*r.src_endpoint).collect(),
            dst_ep: rows.iter().map(|r| &*r.dst_endpoint).collect(),
            service: rows.iter().map(|r| r.service.as_deref()).collect(),
            process: rows.iter().map(|r| r.process.as_deref()).collect(),
            node: rows.iter().map(|r| r.node.as_deref()).collect(),
            bytes: rows.iter().map(|r| r.bytes).collect(),
            packets: rows.iter().map(|r| r.packets).collect(),
            undecided: rows.iter().map(|r| r.undecided).collect(),
        }
    }
}

/// The raw rows (`$1` cluster, `$2`..`$17` the columns), kept only when asked: a flow already
/// stored is left as it is.
const INSERT_FLOWS: &str = "with ins as (
    insert into flows (cluster_id, time, flow_key, src_ip, src_port, dst_ip, dst_port, protocol, verdict,
                       src_endpoint, dst_endpoint, service, process, node, bytes, packets, undecided)
    select $1, timestamptz 'epoch' + us * interval '1 microsecond', k::uuid, sip, sport, dip, dport, proto,
           verdict, sep, dep, svc, proc, node, bytes, packets, und
    from unnest($2::bigint[], $3::text[], $4::inet[], $5::int[], $6::inet[], $7::int[], $8::text[], $9::text[],
                $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[],
                $17::boolean[])
        as t(us, k, sip, sport, dip, dport, proto, verdict, sep, dep, svc, proc, node, bytes, packets, und)
    on conflict do nothing
    returning 1
 )
 select count(*) from ins";

/// Adds the rows of a CTE (`$from`: bucket, src_endpoint, dst_endpoint, src_namespace,
/// dst_namespace, dst_port, protocol, flows, dropped, first_seen, last_seen, processes, services,
/// undecided, reply_ports) to
/// an aggregate table (`$table`: conn_hourly or conn_daily).
macro_rules! upsert_into {
    ($table:literal, $from:literal, $cap:literal) => {
        concat!(
            "insert into ",
            $table,
            " as c (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace,
                    port, protocol, flows, dropped, first_seen, last_seen, processes, services, undecided, reply_ports)
         select $1, h.bucket, h.src_endpoint, h.dst_endpoint, h.src_namespace, h.dst_namespace, h.dst_port, h.protocol,
                h.flows, h.dropped, h.first_seen, h.last_seen, h.processes, h.services, h.undecided, h.reply_ports
         from ",
            $from,
            " h
         -- Rows are locked in key order, so concurrent batches cannot deadlock on them.
         order by h.src_endpoint, h.bucket, h.dst_endpoint, h.dst_port, h.protocol
         on conflict (cluster_id, src_endpoint, bucket, dst_endpoint, port, protocol) do update set
            flows = c.flows + excluded.flows,
            dropped = c.dropped + excluded.dropped,
            first_seen = least(c.first_seen, excluded.first_seen),
            last_seen = greatest(c.last_seen, excluded.last_seen),
            -- Stored arrays are sorted, distinct and at most the cap long, so when the new values
            -- are among them the merge below would return them unchanged: skip it.
            processes = case when excluded.processes <@ c.processes then c.processes
                             else (select coalesce((array_agg(distinct p collate \"C\"))[1:", $cap, "::int], '{}')
                                   from unnest(c.processes || excluded.processes) p) end,
            services = case when excluded.services <@ c.services then c.services
                            else (select coalesce((array_agg(distinct s collate \"C\"))[1:", $cap, "::int], '{}')
                                  from unnest(c.services || excluded.services) s) end,
            undecided = c.undecided + excluded.undecided,
            reply_ports = case when excluded.reply_ports <@ c.reply_ports then c.reply_ports
                               else (select coalesce((array_agg(distinct p order by p))[1:", $cap, "::int], '{}')
                                     from unnest(c.reply_ports || excluded.reply_ports) p) end"
        )
    };
}

/// The batch's connection-hours and -days, both folded in Rust ([`fold_hourly`],
/// [`fold_daily`]; `$2`..`$16` the columns, `$17` whether a row is a day), added to `conn_hourly`
/// and `conn_daily`; `$18`: the cap of the lists ([`MAX_PROCESSES`]). Answers the rows it
/// upserted.
const WRITE_AGGREGATES: &str = concat!(
    "with rows as (
        select timestamptz 'epoch' + b * interval '1 microsecond' as bucket, src_endpoint, dst_endpoint,
               src_namespace, dst_namespace, dst_port, protocol, flows, dropped,
               timestamptz 'epoch' + fu * interval '1 microsecond' as first_seen,
               timestamptz 'epoch' + lu * interval '1 microsecond' as last_seen,
               pj::text[] as processes, sj::text[] as services, und as undecided, rj::int[] as reply_ports,
               d as daily
        from unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[],
                    $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::text[],
                    $15::bigint[], $16::text[], $17::boolean[])
            as a(b, src_endpoint, dst_endpoint, src_namespace, dst_namespace, dst_port, protocol, flows, dropped,
                 fu, lu, pj, sj, und, rj, d)
     ),
     add_hourly as (",
    upsert_into!("conn_hourly", "(select * from rows where not daily)", "$18"),
    "),
     add_daily as (",
    upsert_into!("conn_daily", "(select * from rows where daily)", "$18"),
    ")
     select count(*) from rows"
);

/// Sums connection-hours into connection-days (UTC), in `conn_daily`'s key order. Summing in Rust
/// what SQL summed before (a `group by` over the hours with three array merges per day) took a
/// sixth of PostgreSQL's CPU off each batch (BENCHMARKS.md).
pub fn fold_daily<'a>(hourly: &[Hourly<'a>]) -> Vec<Hourly<'a>> {
    use std::collections::btree_map::Entry;
    let mut days: BTreeMap<(&'a str, i64, &'a str, i32, &'static str), Hourly<'a>> = BTreeMap::new();
    for h in hourly {
        let bucket_us = h.bucket_us.div_euclid(DAY_US) * DAY_US;
        match days.entry((h.src_endpoint, bucket_us, h.dst_endpoint, h.port, h.protocol)) {
            Entry::Vacant(e) => {
                e.insert(Hourly { bucket_us, ..h.clone() });
            }
            Entry::Occupied(mut e) => e.get_mut().stats.merge(&h.stats),
        }
    }
    days.into_values().collect()
}

/// A PostgreSQL array literal of `items`, each quoted (`"` and `\` escaped), which `::text[]` and
/// `::int[]` read back as they were: one list per row in a flat column, where a sub-select per row
/// unpacking a JSON array cost more.
fn array_literal<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.as_ref().chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// [`WRITE_AGGREGATES`] for the batch's parts `new`: the rows upserted.
async fn write_aggregates(tx: &mut sqlx::PgConnection, cluster: i32, batch: &Batch, new: &[u32]) -> sqlx::Result<i64> {
    let hourly = fold_hourly(&batch.hours, &batch.words.texts, new.iter().map(|&i| &batch.parts[i as usize]));
    if hourly.is_empty() {
        return Ok(0);
    }
    let daily = fold_daily(&hourly);
    let rows = || hourly.iter().chain(&daily);
    sqlx::query_scalar(WRITE_AGGREGATES)
        .bind(cluster)
        .bind(rows().map(|h| h.bucket_us).collect::<Vec<_>>())
        .bind(rows().map(|h| h.src_endpoint).collect::<Vec<_>>())
        .bind(rows().map(|h| h.dst_endpoint).collect::<Vec<_>>())
        .bind(rows().map(|h| h.src_namespace).collect::<Vec<_>>())
        .bind(rows().map(|h| h.dst_namespace).collect::<Vec<_>>())
        .bind(rows().map(|h| h.port).collect::<Vec<_>>())
        .bind(rows().map(|h| h.protocol).collect::<Vec<_>>())
        .bind(rows().map(|h| h.stats.flows as i64).collect::<Vec<_>>())
        .bind(rows().map(|h| h.stats.dropped as i64).collect::<Vec<_>>())
        .bind(rows().map(|h| h.stats.first_seen.as_microsecond()).collect::<Vec<_>>())
        .bind(rows().map(|h| h.stats.last_seen.as_microsecond()).collect::<Vec<_>>())
        .bind(rows().map(|h| array_literal(h.stats.processes.iter().copied())).collect::<Vec<_>>())
        .bind(rows().map(|h| array_literal(h.stats.services.iter().copied())).collect::<Vec<_>>())
        .bind(rows().map(|h| h.stats.undecided as i64).collect::<Vec<_>>())
        .bind(rows().map(|h| array_literal(h.stats.reply_ports.iter().map(|p| p.to_string()))).collect::<Vec<_>>())
        .bind(hourly.iter().map(|_| false).chain(daily.iter().map(|_| true)).collect::<Vec<_>>())
        .bind(MAX_PROCESSES as i32)
        .fetch_one(tx)
        .await
}

/// How to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Also store a raw row per new flow (`--keep-flows`).
    pub keep_flows: bool,
}

/// What the ledger says of a batch's chunks: the parts (and rows) that are new, and the ledger's
/// changes.
struct Decided<'a> {
    /// Indexes into [`Batch::parts`] (and [`Batch::rows`], when kept).
    new: Vec<u32>,
    duplicates: u64,
    /// Chunks to record (or record again), with the keys of their flows still held.
    record: Vec<(&'a Chunk, Vec<u128>)>,
    /// Open chunks that recorded chunks replace.
    replace: Vec<LedgerEntry>,
}

/// Decides, from the entries recorded for its chunks' first keys, which of the batch's rows are
/// new: those of flows past what was written before, and of flows held then and accepted now.
/// Pure: the transaction around it reads the entries and applies the changes.
fn decide<'a>(batch: &'a Batch, entries: &[LedgerEntry]) -> Decided<'a> {
    let mut d = Decided { new: Vec::new(), duplicates: 0, record: Vec::new(), replace: Vec::new() };
    for chunk in &batch.chunks {
        let (before, entry) = written_before(chunk, entries);
        let was_held = |k: &u128| entry.is_some_and(|e| e.held.contains(k));
        let mut held = Vec::new();
        let mut changed = before < chunk.len();
        for (i, rec) in chunk.records.iter().enumerate() {
            let rows = rec.rows.0..rec.rows.1;
            let counted_before = i < before && !was_held(&rec.key);
            if rec.held && !counted_before {
                held.push(rec.key);
            }
            if counted_before {
                d.duplicates += rows.len() as u64;
            } else {
                d.new.extend(rows);
                changed |= i < before && !rec.held;
            }
        }
        if changed || entry.is_some_and(|e| e.held.len() != held.len()) {
            d.record.push((chunk, held));
        }
        if let Some(e) = entry.filter(|e| e.records < chunk.len()) {
            d.replace.push(e.clone());
        }
    }
    d
}

impl Store {
    /// Writes one batch in one transaction: its new flows folded into the aggregates, and what
    /// says they are written (the ledger's chunks, or the stream's mark).
    pub async fn write_batch(&self, cluster: i32, batch: &Batch, options: WriteOptions) -> Result<Written> {
        if batch.is_void() {
            return Ok(Written::default());
        }
        debug_assert!(batch.stream.is_some() || batch.at_boundary(), "a chunked batch is cut at a boundary");
        if options.keep_flows && !batch.keep_rows {
            return Err(super::StoreError::Invalid(
                "the raw flows are to be kept, but the batch was made without its rows (Batch::keep_rows)".into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let mut store_rows = 0u64;
        let decided = match &batch.stream {
            Some(_) => Decided {
                new: (0..batch.parts.len() as u32).collect(),
                duplicates: 0,
                record: Vec::new(),
                replace: Vec::new(),
            },
            None => {
                let entries = self.ledger_entries(&mut tx, cluster, &batch.chunks).await?;
                decide(batch, &entries)
            }
        };
        store_rows += write_aggregates(&mut tx, cluster, batch, &decided.new).await? as u64;
        if options.keep_flows && !decided.new.is_empty() {
            let rows: Vec<&FlowRow> = decided.new.iter().map(|&i| &batch.rows[i as usize]).collect();
            store_rows += self.write_raw(&mut tx, cluster, &rows).await?;
        }
        store_rows += self.record_chunks(&mut tx, cluster, &decided).await?;
        if let Some((source, mark)) = &batch.stream
            && !mark.keys.is_empty()
        {
            self.advance_mark(&mut tx, cluster, source, mark).await?;
            store_rows += 1;
        }
        self.write_learned(&mut tx, cluster, batch).await?;
        super::names::write_names(&mut tx, cluster, &batch.names).await?;
        // Last, so that concurrent writers wait on the cluster's row only for each other's commit.
        if let Some(newest) = decided.new.iter().map(|&i| batch.parts[i as usize].time_us).max() {
            sqlx::query(
                "update clusters set newest_flow = greatest(newest_flow, timestamptz 'epoch' + $2 * interval '1 microsecond')
                 where id = $1",
            )
            .bind(cluster)
            .bind(newest)
            .execute(&mut *tx)
            .await?;
            store_rows += 1;
        }
        tx.commit().await?;
        Ok(Written { inserted: decided.new.len() as u64, duplicates: decided.duplicates, store_rows })
    }

    /// Locks the chunks' first keys for this transaction (in order, so writers cannot deadlock)
    /// and reads what the ledger holds for them: a writer that writes the same chunk at the same
    /// time waits here, then sees this one's entry.
    async fn ledger_entries(
        &self,
        tx: &mut sqlx::PgConnection,
        cluster: i32,
        chunks: &[Chunk],
    ) -> Result<Vec<LedgerEntry>> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let mut locks: Vec<i32> = chunks.iter().map(|c| c.first as u32 as i32).collect();
        locks.sort_unstable();
        locks.dedup();
        sqlx::query("select pg_advisory_xact_lock($1, k) from unnest($2::int[]) as t(k)")
            .bind(cluster)
            .bind(&locks)
            .execute(&mut *tx)
            .await?;
        let firsts: Vec<String> = chunks.iter().map(|c| uuid_text(c.first)).collect();
        let rows: Vec<(String, String, i32, Vec<String>)> = sqlx::query_as(
            "select first_key::text, digest::text, records, held::text[] from ingest_ledger
             where cluster_id = $1 and first_key = any($2::text[]::uuid[])",
        )
        .bind(cluster)
        .bind(&firsts)
        .fetch_all(&mut *tx)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(f, d, n, held)| {
                Some(LedgerEntry {
                    first: parse_uuid(&f)?,
                    digest: parse_uuid(&d)?,
                    records: usize::try_from(n).ok()?,
                    held: held.iter().filter_map(|k| parse_uuid(k)).collect(),
                })
            })
            .collect())
    }

    /// Records the chunks with new flows, in place of the open chunks they go on from.
    async fn record_chunks(&self, tx: &mut sqlx::PgConnection, cluster: i32, d: &Decided<'_>) -> Result<u64> {
        if !d.replace.is_empty() {
            let first: Vec<String> = d.replace.iter().map(|e| uuid_text(e.first)).collect();
            let digest: Vec<String> = d.replace.iter().map(|e| uuid_text(e.digest)).collect();
            sqlx::query(
                "delete from ingest_ledger l using unnest($2::text[], $3::text[]) as r(f, d)
                 where l.cluster_id = $1 and l.first_key = r.f::uuid and l.digest = r.d::uuid",
            )
            .bind(cluster)
            .bind(&first)
            .bind(&digest)
            .execute(&mut *tx)
            .await?;
        }
        if d.record.is_empty() {
            return Ok(0);
        }
        let first: Vec<String> = d.record.iter().map(|(c, _)| uuid_text(c.first)).collect();
        let digest: Vec<String> = d.record.iter().map(|(c, _)| uuid_text(c.digest())).collect();
        let records: Vec<i32> = d.record.iter().map(|(c, _)| c.len() as i32).collect();
        let open: Vec<bool> = d.record.iter().map(|(c, _)| c.open).collect();
        let newest: Vec<i64> = d.record.iter().map(|(c, _)| c.newest_us).collect();
        // Held keys as one text per chunk (`unnest` cannot take an array of arrays of any length).
        let held: Vec<String> =
            d.record.iter().map(|(_, h)| h.iter().map(|k| uuid_text(*k)).collect::<Vec<_>>().join(",")).collect();
        let n = sqlx::query(
            "insert into ingest_ledger as l (cluster_id, first_key, digest, records, open, newest, held)
             select $1, f::uuid, d::uuid, n, o, timestamptz 'epoch' + t * interval '1 microsecond',
                    case when h = '' then '{}'::uuid[] else string_to_array(h, ',')::uuid[] end
             from unnest($2::text[], $3::text[], $4::int[], $5::boolean[], $6::bigint[], $7::text[])
                 as c(f, d, n, o, t, h)
             on conflict (cluster_id, first_key, digest) do update set held = excluded.held",
        )
        .bind(cluster)
        .bind(&first)
        .bind(&digest)
        .bind(&records)
        .bind(&open)
        .bind(&newest)
        .bind(&held)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Moves a stream's mark on to the batch's newest flows (never back).
    async fn advance_mark(&self, tx: &mut sqlx::PgConnection, cluster: i32, source: &str, mark: &Mark) -> Result<()> {
        let keys: Vec<String> = mark.keys.iter().map(|k| uuid_text(*k)).collect();
        sqlx::query(
            "insert into stream_marks as m (cluster_id, source, mark, keys)
             values ($1, $2, timestamptz 'epoch' + $3::bigint * interval '1 microsecond', $4::text[]::uuid[])
             on conflict (cluster_id, source) do update set
                keys = case when excluded.mark > m.mark then excluded.keys
                            when excluded.mark = m.mark
                                then (select array_agg(distinct k) from unnest(m.keys || excluded.keys) k)
                            else m.keys end,
                mark = greatest(m.mark, excluded.mark),
                updated_at = now()",
        )
        .bind(cluster)
        .bind(source)
        .bind(mark.time_us)
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// A stream's mark (`None`: it never wrote).
    pub async fn stream_mark(&self, cluster: i32, source: &str) -> Result<Option<Mark>> {
        let row: Option<(i64, Vec<String>)> = sqlx::query_as(
            "select (extract(epoch from mark) * 1000000)::bigint, keys::text[] from stream_marks
             where cluster_id = $1 and source = $2",
        )
        .bind(cluster)
        .bind(source)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(time_us, keys)| Mark { time_us, keys: keys.iter().filter_map(|k| parse_uuid(k)).collect() }))
    }

    /// The raw rows of the new flows, in their day partitions.
    async fn write_raw(&self, tx: &mut sqlx::PgConnection, cluster: i32, rows: &[&FlowRow]) -> Result<u64> {
        let mut days: Vec<i64> = rows.iter().map(|r| r.time_us.div_euclid(DAY_US)).collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            sqlx::query("select flowgate_ensure_partition((date '1970-01-01' + $1::integer))")
                .bind(day as i32)
                .execute(&mut *tx)
                .await?;
        }
        let c = FlowColumns::new(rows);
        let n: i64 = sqlx::query_scalar(INSERT_FLOWS)
            .bind(cluster)
            .bind(&c.time)
            .bind(&c.key)
            .bind(&c.src_ip)
            .bind(&c.src_port)
            .bind(&c.dst_ip)
            .bind(&c.dst_port)
            .bind(&c.protocol)
            .bind(&c.verdict)
            .bind(&c.src_ep)
            .bind(&c.dst_ep)
            .bind(&c.service)
            .bind(&c.process)
            .bind(&c.node)
            .bind(&c.bytes)
            .bind(&c.packets)
            .bind(&c.undecided)
            .fetch_one(&mut *tx)
            .await?;
        Ok(n as u64)
    }

    /// Records the workload labels a batch learned from flow metadata.
    async fn write_learned(&self, tx: &mut sqlx::PgConnection, cluster: i32, batch: &Batch) -> Result<()> {
        if batch.learned.is_empty() {
            return Ok(());
        }
        let mut ws = Vec::new();
        let mut ls = Vec::new();
        let mut seen = Vec::new();
        for (w, sets) in &batch.learned {
            for (l, t) in sets {
                ws.push(w.to_string());
                ls.push(serde_json::to_value(l).map_err(|e| super::StoreError::Invalid(e.to_string()))?);
                seen.push(t.micros());
            }
        }
        sqlx::query(
            "insert into observed_workloads as o (cluster_id, workload, labels, last_seen)
             select $1, w, l, timestamptz 'epoch' + s * interval '1 microsecond'
             from unnest($2::text[], $3::jsonb[], $4::bigint[]) as t(w, l, s)
             on conflict (cluster_id, workload, labels) do update set last_seen = greatest(o.last_seen, excluded.last_seen)",
        )
        .bind(cluster)
        .bind(&ws)
        .bind(&ls)
        .bind(&seen)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uuid_or_stable_hash() {
        assert_eq!(parse_uuid("2d2c6f3e-8f0e-4a55-a7b3-4a0c5d6b7e8f"), Some(0x2d2c6f3e8f0e4a55a7b34a0c5d6b7e8f));
        assert_eq!(parse_uuid("not-a-uuid"), None);
        assert_eq!(uuid_text(0x2d2c6f3e8f0e4a55a7b34a0c5d6b7e8f), "2d2c6f3e-8f0e-4a55-a7b3-4a0c5d6b7e8f");
        let mut a = Fnv128::default();
        a.write(b"ab");
        a.write(b"c");
        let mut b = Fnv128::default();
        b.write(b"a");
        b.write(b"bc");
        assert_ne!(a.finish(), b.finish());
        // A pinned value: stored keys must not change between releases.
        let mut c = Fnv128::default();
        c.write(b"flowgate");
        assert_eq!(uuid_text(c.finish()), "7f857d88-1f06-1471-61a0-32d79725bd7f");
    }

    fn row(time_us: i64, dst: &str, process: &str, verdict: Verdict) -> FlowRow {
        FlowRow {
            time_us,
            key: 0,
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: None,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: 80,
            protocol: "TCP",
            verdict: verdict.as_str(),
            src_endpoint: "deployment/shop/web".into(),
            dst_endpoint: dst.into(),
            src_namespace: "shop".into(),
            dst_namespace: "".into(),
            service: None,
            process: Some(process.into()),
            node: None,
            bytes: None,
            packets: None,
            undecided: false,
        }
    }

    /// Rows as a batch's connection-hours, words and parts, numbered in the order they come.
    fn parts_of(rows: &[FlowRow]) -> (Vec<HourConn>, Vec<Arc<str>>, Vec<Part>) {
        let (mut hours, mut words, mut parts) = (Vec::<HourConn>::new(), Vec::<Arc<str>>::new(), Vec::new());
        let mut word = |w: &Option<String>| match w {
            None => NO_WORD,
            Some(w) => match words.iter().position(|x| **x == **w) {
                Some(i) => i as u32,
                None => {
                    words.push(w.as_str().into());
                    words.len() as u32 - 1
                }
            },
        };
        for r in rows {
            let h = HourConn {
                bucket_us: r.time_us.div_euclid(HOUR_US) * HOUR_US,
                src_endpoint: r.src_endpoint.clone(),
                dst_endpoint: r.dst_endpoint.clone(),
                src_namespace: r.src_namespace.clone(),
                dst_namespace: r.dst_namespace.clone(),
                port: r.dst_port,
                protocol: r.protocol,
            };
            let hour = match hours.iter().position(|x| *x == h) {
                Some(i) => i,
                None => {
                    hours.push(h);
                    hours.len() - 1
                }
            };
            parts.push(Part {
                hour: hour as u32,
                time_us: r.time_us,
                src_port: r.src_port.and_then(|p| u16::try_from(p).ok()),
                dropped: r.verdict == Verdict::Dropped.as_str(),
                undecided: r.undecided,
                process: word(&r.process),
                service: word(&r.service),
            });
        }
        (hours, words, parts)
    }

    fn chunked(keys: &[u128]) -> Batch {
        let mut b = Batch::default();
        for k in keys {
            b.note(*k, 0, 0);
        }
        b.end_source();
        b
    }

    /// Keys that end a chunk, found by search: about one in [`CHUNK_AVG`].
    fn boundary_keys(n: usize) -> Vec<u128> {
        (1u128..)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834))
            .filter(|k| is_boundary(*k))
            .take(n)
            .collect()
    }

    #[test]
    fn chunks_are_cut_by_content_not_position() {
        let b = boundary_keys(2);
        let keys: Vec<u128> = vec![1, 2, b[0], 3, 4, 5, b[1], 6];
        let all = chunked(&keys);
        let lens: Vec<(usize, bool)> = all.chunks.iter().map(|c| (c.len(), c.open)).collect();
        assert_eq!(lens, [(3, false), (4, false), (1, true)]);
        // Starting elsewhere, the chunks after the first boundary are the same chunks.
        let later = chunked(&keys[1..]);
        assert_eq!(later.chunks[1].first, all.chunks[1].first);
        assert_eq!(later.chunks[1].digest(), all.chunks[1].digest());
        assert_ne!(later.chunks[0].digest(), all.chunks[0].digest());
        // A chunk ends at CHUNK_MAX flows without a boundary.
        let plain: Vec<u128> = (0..CHUNK_MAX as u128 + 100).map(|k| k * 2 + 1).filter(|k| !is_boundary(*k)).collect();
        let long = chunked(&plain);
        assert_eq!(long.chunks[0].len(), CHUNK_MAX);
        // About one key in CHUNK_AVG ends a chunk.
        let ends = (0..1_000_000u128).filter(|k| is_boundary(k.wrapping_mul(0x2545_F491_4F6C_DD1D_9E37_79B9))).count();
        assert!((150..350).contains(&ends), "{ends} boundaries in 1,000,000 keys");
    }

    #[test]
    fn the_ledger_recognises_a_chunk_and_the_open_chunk_it_goes_on_from() {
        let entry = |c: &Chunk| LedgerEntry { first: c.first, digest: c.digest(), records: c.len(), held: Vec::new() };
        let short = chunked(&[7, 8, 9]);
        let long = chunked(&[7, 8, 9, 10, 11]);
        let other = chunked(&[7, 8, 12, 10, 11]);
        let recorded = [entry(&short.chunks[0])];
        // Recorded: all of it.
        assert_eq!(written_before(&short.chunks[0], &recorded), (3, Some(&recorded[0])));
        // Going on from the open chunk: its three flows (that entry is then replaced).
        assert_eq!(written_before(&long.chunks[0], &recorded), (3, Some(&recorded[0])));
        // The same first key, other flows: nothing.
        assert_eq!(written_before(&other.chunks[0], &recorded), (0, None));
        assert_eq!(written_before(&long.chunks[0], &[]), (0, None));
    }

    /// Every capped list the SQL keeps is capped by a parameter (bound from [`MAX_PROCESSES`], the
    /// one constant the Rust folds use), never by a number written into the SQL.
    #[test]
    fn the_sql_caps_are_the_rust_cap() {
        for (sql, param) in [(WRITE_AGGREGATES, "$18")] {
            let caps = sql.matches("[1:").count();
            assert!(caps >= 4, "{sql}");
            assert_eq!(sql.matches(format!("[1:{param}::int]").as_str()).count(), caps, "{sql}");
            // The cap is the statement's last parameter.
            let next = format!("${}", param[1..].parse::<u32>().unwrap() + 1);
            assert!(!sql.contains(next.as_str()), "{sql}");
        }
    }

    #[test]
    fn undecided_flows_are_counted_with_their_smallest_source_ports() {
        let mut rows: Vec<FlowRow> = (0..12)
            .map(|i| FlowRow {
                src_port: Some(9000 - i),
                undecided: i % 4 != 0,
                ..row(i64::from(i), "x", "p", Verdict::Forwarded)
            })
            .collect();
        rows.push(FlowRow { src_port: None, undecided: true, ..row(13, "x", "p", Verdict::Forwarded) });
        let (hours, words, parts) = parts_of(&rows);
        let hourly = fold_hourly(&hours, &words, &parts);
        assert_eq!(hourly.len(), 1);
        assert_eq!((hourly[0].stats.flows, hourly[0].stats.undecided), (13, 9 + 1));
        // Undecided ports 8999, 8998, 8997, 8995, ... 8989: the eight smallest, as SQL keeps them.
        assert_eq!(
            hourly[0].stats.reply_ports.iter().copied().collect::<Vec<_>>(),
            [8989, 8990, 8991, 8993, 8994, 8995, 8997, 8998]
        );
    }

    #[test]
    fn hours_sum_into_utc_days_as_sql_summed_them() {
        let (h, d) = (HOUR_US, DAY_US);
        let mut rows = vec![
            row(d - h + 5, "external/1.2.3.4", "late", Verdict::Dropped),
            row(d + 3 * h, "external/1.2.3.4", "next", Verdict::Forwarded),
            row(d - 1, "external/1.2.3.4", "late", Verdict::Forwarded),
        ];
        // Nine processes over two hours of one day: the day keeps the eight smallest.
        for (i, p) in ["i", "h", "g", "f", "e", "d", "c", "b", "a"].iter().enumerate() {
            rows.push(row(i as i64 * h, "external/1.2.3.4", p, Verdict::Forwarded));
        }
        let (hours, words, parts) = parts_of(&rows);
        let hourly = fold_hourly(&hours, &words, &parts);
        let daily = fold_daily(&hourly);
        let got: Vec<(i64, u64, u64, i64, i64)> = daily
            .iter()
            .map(|x| {
                (
                    x.bucket_us,
                    x.stats.flows,
                    x.stats.dropped,
                    x.stats.first_seen.as_microsecond(),
                    x.stats.last_seen.as_microsecond(),
                )
            })
            .collect();
        assert_eq!(got, vec![(0, 11, 1, 0, d - 1), (d, 1, 0, d + 3 * h, d + 3 * h)]);
        assert_eq!(
            daily[0].stats.processes.iter().copied().collect::<Vec<_>>(),
            ["a", "b", "c", "d", "e", "f", "g", "h"]
        );
        // Before the epoch, days still start at midnight UTC.
        let (hours, words, parts) = parts_of(&[row(-1, "external/1.2.3.4", "a", Verdict::Forwarded)]);
        assert_eq!(fold_daily(&fold_hourly(&hours, &words, &parts))[0].bucket_us, -d);
    }

    #[test]
    fn batches_fold_into_connection_hours_in_key_order() {
        let h = HOUR_US;
        let mut rows = vec![
            row(5 * h + 10, "unresolved/10.0.0.9", "b", Verdict::Forwarded),
            row(4 * h + 20, "external/1.2.3.4", "z", Verdict::Dropped),
            row(4 * h + 5, "external/1.2.3.4", "a", Verdict::Forwarded),
            row(5 * h - 1, "external/1.2.3.4", "a", Verdict::Forwarded),
        ];
        // Ten processes on one connection-hour: the eight smallest are kept, as SQL's
        // `(array_agg(distinct p))[1:$cap]` keeps them.
        for p in ["q", "c", "d", "e", "f", "g", "h", "i"] {
            rows.push(row(4 * h, "external/1.2.3.4", p, Verdict::Forwarded));
        }
        let (hours, words, parts) = parts_of(&rows);
        let hourly = fold_hourly(&hours, &words, &parts);
        let got: Vec<(i64, &str, u64, u64, i64, i64)> = hourly
            .iter()
            .map(|x| {
                let s = &x.stats;
                (
                    x.bucket_us,
                    x.dst_endpoint,
                    s.flows,
                    s.dropped,
                    s.first_seen.as_microsecond(),
                    s.last_seen.as_microsecond(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (4 * h, "external/1.2.3.4", 11, 1, 4 * h, 5 * h - 1),
                (5 * h, "unresolved/10.0.0.9", 1, 0, 5 * h + 10, 5 * h + 10),
            ]
        );
        assert_eq!(
            hourly[0].stats.processes.iter().copied().collect::<Vec<_>>(),
            ["a", "c", "d", "e", "f", "g", "h", "i"]
        );
        assert_eq!((hourly[0].src_namespace, hourly[0].dst_namespace), ("shop", ""));
        // Before the epoch, hours still start on the hour.
        let (hours, words, parts) = parts_of(&[row(-1, "external/1.2.3.4", "a", Verdict::Forwarded)]);
        assert_eq!(fold_hourly(&hours, &words, &parts)[0].bucket_us, -h);
    }
}
