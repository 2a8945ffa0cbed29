//! Ingestion into the store: flow records are read and parsed on worker threads, enriched against
//! the stored, time-aware inventory, and written in batches, each batch one transaction.
//!
//! An IO shell shared by `flowgate ingest` (files, stdin) and the HTTP endpoint (request bodies).
//!
//! Only flows inside the cluster's retention window at `now` are stored ([`crate::retention`]):
//! older ones are counted as expired, later ones (beyond the clock skew allowance) rejected like
//! any other bad line.
//!
//! Sources are streamed: a request body arrives as a reader ([`Source::Reader`]), so memory is a
//! few batches whatever the size. A source that breaks off (a body past its limit, a client that
//! stalls or goes away) fails the ingest with [`IngestError::Read`]: the batches written before
//! stay (each is its own transaction, and a flow is counted once however often it is sent: see
//! [`crate::store::ingest`] for how), the one being collected is dropped.
//!
//! A server's ingests count what they read and write into its [`Metrics`] ([`Meter`]): records
//! as the reader judges them, rows and the write's latency as each batch commits, so a long
//! stream shows progress before it ends.

use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::dns::DnsAnswer;
use crate::enrich::enrich_learning;
use crate::flows::{self, FileLineError, FlowFormat, Item, LineError, Summary};
use crate::inventory::Inventory;
use crate::metrics::{FlowSource, Metrics};
use crate::model::FlowRecord;
use crate::retention::{Age, Retention, Window};
use crate::store::ingest::{Batch, Mark, RowPool, WriteOptions, Written, flow_key};
use crate::store::{Store, StoreError};
use crate::topology::{ConnKey, IdentityIndex};

/// Rows per transaction (a batch is cut at the first chunk boundary past it): large enough to
/// amortise round trips and the aggregate upserts (a batch updates each connection-hour and -day
/// it saw once, so busy connections cost an update per batch: on the 420k-line benchmark file,
/// 50,000 rather than 25,000 cut the server's CPU from 1.8 to 1.1 s, and 100,000 rather than
/// 50,000 the ingest's wall time by an eighth once flows were folded as read), small enough that a
/// retry is cheap and memory stays flat (a flow is a 40-byte part: a few batches of ~4 MB in
/// flight).
pub const BATCH_ROWS: usize = 100_000;
/// Batches written at the same time, each on a connection of its own: what an ingest holds of
/// the pool while it writes (its few reads come before).
pub const WRITERS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] flows::FlowsError),
    /// The source ended with an error before its end; what came before it up to the last written
    /// batch is stored.
    #[error("reading {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Thread(String),
}

impl IngestError {
    /// PostgreSQL could not be reached ([`StoreError::is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, IngestError::Store(e) if e.is_unavailable())
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    pub lines: u64,
    pub accepted: u64,
    pub duplicate: u64,
    /// Flows older than the retention: counted, never stored, so that a file ingested again after
    /// its raw flows were removed does not count them twice in the aggregates.
    pub expired: u64,
    pub rejected: u64,
    /// Valid records that are not flows (replies, L7, ICMP, blank lines).
    pub skipped: u64,
    /// DNS answers read: which addresses a name resolved to (stored as names, not flows).
    pub dns_answers: u64,
    /// Flows read with fields left out (names or labels that break Kubernetes' rules) or cut
    /// short (process names longer than [`flows::MAX_PROCESS_LEN`] bytes); they still count.
    pub cleaned: u64,
    /// The first rejected records, with line numbers and reasons.
    pub errors: Vec<Rejected>,
    /// Rows the ingest wrote to the store (aggregates, ledger, raw flows when kept).
    pub store_rows: u64,
}

