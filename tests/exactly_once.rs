//! Aggregation-first ingest counts every flow once without a row per flow: re-ingesting a file,
//! resuming an ingest that broke off, a file that grew, and several writers at once all leave
//! exactly the aggregates one clean ingest leaves; with `--keep-flows` the raw rows are the
//! accepted flows. Against the machine's PostgreSQL (`#[sqlx::test]`: a fresh database each).

use std::io::{self, Read};
use std::sync::Arc;

use flowgate::flows::FlowFormat;
use flowgate::ingest::{IngestError, IngestReport, Options, Source, ingest_sources};
use flowgate::retention::{DEFAULT_SKEW, Retention};
use flowgate::store::Store;
use flowgate::store::ingest::WriteOptions;
use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;

const NOW: &str = "2026-11-14T00:00:00Z";

/// `n` distinct flows over about seven hours, among a few dozen connections, with processes,
/// drops and flows that do not say their direction: every aggregate column gets something.
fn lines(n: usize) -> Vec<String> {
    let start: Timestamp = "2026-11-10T00:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let t = start + SignedDuration::from_millis(i as i64 * 311);
            let verdict = if i % 17 == 0 { "DROPPED" } else { "FORWARDED" };
            let flags = if i % 5 == 0 { "ACK" } else { "SYN" };
            format!(
                r#"{{"time":"{t}","src_ip":"10.244.0.{}","src_port":{},"dst_ip":"10.244.1.{}","dst_port":{},"protocol":"TCP","process":"p{}","verdict":"{verdict}","tcp_flags":"{flags}"}}"#,
                i % 7,
                30000 + i % 20000,
                i % 11,
                80 + i % 5,
                i % 13
            ) + "\n"
        })
        .collect()
}

fn bytes(lines: &[String]) -> Vec<u8> {
    lines.concat().into_bytes()
}

fn options(write: WriteOptions) -> Options {
    let retention = Retention::new(SignedDuration::from_hours(24 * 365), DEFAULT_SKEW).unwrap();
    Options { format: FlowFormat::Ndjson, threads: 1, retention, now: NOW.parse().unwrap(), write }
}

async fn ingest(
    store: &Store,
    cluster: i32,
    sources: Vec<Source>,
    write: WriteOptions,
) -> Result<IngestReport, IngestError> {
    let inv = Arc::new(store.load_inventory(cluster).await.unwrap());
    ingest_sources(store, cluster, inv, sources, &options(write)).await
}

fn file(name: &str, lines: &[String]) -> Source {
    Source::Bytes { name: name.into(), bytes: bytes(lines) }
}

type Row = (String, String, String, i32, String, i64, i64, String, String, Vec<String>, i64, Vec<i32>);

/// Every aggregate row of a cluster, hourly then daily, with every column that counts.
async fn aggregates(store: &Store, cluster: i32) -> Vec<Row> {
    let mut out = Vec::new();
    for table in ["conn_hourly", "conn_daily"] {
        let sql = format!(
            "select '{table}' || ' ' || bucket::text, src_endpoint, dst_endpoint, port, protocol, flows, dropped,
                    first_seen::text, last_seen::text, processes, undecided, reply_ports
             from {table} where cluster_id = $1 order by 1, 2, 3, 4, 5"
        );
        out.extend(
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)).bind(cluster).fetch_all(&store.pool).await.unwrap(),
        );
    }
    out
}

fn flows_in(rows: &[Row]) -> i64 {
    rows.iter().filter(|r| r.0.starts_with("conn_hourly")).map(|r| r.5).sum()
}

/// A source that breaks off after `bytes`, the way a killed client or a dropped connection ends
/// a body: the batches written before it stay, the one being collected goes.
struct BreaksOff(io::Cursor<Vec<u8>>);

impl Read for BreaksOff {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(io::Error::new(io::ErrorKind::ConnectionReset, "the client went away")),
            n => Ok(n),
        }
    }
}

async fn reference(store: &Store, name: &str, sources: Vec<Source>) -> Vec<Row> {
    let c = store.cluster_id(name, true).await.unwrap();
    ingest(store, c, sources, WriteOptions::default()).await.unwrap();
    aggregates(store, c).await
}

#[sqlx::test(migrations = false)]
async fn reingesting_and_resuming_leave_the_aggregates_of_one_ingest(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    // More than a batch, so that an ingest broken off late has written one.
    const TOTAL: usize = flowgate::ingest::BATCH_ROWS + 30_000;
    const BREAK: usize = TOTAL - 10_000;
    let all = lines(TOTAL);
    let want = reference(&store, "one", vec![file("f", &all)]).await;
    assert_eq!(flows_in(&want), TOTAL as i64);

    // The same file again: every flow a duplicate, nothing moves.
    let again = store.cluster_id("again", true).await.unwrap();
    let first = ingest(&store, again, vec![file("f", &all)], WriteOptions::default()).await.unwrap();
    assert_eq!((first.accepted, first.duplicate), (TOTAL as u64, 0));
    // A row per connection-hour and -day a batch touches (385 connections over 11 hours here),
    // a few ledger entries: far from a row per flow.
    assert!(first.store_rows * 10 < first.accepted, "{} rows written for {} flows", first.store_rows, first.accepted);
    let second = ingest(&store, again, vec![file("f", &all)], WriteOptions::default()).await.unwrap();
    assert_eq!((second.accepted, second.duplicate), (0, TOTAL as u64));
    assert_eq!(aggregates(&store, again).await, want);

    // An ingest that breaks off after BREAK lines keeps the batches it wrote (the first is cut at
    // the first chunk boundary past `BATCH_ROWS`); the whole file again adds exactly the rest.
    let resumed = store.cluster_id("resumed", true).await.unwrap();
    assert!(flowgate::ingest::BATCH_ROWS + flowgate::store::ingest::CHUNK_MAX < BREAK);
    let head = bytes(&all[..BREAK]);
    let reader = Box::new(io::BufReader::new(BreaksOff(io::Cursor::new(head))));
    let broke =
        ingest(&store, resumed, vec![Source::Reader { name: "body".into(), reader }], WriteOptions::default()).await;
    assert!(matches!(broke, Err(IngestError::Read { .. })), "{broke:?}");
    let written = flows_in(&aggregates(&store, resumed).await);
    assert!(written > 0 && written < BREAK as i64, "{written} flows written before the break");
    let rest = ingest(&store, resumed, vec![file("f", &all)], WriteOptions::default()).await.unwrap();
    assert_eq!((rest.accepted as i64, rest.duplicate as i64), (TOTAL as i64 - written, written));
    assert_eq!(aggregates(&store, resumed).await, want);
}

