//! `GET /metrics` (the Prometheus text format, [`crate::metrics`]) and the layer that times
//! every request by its route.
//!
//! Served without the token, as Prometheus scrapes: what it shows is counts, durations and
//! the pool's state, labelled by flow source, Kubernetes kind and route *template*; never a
//! cluster, namespace, workload, address or path as sent.

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::time::Instant;

use super::AppState;
use crate::metrics::{Metrics, Pool, UNMATCHED};

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let pool = &state.store.pool;
    let pool = Pool {
        open: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render(pool))
}

/// Times a request to its response's headers (a streamed body's rest is not counted) under the
/// route that matched it: the router's own templates, so the label set is the router's size.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.http_requests.get(route.as_deref().unwrap_or(UNMATCHED)).observe(started.elapsed());
    response
}
