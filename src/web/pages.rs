//! Server-rendered pages: login, clusters, a cluster's namespaces and workloads, and the review
//! page of one workload (map, Ingress/Egress tables, trusted CIDRs, generated policy).

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::{ClientIp, Viewer, Writer, check_token, login_redirect};
use super::context::{DialectQuery, Window, WorkloadPath};
use super::error::ApiError;
use super::session;
use crate::enrich::Endpoint;
use crate::model::{Cidr, DnsName, WorkloadKind, WorkloadRef};
use crate::policy::Dialect;
use crate::policy::generate::{Decisions, Direction};
use crate::report::{self, NameInfo, Row, Spelled, TrustInfo};
use crate::review::{Reviewed, Target, review};
use crate::topology::TimeBound;

/// The pages, under `/` and `/clusters/`; their errors are pages too ([`super::error::html_errors`]).
pub fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    const W: &str = "/clusters/{cluster}/namespaces/{ns}/workloads/{kind}/{name}";
    axum::Router::new()
        .route("/", get(index))
        .route("/logout", post(super::auth::logout))
        .route("/clusters/{cluster}", get(cluster))
        .route("/clusters/{cluster}/guardrails", get(super::guardrails::page).post(super::guardrails::post_pair))
        .route(W, get(workload))
        // A Service is not a workload kind; its own page shows it as the unit.
        .route("/clusters/{cluster}/namespaces/{ns}/workloads/service/{name}", get(super::service::from_workload_url))
        .route("/clusters/{cluster}/namespaces/{ns}/services/{name}", get(super::service::page))
        .route(&format!("{W}/decisions"), post(post_decision))
        // A browser is told in a sentence that the database is unreachable, not in JSON.
        .layer(axum::middleware::from_fn(super::error::html_errors))
}

/// A script tag of the review pages: a classic script (`defer`) or an ES module.
pub struct Script {
    pub src: &'static str,
    pub module: bool,
}

const fn classic(src: &'static str) -> Script {
    Script { src, module: false }
}

/// Scripts of the review page, in load order. All are deferred: the map's module runs after the
/// classic scripts before it (the vendored globals it uses) and before `app.js`, in this order.
pub const SCRIPTS: &[Script] = &[
    classic("/static/vendor/htmx-2.0.11.min.js"),
    classic("/static/vendor/cytoscape-3.35.0.min.js"),
    classic("/static/vendor/layout-base-2.0.1.js"),
    classic("/static/vendor/cose-base-2.2.0.js"),
    classic("/static/vendor/cytoscape-fcose-2.2.0.js"),
    Script { src: "/static/map/main.js", module: true },
    classic("/static/app.js"),
];

/// Template filters. `visible`: untrusted text with the characters that would reorder or hide what
/// is shown around it spelled out ([`report::visible`]); askama HTML-escapes the result. `when`: a
/// time with its zone ([`report::when`]).
pub(super) mod filters {
    #[askama::filter_fn]
    pub fn visible(s: impl std::fmt::Display, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(crate::report::visible(&s.to_string()).into_owned())
    }

    #[askama::filter_fn]
    pub fn when(t: &jiff::Timestamp, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(crate::report::when(*t))
    }
}

/// Rows one review table renders; the rest are counted in [`Table::more`]. A workload with
/// thousands of peers (a namespace's DNS server, an ingress controller) would otherwise make a
/// page of megabytes that the browser lays out row by row; the JSON API lists them all.
pub const MAX_TABLE_ROWS: usize = 1_000;

/// Connections listed by name above the YAML as what applying the policy would break.
pub const MAX_LISTED_BREAKS: usize = 20;

/// One review table (Ingress or Egress) as the page renders it.
#[derive(Debug, Clone)]
pub struct Table {
    pub title: &'static str,
    /// The tab's element id.
    pub tab: &'static str,
    /// At most [`MAX_TABLE_ROWS`], in the table's order.
    pub rows: Vec<Row>,
    /// How many rows were left out.
    pub more: usize,
    /// `ingress` or `egress`: what the leave-out form sends.
    pub direction: &'static str,
    /// The policy leaves this direction out ([`Decisions::leave_out`]).
    pub left_out: bool,
}

impl Table {
    /// The table of one direction's rows (at most `max` of them), and whether `d` leaves that
    /// direction out.
    pub fn new(direction: Direction, mut rows: Vec<Row>, max: usize, d: &Decisions) -> Table {
        let more = rows.len().saturating_sub(max);
        rows.truncate(max);
        let (title, tab) = match direction {
            Direction::Ingress => ("Ingress", "tab-ingress"),
            Direction::Egress => ("Egress", "tab-egress"),
        };
        Table { title, tab, rows, more, direction: direction.as_str(), left_out: d.leave_out.contains(&direction) }
    }
}

pub const WINDOWS: &[&str] = &["1h", "3h", "24h", "7d"];
pub const DEFAULT_WINDOW: &str = "24h";

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub failed: bool,
    /// Where to go after logging in, when it is a path on this server ([`login_redirect`]).
    pub next: Option<String>,
    /// Seconds to wait after too many wrong tokens.
    pub retry_after: Option<u64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
    overviews: Vec<Overview>,
    /// Clusters past [`MAX_OVERVIEW_CLUSTERS`], listed by name only.
    more: Vec<String>,
}