impl IngestReport {
    pub(crate) fn absorb(&mut self, summary: &Summary, expired: u64, read_twice: u64, written: Written) {
        self.lines = summary.lines;
        self.expired = expired;
        self.rejected = summary.errors;
        self.skipped = summary.skipped.values().sum();
        self.dns_answers = summary.dns_answers;
        self.cleaned = summary.cleaned_flows;
        self.errors = summary.first_errors.iter().map(Rejected::from).collect();
        self.accepted += written.inserted;
        self.duplicate += written.duplicates + read_twice;
        self.store_rows += written.store_rows;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub source: String,
    pub line: u64,
    pub reason: String,
}

impl From<&FileLineError> for Rejected {
    fn from(e: &FileLineError) -> Self {
        Rejected { source: e.file.clone(), line: e.line, reason: e.reason.clone() }
    }
}

impl std::fmt::Display for IngestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines: {} accepted, {} duplicate, {} expired (older than the retention), {} rejected, {} skipped (not flows)",
            self.lines, self.accepted, self.duplicate, self.expired, self.rejected, self.skipped
        )?;
        if self.dns_answers > 0 {
            write!(f, ", {} DNS answers", self.dns_answers)?;
        }
        if self.cleaned > 0 {
            write!(f, ", {} cleaned (invalid names or labels left out, long process names cut)", self.cleaned)?;
        }
        if self.store_rows > 0 {
            write!(f, "; {} rows written to the store", self.store_rows)?;
            if self.accepted > 0 {
                write!(f, " ({:.4} per accepted flow)", self.store_rows as f64 / self.accepted as f64)?;
            }
        }
        Ok(())
    }
}

/// Writes a batch, retrying once on errors that a retry can cure (lost connection, serialisation
/// failure, deadlock). The transaction makes a failed attempt leave nothing behind.
async fn write_with_retry(
    store: &Store,
    cluster: i32,
    batch: &Batch,
    options: WriteOptions,
) -> Result<Written, StoreError> {
    match store.write_batch(cluster, batch, options).await {
        Ok(w) => Ok(w),
        Err(StoreError::Db(e)) if retryable(&e) => {
            tracing::warn!("batch failed ({e}); retrying once");
            store.write_batch(cluster, batch, options).await
        }
        Err(e) => Err(e),
    }
}

fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// What time it is for an ingest, a retention run or a session: the system's, or whatever a test
/// says (a fixed instant, or one it moves), so nothing that depends on time needs a sleep to test.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(std::sync::Arc::new(jiff::Timestamp::now))
    }

    pub fn fixed(t: jiff::Timestamp) -> Clock {
        Clock(std::sync::Arc::new(move || t))
    }

    pub fn from_fn(now: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Clock {
        Clock(std::sync::Arc::new(now))
    }

    pub fn now(&self) -> jiff::Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// How to read, and which flows to keep.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub format: FlowFormat,
    /// Parser threads (`<= 1`: parse on the reading thread).
    pub threads: usize,
    pub retention: Retention,
    /// The instant the retention and the skew allowance count from.
    pub now: jiff::Timestamp,
    /// How batches are written (raw rows kept or not).
    pub write: WriteOptions,
}

/// Where an ingest counts what it does: a server's metrics, under the source its flows came from.
#[derive(Debug, Clone)]
pub struct Meter {
    pub metrics: Arc<Metrics>,
    pub source: FlowSource,
}

impl Meter {
    pub fn new(metrics: &Arc<Metrics>, source: FlowSource) -> Meter {
        Meter { metrics: metrics.clone(), source }
    }

    /// Counts that nobody reads: `flowgate ingest` runs in its own process and reports on stderr.
    pub fn unread() -> Meter {
        Meter { metrics: Arc::default(), source: FlowSource::Http }
    }
}

