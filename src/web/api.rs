//! The JSON API under `/api/v1/clusters/{cluster}/namespaces/{ns}/workloads/{kind}/{name}/`:
//! the UI's own data, doubling as automation, in the CLI's vocabulary.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::{Viewer, Writer};
use super::context::{DialectQuery, Window, WorkloadPath, WorkloadReview};
use super::error::ApiError;
use super::pages::review_namespace;
use crate::policy::Dialect;
use crate::policy::generate::Decisions;
use crate::report::{self, Spelled};

/// The JSON and YAML API under `/api/v1/clusters/{cluster}/namespaces/{ns}/`.
pub fn router() -> axum::Router<AppState> {
    use axum::routing::get;
    const NS: &str = "/api/v1/clusters/{cluster}/namespaces/{ns}";
    const W: &str = "/api/v1/clusters/{cluster}/namespaces/{ns}/workloads/{kind}/{name}";
    axum::Router::new()
        .route(&format!("{W}/connections"), get(connections))
        .route(&format!("{W}/graph"), get(graph))
        .route(&format!("{W}/simulation"), get(simulation))
        .route(&format!("{W}/drift"), get(drift))
        .route(&format!("{W}/explain"), get(explain))
        .route(&format!("{W}/diff"), get(diff))
        .route(&format!("{W}/policy.yaml"), get(policy_yaml))
        .route(&format!("{W}/decisions"), get(get_decisions).put(put_decisions))
        .route(&format!("{NS}/policy.yaml"), get(namespace_policy_yaml))
        .route("/api/v1/clusters/{cluster}/guardrails.yaml", get(super::guardrails::yaml))
        .route(&format!("{NS}/graph"), get(namespace_graph))
}

/// `…/connections`: the review's rows of the workload, as `flowgate connections --json` gives them.
pub async fn connections(r: WorkloadReview) -> Json<serde_json::Value> {
    let rows = report::rows(&r.review.generation.review, &r.review.connections, Some(&r.workload));
    Json(json!({ "workload": r.workload.to_string(), "decisions_version": r.version(), "connections": rows }))
}

/// `…/graph`: the map's JSON for one workload.
pub async fn graph(r: WorkloadReview) -> Json<serde_json::Value> {
    let sim = r.simulation();
    Json(report::graph(&r.review.generation.review, &r.review.connections, Some(&r.workload), Some(&sim)))
}

/// `…/simulation`: what applying the workload's proposed policy over the cluster's policies would
/// do to each connection seen in the window, as `flowgate check --proposed` reports it.
pub async fn simulation(r: WorkloadReview) -> Json<serde_json::Value> {
    let sim = r.simulation();
    let rows: Vec<report::CheckRow> = sim.rows.iter().map(report::CheckRow::new).collect();
    let breaks = rows.iter().filter(|c| c.effect == crate::policy::simulate::Effect::WouldBreak).count();
    Json(json!({
        "workload": r.workload.to_string(),
        "decisions_version": r.version(),
        "would_break": breaks,
        "connections": rows,
        "warnings": sim.warnings,
    }))
}

/// `…/drift`: the latest downloaded revision of the workload's policy against the traffic seen
/// since it was recorded: the connections it would block (dependencies that appeared since, or
/// that it never allowed), each with flows, last seen and the deciding policy; and each of its
/// rules with what it admitted over the last `unused_for` (a duration, default 7d) of traffic, the rules that
/// admitted nothing listed as `unused_rules` (candidates to remove). `revision: null` when
/// nothing was downloaded yet.
pub async fn drift(
    _v: Viewer,
    State(state): State<AppState>,
    WorkloadPath { cluster, workload: w }: WorkloadPath,
    q: Result<Query<DriftQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let unused_for = match q.unused_for.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => jiff::SignedDuration::from_hours(24 * 7),
        Some(s) => match s.parse::<crate::topology::TimeBound>() {
            Ok(crate::topology::TimeBound::Ago(d))
                if d.is_positive() && d <= jiff::SignedDuration::from_hours(24 * 366) =>
            {
                d
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unused_for: {s:?} is not a duration between 1s and 366d (such as 12h or 7d)"
                )));
            }
        },
    };
    let id = state.cluster(&cluster).await?;
    let inv = state.inventory(id).await?;
    let Some(d) = drift_of(&state, id, &inv, &w, unused_for).await? else {
        return Ok(Json(json!({ "workload": w.to_string(), "revision": null, "would_block": [], "unused_rules": [] })));
    };
    let unused: Vec<_> =
        d.unused_rules().map(|r| json!({ "policy": r.policy, "direction": r.direction, "rule": r.rule })).collect();
    Ok(Json(json!({
        "workload": w.to_string(),
        "revision": d.revision,
        "recorded_at": d.recorded_at,
        "connections_since": d.connections_since,
        "would_block": d.would_block,
        "unused_for": unused_for.to_string(),
        "rules_used_since": d.rules_used_since,
        "rules": d.rules,
        "unused_rules": unused,
    })))
}