/// Clusters the landing page sums up; the rest are listed by name.
pub const MAX_OVERVIEW_CLUSTERS: usize = 20;
/// Decided workloads (each cluster's most recently changed first) whose proposal the landing page
/// simulates against the last day's traffic, over all its clusters together; each namespace they
/// are in costs one review.
pub const MAX_OVERVIEW_SIMULATED: usize = 20;
/// Workloads listed by name under "not reviewed yet".
pub const MAX_OVERVIEW_LISTED: usize = 10;

/// One cluster on the landing page: what is stored, and what needs a person's look.
pub struct Overview {
    pub cluster: String,
    pub flows: i64,
    pub newest: Option<jiff::Timestamp>,
    pub namespaces: usize,
    pub workloads: usize,
    /// Seen workloads nobody decided about yet: the first few, and how many.
    pub unreviewed: Vec<WorkloadRef>,
    pub unreviewed_count: usize,
    /// Decided workloads whose proposal would block connections seen in the last 24 h: the
    /// workload and how many.
    pub would_break: Vec<(WorkloadRef, usize)>,
    /// How many decided workloads were simulated, and how many there are.
    pub simulated: usize,
    pub decided: usize,
}

impl Overview {
    pub fn link(&self, w: &WorkloadRef) -> String {
        workload_url(&self.cluster, w)
    }
}

/// The landing page's summary of one cluster.
async fn overview(state: &AppState, cluster: String, budget: &mut usize) -> Result<Overview, ApiError> {
    let id = state.cluster(&cluster).await?;
    let inv = state.inventory(id).await?;
    let catalog = state.store.load_catalog(id, &inv).await?;
    let flows = state.store.flows_counted(id).await?;
    let newest = state.store.newest_flow(id).await?;
    let mut namespaces: BTreeSet<String> = inv.namespaces.keys().cloned().collect();
    namespaces.extend(catalog.namespaces().into_iter().map(str::to_string));
    let decided = state.store.decided_workloads(id).await?;
    let decided_set: BTreeSet<&WorkloadRef> = decided.iter().collect();
    let unreviewed: Vec<WorkloadRef> = catalog.workloads.keys().filter(|w| !decided_set.contains(w)).cloned().collect();
    // The most recently decided workloads, each against the last day's traffic, grouped by
    // namespace so that a namespace is reviewed once.
    let mut by_ns: std::collections::BTreeMap<&str, BTreeSet<WorkloadRef>> = Default::default();
    let take = decided.len().min(*budget);
    *budget -= take;
    for w in decided.iter().take(take) {
        by_ns.entry(w.namespace.as_str()).or_default().insert(w.clone());
    }
    let since = newest.map(|n| n - jiff::SignedDuration::from_hours(24));
    let mut would_break = Vec::new();
    let mut simulated = 0;
    for (ns, only) in &by_ns {
        let target = Target::Namespace { namespace: ns, only: Some(only) };
        let r = review(&state.store, id, &inv, target, since, None, &Decisions::default(), true).await?;
        for w in only {
            simulated += 1;
            let sim = crate::policy::simulate::proposal(&inv, &r.connections, &r.generation, Some(w));
            let n = sim.would_break().count();
            if n > 0 {
                would_break.push((w.clone(), n));
            }
        }
    }
    Ok(Overview {
        flows,
        newest,
        namespaces: namespaces.len(),
        workloads: catalog.workloads.len(),
        unreviewed_count: unreviewed.len(),
        unreviewed: unreviewed.into_iter().take(MAX_OVERVIEW_LISTED).collect(),
        would_break,
        simulated,
        decided: decided.len(),
        cluster,
    })
}

#[derive(Deserialize)]
pub struct IndexQuery {
    token: Option<String>,
    /// Where to go after logging in: a path on this server.
    next: Option<String>,
}

/// `next` when the login would follow it (a path on this server), for the form to carry on.
fn local_next(next: &Option<String>) -> Option<String> {
    next.as_deref().filter(|n| login_redirect(Some(n)) != "/").map(str::to_string)
}

/// `/` and `/?token=...`: logs in (a session cookie, then on to `next`) and lists the clusters.
pub async fn index(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    viewer: Option<Viewer>,
    Query(q): Query<IndexQuery>,
) -> Result<Response, ApiError> {
    if let Some(token) = q.token {
        return Ok(match check_token(&state, client, &token) {
            Ok(()) => {
                let cookie = session::create(&state).await?;
                ([(header::SET_COOKIE, cookie)], Redirect::to(login_redirect(q.next.as_deref()))).into_response()
            }
            Err(ApiError::TooManyAttempts(secs)) => {
                let page = LoginPage { failed: true, retry_after: Some(secs), next: local_next(&q.next) };
                (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], page).into_response()
            }
            Err(ApiError::Unauthorized) => {
                let page = LoginPage { failed: true, retry_after: None, next: local_next(&q.next) };
                (StatusCode::UNAUTHORIZED, page).into_response()
            }
            Err(e) => return Err(e),
        });
    }
    if viewer.is_none() {
        let page = LoginPage { failed: false, retry_after: None, next: local_next(&q.next) };
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    let mut clusters = state.store.clusters().await?;
    let more = clusters.split_off(clusters.len().min(MAX_OVERVIEW_CLUSTERS));
    let mut overviews = Vec::with_capacity(clusters.len());
    let mut budget = MAX_OVERVIEW_SIMULATED;
    for c in clusters {
        overviews.push(overview(&state, c, &mut budget).await?);
    }
    Ok(IndexPage { overviews, more }.into_response())
}

pub struct ServiceLink {
    pub name: String,
    pub url: String,
    pub backends: Vec<WorkloadLink>,
}