/// A file ingested, then ingested again after it grew (`hubble observe >> flows.json`): its end
/// was a chunk that ended with the file, recognised as the start of the longer one.
#[sqlx::test(migrations = false)]
async fn a_file_that_grew_adds_only_its_new_flows(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let all = lines(30_000);
    let want = reference(&store, "one", vec![file("f", &all)]).await;
    let grew = store.cluster_id("grew", true).await.unwrap();
    for upto in [7_001, 19_999, 30_000] {
        let r = ingest(&store, grew, vec![file("f", &all[..upto])], WriteOptions::default()).await.unwrap();
        assert_eq!(r.accepted + r.duplicate, upto as u64);
    }
    assert_eq!(aggregates(&store, grew).await, want);
    // Small bodies (a collector's posts), each sent again (its retry): duplicates.
    let small = store.cluster_id("small", true).await.unwrap();
    for round in [0, 1] {
        for l in all[..5].chunks(2) {
            let r = ingest(&store, small, vec![file("body", l)], WriteOptions::default()).await.unwrap();
            assert_eq!((r.accepted, r.duplicate), if round == 0 { (l.len() as u64, 0) } else { (0, l.len() as u64) });
        }
    }
    assert_eq!(flows_in(&aggregates(&store, small).await), 5);
}

/// Two writers at once (two `ingest` processes, or two `serve` replicas) on one PostgreSQL: on
/// disjoint files, and on the same file plus one each of their own, they leave what one writer
/// leaves.
#[sqlx::test(migrations = false)]
async fn two_writers_at_once_leave_what_one_leaves(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let all = lines(90_000);
    let (a, b, shared) = (&all[..30_000], &all[30_000..60_000], &all[60_000..]);

    let want = reference(&store, "one", vec![file("a", a), file("b", b)]).await;
    let disjoint = store.cluster_id("disjoint", true).await.unwrap();
    let (ra, rb) = tokio::join!(
        ingest(&store, disjoint, vec![file("a", a)], WriteOptions::default()),
        ingest(&store, disjoint, vec![file("b", b)], WriteOptions::default()),
    );
    assert_eq!(ra.unwrap().accepted + rb.unwrap().accepted, 60_000);
    assert_eq!(aggregates(&store, disjoint).await, want);

    let want = reference(&store, "one-overlap", vec![file("shared", shared), file("a", a), file("b", b)]).await;
    let overlap = store.cluster_id("overlap", true).await.unwrap();
    let (ra, rb) = tokio::join!(
        ingest(&store, overlap, vec![file("shared", shared), file("a", a)], WriteOptions::default()),
        ingest(&store, overlap, vec![file("shared", shared), file("b", b)], WriteOptions::default()),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.accepted + rb.accepted, ra.duplicate + rb.duplicate), (90_000, 30_000), "{ra}\n{rb}");
    assert_eq!(aggregates(&store, overlap).await, want);
}

/// `--keep-flows`: a raw row per accepted flow, none for a duplicate, and the raw rows fold into
/// exactly the stored connection-hours. Without it no raw row is written.
#[sqlx::test(migrations = false)]
async fn kept_raw_flows_are_the_accepted_flows(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let all = lines(20_000);
    let kept = store.cluster_id("kept", true).await.unwrap();
    let keep = WriteOptions { keep_flows: true };
    let r = ingest(&store, kept, vec![file("f", &all[..12_000])], keep).await.unwrap();
    assert_eq!(r.accepted, 12_000);
    let r = ingest(&store, kept, vec![file("f", &all)], keep).await.unwrap();
    assert_eq!((r.accepted, r.duplicate), (8_000, 12_000));
    assert_eq!(store.stats(kept).await.unwrap().raw_flows, 20_000);
    let mismatched: i64 = sqlx::query_scalar(
        "select count(*) from (
            select date_trunc('hour', time, 'UTC') as bucket, src_endpoint, dst_endpoint, dst_port as port, protocol,
                   count(*) as flows, min(time) as first_seen, max(time) as last_seen
            from flows where cluster_id = $1 group by 1, 2, 3, 4, 5
            except
            select bucket, src_endpoint, dst_endpoint, port, protocol, flows, first_seen, last_seen
            from conn_hourly where cluster_id = $1) d",
    )
    .bind(kept)
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
    assert_eq!(aggregates(&store, kept).await, reference(&store, "one", vec![file("f", &all)]).await);

    let lean = store.cluster_id("lean", true).await.unwrap();
    ingest(&store, lean, vec![file("f", &all)], WriteOptions::default()).await.unwrap();
    assert_eq!(store.stats(lean).await.unwrap().raw_flows, 0);
    assert_eq!(store.stats(lean).await.unwrap().flows, 20_000);
}
