//! The web layer: axum routers per feature, one error type, authentication. Handlers parse the
//! request, call the store or the core, and render; they compute nothing themselves.
//!
//! Bounds: pages and the API answer within [`Limits::request_timeout`] (503 past it); ingests
//! are not timed as a whole but take a slot each ([`DEFAULT_MAX_INGESTS`], 429 beyond) and bound
//! the client's sending time (`ingest`); [`serve`] bounds headers and connections. Background
//! loops (retention, the demo feed) outlive a database outage and stop when told to.

pub mod api;
pub mod assets;
pub mod auth;
pub mod context;
pub mod demo;
pub mod error;
pub mod guardrails;
pub mod ingest;
pub mod limit;
pub mod metrics;
pub mod pages;
pub mod serve;
pub mod service;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::{Mutex, Semaphore};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

pub use crate::ingest::Clock;
use crate::inventory::Inventory;
use crate::retention::Retention;
use crate::store::Store;
use crate::store::retention::Clusters;

/// Largest accepted request body, after decompression.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Ingests at once. Each parses on two threads and writes two batches at a time, so four keep
/// two cores and PostgreSQL busy; more would only share them (and memory: a few tens of MB each).
pub const DEFAULT_MAX_INGESTS: usize = 4;

/// Connections `serve` needs with `max_ingests` slots: every ingest's writers at once
/// ([`crate::ingest::WRITERS`]) and as many again as the default for everything else (pages, the
/// API, sessions, the demo feed, retention), so that neither waits out the pool's acquire
/// timeout for the other. PostgreSQL allows 100 by default.
pub fn pool_size(max_ingests: usize) -> u32 {
    let writers = max_ingests.saturating_mul(crate::ingest::WRITERS);
    u32::try_from(writers).unwrap_or(u32::MAX).saturating_add(crate::store::DEFAULT_CONNECTIONS)
}

/// How long the server waits, for itself and for clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Pages and the API (not ingests), from the request to the response's headers: past it the
    /// answer is 503. The slowest review measured (a namespace of 2,000 workloads) takes seconds.
    pub request_timeout: Duration,
    /// The longest wait for the next bytes of an ingest's body (408 after it).
    pub ingest_idle: Duration,
    /// The most time in all an ingest's body may take to arrive, not counting the time the
    /// server spends writing meanwhile: 64 MiB in 5 minutes is 220 KB/s.
    pub ingest_body: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(30),
            ingest_idle: Duration::from_secs(30),
            ingest_body: Duration::from_secs(300),
        }
    }
}

/// The inventory of a cluster as last loaded, and the store state it was loaded at.
pub struct CachedInventory {
    pub stamp: (i64, Option<i64>),
    pub inventory: Arc<Inventory>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub token: Arc<str>,
    pub body_limit: usize,
    pub inventories: Arc<Mutex<HashMap<i32, CachedInventory>>>,
    /// How long sessions last and whether their cookie is `Secure`; the sessions are in the store.
    pub sessions: session::SessionPolicy,
    pub login_limit: Arc<std::sync::Mutex<limit::LoginLimiter>>,
    /// The flows kept (and the retention `serve` applies to every cluster).
    pub retention: Retention,
    /// How ingested batches are written (`--keep-flows`).
    pub write: crate::store::ingest::WriteOptions,
    /// What time it is for ingests, retention runs and sessions.
    pub clock: Clock,
    /// One permit per ingest running ([`DEFAULT_MAX_INGESTS`]; `serve --max-ingests`).
    pub ingest_slots: Arc<Semaphore>,
    pub limits: Limits,
    /// What `/metrics` shows; ingests, watchers and the request layer count into it.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// With `serve --kube`: the watchers' readers, whose first lists `/readyz` waits for.
    pub watching: Option<crate::watch::Synced>,
}

