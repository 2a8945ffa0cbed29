//! A Service as the unit (`/clusters/{cluster}/namespaces/{ns}/services/{name}`): its addresses
//! and selector, each Service port and the pod port it reaches on each backend (named target
//! ports resolved per backend), the backends with their review pages, the clients seen through it
//! in the last day with what each backend's policy decides for them, and the backends' proposed
//! policies. A workload URL of kind `service` leads here.

use std::collections::BTreeSet;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::auth::Viewer;
use super::error::ApiError;
use super::pages::{DEFAULT_WINDOW, WindowQuery, enc, filters, window, workload_url};
use crate::model::{Name, WorkloadRef};
use crate::policy::generate::{Decisions, Direction};
use crate::report::{self, Row};
use crate::review::{Target, review};

/// One Service port: `80/TCP (http)`, what it targets, and the pod port on each backend.
pub struct PortLine {
    pub service: String,
    pub target: String,
    /// (backend, the pod port it reaches there, or why none).
    pub on: Vec<(String, String)>,
}

/// A backend workload and its proposed policy.
pub struct Backend {
    pub label: String,
    pub url: String,
    pub yaml: String,
    pub decided: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "service.html")]
pub struct ServicePage {
    cluster: String,
    namespace: String,
    name: String,
    cluster_ips: Vec<String>,
    exposed: Option<&'static str>,
    selector: Vec<String>,
    ports: Vec<PortLine>,
    backends: Vec<Backend>,
    /// Ingress rows of the backends whose connections went through this Service.
    clients: Vec<Row>,
    window_text: String,
}

/// The Service's page URL.
pub fn url(cluster: &str, namespace: &str, name: &str) -> String {
    format!("/clusters/{}/namespaces/{}/services/{}", enc(cluster), enc(namespace), enc(name))
}

/// `.../workloads/service/{name}`: a Service is not a workload kind, but it has a page.
pub async fn from_workload_url(
    _v: Viewer,
    Path((cluster, ns, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    Name::namespace(&ns).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Name::of_kind("Service", &name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Redirect::to(&url(&cluster, &ns, &name)).into_response())
}

pub async fn page(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns, name)): Path<(String, String, String)>,
) -> Result<ServicePage, ApiError> {
    Name::namespace(&ns).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Name::of_kind("Service", &name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let id = state.cluster(&cluster).await?;
    let inv = state.inventory(id).await?;
    let Some(svc) = inv.services.iter().find(|s| s.namespace == ns && s.name == name) else {
        return Err(ApiError::NotFound(format!("no Service {ns}/{name} in cluster {cluster:?}")));
    };
    let backends: Vec<&crate::inventory::WorkloadInfo> = inv.service_workloads(svc);
    let ports = svc
        .ports
        .iter()
        .map(|p| PortLine {
            service: match &p.name {
                Some(n) => format!("{}/{} ({n})", p.port, p.protocol),
                None => format!("{}/{}", p.port, p.protocol),
            },
            target: match &p.target {
                crate::inventory::TargetPort::Number(n) => n.to_string(),
                crate::inventory::TargetPort::Name(n) => format!("the port named {n:?}"),
            },
            on: backends
                .iter()
                .map(|b| {
                    let at = match p.target_on(&b.ports) {
                        Some(port) => format!("{port}/{}", p.protocol),
                        None => "no container port of that name".to_string(),
                    };
                    (b.workload.to_string(), at)
                })
                .collect(),
        })
        .collect();

    // The backends reviewed together over the default window, with their stored decisions.
    let q = WindowQuery::default();
    let (since, until) = window(&state, id, &q).await?;
    let only: BTreeSet<WorkloadRef> = backends.iter().map(|b| b.workload.clone()).collect();
    let mut clients = Vec::new();
    let mut backend_lines = Vec::new();
    if !only.is_empty() {
        let target = Target::Namespace { namespace: &ns, only: Some(&only) };
        let r = review(&state.store, id, &inv, target, since, until, &Decisions::default(), true).await?;
        let prefix = format!("{ns}/{name}:");
        clients = report::rows(&r.generation.review, &r.connections, None)
            .into_iter()
            .filter(|row| row.direction == Direction::Ingress && row.services.iter().any(|s| s.starts_with(&prefix)))
            .collect();
        for w in &only {
            let policies: Vec<_> = r.generation.policies_of(Some(w)).collect();
            backend_lines.push(Backend {
                label: w.to_string(),
                url: workload_url(&cluster, w),
                yaml: crate::policy::diff::yaml_of(&policies),
                decided: r.decisions.iter().any(|(t, _, v)| t == w && *v > 0),
            });
        }
    }
    let window_text = super::pages::resolved_window(since, until, state.store.newest_flow(id).await?).replacen(
        "Showing",
        "Clients seen",
        1,
    );
    let mut selector: Vec<String> =
        svc.selector.iter().flatten().map(|(k, v)| format!("{}={}", k.as_str(), v.as_str())).collect();
    selector.sort();
    Ok(ServicePage {
        cluster,
        namespace: ns,
        name,
        cluster_ips: svc.cluster_ips.iter().map(ToString::to_string).collect(),
        exposed: svc.exposed,
        selector,
        ports,
        backends: backend_lines,
        clients,
        window_text: format!("{window_text} (the last {DEFAULT_WINDOW})"),
    })
}
