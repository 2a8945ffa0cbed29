//! Extractors for what the workload routes share: the workload a URL names, and its review in the
//! window the query asks for. Handlers take these instead of parsing paths and reviewing
//! themselves, so every route checks the same way and a request does one review.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;

use super::AppState;
use super::auth::Viewer;
use super::error::ApiError;
use super::pages::{WindowQuery, review_workload};
use crate::model::WorkloadRef;
use crate::policy::Dialect;
use crate::review::Reviewed;

/// `.../clusters/{cluster}/namespaces/{ns}/workloads/{kind}/{name}`, parsed and checked (a bad
/// name or kind is 400). Extracting it does not authenticate: the handler's `Viewer` or `Writer`
/// does.
pub struct WorkloadPath {
    pub cluster: String,
    pub workload: WorkloadRef,
}

impl FromRequestParts<AppState> for WorkloadPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Path((cluster, ns, kind, name)) =
            Path::<(String, String, String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let bad = |e: crate::model::ModelError| ApiError::BadRequest(e.to_string());
        let workload = WorkloadRef::parse(kind.parse().map_err(bad)?, &ns, &name).map_err(bad)?;
        Ok(WorkloadPath { cluster, workload })
    }
}

/// The window a query asks for (`?since=&until=`), for the page's links and the review.
pub struct Window(pub WindowQuery);

impl<S: Send + Sync> FromRequestParts<S> for Window {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<WindowQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Window(q))
    }
}

/// The policy dialect a query asks for (`?dialect=kubernetes|cilium`, NetworkPolicy when absent);
/// any other value is 400 with the ones there are.
pub struct DialectQuery(pub Dialect);

impl<S: Send + Sync> FromRequestParts<S> for DialectQuery {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(serde::Deserialize)]
        struct Q {
            dialect: Option<String>,
        }
        let Query(q) =
            Query::<Q>::from_request_parts(parts, state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        match q.dialect.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => Ok(DialectQuery(Dialect::default())),
            Some(d) => d
                .parse()
                .map(DialectQuery)
                .map_err(|e: crate::policy::DialectError| ApiError::BadRequest(e.to_string())),
        }
    }
}

/// A reader's review of one workload: authenticated (a token or a session, as [`Viewer`]) first,
/// then the workload's review in the query's window, once.
pub struct WorkloadReview {
    pub viewer: Viewer,
    pub cluster: String,
    /// The cluster's id in the store.
    pub id: i32,
    pub workload: WorkloadRef,
    pub window: WindowQuery,
    pub review: Reviewed,
    /// The stored inventory the review was made against (the cluster's policies, for simulation).
    pub inventory: std::sync::Arc<crate::inventory::Inventory>,
}

impl WorkloadReview {
    /// The review's decisions version of its workload (0 when none were stored).
    pub fn version(&self) -> i32 {
        self.review.decisions.iter().find(|(t, _, _)| *t == self.workload).map_or(0, |(_, _, v)| *v)
    }
}

impl FromRequestParts<AppState> for WorkloadReview {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Nobody unauthenticated gets a review done, or learns whether a workload exists.
        let viewer = Viewer::from_request_parts(parts, state).await?;
        let WorkloadPath { cluster, workload } = WorkloadPath::from_request_parts(parts, state).await?;
        let Window(window) = Window::from_request_parts(parts, state).await?;
        let (id, review) = review_workload(state, &cluster, &workload, &window).await?;
        let inventory = state.inventory(id).await?;
        Ok(WorkloadReview { viewer, cluster, id, workload, window, review, inventory })
    }
}

impl WorkloadReview {
    /// What applying the workload's proposed policy would do to its connections.
    pub fn simulation(&self) -> crate::policy::simulate::Simulation<'_> {
        crate::policy::simulate::proposal(
            &self.inventory,
            &self.review.connections,
            &self.review.generation,
            Some(&self.workload),
        )
    }
}