/// A downloaded revision against the traffic seen since ([`drift`]).
pub struct Drift {
    pub revision: i32,
    pub recorded_at: jiff::Timestamp,
    /// Connections of the workload seen since the revision was recorded.
    pub connections_since: usize,
    /// Those it would block (not from a node).
    pub would_block: Vec<report::CheckRow>,
    /// Rule use counted from here to the newest flow.
    pub rules_used_since: jiff::Timestamp,
    pub rules: Vec<crate::policy::provenance::RuleProvenance>,
}

impl Drift {
    /// The rules that admitted nothing since [`Drift::rules_used_since`]: candidates to remove.
    pub fn unused_rules(&self) -> impl Iterator<Item = &crate::policy::provenance::RuleProvenance> {
        self.rules.iter().filter(|r| r.connections.is_empty())
    }
}

/// The latest downloaded revision of `w`'s policy against the traffic seen since; `None` when
/// nothing was downloaded yet.
pub async fn drift_of(
    state: &AppState,
    id: i32,
    inv: &crate::inventory::Inventory,
    w: &crate::model::WorkloadRef,
    unused_for: jiff::SignedDuration,
) -> Result<Option<Drift>, ApiError> {
    let Some((revision, yaml, at)) = state.store.latest_policy(id, w).await? else {
        return Ok(None);
    };
    let loaded = crate::inventory::parse_text(&yaml, "the recorded revision");
    let policies: Vec<_> = loaded
        .objects
        .into_iter()
        .filter_map(|o| match o {
            crate::inventory::KubeObject::NetworkPolicy(p) => Some(p),
            _ => None,
        })
        .collect();
    let no_decisions = Decisions::default();
    let review_since = |since| {
        crate::review::review(
            &state.store,
            id,
            inv,
            crate::review::Target::Workload(w),
            Some(since),
            None,
            &no_decisions,
            true,
        )
    };
    let r = review_since(at).await?;
    let touches = |e: &crate::enrich::Endpoint| e.workload() == Some(w);
    let sim = crate::policy::simulate::simulate(inv, &r.connections, &policies, |k| touches(&k.src) || touches(&k.dst));
    let would_block: Vec<report::CheckRow> = sim
        .rows
        .iter()
        .filter(|s| !s.after.allowed && s.effect != crate::policy::simulate::Effect::NotSubject)
        .map(report::CheckRow::new)
        .collect();
    // Rule use over the last `unused_for` of traffic, counted back from the newest flow as every
    // relative window is.
    let newest = state.store.newest_flow(id).await?.unwrap_or(at);
    let since = newest.checked_sub(unused_for).unwrap_or(newest);
    let recent = review_since(since).await?;
    let rules = crate::policy::provenance::rule_usage(&policies, &w.to_string(), inv, &recent.connections);
    Ok(Some(Drift {
        revision,
        recorded_at: at,
        connections_since: sim.rows.len(),
        would_block,
        rules_used_since: since,
        rules,
    }))
}