pub struct WorkloadLink {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub via: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "cluster.html")]
pub struct ClusterPage {
    scripts: &'static [Script],
    cluster: String,
    /// Each namespace with the number of workloads seen in it.
    namespaces: Vec<(String, usize)>,
    namespace: Option<String>,
    kinds: Vec<(&'static str, &'static str)>,
    kind: String,
    workloads: Vec<WorkloadLink>,
    /// With the owner kind Service: the namespace's Services, each with its backends.
    services: Vec<ServiceLink>,
    /// The downloaded revisions against the traffic since (the namespace's, or the cluster's),
    /// the most recently downloaded first.
    drift: Vec<DriftLine>,
    /// The namespace map's window: one of [`WINDOWS`], as the workload page offers them.
    windows: &'static [&'static str],
    since: &'static str,
}

/// One workload's downloaded revision on the cluster page: what it would block in the traffic
/// seen since it was downloaded, and its rules unused for the last week.
pub struct DriftLine {
    link: WorkloadLink,
    revision: i32,
    recorded_at: jiff::Timestamp,
    connections_since: usize,
    would_block: Vec<String>,
    unused_rules: Vec<String>,
    drift_url: String,
}

/// How many downloaded revisions the cluster page compares with the traffic (each is a review).
const MAX_DRIFT_LINES: i64 = 20;

#[derive(Deserialize)]
pub struct ClusterQuery {
    ns: Option<String>,
    kind: Option<String>,
    /// The namespace map's window (`1h`, `3h`, `24h`, `7d`); anything else is refused.
    since: Option<String>,
}

const KINDS: &[(&str, &str)] = &[
    ("", "all kinds"),
    ("service", "Service"),
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job", "Job/CronJob"),
    ("pod", "Pod"),
];

pub async fn cluster(
    _v: Viewer,
    State(state): State<AppState>,
    Path(cluster): Path<String>,
    Query(q): Query<ClusterQuery>,
) -> Result<ClusterPage, ApiError> {
    let id = state.cluster(&cluster).await?;
    let inv = state.inventory(id).await?;
    let catalog = state.store.load_catalog(id, &inv).await?;
    let mut namespaces: BTreeSet<String> = inv.namespaces.keys().cloned().collect();
    namespaces.extend(catalog.namespaces().into_iter().map(str::to_string));
    let namespace = q.ns.filter(|n| namespaces.contains(n));
    let kind = q.kind.unwrap_or_default();
    let mut per_namespace: HashMap<&str, usize> = HashMap::new();
    for w in catalog.workloads.keys() {
        *per_namespace.entry(w.namespace.as_str()).or_default() += 1;
    }
    let mut workloads = Vec::new();
    let mut services = Vec::new();
    if let Some(ns) = &namespace {
        if kind == "service" {
            // Services as the unit: each links to its page, its backends under it.
            for svc in inv.services.iter().filter(|s| &s.namespace == ns) {
                let backends = inv
                    .service_workloads(svc)
                    .into_iter()
                    .map(|w| WorkloadLink {
                        kind: w.workload.kind.as_str(),
                        namespace: w.workload.namespace.clone(),
                        name: w.workload.name.clone(),
                        via: svc.name.clone(),
                    })
                    .collect();
                services.push(ServiceLink {
                    name: svc.name.clone(),
                    url: super::service::url(&cluster, &svc.namespace, &svc.name),
                    backends,
                });
            }
            services.sort_by(|a, b| a.name.cmp(&b.name));
        } else {
            for w in catalog.workloads.keys().filter(|w| &w.namespace == ns) {
                let matches = match kind.as_str() {
                    "" => true,
                    "job" => matches!(w.kind, WorkloadKind::Job | WorkloadKind::CronJob),
                    k => w.kind.as_str() == k,
                };
                if matches {
                    workloads.push(WorkloadLink {
                        kind: w.kind.as_str(),
                        namespace: w.namespace.clone(),
                        name: w.name.clone(),
                        via: String::new(),
                    });
                }
            }
        }
    }
    let mut drift = Vec::new();
    for w in state.store.revised_workloads(id, namespace.as_deref(), MAX_DRIFT_LINES).await? {
        let week = jiff::SignedDuration::from_hours(24 * 7);
        let Some(d) = super::api::drift_of(&state, id, &inv, &w, week).await? else { continue };
        drift.push(DriftLine {
            revision: d.revision,
            recorded_at: d.recorded_at,
            connections_since: d.connections_since,
            would_block: d.would_block.iter().map(|c| c.summary()).collect(),
            unused_rules: d
                .unused_rules()
                .map(|r| format!("{} spec.{}[{}]", r.policy, r.direction.as_str(), r.rule))
                .collect(),
            drift_url: format!("{}/drift", api_base(&cluster, &w)),
            link: WorkloadLink {
                kind: w.kind.as_str(),
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                via: String::new(),
            },
        });
    }
    let since = match q.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_WINDOW,
        Some(s) => WINDOWS.iter().copied().find(|w| *w == s).ok_or_else(|| {
            ApiError::BadRequest(format!("since: {s:?} is not one of the map's windows ({})", WINDOWS.join(", ")))
        })?,
    };
    Ok(ClusterPage {
        windows: WINDOWS,
        since,
        drift,
        scripts: SCRIPTS,
        cluster,
        namespaces: namespaces
            .iter()
            .map(|n| (n.clone(), per_namespace.get(n.as_str()).copied().unwrap_or(0)))
            .collect(),
        namespace,
        kinds: KINDS.to_vec(),
        kind,
        workloads,
        services,
    })
}

#[derive(Deserialize, Default, Clone)]
pub struct WindowQuery {
    pub since: Option<String>,
    pub until: Option<String>,
}

