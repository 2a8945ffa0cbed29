//! The JSON API under `/api/v1/clusters/{cluster}/namespaces/{ns}/workloads/{kind}/{name}/`:
//! the UI's own data, doubling as automation, in the CLI's vocabulary.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::{Viewer, Writer};
use super::error::ApiError;
use super::pages::{WindowQuery, review_namespace, review_workload, workload_ref};
use crate::policy::generate::{Decisions, to_yaml};
use crate::report;

type WorkloadPath = Path<(String, String, String, String)>;

pub async fn connections(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns, kind, name)): WorkloadPath,
    Query(q): Query<WindowQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let w = workload_ref(&ns, &kind, &name)?;
    let (_, r) = review_workload(&state, &cluster, &w, &q).await?;
    let rows = report::rows(&r.generation.review, &r.connections, Some(&w));
    let version = r.decisions.iter().find(|(t, _, _)| *t == w).map_or(0, |(_, _, v)| *v);
    Ok(Json(json!({ "workload": w.to_string(), "decisions_version": version, "connections": rows })))
}

fn yaml_response(yaml: String, filename: &str) -> Response {
    let mut resp = yaml.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

pub async fn policy_yaml(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns, kind, name)): WorkloadPath,
    Query(q): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    let w = workload_ref(&ns, &kind, &name)?;
    let (id, r) = review_workload(&state, &cluster, &w, &q).await?;
    let mine: Vec<_> = r.generation.policies.iter().filter(|g| g.workload == w).cloned().collect();
    let yaml = to_yaml(&mine).map_err(ApiError::Internal)?;
    let version = r.decisions.iter().find(|(t, _, _)| *t == w).map_or(0, |(_, _, v)| *v);
    state.store.record_policy(id, &w, &yaml, version).await?;
    Ok(yaml_response(yaml, &format!("{}-{}.yaml", w.namespace, w.name)))
}

pub async fn namespace_policy_yaml(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns)): Path<(String, String)>,
    Query(q): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    let r = review_namespace(&state, &cluster, &ns, &q).await?;
    let yaml = to_yaml(&r.generation.policies).map_err(ApiError::Internal)?;
    Ok(yaml_response(yaml, &format!("{ns}.yaml")))
}

pub async fn get_decisions(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns, kind, name)): WorkloadPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let w = workload_ref(&ns, &kind, &name)?;
    let id = state.cluster(&cluster).await?;
    let d = state.store.decisions(id, &w).await?;
    Ok(Json(json!({
        "workload": w.to_string(),
        "version": d.version,
        "author": d.author,
        "updated_at": d.updated_at,
        "exclude": d.decisions.exclude,
        "trust": d.decisions.trust,
        "include_unresolved": d.decisions.include_unresolved,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutDecisions {
    #[serde(default)]
    exclude: std::collections::BTreeSet<crate::model::PeerSpec>,
    #[serde(default)]
    trust: std::collections::BTreeSet<crate::model::Cidr>,
    #[serde(default)]
    include_unresolved: std::collections::BTreeSet<std::net::IpAddr>,
    /// The version this change is based on; without it the change applies to whatever is stored.
    version: Option<i32>,
}

pub async fn put_decisions(
    writer: Writer,
    State(state): State<AppState>,
    Path((cluster, ns, kind, name)): WorkloadPath,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let w = workload_ref(&ns, &kind, &name)?;
    let put: PutDecisions =
        serde_json::from_slice(&body).map_err(|e| ApiError::Unprocessable(format!("invalid decisions: {e}")))?;
    let decisions = Decisions {
        exclude: put.exclude,
        trust: put.trust,
        include_unresolved: put.include_unresolved,
        include_all_unresolved: false,
    };
    let id = state.cluster(&cluster).await?;
    let expected = match put.version {
        Some(v) => v,
        None => state.store.decisions(id, &w).await?.version,
    };
    let version = state.store.put_decisions(id, &w, &decisions, expected, &writer.name).await?;
    Ok(Json(json!({ "workload": w.to_string(), "version": version })))
}