impl AppState {
    pub fn new(store: Store, token: impl Into<Arc<str>>) -> AppState {
        AppState {
            store,
            token: token.into(),
            body_limit: DEFAULT_BODY_LIMIT,
            inventories: Arc::default(),
            sessions: session::SessionPolicy::default(),
            login_limit: Arc::default(),
            retention: Retention::default(),
            write: Default::default(),
            clock: Clock::system(),
            ingest_slots: Arc::new(Semaphore::new(DEFAULT_MAX_INGESTS)),
            limits: Limits::default(),
            metrics: Arc::default(),
            watching: None,
        }
    }

    /// How this server ingests: what it keeps, counted from its clock now.
    pub fn ingest_options(&self, format: crate::flows::FlowFormat, threads: usize) -> crate::ingest::Options {
        crate::ingest::Options { format, threads, retention: self.retention, now: self.clock.now(), write: self.write }
    }

    /// The id of the cluster a URL names: 400 for a name no cluster can have (checked here, at
    /// the edge, like the namespace and workload of a path), 404 for an unknown one.
    pub async fn cluster(&self, name: &str) -> Result<i32, error::ApiError> {
        crate::model::NameRule::Dns1123Subdomain
            .check(name)
            .map_err(|e| error::ApiError::BadRequest(format!("cluster: {e}")))?;
        Ok(self.store.cluster_id(name, false).await?)
    }

    /// The cluster's inventory, reloaded only when an import changed the stored objects.
    pub async fn inventory(&self, cluster: i32) -> crate::store::Result<Arc<Inventory>> {
        let stamp = self.store.inventory_stamp(cluster).await?;
        let mut cache = self.inventories.lock().await;
        if let Some(c) = cache.get(&cluster)
            && c.stamp == stamp
        {
            return Ok(c.inventory.clone());
        }
        let inventory = Arc::new(self.store.load_inventory(cluster).await?);
        cache.insert(cluster, CachedInventory { stamp, inventory: inventory.clone() });
        Ok(inventory)
    }
}

/// No inline script; forms only post here (an injected `<form>` cannot send its fields away) and
/// no `<base>` may move relative URLs elsewhere; no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                       form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The whole application: each feature's router ([`pages::router`], [`api::router`],
/// [`ingest::router`], the probes, [`metrics::router`], the static files) with the layers they
/// share, every request timed by [`metrics::track`].
pub fn router(state: AppState) -> Router {
    let pages = pages::router();
    let api = api::router().merge(probes());
    // Ingests are bounded by their slots and their body's pace, not by a total time (web::ingest).
    let ingest = ingest::router();
    let timeout = TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, state.limits.request_timeout);
    pages
        .merge(api)
        .merge(metrics::router())
        .layer(timeout)
        .merge(ingest)
        // Pages, JSON and YAML carry what the token lets one read: no cache keeps them. Only the
        // routes above get this (a layer covers the routes added before it); static files keep
        // their caching.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        // Compressed for browsers that ask (map.js and cytoscape shrink about 4x).
        .route("/static/{*path}", get(assets::serve).layer(tower_http::compression::CompressionLayer::new().gzip(true)))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // The login URL carries the token: no request to another site says where it came from.
        // Not `no-referrer`: with it, Chrome sends `Origin: null` on this site's own form posts,
        // and the same-origin check could not tell them from another site's.
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        // Outermost, so that a request's time includes every layer above.
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

/// Seeds the demo cluster if the store lacks it: its inventory and a day of traffic up to `now`
/// (which is also the ingest's now). Returns the cluster's id.
pub async fn seed_demo(state: &AppState, now: jiff::Timestamp) -> Result<i32, crate::ingest::IngestError> {
    use crate::ingest::{Meter, Source, ingest_metered};
    let existed = state.store.clusters().await?.iter().any(|c| c == demo::CLUSTER);
    let id = state.store.cluster_id(demo::CLUSTER, true).await?;
    if !existed {
        let loaded = crate::inventory::parse_text(demo::INVENTORY, "demo inventory");
        state.store.import(id, &loaded.objects, now - demo::BACKFILL).await?;
        let inv = state.inventory(id).await?;
        let src = Source::Bytes { name: "demo backfill".into(), bytes: demo::backfill(now).into_bytes() };
        let options = crate::ingest::Options { now, ..state.ingest_options(crate::flows::FlowFormat::Ndjson, 1) };
        let meter = Meter::new(&state.metrics, crate::metrics::FlowSource::Demo);
        let r = ingest_metered(&state.store, id, inv, vec![src], &options, meter).await?;
        tracing::info!("demo: seeded cluster {} ({r})", demo::CLUSTER);
    }
    Ok(id)
}

