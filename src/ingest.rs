//! Ingestion into the store: flow records are read and parsed on worker threads, enriched against
//! the stored, time-aware inventory, and written in batches, each batch one transaction.
//!
//! An IO shell shared by `flowgate ingest` (files, stdin) and the HTTP endpoint (request bodies).

use std::io::BufRead;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::enrich::enrich;
use crate::flows::{self, FileLineError, FlowFormat, Item, Summary};
use crate::inventory::Inventory;
use crate::store::ingest::{Batch, Expect, Written};
use crate::store::{Store, StoreError};

/// Rows per transaction: large enough to amortise round trips and the aggregate updates (a batch
/// updates each connection-hour and -day it saw once, so busy connections cost an update per
/// batch: 25,000 rather than 10,000 cut the server's CPU for the 420k-line benchmark by a fifth),
/// small enough that a retry is cheap and memory stays flat (a few batches of ~6 MB in flight).
pub const BATCH_ROWS: usize = 25_000;
/// Batches written at the same time.
const WRITERS: usize = 2;

#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    pub lines: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    /// Valid records that are not flows (replies, L7, ICMP, blank lines).
    pub skipped: u64,
    /// The first rejected records, with line numbers and reasons.
    pub errors: Vec<Rejected>,
}

impl IngestReport {
    fn absorb(&mut self, summary: &Summary, written: Written) {
        self.lines = summary.lines;
        self.rejected = summary.errors;
        self.skipped = summary.skipped.values().sum();
        self.errors = summary.first_errors.iter().map(Rejected::from).collect();
        self.accepted += written.inserted;
        self.duplicate += written.duplicates;
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
            "{} lines: {} accepted, {} duplicate, {} rejected, {} skipped (not flows)",
            self.lines, self.accepted, self.duplicate, self.rejected, self.skipped
        )
    }
}

/// Writes a batch, retrying once on errors that a retry can cure (lost connection, serialisation
/// failure, deadlock). The transaction makes a failed attempt leave nothing behind.
async fn write_with_retry(store: &Store, cluster: i32, batch: &Batch, expect: Expect) -> Result<Written, StoreError> {
    match store.write_batch(cluster, batch, expect).await {
        Ok(w) => Ok(w),
        Err(StoreError::Db(e)) if retryable(&e) => {
            tracing::warn!("batch failed ({e}); retrying once");
            store.write_batch(cluster, batch, expect).await
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

/// Reads every source (`-` is stdin) and writes its flows. Sources are read one after another on
/// a blocking thread (which itself parses on `threads` workers); the async side only writes.
pub async fn ingest_sources(
    store: &Store,
    cluster: i32,
    inventory: std::sync::Arc<Inventory>,
    sources: Vec<Source>,
    format: FlowFormat,
    threads: usize,
) -> Result<IngestReport, StoreError> {
    let (tx, mut rx) = mpsc::channel::<Batch>(4);
    let reader = tokio::task::spawn_blocking(move || -> Result<Summary, flows::FlowsError> {
        let mut summary = Summary::default();
        let mut batch = Batch::default();
        for source in sources {
            let (name, reader): (String, Box<dyn BufRead + Send>) = match source {
                Source::Path(p) => {
                    let r = flows::open(&p)?;
                    (p, r)
                }
                Source::Bytes { name, bytes } => (name, Box::new(std::io::Cursor::new(bytes))),
            };
            let mut closed = false;
            flows::read_parallel(reader, format, threads, |result| {
                summary.record(&name, &result);
                if let Ok(Item::Flow(flow)) = result {
                    let enriched = enrich(&inventory, &flow);
                    batch.push(&flow, &enriched);
                    if batch.len() >= BATCH_ROWS && !closed {
                        let full = std::mem::take(&mut batch);
                        // The writer stopped (a failed batch): keep counting, stop sending.
                        closed = tx.blocking_send(full).is_err();
                    }
                }
            });
        }
        if !batch.is_empty() || !batch.learned.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(summary)
    });
    let mut written = Written::default();
    let mut failure = None;
    // Two batches in flight, on two connections: PostgreSQL then works on both cores while the
    // reader parses. Each batch is still one transaction; their order does not matter, since a
    // flow's identity, not its position, decides whether it is new.
    let mut in_flight = tokio::task::JoinSet::new();
    // Whether the last batch written held stored flows: the next one is then written in the way
    // that skips them (re-ingesting a file), else in the cheaper way that expects none.
    let mut expect = Expect::New;
    let mut record = |r: Result<Result<Written, StoreError>, tokio::task::JoinError>,
                      failure: &mut Option<StoreError>,
                      expect: &mut Expect| match r {
        Ok(Ok(w)) => {
            written.inserted += w.inserted;
            written.duplicates += w.duplicates;
            *expect = if w.duplicates > 0 { Expect::Duplicates } else { Expect::New };
        }
        Ok(Err(e)) => *failure = failure.take().or(Some(e)),
        Err(e) => *failure = failure.take().or(Some(StoreError::Invalid(format!("writer task: {e}")))),
    };
    while let Some(batch) = rx.recv().await {
        if in_flight.len() >= WRITERS
            && let Some(r) = in_flight.join_next().await
        {
            record(r, &mut failure, &mut expect);
        }
        if failure.is_some() {
            break;
        }
        let store = store.clone();
        in_flight.spawn(async move { write_with_retry(&store, cluster, &batch, expect).await });
    }
    drop(rx);
    while let Some(r) = in_flight.join_next().await {
        record(r, &mut failure, &mut expect);
    }
    let summary = reader
        .await
        .map_err(|e| StoreError::Invalid(format!("reader thread: {e}")))?
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let mut report = IngestReport::default();
    report.absorb(&summary, written);
    Ok(report)
}

/// Where flows come from.
pub enum Source {
    /// A file path, or `-` for standard input.
    Path(String),
    /// A request body, named for error messages.
    Bytes { name: String, bytes: Vec<u8> },
}
