//! The web layer: axum routers per feature, one error type, authentication. Handlers parse the
//! request, call the store or the core, and render; they compute nothing themselves.

pub mod auth;
pub mod error;
pub mod ingest;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::Mutex;
use tower_http::decompression::RequestDecompressionLayer;

use crate::inventory::Inventory;
use crate::store::Store;

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
}

impl AppState {
    pub fn new(store: Store, token: impl Into<Arc<str>>) -> AppState {
        AppState { store, token: token.into(), body_limit: DEFAULT_BODY_LIMIT, inventories: Arc::default() }
    }

    /// The cluster's inventory, reloaded only when an import changed the stored objects.
    pub async fn inventory(&self, cluster: i32) -> crate::store::Result<Arc<Inventory>> {
        let stamp = self.store.inventory_stamp(cluster).await?;
        let mut cache = self.inventories.lock().await;
        if let Some(c) = cache.get(&cluster) {
            if c.stamp == stamp {
                return Ok(c.inventory.clone());
            }
        }
        let inventory = Arc::new(self.store.load_inventory(cluster).await?);
        cache.insert(cluster, CachedInventory { stamp, inventory: inventory.clone() });
        Ok(inventory)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/api/v1/clusters/{cluster}/flows",
            post(ingest::post_flows).layer(RequestDecompressionLayer::new().gzip(true)),
        )
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}
