//! The web layer's one error type: 4xx say what was wrong with the request; 5xx log the cause
//! once and answer without it.
//!
//! Every error is answered as `{"error": ...}`. Page routes pass their responses through
//! [`html_errors`], which turns any error (a bad window, an unknown workload, no session, the
//! database unreachable) into a small HTML page with the same status and headers, so that a
//! browser shows a sentence and a way on, not JSON.

use askama::Template;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::IngestError;
use crate::store::StoreError;

/// Seconds a client is asked to wait when PostgreSQL is unreachable: about one acquire timeout.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The client was too slow sending its body.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Seconds until the next attempt with a token is allowed.
    #[error("too many attempts with a wrong token from this address; try again in {0} s")]
    TooManyAttempts(u64),
    /// Every ingest slot is taken; seconds to wait.
    #[error("the server is ingesting as many bodies as it takes at once; try again in {0} s")]
    Busy(u64),
    /// PostgreSQL could not be reached; the cause is logged.
    #[error("the database is unreachable; try again in a few seconds")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownCluster(c) => ApiError::NotFound(format!("unknown cluster {c:?}")),
            StoreError::Invalid(m) => ApiError::Unprocessable(m),
            e @ StoreError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            e if e.is_unavailable() => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Store(e) => e.into(),
            // A request body that broke off says why itself (web::ingest::BodyError).
            IngestError::Read { source, .. } => match source.into_inner().map(|e| e.downcast::<ApiError>()) {
                Some(Ok(e)) => *e,
                Some(Err(other)) => ApiError::BadRequest(format!("reading the request body: {other}")),
                None => ApiError::BadRequest("reading the request body failed".into()),
            },
            e @ IngestError::Source(_) => ApiError::BadRequest(e.to_string()),
            e @ IngestError::Thread(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyAttempts(_) | ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What an error said, for [`html_errors`] to show instead of the JSON.
#[derive(Clone)]
struct Shown(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => tracing::error!("internal error: {cause}"),
            ApiError::Unavailable(cause) => tracing::warn!("database unreachable: {cause}"),
            _ => {}
        }
        let message = self.to_string();
        let mut resp = (status, Json(json!({ "error": message }))).into_response();
        let headers = resp.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        match self {
            ApiError::TooManyAttempts(secs) | ApiError::Busy(secs) => {
                headers.insert(header::RETRY_AFTER, secs.into());
            }
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, UNAVAILABLE_RETRY_SECS.into());
            }
            _ => {}
        }
        resp.extensions_mut().insert(Shown(message));
        resp
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
    retry_after: Option<u64>,
    /// Where the page offers to go next: the login form (back to this page after it), or home.
    login: Option<String>,
}

/// For page routes (`axum::middleware::from_fn`): an [`ApiError`] becomes an HTML page with the
/// same status and headers (Retry-After stays); a missing session offers the login form, which
/// brings the user back to the page asked for.
pub async fn html_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let asked = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let resp = next.run(req).await;
    let Some(Shown(message)) = resp.extensions().get::<Shown>().cloned() else { return resp };
    let status = resp.status();
    let retry_after =
        resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let title = match status {
        StatusCode::SERVICE_UNAVAILABLE => "Database unreachable",
        StatusCode::UNAUTHORIZED => "Log in first",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::CONFLICT => "Changed meanwhile",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_client_error() => "That request cannot be answered",
        _ => "Internal error",
    };
    let login = (status == StatusCode::UNAUTHORIZED).then(|| {
        let next: String = asked
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("/?next={next}")
    });
    let page = ErrorPage { title, message, retry_after, login };
    let Ok(html) = page.render() else { return resp };
    let (mut parts, _) = resp.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, html.into())
}