/// `…/diff`: the workload's proposed NetworkPolicy beside the cluster's policies selecting its
/// pods today: per direction, whether each isolates it and the peer/port entries the proposal
/// adds, removes and keeps; then the YAML line diff (`[]` when nothing selects them today).
pub async fn diff(r: WorkloadReview) -> Json<serde_json::Value> {
    let (d, lines) = super::pages::proposal_diff(&r.inventory, &r.review, &r.workload);
    Json(json!({
        "workload": r.workload.to_string(),
        "decisions_version": r.version(),
        "today": d.today,
        "directions": d.directions,
        "yaml_diff": lines,
    }))
}

#[derive(serde::Deserialize)]
pub struct ExplainQuery {
    src: Option<String>,
    dst: Option<String>,
    port: Option<String>,
}

/// `…/explain?src=&dst=&port=8080/TCP`: one connection, seen or not, as `flowgate explain` gives
/// it: for today's policies and with the workload's proposed policy applied over them, the
/// verdict, each side's deciding policies and rules (or who isolates it and that no rule allows
/// it), and what the window's flows showed. `src` and `dst` are `kind/namespace/name` or one
/// address; one of them must be the workload.
pub async fn explain(
    r: WorkloadReview,
    q: Result<Query<ExplainQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use crate::enrich::Endpoint;
    use crate::policy::simulate::{explain as in_words, side_words};
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let field = |v: Option<String>, name: &str| {
        v.map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("{name}: missing (kind/namespace/name or an address)")))
    };
    let end = |v: Option<String>, name: &str| -> Result<Endpoint, ApiError> {
        let text = field(v, name)?;
        let spec: crate::model::PeerSpec =
            text.parse().map_err(|e| ApiError::BadRequest(format!("{name}: {text:?}: {e}")))?;
        let e = Endpoint::named(&r.inventory, &spec, name).map_err(ApiError::BadRequest)?;
        match e.workload() {
            Some(w)
                if !r.inventory.workloads.contains_key(w)
                    && !r.review.connections.catalog.workloads.contains_key(w) =>
            {
                Err(ApiError::BadRequest(format!("{name}: no workload {w} in this cluster")))
            }
            _ => Ok(e),
        }
    };
    let (src, dst) = (end(q.src, "src")?, end(q.dst, "dst")?);
    let port = field(q.port, "port")?;
    let (port, protocol) =
        crate::model::parse_port_proto(&port).map_err(|e| ApiError::BadRequest(format!("port: {e}")))?;
    if src.workload() != Some(&r.workload) && dst.workload() != Some(&r.workload) {
        return Err(ApiError::BadRequest(format!("neither src nor dst is {}", r.workload)));
    }
    let key = crate::topology::ConnKey { src, dst, port, protocol };
    let proposed: Vec<_> = r.review.generation.policies_of(Some(&r.workload)).cloned().collect();
    let e = crate::policy::simulate::explain_one(&r.inventory, &r.review.connections, &proposed, &key);
    let decision = |d: &crate::policy::eval::Decision| {
        json!({
            "allowed": d.allowed,
            "reason": report::visible(&in_words(d)),
            "egress": report::visible(&side_words(&d.egress, "egress")),
            "ingress": report::visible(&side_words(&d.ingress, "ingress")),
        })
    };
    let observed = e.observed.as_ref().map(|s| {
        json!({
            "flows": s.flows,
            "dropped": s.dropped,
            "first_seen": s.first_seen,
            "last_seen": s.last_seen,
            "processes": s.processes.iter().map(|p| report::visible(p).into_owned()).collect::<Vec<_>>(),
        })
    });
    Ok(Json(json!({
        "workload": r.workload.to_string(),
        "src": key.src.to_string(),
        "dst": key.dst.to_string(),
        "port": key.port.get(),
        "protocol": key.protocol.as_str(),
        "today": decision(&e.before),
        "if_applied": decision(&e.after),
        "observed": observed,
        "not_subject": matches!(key.src, Endpoint::Node { .. }),
    })))
}

#[derive(serde::Deserialize)]
pub struct DriftQuery {
    unused_for: Option<String>,
}