/// Whether a stream holds one JSON array (its first byte past a byte order mark and white space
/// is `[`), as far as the reader's buffer shows without consuming anything.
fn is_array(reader: &mut dyn BufRead) -> bool {
    let Ok(buf) = reader.fill_buf() else { return false };
    let buf = buf.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(buf);
    buf.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Reads every source (`-` is stdin) and writes its flows. Sources are read one after another on
/// a blocking thread (which itself parses on `threads` workers); the async side only writes.
pub async fn ingest_sources(
    store: &Store,
    cluster: i32,
    inventory: Arc<Inventory>,
    sources: Vec<Source>,
    options: &Options,
) -> Result<IngestReport, IngestError> {
    ingest_metered(store, cluster, inventory, sources, options, Meter::unread()).await
}

/// [`ingest_sources`], counted into `meter` as it goes.
pub async fn ingest_metered(
    store: &Store,
    cluster: i32,
    inventory: Arc<Inventory>,
    sources: Vec<Source>,
    options: &Options,
    meter: Meter,
) -> Result<IngestReport, IngestError> {
    let Options { format, threads, retention, now, write } = *options;
    let mut collector = Collector::new(store, cluster, inventory, retention, now, meter.clone()).await?;
    let mut writer = Writer::new(store, cluster, meter, now, write);
    collector.writes_to(&writer);
    let (tx, mut rx) = mpsc::channel::<Batch>(4);
    let reader = tokio::task::spawn_blocking(move || -> Result<Collector, IngestError> {
        for source in sources {
            let (name, reader): (String, Box<dyn BufRead + Send>) = match source {
                Source::Path(p) => {
                    let r = flows::open(&p)?;
                    (p, r)
                }
                Source::Bytes { name, bytes } => (name, Box::new(std::io::Cursor::new(bytes))),
                Source::Reader { name, reader } => (name, reader),
            };
            let mut reader = Watched { inner: reader, failed: None };
            let array = is_array(&mut reader);
            let mut record = 0;
            let mut closed = false;
            flows::read_parallel(&mut reader, format, threads, |result| {
                record += 1;
                collector.hold_if_future(&result);
                let result = judge(result, &collector.window, record, array);
                if let Some(full) = collector.take(&name, result)
                    && !closed
                {
                    // The writer stopped (a failed batch): keep counting, stop sending.
                    closed = tx.blocking_send(full).is_err();
                }
            });
            if let Some(source) = reader.failed {
                // The reader reported it as its last line; the collected batch goes unwritten.
                return Err(IngestError::Read { name, source });
            }
            collector.end_source();
        }
        if let Some(last) = collector.flush() {
            let _ = tx.blocking_send(last);
        }
        Ok(collector)
    });
    while let Some(batch) = rx.recv().await {
        if writer.submit(batch).await.is_err() {
            break;
        }
    }
    drop(rx);
    let written = writer.finish().await;
    let read = reader.await.map_err(|e| IngestError::Thread(format!("reader thread: {e}")))?;
    let written = written?;
    let collector = read?;
    let mut report = IngestReport::default();
    report.absorb(&collector.summary, collector.expired, collector.read_twice, written);
    Ok(report)
}

/// Keys remembered to tell a flow read twice in one ingest (16 bytes each); past this many the
/// memory starts again, so a duplicate further apart than that is recognised only by the ledger.
pub const MAX_SEEN: usize = 1 << 20;

/// The one fold of an ingest, for files and streams alike: records as the readers judge them
/// become counts, DNS names and enriched rows, in batches of [`Collector::batch_rows`].
pub struct Collector {
    inventory: Arc<Inventory>,
    /// Pod identities without a pod (Cilium's proxy) are resolved as they arrive when the
    /// workload with those labels is known already; the rest are stored as identities.
    identities: IdentityIndex,
    /// Which flows are kept: [`ingest_metered`]'s `now`, or a stream's moving one.
    pub window: Window,
    meter: Meter,
    pub summary: Summary,
    pub expired: u64,
    /// Flows read before in this ingest (the same key twice), or, in a stream, before its mark.
    pub read_twice: u64,
    seen: rustc_hash::FxHashSet<u128>,
    /// A stream's mark when it began: the flows it covers were written before.
    mark: Option<Mark>,
    batch: Batch,
    /// Rows that fill a batch ([`BATCH_ROWS`]).
    pub batch_rows: usize,
    /// Where the next batch's part and row buffers come from: the writers hand theirs back
    /// ([`Collector::writes_to`]).
    rows: RowPool,
}

impl Collector {
    /// For `cluster` at `now`: its retention window (never before the day up to which a
    /// retention run removed its raw flows, even if this ingest's retention is longer than that
    /// run's), and the workloads its stored flows taught it.
    pub async fn new(
        store: &Store,
        cluster: i32,
        inventory: Arc<Inventory>,
        retention: Retention,
        now: jiff::Timestamp,
        meter: Meter,
    ) -> Result<Collector, IngestError> {
        let window = retention.window(now).not_before(store.flows_removed_before(cluster).await?);
        let identities = IdentityIndex::from_catalog(&store.load_catalog(cluster, &inventory).await?);
        Ok(Collector {
            inventory,
            identities,
            window,
            meter,
            summary: Summary::default(),
            expired: 0,
            read_twice: 0,
            seen: Default::default(),
            mark: None,
            batch: Batch::default(),
            batch_rows: BATCH_ROWS,
            rows: RowPool::default(),
        })
    }

    /// Makes this the collector of the ordered stream `source`, which wrote up to `mark` before:
    /// batches carry the stream's mark instead of chunks, and flows the mark covers are not new.
    pub fn for_stream(&mut self, source: &str, mark: Option<Mark>) {
        let keep = self.batch.keeps_rows();
        self.batch = Batch::for_stream(source);
        self.batch.keep_rows(keep);
        self.mark = mark;
    }

    /// Fills batches for `writer`: in the buffers it hands back, with raw rows when it keeps
    /// them.
    pub fn writes_to(&mut self, writer: &Writer) {
        self.rows = writer.pool.clone();
        self.batch.keep_rows(writer.options.keep_flows);
    }

    /// The inventory flows are enriched against from now on (a stream outlives a snapshot).
    pub fn set_inventory(&mut self, inventory: Arc<Inventory>) {
        self.inventory = inventory;
    }

    /// Counts one record of `name` and folds it in; a batch that this filled is returned.
    pub fn take(&mut self, name: &str, result: Result<Item, LineError>) -> Option<Batch> {
        let counters = self.meter.metrics.flows(self.meter.source);
        self.summary.record(name, &result);
        counters.received.inc();
        match result {
            Err(_) => counters.rejected.inc(),
            Ok(Item::Skipped(_)) => counters.skipped.inc(),
            Ok(Item::Names(answer)) => {
                if self.window.age(answer.time) != Age::Expired {
                    self.batch.names.add_answer(&answer);
                }
            }
            Ok(Item::Flow(flow, _)) => {
                let key = flow_key(&flow);
                if self.window.age(flow.time) == Age::Expired {
                    self.expired += 1;
                    counters.expired.inc();
                    self.batch.skip(key, &flow);
                    return self.full();
                }
                if self.mark.as_ref().is_some_and(|m| m.covers(crate::store::micros(flow.time), key)) {
                    self.read_twice += 1;
                    counters.duplicate.inc();
                    return None;
                }
                if self.seen.len() >= MAX_SEEN {
                    self.seen.clear();
                }
                if !self.seen.insert(key) {
                    self.read_twice += 1;
                    counters.duplicate.inc();
                    self.batch.skip(key, &flow);
                    return self.full();
                }
                let batch = &self.batch;
                let mut enriched = enrich_learning(&self.inventory, &flow, |w, end| batch.knows(w, end, flow.time));
                for e in &mut enriched {
                    for (w, labels) in &e.learned {
                        self.identities.learn(w, labels);
                    }
                    if !e.identities.is_empty() {
                        let key =
                            ConnKey { src: e.src.clone(), dst: e.dst.clone(), port: e.port, protocol: e.protocol };
                        let (key, rest) = self.identities.apply(key, std::mem::take(&mut e.identities));
                        (e.src, e.dst, e.identities) = (key.src, key.dst, rest);
                    }
                }
                self.batch.push(key, &flow, &enriched);
                return self.full();
            }
        }
        None
    }

    /// The batch, when it is full and may be cut here.
    fn full(&mut self) -> Option<Batch> {
        if self.batch.len() >= self.batch_rows && self.batch.at_boundary() {
            let next = self.batch.next_with(&self.rows);
            return Some(std::mem::replace(&mut self.batch, next));
        }
        None
    }

    /// A flow dated in the future becomes its line's error ([`judge`]), but keeps its place in
    /// its chunk, held: an ingest that accepts it later (the clock caught up, a larger skew
    /// allowance) counts it then, and the rest of its chunk stays recognised.
    pub fn hold_if_future(&mut self, result: &Result<Item, LineError>) {
        if let Ok(Item::Flow(flow, _)) = result
            && self.window.age(flow.time) == Age::Future
        {
            self.batch.hold(flow_key(flow), flow);
        }
    }

    /// Ends the source being read: its last chunk ends with it.
    pub fn end_source(&mut self) {
        self.batch.end_source();
    }

    /// The batch being filled, if it holds anything (rows, chunks, learned labels or DNS names).
    /// A chunked batch is cut where it is only at a source's end ([`Collector::end_source`]).
    pub fn flush(&mut self) -> Option<Batch> {
        if self.batch.is_void() || !self.batch.at_boundary() {
            return None;
        }
        let next = self.batch.next_with(&self.rows);
        Some(std::mem::replace(&mut self.batch, next))
    }
}

/// Writes an ingest's batches: [`WRITERS`] at once, each on a connection of its own, so that
/// PostgreSQL works on both cores while the reader parses. Each batch is still one transaction;
/// their order does not matter: a chunk's content, not its position, decides whether it is new,
/// and the aggregates' sums, minima, maxima and capped sets do not depend on the order they are
/// added in. A caller that submits while all writers are busy waits: that wait is the backpressure a
/// slow database puts on the source.
pub struct Writer {
    store: Store,
    cluster: i32,
    meter: Meter,
    /// The ingest's now, and when it was taken: the lag is counted from it.
    now: jiff::Timestamp,
    started: Instant,
    in_flight: tokio::task::JoinSet<(Result<Written, StoreError>, Option<i64>)>,
    options: WriteOptions,
    written: Written,
    failure: Option<IngestError>,
    /// Written batches' row buffers, for the collector's next batches.
    pool: RowPool,
}

impl Writer {
    pub fn new(store: &Store, cluster: i32, meter: Meter, now: jiff::Timestamp, options: WriteOptions) -> Writer {
        Writer {
            store: store.clone(),
            cluster,
            meter,
            now,
            started: Instant::now(),
            in_flight: tokio::task::JoinSet::new(),
            options,
            written: Written::default(),
            failure: None,
            pool: RowPool::default(),
        }
    }

    /// Starts writing `batch`, after waiting for a writer to be free. `Err` once a batch has
    /// failed: `batch` is then dropped, and [`Writer::finish`] says why.
    pub async fn submit(&mut self, batch: Batch) -> Result<(), ()> {
        while self.in_flight.len() >= WRITERS
            && let Some(r) = self.in_flight.join_next().await
        {
            self.record(r);
        }
        if self.failure.is_some() {
            return Err(());
        }
        let (store, cluster, options) = (self.store.clone(), self.cluster, self.options);
        let metrics = self.meter.metrics.clone();
        let pool = self.pool.clone();
        self.in_flight.spawn(async move {
            let mut batch = batch;
            let began = Instant::now();
            let written = write_with_retry(&store, cluster, &batch, options).await;
            metrics.batch_write.observe(began.elapsed());
            let newest = batch.newest_us();
            pool.give(&mut batch);
            (written, newest)
        });
        Ok(())
    }

    /// What has been written so far (batches still in flight not included).
    pub fn written(&self) -> Written {
        self.written
    }

    /// Waits for the batches in flight; the first failure, if any batch failed.
    pub async fn finish(mut self) -> Result<Written, IngestError> {
        while let Some(r) = self.in_flight.join_next().await {
            self.record(r);
        }
        match self.failure {
            Some(e) => Err(e),
            None => Ok(self.written),
        }
    }

    fn record(&mut self, r: Result<(Result<Written, StoreError>, Option<i64>), tokio::task::JoinError>) {
        let counters = self.meter.metrics.flows(self.meter.source);
        match r {
            Ok((Ok(w), newest_us)) => {
                self.written.inserted += w.inserted;
                self.written.duplicates += w.duplicates;
                self.written.store_rows += w.store_rows;
                counters.accepted.add(w.inserted);
                counters.duplicate.add(w.duplicates);
                if let Some(us) = newest_us {
                    // The ingest's now moved on by the time spent since it began.
                    let lag = (crate::store::micros(self.now) - us) as f64 / 1e6 + self.started.elapsed().as_secs_f64();
                    counters.lag_seconds.set(lag);
                }
            }
            Ok((Err(e), _)) => self.failure = self.failure.take().or(Some(e.into())),
            Err(e) => self.failure = self.failure.take().or(Some(IngestError::Thread(format!("writer task: {e}")))),
        }
    }
}

/// A flow (or a DNS answer) from the future becomes the error of its record. The readers number only the records
/// they reject, so the line is counted here: the record's ordinal, which is its line in a file of
/// lines (each line one record, blank ones too); in a JSON array it is the element's ordinal, and
/// the reason says so.
pub(crate) fn judge(
    result: Result<Item, LineError>,
    window: &Window,
    record: u64,
    array: bool,
) -> Result<Item, LineError> {
    match result {
        Ok(Item::Flow(FlowRecord { time, .. }, _) | Item::Names(DnsAnswer { time, .. }))
            if window.age(time) == Age::Future =>
        {
            let reason = window.future_reason(time);
            let reason = if array { format!("array element {record}: {reason}") } else { reason };
            Err(LineError { line: record, reason })
        }
        other => other,
    }
}

/// Where flows come from.
pub enum Source {
    /// A file path, or `-` for standard input.
    Path(String),
    /// Bytes in memory (the demo's traffic), named for error messages.
    Bytes { name: String, bytes: Vec<u8> },
    /// A stream read on the ingest's blocking thread: a request body as it arrives.
    Reader { name: String, reader: Box<dyn BufRead + Send> },
}

/// A reader that remembers its first error. The flow readers turn a read error into the last
/// line's error and stop; the ingest needs to know that the source broke off, which no line says.
struct Watched<R> {
    inner: R,
    failed: Option<io::Error>,
}

impl<R: BufRead> Watched<R> {
    fn note(&mut self, e: io::Error) -> io::Error {
        let told = io::Error::new(e.kind(), e.to_string());
        self.failed.get_or_insert(e);
        told
    }
}

impl<R: BufRead> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(self.note(e)),
            other => other,
        }
    }
}