/// The window's instants, relative bounds counted back from the cluster's newest flow.
pub async fn window(
    state: &AppState,
    cluster: i32,
    q: &WindowQuery,
) -> Result<(Option<jiff::Timestamp>, Option<jiff::Timestamp>), ApiError> {
    let parse = |v: &Option<String>, what: &str| -> Result<Option<TimeBound>, ApiError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e: crate::topology::TimeBoundError| ApiError::BadRequest(format!("{what}: {e}"))),
        }
    };
    let since = parse(&q.since, "since")?.or(Some(TimeBound::Ago(jiff::SignedDuration::from_hours(24))));
    let until = parse(&q.until, "until")?;
    let newest = state.store.newest_flow(cluster).await?;
    let (since, until) = (since.and_then(|b| b.resolve(newest)), until.and_then(|b| b.resolve(newest)));
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::BadRequest(format!(
                "the window ends ({u}) before it starts ({s}): swap since and until"
            )));
        }
        if s == u {
            return Err(ApiError::BadRequest(format!("the window is empty: it starts and ends at {s}")));
        }
    }
    Ok((since, until))
}

/// The review of one workload in a window.
pub async fn review_workload(
    state: &AppState,
    cluster: &str,
    w: &WorkloadRef,
    q: &WindowQuery,
) -> Result<(i32, Reviewed), ApiError> {
    let id = state.cluster(cluster).await?;
    let inv = state.inventory(id).await?;
    let (since, until) = window(state, id, q).await?;
    let r = review(&state.store, id, &inv, Target::Workload(w), since, until, &Decisions::default(), true).await?;
    if !r.decisions.iter().any(|(t, _, _)| t == w) && !r.connections.catalog.workloads.contains_key(w) {
        return Err(ApiError::NotFound(format!("no workload {w} in cluster {cluster:?}")));
    }
    Ok((id, r))
}

#[derive(Template, WebTemplate)]
#[template(path = "review.html")]
pub struct ReviewPartial {
    pub tables: Vec<Table>,
    pub decisions_url: String,
    pub policy_url: String,
    pub namespace_policy_url: String,
    /// Where a table too long to render in full can be read whole.
    pub connections_url: String,
    pub version: i32,
    pub trusted: Vec<TrustInfo>,
    pub trust_input: String,
    pub trust_error: Option<String>,
    /// Trusted DNS names, their addresses, and the field to add one.
    pub trusted_names: Vec<NameInfo>,
    pub name_input: String,
    pub name_error: Option<String>,
    /// The dialect the YAML is in (`kubernetes`, `cilium`), and the switch's links.
    pub dialect: &'static str,
    pub dialects: Vec<DialectLink>,
    pub yaml: String,
    pub verification: String,
    pub verified: bool,
    pub warnings: Vec<String>,
    pub message: Option<String>,
    pub conflict: bool,
    /// The map's graph from the same review, for map.js to draw without asking again (escaped
    /// for a `<script type="application/json">`).
    pub graph_json: String,
    /// What applying the policy would do, in a sentence, and the connections it would break.
    pub simulation: String,
    /// The proposal against the policies deciding today, in counts.
    pub compared: String,
    /// The proposal beside the policies selecting these pods today, rule by rule
    /// ([`crate::policy::diff`]), and as a YAML line diff.
    pub policy_diff: crate::policy::diff::PolicyDiff,
    /// Each rule of the workload's NetworkPolicy with the observed connections that justify it
    /// ([`crate::policy::provenance`]), expandable under the YAML.
    pub provenance: Vec<crate::policy::provenance::RuleProvenance>,
    pub yaml_diff: Vec<crate::policy::diff::DiffLine>,
    pub breaks: Vec<String>,
    /// Safety warnings about this policy (loud first): `policy::safety`.
    /// (loud, the warning, whether it offers leaving Ingress out: an exposed workload's).
    pub safety: Vec<(bool, String, bool)>,
}

/// One choice of the Generated Policy tab's dialect switch: a plain link to the page in that
/// dialect (so it works without scripts too).
pub struct DialectLink {
    pub name: &'static str,
    pub kind: &'static str,
    /// The page in that dialect, on the policy tab.
    pub url: String,
    /// The same page for htmx, which swaps the review in from it.
    pub fetch_url: String,
    pub selected: bool,
}

/// JSON as the text of a `<script type="application/json">`: nothing in it can end the element
/// or start markup, whatever the cluster's names hold.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[derive(Template, WebTemplate)]
#[template(path = "workload.html")]
pub struct WorkloadPage {
    cluster: String,
    workload: WorkloadRef,
    scripts: &'static [Script],
    windows: &'static [&'static str],
    since: String,
    until: String,
    graph_url: String,
    /// Said when the window reaches before the hourly horizon, and is read in whole days there.
    window_note: Option<String>,
    /// The window as it was resolved, in UTC ([`resolved_window`]).
    window_text: String,
    /// Why the window asked for could not be read, said beside its fields; which field is wrong.
    window_error: Option<String>,
    since_invalid: bool,
    until_invalid: bool,
    /// The review partial, rendered: the page is the partial in its frame, with one review.
    review: String,
}

/// The window a query resolved to, in words: `2026-11-30 20:20 – 2026-12-01 20:20 UTC`, its end
/// the newest flow when the query gives none (relative windows count back from it).
pub fn resolved_window(
    since: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
    newest: Option<jiff::Timestamp>,
) -> String {
    let at = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M").to_string();
    let start = since.map_or_else(|| "the first flow".to_string(), at);
    let end = match (until, newest) {
        (Some(u), _) => format!("{} UTC", at(u)),
        (None, Some(n)) => format!("{} UTC (the newest flow)", at(n)),
        (None, None) => "now (no flow stored yet)".to_string(),
    };
    format!("Showing {start} – {end}")
}

