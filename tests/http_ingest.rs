//! The ingestion endpoint, in process (`oneshot`) against a fresh database.

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flowgate::ingest::Clock;
use flowgate::store::Store;
use flowgate::web::{AppState, router};
use sqlx::PgPool;
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
    let mut req = Request::post("/api/v1/clusters/prod/flows");
    if let Some(t) = auth {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    let resp = app.oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
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
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(lines(20).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 1000);
    assert_eq!(post(small, Some(TOKEN), true, gz).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}