/// Seeds the demo, then feeds it fresh flows every `every` ([`demo::TICK`]) until `stop`
/// completes (a tick in progress finishes first). A tick that fails (PostgreSQL away) is logged
/// and the next one tries again, seeding first if that never succeeded: the feed resumes by
/// itself after an outage.
pub async fn run_demo(state: AppState, every: Duration, stop: impl Future<Output = ()>) {
    use crate::ingest::{Meter, Source, ingest_metered};
    let started = state.clock.now();
    let mut seeded = None;
    let mut outage = Outage::new("demo feed");
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            _ = interval.tick() => {}
        }
        let result = async {
            let id = match seeded {
                Some(id) => id,
                None => *seeded.insert(seed_demo(&state, started).await?),
            };
            let inv = state.inventory(id).await?;
            let options = state.ingest_options(crate::flows::FlowFormat::Ndjson, 1);
            let t = options.now;
            // The stale dependency stays stale relative to when this process started.
            let src = Source::Bytes { name: "demo".into(), bytes: demo::tick(t, started.max(t)).into_bytes() };
            let meter = Meter::new(&state.metrics, crate::metrics::FlowSource::Demo);
            ingest_metered(&state.store, id, inv, vec![src], &options, meter).await.map(drop)
        }
        .await;
        outage.record(result);
    }
}

/// Applies the flow retention to every cluster now and then every `every`, until `stop`
/// completes (a pass in progress finishes first): a server that receives flows over HTTP (or
/// feeds the demo) would otherwise keep every day. A failed pass is logged and tried again at the
/// next one.
pub async fn run_retention(
    store: Store,
    retention: Retention,
    clock: Clock,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return,
            _ = interval.tick() => {}
        }
        match store.apply_retention(Clusters::All, clock.now(), &retention).await {
            Ok(removed) if !removed.is_empty() => tracing::info!("retention: {removed}"),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e}"),
        }
    }
}

/// A loop's failures, logged once when they start and once when they end rather than at every
/// tick of an outage (the demo ticks every 5 s).
struct Outage {
    what: &'static str,
    failing: bool,
}

impl Outage {
    fn new(what: &'static str) -> Outage {
        Outage { what, failing: false }
    }

    fn record<E: std::fmt::Display>(&mut self, result: Result<(), E>) {
        let failing = result.is_err();
        match (result, self.failing) {
            (Ok(()), true) => tracing::info!("{}: resumed", self.what),
            (Err(e), false) => tracing::warn!("{}: {e} (trying again at every tick)", self.what),
            (Err(e), true) => tracing::debug!("{}: {e}", self.what),
            (Ok(()), false) => {}
        }
        self.failing = failing;
    }
}

/// `/healthz` and `/readyz`.
fn probes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// Liveness: the process answers. It says nothing about PostgreSQL, so that an orchestrator does
/// not restart a server for a database that is down (`/readyz` says that).
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: PostgreSQL answers a query within the pool's acquire timeout, and (`serve --kube`)
/// every watched kind has listed once: before that, the server's view of the cluster is partial.
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    if let Err(e) = state.store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response();
    }
    let pending = state.watching.as_ref().map(crate::watch::Synced::pending).unwrap_or_default();
    if !pending.is_empty() {
        let kinds = pending.join(", ");
        return (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: Kubernetes objects not listed yet: {kinds}\n"))
            .into_response();
    }
    "ready\n".into_response()
}
