//! The ingestion endpoint, in process (`oneshot`) against a fresh database: counts, limits,
//! the ingest slots, and bodies that arrive slowly, in pieces or never.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use flowgate::ingest::{BATCH_ROWS, Clock};
use flowgate::store::Store;
use flowgate::web::{AppState, router};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"time":"2026-11-11T00:00:{:02}Z","src_ip":"10.244.0.5","src_port":{},"dst_ip":"192.229.173.207","dst_port":443,"protocol":"TCP"}}"#,
                i % 60,
                40000 + i
            ) + "\n"
        })
        .collect()
}

/// A server whose clock says 11 November 2026, 01:00, the day of the flows above.
fn state(store: &Store) -> AppState {
    let mut state = AppState::new(store.clone(), TOKEN);
    state.clock = Clock::fixed("2026-11-11T01:00:00Z".parse().unwrap());
    state
}

async fn post(app: axum::Router, auth: Option<&str>, gzip: bool, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let (status, _, json) = send(app, auth, gzip, Body::from(body)).await;
    (status, json)
}

async fn send(
    app: axum::Router,
    auth: Option<&str>,
    gzip: bool,
    body: Body,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let mut req = Request::post("/api/v1/clusters/prod/flows");
    if let Some(t) = auth {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = app.oneshot(req.body(body).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A request body the test sends by hand, as a slow client would: `asked` fires when the server
/// first reads it (which it does only once the ingest has its slot), `feed` sends the next
/// piece, and dropping `feed` ends the body.
struct HandBody {
    asked: oneshot::Receiver<()>,
    feed: mpsc::Sender<Bytes>,
}

fn hand_body() -> (Body, HandBody) {
    let (asked_tx, asked) = oneshot::channel();
    let (feed, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold((Some(asked_tx), rx), |(mut asked, mut rx)| async move {
        if let Some(tx) = asked.take() {
            let _ = tx.send(());
        }
        rx.recv().await.map(|piece| (Ok::<_, std::io::Error>(piece), (asked, rx)))
    });
    (Body::from_stream(stream), HandBody { asked, feed })
}

async fn flows(store: &Store) -> i64 {
    let id = store.cluster_id("prod", false).await.unwrap();
    store.stats(id).await.unwrap().flows
}

#[sqlx::test(migrations = false)]
async fn ingests_plain_and_gzip_and_counts_duplicates_and_rejects(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let app = router(state(&store));

    let mut body = lines(3).into_bytes();
    body.extend_from_slice(b"{\"time\":\"soon\"}\n");
    let (status, json) = post(app.clone(), Some(TOKEN), false, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!((json["accepted"].as_u64(), json["rejected"].as_u64()), (Some(3), Some(1)));
    assert_eq!(json["errors"][0]["line"].as_u64(), Some(4));
    assert!(json["errors"][0]["reason"].as_str().unwrap().contains("time"), "{json}");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&body).unwrap();
    let (status, json) = post(app.clone(), Some(TOKEN), true, gz.finish().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!((json["accepted"].as_u64(), json["duplicate"].as_u64()), (Some(0), Some(3)));
    let id = store.cluster_id("prod", false).await.unwrap();
    assert_eq!(store.stats(id).await.unwrap().flows, 3);
}

/// Flows older than the server's retention are counted as expired; flows dated beyond its clock
/// plus the skew allowance are rejected lines, with their line numbers.
#[sqlx::test(migrations = false)]
async fn expired_and_future_flows_are_counted_in_the_answer(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let app = router(state(&store));
    let old = lines(1).replace("2026-11-11", "2026-10-01");
    let future = lines(1).replace("2026-11-11", "2027-11-11");
    let body = [lines(2), old, future].concat();
    let (status, json) = post(app, Some(TOKEN), false, body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let counts = ["lines", "accepted", "duplicate", "expired", "rejected"].map(|k| json[k].as_u64());
    assert_eq!(counts, [Some(4), Some(2), Some(0), Some(1), Some(1)], "{json}");
    assert_eq!(json["errors"][0]["line"].as_u64(), Some(4));
    assert!(json["errors"][0]["reason"].as_str().unwrap().contains("in the future"), "{json}");
    let id = store.cluster_id("prod", false).await.unwrap();
    assert_eq!(store.stats(id).await.unwrap().flows, 2);
}

#[sqlx::test(migrations = false)]
async fn refuses_without_token_and_past_the_limit(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let mut state = state(&store);
    let app = router(state.clone());
    assert_eq!(post(app.clone(), None, false, lines(1).into_bytes()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(app.clone(), Some("wrong-token-wrong-token"), false, lines(1).into_bytes()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Nothing was written, not even the cluster.
    assert!(store.clusters().await.unwrap().is_empty());

    state.body_limit = 1000;
    let small = router(state);
    // 20 lines are ~3 KB: too large plain, and too large once decompressed though the gzip is small.
    assert_eq!(post(small.clone(), Some(TOKEN), false, lines(20).into_bytes()).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let gz = gzip(lines(20).as_bytes());
    assert!(gz.len() < 1000);
    assert_eq!(post(small, Some(TOKEN), true, gz).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

/// At most `max ingests` bodies are ingested at once: with eight slots, eight bodies still
/// arriving hold them all and a ninth is refused with 429 and Retry-After before its body is
/// read; once the eight are done, their slots take posts again.
#[sqlx::test(migrations = false)]
async fn the_ninth_ingest_at_once_is_refused_with_retry_after(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let mut state = state(&store);
    state.ingest_slots = Arc::new(Semaphore::new(8));
    let app = router(state);

    let mut held = Vec::new();
    let mut running = Vec::new();
    for _ in 0..8 {
        let (body, hand) = hand_body();
        running.push(tokio::spawn(send(app.clone(), Some(TOKEN), false, body)));
        held.push(hand);
    }
    for hand in &mut held {
        (&mut hand.asked).await.expect("the server reads the body of each of the eight");
    }
    let (ninth, asked) = {
        let (body, hand) = hand_body();
        let ninth = tokio::time::timeout(Duration::from_secs(10), send(app.clone(), Some(TOKEN), false, body));
        (ninth.await.expect("the ninth is answered at once"), hand.asked)
    };
    let (status, headers, json) = ninth;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    assert!(json["error"].as_str().unwrap().contains("try again in 5 s"), "{json}");
    assert!(asked.await.is_err(), "the ninth body was never read");

    let body = lines(8);
    for (hand, line) in held.into_iter().zip(body.lines()) {
        hand.feed.send(Bytes::from(format!("{line}\n"))).await.unwrap();
    }
    for r in running {
        let (status, _, json) = r.await.unwrap();
        assert_eq!((status, json["accepted"].as_u64()), (StatusCode::OK, Some(1)), "{json}");
    }
    assert_eq!(flows(&store).await, 8);
    // The slots take posts again: one of the eight bodies sent again, then a new one.
    let again = format!("{}\n", body.lines().next().unwrap());
    let (status, json) = post(app.clone(), Some(TOKEN), false, again.into_bytes()).await;
    assert_eq!(
        (status, json["accepted"].as_u64(), json["duplicate"].as_u64()),
        (StatusCode::OK, Some(0), Some(1)),
        "{json}"
    );
    let ninth = format!("{}\n", lines(9).lines().last().unwrap());
    let (status, json) = post(app, Some(TOKEN), false, ninth.into_bytes()).await;
    assert_eq!((status, json["accepted"].as_u64()), (StatusCode::OK, Some(1)), "{json}");
    assert_eq!(flows(&store).await, 9);
}

/// The body is parsed and written as it arrives: a batch's worth of flows is in the store while
/// the body is still open (collected first, nothing would be written before its end). The
/// parser takes its input in pieces of a MiB, so the body goes on a little past the batch.
#[sqlx::test(migrations = false)]
async fn a_body_is_written_while_it_arrives(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let app = router(state(&store));
    let (body, hand) = hand_body();
    let posted = tokio::spawn(send(app, Some(TOKEN), false, body));
    let n = BATCH_ROWS + 20_000;
    let all: String = (0..n)
        .map(|i| {
            format!(
                r#"{{"time":"2026-11-11T00:00:00Z","src_ip":"10.244.0.5","src_port":{},"dst_ip":"192.229.173.207","dst_port":{},"protocol":"TCP"}}"#,
                1024 + i % 60_000,
                443 + i / 60_000
            ) + "\n"
        })
        .collect();
    for piece in all.as_bytes().chunks(64 * 1024) {
        hand.feed.send(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    // Bounded wait for the first batch's commit (about a second here).
    let deadline = Instant::now() + Duration::from_secs(20);
    while flows(&store).await < BATCH_ROWS as i64 {
        assert!(Instant::now() < deadline, "no batch was written while the body was open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!posted.is_finished(), "the body is still open");
    drop(hand.feed);
    let (status, _, json) = posted.await.unwrap();
    assert_eq!((status, json["accepted"].as_u64()), (StatusCode::OK, Some(n as u64)), "{json}");
}

/// A client that stops sending is answered 408 after the idle timeout, and one that trickles
/// after the body's total allowance; the lines each sent (fewer than a batch) are not written.
#[sqlx::test(migrations = false)]
async fn a_body_that_stalls_or_trickles_is_answered_408_and_not_written(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let mut state = state(&store);
    state.limits.ingest_idle = Duration::from_millis(200);
    let app = router(state.clone());
    let (body, hand) = hand_body();
    hand.feed.send(Bytes::from(lines(3))).await.unwrap();
    let started = Instant::now();
    let (status, _, json) = send(app, Some(TOKEN), false, body).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{json}");
    assert!(json["error"].as_str().unwrap().contains("no part of the request body arrived for 0.2 s"), "{json}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(hand);
    assert_eq!(flows(&store).await, 0);

    // A line every 50 ms never waits 200 ms, but 300 ms of waiting in all is the limit.
    state.limits.ingest_body = Duration::from_millis(300);
    let trickle = futures_util::stream::unfold(lines(100).into_bytes(), |rest| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cut = rest.iter().position(|&b| b == b'\n')? + 1;
        Some((Ok::<_, std::io::Error>(Bytes::copy_from_slice(&rest[..cut])), rest[cut..].to_vec()))
    });
    let (status, _, json) = send(router(state), Some(TOKEN), false, Body::from_stream(trickle)).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{json}");
    assert!(json["error"].as_str().unwrap().contains("took longer than 0.3 s"), "{json}");
    assert_eq!(flows(&store).await, 0);
}

/// A gzip body that decompresses past the limit is refused, and the lines decompressed before
/// the limit (fewer than a batch) are not written: the request failed, so nothing of its
/// unfinished batch counts.
#[sqlx::test(migrations = false)]
async fn a_body_past_the_limit_writes_nothing_of_its_unfinished_batch(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let mut state = state(&store);
    state.body_limit = 100_000;
    let body = lines(2000);
    assert!(body.len() > 250_000);
    let (status, json) = post(router(state), Some(TOKEN), true, gzip(body.as_bytes())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert_eq!(flows(&store).await, 0);
}