/// What to say of a window that starts before the hourly aggregates were rolled up to
/// (`rolled`): its start is read as the whole day.
pub fn window_note(since: Option<jiff::Timestamp>, rolled: Option<jiff::Timestamp>) -> Option<String> {
    let (since, rolled) = (since?, rolled?);
    if since >= rolled {
        return None;
    }
    let day = since.strftime("%Y-%m-%d");
    Some(format!(
        "Hourly detail is kept back to {} UTC: before that the window is read in whole days (UTC), from {day} 00:00 UTC.",
        rolled.strftime("%Y-%m-%d %H:%M")
    ))
}

/// A workload's review page.
pub fn workload_url(cluster: &str, w: &WorkloadRef) -> String {
    format!("/clusters/{}/namespaces/{}/workloads/{}/{}", enc(cluster), enc(&w.namespace), w.kind, enc(&w.name))
}

pub(super) fn enc(s: &str) -> String {
    // Names are DNS-1123 (checked on the way in), so only the window strings need escaping.
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn api_base(cluster: &str, w: &WorkloadRef) -> String {
    format!("/api/v1/clusters/{}/namespaces/{}/workloads/{}/{}", enc(cluster), enc(&w.namespace), w.kind, enc(&w.name))
}

fn window_query(q: &WindowQuery) -> String {
    let mut parts = vec![format!("since={}", enc(q.since.as_deref().unwrap_or(DEFAULT_WINDOW)))];
    if let Some(u) = q.until.as_deref().filter(|u| !u.is_empty()) {
        parts.push(format!("until={}", enc(u)));
    }
    parts.join("&")
}

/// The window's query with the dialect, when it is not the default.
fn dialect_query(q: &WindowQuery, dialect: Dialect) -> String {
    match dialect {
        Dialect::Kubernetes => window_query(q),
        d => format!("{}&dialect={d}", window_query(q)),
    }
}

/// `w`'s proposed NetworkPolicy beside the cluster's policies selecting its pods: rule entries
/// added, removed and kept, and the YAML line diff (empty when nothing selects them today).
pub fn proposal_diff(
    inv: &crate::inventory::Inventory,
    r: &Reviewed,
    w: &WorkloadRef,
) -> (crate::policy::diff::PolicyDiff, Vec<crate::policy::diff::DiffLine>) {
    use crate::policy::diff;
    let today = diff::selecting(inv, &r.connections.catalog, w);
    let proposed: Vec<_> = r.generation.policies_of(Some(w)).collect();
    let d = diff::diff(&today, &proposed);
    let lines =
        if today.is_empty() { Vec::new() } else { diff::text_diff(&diff::yaml_of(&today), &diff::yaml_of(&proposed)) };
    (d, lines)
}

/// The activity strips of `w`'s connections over the resolved window `[since, until]`, its end
/// the newest flow when open (none before the first flow is stored).
pub async fn strips(
    state: &AppState,
    id: i32,
    w: &WorkloadRef,
    (since, until): (Option<jiff::Timestamp>, Option<jiff::Timestamp>),
) -> Result<HashMap<crate::topology::ConnKey, report::Strip>, ApiError> {
    let end = match until {
        Some(u) => Some(u),
        None => state.store.newest_flow(id).await?,
    };
    let bins = match (since, end) {
        (Some(s), Some(e)) => report::StripBins::new(crate::store::micros(s), crate::store::micros(e)),
        _ => None,
    };
    match bins {
        Some(b) => Ok(state.store.activity(id, w, &b).await?),
        None => Ok(HashMap::new()),
    }
}

/// Each row's strip, found by its connection.
fn with_strips(mut rows: Vec<Row>, strips: &HashMap<crate::topology::ConnKey, report::Strip>) -> Vec<Row> {
    if strips.is_empty() {
        return rows;
    }
    for row in &mut rows {
        let (Some(port), Ok(protocol)) = (crate::model::Port::new(row.port), row.protocol.parse()) else { continue };
        let key = crate::topology::ConnKey { src: row.src.clone(), dst: row.dst.clone(), port, protocol };
        row.activity = strips.get(&key).cloned();
    }
    rows
}

/// Builds the review partial from a review, its policy in `dialect`, its rows with their activity
/// strips ([`strips`]).
pub fn partial(
    state_inv: &crate::inventory::Inventory,
    cluster: &str,
    w: &WorkloadRef,
    q: &WindowQuery,
    r: &Reviewed,
    dialect: Dialect,
    strips: &HashMap<crate::topology::ConnKey, report::Strip>,
) -> ReviewPartial {
    // What applying this workload's policy over the cluster's own would do, shown in the tables,
    // on the map and above the YAML.
    let sim = crate::policy::simulate::proposal(state_inv, &r.connections, &r.generation, Some(w));
    let rows = with_strips(
        report::with_simulation(
            report::rows(&r.generation.review, &r.connections, Some(w)),
            &r.generation.review,
            &sim,
        ),
        strips,
    );
    // The first few are listed; the tables' "If applied" column has them all.
    let mut breaks: Vec<String> =
        sim.would_break().take(MAX_LISTED_BREAKS).map(|s| report::CheckRow::new(s).summary()).collect();
    let breaking = sim.would_break().count();
    let unlisted = breaking.saturating_sub(MAX_LISTED_BREAKS);
    if unlisted > 0 {
        breaks.push(format!("… and {unlisted} more: see \"If applied\" in the tables"));
    }
    let window_words =
        match (q.since.as_deref().filter(|s| !s.is_empty()), q.until.as_deref().filter(|s| !s.is_empty())) {
            (Some(s), None) if s.parse::<TimeBound>().is_ok_and(|b| matches!(b, TimeBound::Ago(_))) => {
                format!("in the last {s}")
            }
            (None, None) => format!("in the last {DEFAULT_WINDOW}"),
            _ => "in this window".to_string(),
        };
    let simulation = match breaking {
        _ if sim.rows.is_empty() => format!("No connection of this workload was seen {window_words}."),
        0 => format!(
            "Applying this policy over the cluster's {} policies blocks none of the {} connections seen {window_words}.",
            state_inv.policies.len(),
            sim.rows.len()
        ),
        1 => format!("Applying this policy blocks 1 connection seen {window_words}:"),
        n => format!("Applying this policy blocks {n} connections seen {window_words}:"),
    };
    // The semantic diff over the traffic seen: what changes against the policies deciding today.
    let counts = sim.counts();
    let n = |e| counts.get(&e).copied().unwrap_or(0);
    let today = sim.deciding_today();
    let compared = if sim.rows.is_empty() {
        String::new()
    } else {
        use crate::policy::simulate::Effect;
        format!(
            "Against {}: {} connections newly allowed, {} newly blocked, {} unchanged ({} allowed, {} blocked already).",
            if today.is_empty() {
                "no policy (nothing isolates these pods today)".to_string()
            } else {
                format!("the policies deciding today ({})", today.join(", "))
            },
            n(Effect::NewlyAllowed),
            n(Effect::WouldBreak),
            n(Effect::Allowed) + n(Effect::Blocked),
            n(Effect::Allowed),
            n(Effect::Blocked),
        )
    };
    let (policy_diff, yaml_diff) = proposal_diff(state_inv, r, w);
    let (ingress, egress): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| r.direction == Direction::Ingress);
    let (decisions, version) =
        r.decisions.iter().find(|(t, _, _)| t == w).map(|(_, d, v)| (d.clone(), *v)).unwrap_or_default();
    let all_rows: Vec<Row> = ingress.iter().chain(egress.iter()).cloned().collect();
    let (yaml, policies, verification, mut warnings) = match Spelled::of(r, state_inv, dialect, Some(w)) {
        Ok(s) => (s.yaml, s.policies, s.verification, s.warnings),
        Err(e) => (format!("# {e}"), 0, r.verification.clone(), Vec::new()),
    };
    warnings.splice(0..0, r.generation.warnings.iter().cloned());
    let v = &verification;
    let verification_text = if policies == 0 {
        "No policy: see the notes below.".to_string()
    } else {
        format!(
            "Verified against the observed traffic: {} kept connections allowed, {} excluded connections blocked, {} mismatches.",
            v.allowed,
            v.blocked,
            v.mismatches.len()
        )
    };
    let base = workload_url(cluster, w);
    let dialects = Dialect::ALL
        .iter()
        .map(|d| DialectLink {
            name: d.as_str(),
            kind: d.kind(),
            url: format!("{base}?{}#tab-policy", dialect_query(q, *d)),
            fetch_url: format!("{base}?{}", dialect_query(q, *d)),
            selected: *d == dialect,
        })
        .collect();
    ReviewPartial {
        tables: vec![
            Table::new(Direction::Ingress, ingress, MAX_TABLE_ROWS, &decisions),
            Table::new(Direction::Egress, egress, MAX_TABLE_ROWS, &decisions),
        ],
        decisions_url: format!("{base}/decisions?{}", dialect_query(q, dialect)),
        policy_url: format!("{}/policy.yaml?{}", api_base(cluster, w), dialect_query(q, dialect)),
        connections_url: format!("{}/connections?{}", api_base(cluster, w), window_query(q)),
        namespace_policy_url: format!(
            "/api/v1/clusters/{}/namespaces/{}/policy.yaml?{}",
            enc(cluster),
            enc(&w.namespace),
            dialect_query(q, dialect)
        ),
        version,
        trusted: report::trust_info(&decisions, &all_rows, state_inv),
        trust_input: String::new(),
        trust_error: None,
        trusted_names: report::name_info(&decisions, &all_rows, &r.connections.names),
        name_input: String::new(),
        name_error: None,
        dialect: dialect.as_str(),
        dialects,
        yaml,
        verification: verification_text,
        verified: v.ok() && policies > 0,
        warnings,
        message: None,
        conflict: false,
        graph_json: script_json(&report::graph(&r.generation.review, &r.connections, Some(w), Some(&sim))),
        simulation,
        compared,
        policy_diff,
        yaml_diff,
        provenance: crate::policy::provenance::provenance(&r.generation, state_inv, &r.connections)
            .into_iter()
            .filter(|p| p.workload == w.to_string())
            .collect(),
        breaks,
        safety: crate::policy::safety::warnings(&r.generation, state_inv, &r.connections, None)
            .into_iter()
            .filter(|s| s.workload == w.to_string())
            .map(|s| {
                let offer = matches!(s.kind, "exposed" | "ingress-backend")
                    && !decisions.leave_out.contains(&Direction::Ingress);
                (s.loud, s.message, offer)
            })
            .collect(),
    }
}

