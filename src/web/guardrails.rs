//! The cluster's guardrails (`/clusters/{cluster}/guardrails`): the namespace pairs seen talking
//! over a window, each allowed or denied by a person's decision, the shared services, and the
//! policies that follow ([`crate::policy::guardrails`]) verified against the traffic; the YAML at
//! `/api/v1/clusters/{cluster}/guardrails.yaml`. Decisions are the cluster's, versioned.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::{Viewer, Writer};
use super::error::ApiError;
use super::pages::filters;
use super::pages::{WindowQuery, window};
use crate::policy::guardrails::{self as g, AdminApi, Guardrails, Mismatch};
use crate::store::query::Scope;

/// `?since=&until=&api=v1alpha2|v1alpha1`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GuardQuery {
    pub since: Option<String>,
    pub until: Option<String>,
    pub api: Option<String>,
}

impl GuardQuery {
    fn api(&self) -> Result<AdminApi, ApiError> {
        match self.api.as_deref().map(str::trim).unwrap_or("") {
            "" | "v1alpha2" => Ok(AdminApi::V1alpha2),
            "v1alpha1" => Ok(AdminApi::V1alpha1),
            other => Err(ApiError::BadRequest(format!(
                "api: {:?} is not v1alpha2 (ClusterNetworkPolicy) or v1alpha1 (AdminNetworkPolicy)",
                crate::model::names::excerpt(other)
            ))),
        }
    }

    /// The window, seven days back from the newest flow unless asked otherwise.
    fn window(&self) -> WindowQuery {
        let since = self.since.clone().filter(|s| !s.trim().is_empty()).or_else(|| Some("7d".into()));
        WindowQuery { since, until: self.until.clone() }
    }

    /// The query again, for links and redirects.
    fn encoded(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [("since", &self.since), ("until", &self.until), ("api", &self.api)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={}", enc(v)));
            }
        }
        parts.join("&")
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Computed {
    rails: Guardrails,
    yaml: String,
    policies: usize,
    mismatches: Vec<Mismatch>,
    version: i32,
    api: AdminApi,
}

/// The whole cluster's connections in the window, the stored decisions, the guardrails and their
/// verification.
async fn compute(state: &AppState, cluster: &str, q: &GuardQuery) -> Result<Computed, ApiError> {
    let api = q.api()?;
    let id = state.cluster(cluster).await?;
    let inv = state.inventory(id).await?;
    let (since, until) = window(state, id, &q.window()).await?;
    let catalog = state.store.load_catalog(id, &inv).await?;
    let mut conns = state.store.connections(id, Scope::All, since, until, catalog).await?;
    conns.settle(&inv);
    let (decisions, version) = state.store.guardrail_decisions(id).await?;
    let rails = g::guardrails(&inv, &conns, &g::GuardOptions { decisions, ..Default::default() });
    let yaml = match api {
        AdminApi::V1alpha2 => g::to_cluster_network_policies(&rails).and_then(|p| g::to_yaml(&p)),
        AdminApi::V1alpha1 => g::to_admin_network_policies(&rails).and_then(|p| g::to_yaml(&p)),
    }
    .map_err(ApiError::Unprocessable)?;
    let read = g::read_back(&yaml).map_err(ApiError::Unprocessable)?;
    let mismatches = g::verify(&rails, &read, &inv, &conns);
    Ok(Computed { rails, yaml, policies: read.len(), mismatches, version, api })
}

#[derive(Template, WebTemplate)]
#[template(path = "guardrails.html")]
pub struct GuardrailsPage {
    cluster: String,
    query: String,
    since: String,
    api: &'static str,
    rails: Guardrails,
    yaml: String,
    policies: usize,
    mismatches: Vec<Mismatch>,
    version: i32,
    windows: &'static [&'static str],
}

/// `GET /clusters/{cluster}/guardrails`.
pub async fn page(
    _v: Viewer,
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    q: Result<Query<GuardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<GuardrailsPage, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let c = compute(&state, &cluster, &q).await?;
    Ok(GuardrailsPage {
        query: q.encoded(),
        since: q.window().since.unwrap_or_default(),
        api: match c.api {
            AdminApi::V1alpha2 => "v1alpha2",
            AdminApi::V1alpha1 => "v1alpha1",
        },
        cluster,
        rails: c.rails,
        yaml: c.yaml,
        policies: c.policies,
        mismatches: c.mismatches,
        version: c.version,
        windows: &["24h", "7d", "30d"],
    })
}

/// A pair decision: `from`, `to`, `allow` (`true` or `false`) and the `version` it was based on.
#[derive(Debug, Deserialize)]
pub struct PairForm {
    from: String,
    to: String,
    allow: String,
    version: i32,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    api: Option<String>,
}

/// `POST /clusters/{cluster}/guardrails`: allows or denies one pair, then back to the page.
pub async fn post_pair(
    writer: Writer,
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    form: Result<axum::Form<PairForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let axum::Form(form) = form.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    for (what, n) in [("from", &form.from), ("to", &form.to)] {
        crate::model::Name::namespace(n).map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))?;
    }
    if form.from == form.to {
        return Err(ApiError::BadRequest("from and to are one namespace: guardrails are between namespaces".into()));
    }
    let allow = match form.allow.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "allow: {:?} is not true or false",
                crate::model::names::excerpt(other)
            )));
        }
    };
    let q = GuardQuery { since: form.since.clone(), until: None, api: form.api.clone() };
    q.api()?;
    let id = state.cluster(&cluster).await?;
    let (mut d, _) = state.store.guardrail_decisions(id).await?;
    let pair = (form.from.clone(), form.to.clone());
    if allow {
        d.exclude.remove(&pair);
        d.include.insert(pair);
    } else {
        d.include.remove(&pair);
        d.exclude.insert(pair);
    }
    match state.store.put_guardrail_decisions(id, &d, form.version, &writer.name).await {
        Ok(_) => {}
        Err(crate::store::StoreError::Conflict { author, .. }) => {
            return Err(ApiError::Conflict(format!(
                "{} changed the guardrail decisions since you loaded the page; your change was not applied. Reload to see theirs.",
                if author.is_empty() {
                    "Someone else".to_string()
                } else {
                    crate::report::visible(&author).into_owned()
                }
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let query = q.encoded();
    let back = format!("/clusters/{}/guardrails{}{query}", enc(&cluster), if query.is_empty() { "" } else { "?" });
    Ok(Redirect::to(&back).into_response())
}

/// `GET /api/v1/clusters/{cluster}/guardrails.yaml[?api=v1alpha1]`: the guardrails to apply.
pub async fn yaml(
    _v: Viewer,
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    q: Result<Query<GuardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let c = compute(&state, &cluster, &q).await?;
    let api = match c.api {
        AdminApi::V1alpha2 => "v1alpha2",
        AdminApi::V1alpha1 => "v1alpha1",
    };
    Ok(super::api::yaml_response(c.yaml, &format!("guardrails-{cluster}.{api}.yaml")))
}
