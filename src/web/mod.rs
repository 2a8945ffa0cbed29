//! The web layer: axum routers per feature, one error type, authentication. Handlers parse the
//! request, call the store or the core, and render; they compute nothing themselves.

pub mod api;
pub mod assets;
pub mod auth;
pub mod demo;
pub mod error;
pub mod ingest;
pub mod limit;
pub mod pages;
pub mod session;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tokio::sync::Mutex;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use crate::ingest::Clock;
use crate::inventory::Inventory;
use crate::retention::Retention;
use crate::store::Store;
use crate::store::retention::Clusters;

/// Largest accepted request body, after decompression.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;

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
    /// What time it is for ingests, retention runs and sessions.
    pub clock: Clock,
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
            clock: Clock::system(),
        }
    }

    /// How this server ingests: what it keeps, counted from its clock now.
    pub fn ingest_options(&self, format: crate::flows::FlowFormat, threads: usize) -> crate::ingest::Options {
        crate::ingest::Options { format, threads, retention: self.retention, now: self.clock.now() }
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

pub fn router(state: AppState) -> Router {
    const W: &str = "/namespaces/{ns}/workloads/{kind}/{name}";
    Router::new()
        .route("/", get(pages::index))
        .route("/healthz", get(healthz))
        .route("/logout", post(auth::logout))
        .route("/clusters/{cluster}", get(pages::cluster))
        .route(&format!("/clusters/{{cluster}}{W}"), get(pages::workload))
        .route(&format!("/clusters/{{cluster}}{W}/decisions"), post(pages::post_decision))
        .route(
            "/api/v1/clusters/{cluster}/flows",
            post(ingest::post_flows).layer(RequestDecompressionLayer::new().gzip(true)),
        )
        .route(&format!("/api/v1/clusters/{{cluster}}{W}/connections"), get(api::connections))
        .route(&format!("/api/v1/clusters/{{cluster}}{W}/graph"), get(pages::graph))
        .route(&format!("/api/v1/clusters/{{cluster}}{W}/policy.yaml"), get(api::policy_yaml))
        .route(&format!("/api/v1/clusters/{{cluster}}{W}/decisions"), get(api::get_decisions).put(api::put_decisions))
        .route("/api/v1/clusters/{cluster}/namespaces/{ns}/policy.yaml", get(api::namespace_policy_yaml))
        .route("/api/v1/clusters/{cluster}/namespaces/{ns}/graph", get(pages::namespace_graph))
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
        .with_state(state)
}

/// Seeds the demo cluster if the store lacks it: its inventory and a day of traffic up to `now`
/// (which is also the ingest's now). Returns the cluster's id.
pub async fn seed_demo(state: &AppState, now: jiff::Timestamp) -> crate::store::Result<i32> {
    use crate::ingest::{Source, ingest_sources};
    let existed = state.store.clusters().await?.iter().any(|c| c == demo::CLUSTER);
    let id = state.store.cluster_id(demo::CLUSTER, true).await?;
    if !existed {
        let loaded = crate::inventory::parse_text(demo::INVENTORY, "demo inventory");
        state.store.import(id, &loaded.objects, now - demo::BACKFILL).await?;
        let inv = state.inventory(id).await?;
        let src = Source::Bytes { name: "demo backfill".into(), bytes: demo::backfill(now).into_bytes() };
        let options = crate::ingest::Options { now, ..state.ingest_options(crate::flows::FlowFormat::Ndjson, 1) };
        let r = ingest_sources(&state.store, id, inv, vec![src], &options).await?;
        tracing::info!("demo: seeded cluster {} ({r})", demo::CLUSTER);
    }
    Ok(id)
}

/// Seeds the demo, then keeps feeding it fresh flows every few seconds until the process ends.
pub async fn run_demo(state: AppState) -> crate::store::Result<()> {
    use crate::ingest::{Source, ingest_sources};
    let started = state.clock.now();
    let id = seed_demo(&state, started).await?;
    let mut interval = tokio::time::interval(demo::TICK.unsigned_abs());
    loop {
        interval.tick().await;
        let inv = state.inventory(id).await?;
        let options = state.ingest_options(crate::flows::FlowFormat::Ndjson, 1);
        let t = options.now;
        // The stale dependency stays stale relative to when this process started.
        let src = Source::Bytes { name: "demo".into(), bytes: demo::tick(t, started.max(t)).into_bytes() };
        if let Err(e) = ingest_sources(&state.store, id, inv, vec![src], &options).await {
            tracing::warn!("demo feed: {e}");
        }
    }
}

/// Applies the flow retention to every cluster now and then every `every`, until the process ends:
/// a server that receives flows over HTTP (or feeds the demo) would otherwise keep every day. A
/// failed pass is logged and tried again at the next one.
pub async fn run_retention(store: Store, retention: Retention, clock: Clock, every: std::time::Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        match store.apply_retention(Clusters::All, clock.now(), &retention).await {
            Ok(removed) if !removed.is_empty() => tracing::info!("retention: {removed}"),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: {e}"),
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}