pub async fn workload(
    State(state): State<AppState>,
    _viewer: Viewer,
    DialectQuery(dialect): DialectQuery,
    WorkloadPath { cluster, workload: w }: WorkloadPath,
    super::context::Window(asked): super::context::Window,
) -> Result<Response, ApiError> {
    // A window the page cannot read (a typo, a reversed or empty range) is said beside its
    // fields, which keep what was typed, and the default window is shown meanwhile.
    let id = state.cluster(&cluster).await?;
    let (q, (since, until), window_error) = match window(&state, id, &asked).await {
        Ok(bounds) => (asked.clone(), bounds, None),
        Err(ApiError::BadRequest(m)) => {
            let q = WindowQuery::default();
            let bounds = window(&state, id, &q).await?;
            (q, bounds, Some(m))
        }
        Err(e) => return Err(e),
    };
    let (id, r) = review_workload(&state, &cluster, &w, &q).await?;
    let inv = state.inventory(id).await?;
    let strips = strips(&state, id, &w, (since, until)).await?;
    let review = partial(&inv, &cluster, &w, &q, &r, dialect, &strips)
        .render()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let window_note = window_note(since, state.store.hourly_removed_before(id).await?);
    let mut window_text = resolved_window(since, until, state.store.newest_flow(id).await?);
    if window_error.is_some() {
        window_text = format!("{window_text} (the last {DEFAULT_WINDOW}, until the window above is mended)");
    }
    let field_error = |field: &str| {
        window_error.as_deref().is_some_and(|e| !e.starts_with(if field == "since" { "until:" } else { "since:" }))
    };
    let page = WorkloadPage {
        window_note,
        window_text,
        graph_url: format!("{}/graph?{}", api_base(&cluster, &w), window_query(&q)),
        since_invalid: field_error("since"),
        until_invalid: field_error("until"),
        window_error: window_error.clone(),
        cluster,
        workload: w,
        scripts: SCRIPTS,
        windows: WINDOWS,
        since: asked.since.clone().unwrap_or_else(|| DEFAULT_WINDOW.to_string()),
        until: asked.until.clone().unwrap_or_default(),
        review,
    };
    let status = if window_error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok((status, page).into_response())
}

