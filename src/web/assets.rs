//! The browser's files, compiled into the binary: a copied `flowgate` runs from any folder and
//! still draws its map. `FLOWGATE_STATIC` names a folder to serve instead, for working on the
//! files without rebuilding.
//!
//! Vendored files carry their version in their name, so they are cached for a year (`immutable`);
//! the app's own files are revalidated (`no-cache`) against an ETag of their content, so a new
//! release is seen at once and an unchanged file costs a 304.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (path under `/static/`, content). `every_static_file_is_embedded` checks the list against the
/// folder.
const FILES: &[(&str, &[u8])] = &[
    ("app.css", include_bytes!("../../static/app.css")),
    ("app.js", include_bytes!("../../static/app.js")),
    ("favicon.svg", include_bytes!("../../static/favicon.svg")),
    ("map.css", include_bytes!("../../static/map.css")),
    ("map/canvas-model.js", include_bytes!("../../static/map/canvas-model.js")),
    ("map/canvas-view.js", include_bytes!("../../static/map/canvas-view.js")),
    ("map/cytoscape-view.js", include_bytes!("../../static/map/cytoscape-view.js")),
    ("map/details.js", include_bytes!("../../static/map/details.js")),
    ("map/elements.js", include_bytes!("../../static/map/elements.js")),
    ("map/layouts.js", include_bytes!("../../static/map/layouts.js")),
    ("map/main.js", include_bytes!("../../static/map/main.js")),
    ("map/styles.js", include_bytes!("../../static/map/styles.js")),
    ("vendor/README.md", include_bytes!("../../static/vendor/README.md")),
    ("vendor/cose-base-2.2.0.LICENSE", include_bytes!("../../static/vendor/cose-base-2.2.0.LICENSE")),
    ("vendor/cose-base-2.2.0.js", include_bytes!("../../static/vendor/cose-base-2.2.0.js")),
    ("vendor/cytoscape-3.35.0.LICENSE", include_bytes!("../../static/vendor/cytoscape-3.35.0.LICENSE")),
    ("vendor/cytoscape-3.35.0.min.js", include_bytes!("../../static/vendor/cytoscape-3.35.0.min.js")),
    ("vendor/cytoscape-fcose-2.2.0.LICENSE", include_bytes!("../../static/vendor/cytoscape-fcose-2.2.0.LICENSE")),
    ("vendor/cytoscape-fcose-2.2.0.js", include_bytes!("../../static/vendor/cytoscape-fcose-2.2.0.js")),
    ("vendor/htmx-2.0.11.LICENSE", include_bytes!("../../static/vendor/htmx-2.0.11.LICENSE")),
    ("vendor/htmx-2.0.11.min.js", include_bytes!("../../static/vendor/htmx-2.0.11.min.js")),
    ("vendor/layout-base-2.0.1.LICENSE", include_bytes!("../../static/vendor/layout-base-2.0.1.LICENSE")),
    ("vendor/layout-base-2.0.1.js", include_bytes!("../../static/vendor/layout-base-2.0.1.js")),
];

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("md") | Some("LICENSE") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A vendored file's name holds its version (`htmx-2.0.11.min.js`): its content never changes.
fn versioned(path: &str) -> bool {
    path.starts_with("vendor/") && path.bytes().any(|b| b.is_ascii_digit())
}

/// FNV-1a over the content: a stable ETag, computed per request (the app's own files are small;
/// vendored ones are never revalidated).
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// The embedded file, or the override folder's, with its caching headers.
pub async fn serve(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if let Some(dir) = std::env::var_os("FLOWGATE_STATIC") {
        return from_folder(std::path::Path::new(&dir), &path).await;
    }
    let Some((name, bytes)) = FILES.iter().find(|(name, _)| *name == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut resp = if versioned(name) {
        let mut r = Response::new(Body::from(*bytes));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
        r
    } else {
        let tag = etag(bytes);
        let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag);
        let mut r = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Response::new(Body::from(*bytes)) };
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&tag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    resp
}

/// `FLOWGATE_STATIC`: files read from a folder, never outside it.
async fn from_folder(dir: &std::path::Path, path: &str) -> Response {
    let safe = !path.is_empty()
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(dir.join(path)).await {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_static_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    on_disk.push(p.strip_prefix(&root).unwrap().to_str().unwrap().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, on_disk, "static/ and FILES must list the same files, in order");
    }

    #[test]
    fn caching_by_kind() {
        assert!(versioned("vendor/htmx-2.0.11.min.js"));
        assert!(!versioned("map/main.js"));
        assert_eq!(content_type("map/main.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("vendor/htmx-2.0.11.LICENSE"), "text/plain; charset=utf-8");
        assert_ne!(etag(b"a"), etag(b"b"));
    }
}
