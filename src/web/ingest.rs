//! `POST /api/v1/clusters/{cluster}/flows`: NDJSON or Hubble JSON lines (gzip accepted), bearer
//! token required, body bounded after decompression. Answers with the counts of accepted,
//! duplicate, expired (older than the server's `--retention`) and rejected lines and the first
//! rejected line numbers with reasons.
//!
//! At most `serve --max-ingests` bodies are ingested at once; one more is answered 429 with
//! `Retry-After` before its body is read. A body is streamed into the ingest as it arrives (and
//! decompressed as it arrives), never collected whole: eight 45 MB posts at once used to hold
//! every byte of each, several times over.
//!
//! An ingest has no overall timeout: a 64 MiB body takes seconds to parse and write, longer on a
//! busy server, and cutting it would throw work away for the server's own slowness. What is
//! bounded is the client's part, the time spent waiting for the body's next bytes: at most
//! [`super::Limits::ingest_idle`] at a time (408 after that) and
//! [`super::Limits::ingest_body`] in all, so that a client trickling its body cannot hold an
//! ingest slot for ever. Time the ingest spends writing (while the body waits in its bounded
//! channel) does not count against the client.

use std::io::{self, BufRead, Read};

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, State};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use super::auth::ApiToken;
use super::error::ApiError;
use super::{AppState, Limits};
use crate::flows::FlowFormat;
use crate::ingest::{IngestReport, Meter, Source, ingest_metered};

/// Seconds a refused ingest is asked to wait: about what an ingest of a few MB takes.
/// `POST /api/v1/clusters/{cluster}/flows`, gzip bodies decompressed on the way in.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/api/v1/clusters/{cluster}/flows",
        axum::routing::post(post_flows).layer(tower_http::decompression::RequestDecompressionLayer::new().gzip(true)),
    )
}

pub const BUSY_RETRY_SECS: u64 = 5;

/// Body chunks between the network and the parser: hyper's chunks are at most a few hundred KB,
/// the decompressor's a few KB, so this holds a few MB at most.
const CHUNKS: usize = 16;

#[derive(Deserialize)]
pub struct IngestQuery {
    format: Option<String>,
}

pub async fn post_flows(
    _t: ApiToken,
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    Query(q): Query<IngestQuery>,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    crate::model::NameRule::Dns1123Subdomain
        .check(&cluster)
        .map_err(|e| ApiError::BadRequest(format!("cluster: {e}")))?;
    let format = match q.format.as_deref() {
        None => FlowFormat::Auto,
        Some(f) => f.parse().map_err(|e: crate::flows::FlowsError| ApiError::BadRequest(e.to_string()))?,
    };
    // A plain body announces its length: one too large is refused before anything is read.
    // (A compressed one is counted as it is decompressed, so a small gzip bomb stops at the limit.)
    if HttpBody::size_hint(&body).lower() > state.body_limit as u64 {
        return Err(ApiError::TooLarge(state.body_limit));
    }
    let _slot = state.ingest_slots.clone().try_acquire_owned().map_err(|_| ApiError::Busy(BUSY_RETRY_SECS))?;
    let id = state.store.cluster_id(&cluster, true).await?;
    let inventory = state.inventory(id).await?;
    let (tx, rx) = mpsc::channel(CHUNKS);
    let reader = BodyReader { rx, chunk: Bytes::new() };
    let sources = vec![Source::Reader { name: "body".into(), reader: Box::new(reader) }];
    let options = state.ingest_options(format, 2);
    let meter = Meter::new(&state.metrics, crate::metrics::FlowSource::Http);
    // Both in this one future: when the client goes away, the ingest stops with it.
    let (report, ()) = tokio::join!(
        ingest_metered(&state.store, id, inventory, sources, &options, meter),
        pump(body, state.body_limit, state.limits, tx)
    );
    Ok(Json(report?))
}

/// Moves the body's bytes into the channel as the reader takes them, bounded in size and in the
/// time spent waiting for the client. A failure is sent as the last item: an `io::Error` holding
/// the [`ApiError`] to answer, which the ingest returns as its `Read` error.
async fn pump(body: Body, limit: usize, limits: Limits, tx: mpsc::Sender<io::Result<Bytes>>) {
    let mut body = Limited::new(body, limit);
    let mut waited = Duration::ZERO;
    loop {
        let left = limits.ingest_body.saturating_sub(waited);
        let started = Instant::now();
        let frame = tokio::time::timeout(limits.ingest_idle.min(left), body.frame()).await;
        waited += started.elapsed();
        let item = match frame {
            Ok(None) => return,
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_trailers) => continue,
            },
            Ok(Some(Err(e))) if e.is::<LengthLimitError>() => Err(ApiError::TooLarge(limit)),
            Ok(Some(Err(e))) => Err(ApiError::BadRequest(format!("reading the request body: {e}"))),
            Err(_) if left <= limits.ingest_idle => Err(ApiError::RequestTimeout(format!(
                "the request body took longer than {} s to arrive",
                limits.ingest_body.as_secs_f64()
            ))),
            Err(_) => Err(ApiError::RequestTimeout(format!(
                "no part of the request body arrived for {} s",
                limits.ingest_idle.as_secs_f64()
            ))),
        };
        let failed = item.is_err();
        if tx.send(item.map_err(io::Error::other)).await.is_err() || failed {
            return;
        }
    }
}

/// The body as a blocking reader, on the ingest's reading thread: chunks as they come through
/// the channel, lent out without a copy; an error item is the body's failure.
struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl BufRead for BodyReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(&self.chunk)
    }

    fn consume(&mut self, n: usize) {
        self.chunk = self.chunk.slice(n..);
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}