#[derive(Deserialize)]
pub struct DecisionForm {
    version: i32,
    peer: Option<String>,
    allow: Option<String>,
    trust_cidr: Option<String>,
    untrust: Option<String>,
    /// `reset`: back to the defaults (every in-cluster peer allowed, nothing external trusted).
    reset: Option<String>,
    trust_name: Option<String>,
    untrust_name: Option<String>,
    /// `ingress` or `egress`: leave that direction out of the policy.
    leave_out: Option<String>,
    /// `ingress` or `egress`: isolate that direction again.
    isolate: Option<String>,
    /// Undo the last change: the decisions of the version before, as a new version.
    undo: Option<String>,
}

/// A value typed into a trust field: the decisions with it added, or `None` with the error and
/// (the first 100 characters of) what was typed kept for the field.
fn typed<T: std::str::FromStr>(
    raw: &str,
    current: &Decisions,
    error: &mut Option<String>,
    input: &mut String,
    add: impl FnOnce(&mut Decisions, T),
) -> Option<Decisions>
where
    T::Err: std::fmt::Display,
{
    match raw.parse::<T>() {
        Ok(v) => {
            let mut d = current.clone();
            add(&mut d, v);
            Some(d)
        }
        Err(e) => {
            *error = Some(e.to_string());
            *input = raw.chars().take(100).collect();
            None
        }
    }
}