/// `/api/v1/clusters/{c}/namespaces/{ns}/graph`: the whole namespace (one node per workload).
pub async fn namespace_graph(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns)): Path<(String, String)>,
    Window(q): Window,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = review_namespace(&state, &cluster, &ns, &q).await?;
    let inv = state.inventory(state.cluster(&cluster).await?).await?;
    let sim = crate::policy::simulate::proposal(&inv, &r.connections, &r.generation, None);
    Ok(Json(report::graph(&r.generation.review, &r.connections, None, Some(&sim))))
}

pub(super) fn yaml_response(yaml: String, filename: &str) -> Response {
    let mut resp = yaml.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `…/policy.yaml[?dialect=cilium]`: the workload's policy in the dialect asked for, recorded as
/// a revision (what was downloaded, when).
pub async fn policy_yaml(
    State(state): State<AppState>,
    DialectQuery(dialect): DialectQuery,
    r: WorkloadReview,
) -> Result<Response, ApiError> {
    let w = &r.workload;
    let inv = state.inventory(r.id).await?;
    let yaml = Spelled::of(&r.review, &inv, dialect, Some(w)).map_err(ApiError::Internal)?.yaml;
    state.store.record_policy(r.id, w, &yaml, r.version(), dialect.as_str()).await?;
    Ok(yaml_response(yaml, &download_name(&format!("{}-{}", w.namespace, w.name), dialect)))
}

/// `NAME.yaml`, or `NAME.cilium.yaml` for the Cilium dialect: two downloads never overwrite
/// each other.
fn download_name(base: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Kubernetes => format!("{base}.yaml"),
        d => format!("{base}.{d}.yaml"),
    }
}

/// `/api/v1/clusters/{c}/namespaces/{ns}/policy.yaml`: every workload's policy of the namespace.
pub async fn namespace_policy_yaml(
    _v: Viewer,
    State(state): State<AppState>,
    Path((cluster, ns)): Path<(String, String)>,
    Window(q): Window,
    DialectQuery(dialect): DialectQuery,
) -> Result<Response, ApiError> {
    let r = review_namespace(&state, &cluster, &ns, &q).await?;
    let id = state.cluster(&cluster).await?;
    let inv = state.inventory(id).await?;
    let yaml = Spelled::new(&r, &inv, dialect).map_err(ApiError::Internal)?.yaml;
    Ok(yaml_response(yaml, &download_name(&ns, dialect)))
}

pub async fn get_decisions(
    _v: Viewer,
    State(state): State<AppState>,
    WorkloadPath { cluster, workload: w }: WorkloadPath,
) -> Result<Json<serde_json::Value>, ApiError> {
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
        "trust_names": d.decisions.trust_names,
        "leave_out": d.decisions.leave_out,
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
    #[serde(default)]
    trust_names: std::collections::BTreeSet<crate::model::DnsName>,
    /// `ingress` or `egress`, not both: directions the policy leaves out.
    #[serde(default)]
    leave_out: std::collections::BTreeSet<crate::policy::generate::Direction>,
    /// The version this change is based on; without it the change applies to whatever is stored.
    version: Option<i32>,
}

pub async fn put_decisions(
    writer: Writer,
    State(state): State<AppState>,
    WorkloadPath { cluster, workload: w }: WorkloadPath,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let put: PutDecisions =
        serde_json::from_slice(&body).map_err(|e| ApiError::Unprocessable(format!("invalid decisions: {e}")))?;
    let decisions = Decisions {
        exclude: put.exclude,
        trust: put.trust,
        include_unresolved: put.include_unresolved,
        include_all_unresolved: false,
        trust_names: put.trust_names,
        leave_out: put.leave_out,
    };
    if decisions.leave_out.len() > 1 {
        return Err(ApiError::Unprocessable(
            "invalid decisions: leave_out: at most one direction (a policy with no type would isolate Ingress)".into(),
        ));
    }
    let id = state.cluster(&cluster).await?;
    let expected = match put.version {
        Some(v) => v,
        None => state.store.decisions(id, &w).await?.version,
    };
    let version = state.store.put_decisions(id, &w, &decisions, expected, &writer.name).await?;
    Ok(Json(json!({ "workload": w.to_string(), "version": version })))
}
