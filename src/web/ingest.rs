//! `POST /api/v1/clusters/{cluster}/flows`: NDJSON or Hubble JSON lines (gzip accepted), bearer
//! token required, body bounded after decompression. Answers with the counts of accepted,
//! duplicate, expired (older than the server's `--retention`) and rejected lines and the first
//! rejected line numbers with reasons.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::AppState;
use super::auth::ApiToken;
use super::error::ApiError;
use crate::flows::FlowFormat;
use crate::ingest::{IngestReport, Source, ingest_sources};

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
    // The limit applies to the decompressed bytes, so a small gzip bomb cannot grow past it.
    let bytes = axum::body::to_bytes(body, state.body_limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            ApiError::TooLarge(state.body_limit)
        } else {
            ApiError::BadRequest(format!("reading the request body: {e}"))
        }
    })?;
    let id = state.store.cluster_id(&cluster, true).await?;
    let inventory = state.inventory(id).await?;
    let sources = vec![Source::Bytes { name: "body".into(), bytes: bytes.to_vec() }];
    let report = ingest_sources(&state.store, id, inventory, sources, &state.ingest_options(format, 2)).await?;
    Ok(Json(report))
}