/// A change from the review page. htmx requests get the refreshed review partial (with any
/// error next to its field); plain form posts are redirected back to the page.
pub async fn post_decision(
    writer: Writer,
    State(state): State<AppState>,
    WorkloadPath { cluster, workload: w }: WorkloadPath,
    Window(q): Window,
    DialectQuery(dialect): DialectQuery,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let htmx = headers.contains_key("hx-request");
    let id = state.cluster(&cluster).await?;
    let current = state.store.decisions(id, &w).await?;
    let mut trust_error = None;
    let mut trust_input = String::new();
    let (mut name_error, mut name_input) = (None, String::new());
    let next: Option<Decisions> = if let Some(peer) = form.peer.as_deref() {
        let peer =
            Endpoint::from_key(peer).ok_or_else(|| ApiError::BadRequest(format!("peer: {peer:?} is not a peer")))?;
        let allow = form.allow.as_deref() == Some("true");
        Some(current.decisions.toggle(&peer, allow))
    } else if let Some(raw) = form.trust_cidr.as_deref() {
        typed(raw, &current.decisions, &mut trust_error, &mut trust_input, |d, c: Cidr| {
            d.trust.insert(c);
        })
    } else if let Some(raw) = form.untrust.as_deref() {
        let c: Cidr = raw.parse().map_err(|e: crate::model::ModelError| ApiError::BadRequest(e.to_string()))?;
        let mut d = current.decisions.clone();
        d.trust.remove(&c);
        Some(d)
    } else if let Some(raw) = form.trust_name.as_deref() {
        typed(raw.trim(), &current.decisions, &mut name_error, &mut name_input, |d, n: DnsName| {
            d.trust_names.insert(n);
        })
    } else if let Some(raw) = form.untrust_name.as_deref() {
        let n: DnsName = raw.parse().map_err(|e: crate::model::ModelError| ApiError::BadRequest(e.to_string()))?;
        let mut d = current.decisions.clone();
        d.trust_names.remove(&n);
        Some(d)
    } else if let Some(raw) = form.leave_out.as_deref() {
        let dir: Direction = raw.parse().map_err(|e: String| ApiError::BadRequest(format!("leave_out: {e}")))?;
        if current.decisions.leave_out.iter().any(|d| *d != dir) {
            return Err(ApiError::Unprocessable(
                "leave_out: the other direction is left out already; a policy cannot leave out both (isolate it again first)"
                    .to_string(),
            ));
        }
        let mut d = current.decisions.clone();
        d.leave_out.insert(dir);
        Some(d)
    } else if let Some(raw) = form.isolate.as_deref() {
        let dir: Direction = raw.parse().map_err(|e: String| ApiError::BadRequest(format!("isolate: {e}")))?;
        let mut d = current.decisions.clone();
        d.leave_out.remove(&dir);
        Some(d)
    } else if form.undo.is_some() {
        if current.version == 0 {
            return Err(ApiError::Unprocessable("undo: nothing was decided yet".into()));
        }
        let before = state.store.decisions_at(id, &w, current.version - 1).await?.ok_or_else(|| {
            ApiError::Unprocessable(format!("undo: version {} is not in the history", current.version - 1))
        })?;
        Some(before)
    } else if form.reset.is_some() {
        Some(Decisions::default())
    } else {
        return Err(ApiError::BadRequest(
            "nothing to change: expected peer, trust_cidr, untrust, trust_name, untrust_name, leave_out, isolate, undo or reset"
                .into(),
        ));
    };
    let mut message = None;
    let mut conflict = false;
    if let Some(next) = next {
        match state.store.put_decisions(id, &w, &next, form.version, &writer.name).await {
            Ok(version) => {
                message = Some(if form.undo.is_some() {
                    format!("Undone: version {version} has the decisions of version {} again.", current.version - 1)
                } else {
                    format!("Saved as version {version}.")
                });
            }
            Err(crate::store::StoreError::Conflict { .. }) if htmx => {
                conflict = true;
                message = Some(
                    "Someone else changed these decisions since you loaded the page; your change was not applied. The page now shows their version."
                        .to_string(),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !htmx {
        if let Some(e) = trust_error.or(name_error) {
            return Err(ApiError::Unprocessable(e));
        }
        let back = format!("{}?{}", workload_url(&cluster, &w), dialect_query(&q, dialect));
        return Ok(Redirect::to(&back).into_response());
    }
    let (id, r) = review_workload(&state, &cluster, &w, &q).await?;
    let inv = state.inventory(id).await?;
    let strips = strips(&state, id, &w, window(&state, id, &q).await?).await?;
    let mut p = partial(&inv, &cluster, &w, &q, &r, dialect, &strips);
    p.trust_error = trust_error;
    p.trust_input = trust_input;
    p.name_error = name_error;
    p.name_input = name_input;
    p.message = message;
    p.conflict = conflict;
    let mut resp = p.into_response();
    // After the swap, so that map.js finds the new graph in the partial and asks for nothing.
    resp.headers_mut()
        .insert("hx-trigger-after-swap", axum::http::HeaderValue::from_static("flowgate:decisions-changed"));
    Ok(resp)
}

/// The review of every workload of a namespace in a window.
pub async fn review_namespace(
    state: &AppState,
    cluster: &str,
    ns: &str,
    q: &WindowQuery,
) -> Result<Reviewed, ApiError> {
    crate::model::Name::namespace(ns).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let id = state.cluster(cluster).await?;
    let inv = state.inventory(id).await?;
    let (since, until) = window(state, id, q).await?;
    let target = Target::Namespace { namespace: ns, only: None };
    Ok(review(&state.store, id, &inv, target, since, until, &Decisions::default(), true).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolved_window_is_said_in_utc() {
        let t = |s: &str| Some(s.parse::<jiff::Timestamp>().unwrap());
        assert_eq!(
            resolved_window(t("2026-11-30T20:20:00Z"), None, t("2026-12-01T20:20:31Z")),
            "Showing 2026-11-30 20:20 – 2026-12-01 20:20 UTC (the newest flow)"
        );
        assert_eq!(
            resolved_window(t("2026-11-30T00:00:00Z"), t("2026-11-30T06:00:00Z"), t("2026-12-01T20:20:31Z")),
            "Showing 2026-11-30 00:00 – 2026-11-30 06:00 UTC"
        );
        assert_eq!(resolved_window(None, None, None), "Showing the first flow – now (no flow stored yet)");
    }

    #[test]
    fn tables_render_at_most_their_cap() {
        let ip = |s: &str| Endpoint::External { ip: s.parse().unwrap() };
        let row = Row {
            workload: "deployment/shop/web".into(),
            direction: Direction::Ingress,
            peer: "p".into(),
            peer_class: "in-cluster",
            peer_key: "p".into(),
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            port: 80,
            protocol: "TCP",
            processes: vec![],
            services: vec![],
            flows: 1,
            dropped: 0,
            first_seen: jiff::Timestamp::UNIX_EPOCH,
            last_seen: jiff::Timestamp::UNIX_EPOCH,
            status: "allowed",
            reason: None,
            decision: String::new(),
            cilium_decision: None,
            allowed: true,
            editable: true,
            undecided: false,
            stale: false,
            effect: None,
            effect_reason: None,
            names: vec![],
            activity: None,
        };
        let none = Decisions::default();
        let t = Table::new(Direction::Ingress, vec![row.clone(); 5], 3, &none);
        assert_eq!((t.rows.len(), t.more), (3, 2));
        let t = Table::new(Direction::Ingress, vec![row; 2], 3, &none);
        assert_eq!((t.rows.len(), t.more), (2, 0));
    }
}