impl<R: BufRead> BufRead for Watched<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.inner.fill_buf() {
            Ok(buf) => Ok(buf),
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let told = io::Error::new(e.kind(), e.to_string());
                self.failed.get_or_insert(e);
                Err(told)
            }
            Err(e) => Err(e),
        }
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(time: &str) -> Result<Item, LineError> {
        let line = format!(
            r#"{{"time":"{time}","src_ip":"10.0.0.1","src_port":1,"dst_ip":"10.0.0.2","dst_port":80,"protocol":"TCP"}}"#
        );
        flows::parse_ndjson_line(line.as_bytes()).map_err(|reason| LineError { line: 0, reason })
    }

    #[test]
    fn only_flows_from_the_future_become_errors_of_their_record() {
        let window = Retention::default().window("2026-11-14T00:00:00Z".parse().unwrap());
        let kept = |r: Result<Item, LineError>| matches!(r, Ok(Item::Flow(..)));
        // Current and expired flows pass (expired ones are counted by the caller), and so do skips
        // and the readers' own errors.
        assert!(kept(judge(flow("2026-11-13T00:00:00Z"), &window, 1, false)));
        assert!(kept(judge(flow("2020-01-01T00:00:00Z"), &window, 1, false)));
        assert_eq!(
            judge(Ok(Item::Skipped(flows::SkipReason::Blank)), &window, 3, false),
            Ok(Item::Skipped(flows::SkipReason::Blank))
        );
        let theirs = LineError { line: 7, reason: "bad".into() };
        assert_eq!(judge(Err(theirs.clone()), &window, 9, false), Err(theirs));

        let e = judge(flow("2999-01-01T00:00:00Z"), &window, 4, false).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.reason.starts_with("time 2999-01-01T00:00:00Z is in the future"), "{}", e.reason);
        // In an array the ordinal is the element's, not a line: the reason says so.
        let e = judge(flow("2999-01-01T00:00:00Z"), &window, 2, true).unwrap_err();
        assert!(e.reason.starts_with("array element 2: time"), "{}", e.reason);
    }

    #[test]
    fn arrays_are_told_from_lines_without_consuming() {
        let cases: [(&[u8], bool); 6] = [
            (b"[{\"flow\":{}}]", true),
            (b"\xEF\xBB\xBF \n\t[", true),
            (b"{\"src_ip\":\"10.0.0.1\"}\n[", false),
            (b"\n\n{}", false),
            (b"", false),
            (b"\xEF\xBB\xBF{}", false),
        ];
        for (bytes, want) in cases {
            let mut r = std::io::Cursor::new(bytes);
            assert_eq!(is_array(&mut r), want, "{:?}", String::from_utf8_lossy(bytes));
            assert_eq!(r.position(), 0, "nothing consumed");
        }
    }
}
