//! Who may change things: a bearer token (the API) or the session cookie a browser got by
//! logging in with the token. Comparisons run in constant time.

use axum::http::HeaderMap;

use super::error::ApiError;

pub const SESSION_COOKIE: &str = "flowgate_session";

/// Compares without an early exit, so the time taken does not reveal how much of a guess matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Requires `Authorization: Bearer <token>`.
pub fn require_bearer(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// A fresh random token (128 bits from the OS, hex).
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where a login sends the browser next: `next` when it is a path on this server, else `/`.
///
/// A path starts with one `/` and holds only printable ASCII. Browsers drop tabs and newlines from
/// URLs and read `\` as `/`, so `/\t/evil` and `/\evil` would become `//evil`, another host;
/// other control characters cannot go into a `Location` header at all. The checks hold again
/// after each round of percent-decoding, for whatever decodes the path once more (a proxy, the
/// next server): `/%2F%2Fevil` is refused too.
pub fn login_redirect(next: Option<&str>) -> &str {
    next.filter(|p| is_local_path(p)).unwrap_or("/")
}

fn is_local_path(path: &str) -> bool {
    /// Rounds of decoding looked through; a path still changing after them is refused.
    const ROUNDS: usize = 4;
    let safe = |p: &[u8]| {
        p.first() == Some(&b'/')
            && p.get(1) != Some(&b'/')
            && !p.contains(&b'\\')
            && !p.iter().any(u8::is_ascii_control)
    };
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let mut p = path.as_bytes().to_vec();
    for _ in 0..ROUNDS {
        if !safe(&p) {
            return false;
        }
        match percent_decode(&p) {
            Some(decoded) => p = decoded,
            None => return true,
        }
    }
    false
}

/// `%XX` escapes decoded, or `None` when there are none (invalid ones stay as they are).
fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (s.get(i + 1).and_then(|&b| hex(b)), s.get(i + 2).and_then(|&b| hex(b)))
        {
            out.push(h << 4 | l);
            changed = true;
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_redirects_stay_on_this_server() {
        // `next` as the handler gets it: the query string already decoded once.
        let cases = [
            (None, "/"),
            (Some("/"), "/"),
            (Some("/clusters/demo"), "/clusters/demo"),
            (
                Some("/clusters/demo?ns=shop&since=2026-11-25T10%3A00%3A00Z"),
                "/clusters/demo?ns=shop&since=2026-11-25T10%3A00%3A00Z",
            ),
            (Some(""), "/"),
            (Some("clusters/demo"), "/"),
            (Some("//evil.example/x"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("\\\\evil.example"), "/"),
            (Some("https://evil.example"), "/"),
            (Some("javascript:alert(1)"), "/"),
            // `next=/%09/127.0.0.1:18302/`: the browser drops the tab and goes to the other host.
            (Some("/\t/127.0.0.1:18302/"), "/"),
            // `%0B` and `%00` cannot go into a Location header (they gave a 500).
            (Some("/\u{b}/x"), "/"),
            (Some("/\0/x"), "/"),
            (Some("/a\r\nSet-Cookie: x=y"), "/"),
            (Some("/\u{7f}"), "/"),
            (Some("/a b"), "/"),
            (Some("/caf\u{e9}"), "/"),
            // Still encoded (the URL said %252F or %255C): refused once decoded.
            (Some("/%2F%2Fevil"), "/"),
            (Some("/%2fevil"), "/"),
            (Some("/%5Cevil"), "/"),
            (Some("/%09/evil"), "/"),
            (Some("/%250A"), "/"),
            (Some("/%25252F%25252Fevil"), "/"),
            // Escapes that decode to something harmless are fine, and so are invalid ones.
            (Some("/a%2Fb"), "/a%2Fb"),
            (Some("/100%"), "/100%"),
            (Some("/%zz"), "/%zz"),
        ];
        for (next, want) in cases {
            assert_eq!(login_redirect(next), want, "{next:?}");
        }
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert!(require_bearer(&h, "secret").is_err());
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert!(require_bearer(&h, "secret").is_ok());
        assert!(require_bearer(&h, "secreT").is_err());
        h.insert("authorization", "Basic secret".parse().unwrap());
        assert!(require_bearer(&h, "secret").is_err());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        let t = generate_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, generate_token().unwrap());
    }
}

/// Browser sessions: random ids handed out as an HttpOnly, SameSite=Strict cookie after a login
/// with the token. Kept in memory: a restart logs everyone out, which the login URL undoes.
#[derive(Default, Clone)]
pub struct Sessions {
    ids: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// Sessions kept at most; the oldest are not tracked, so past this everyone logs in again.
const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    /// A `Set-Cookie` value when `given` is the token.
    pub fn login(&self, given: &str, token: &str) -> Option<String> {
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return None;
        }
        let id = generate_token().ok()? + &generate_token().ok()?;
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.len() >= MAX_SESSIONS {
            ids.clear();
        }
        ids.insert(id.clone());
        Some(format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/"))
    }

    pub fn valid(&self, id: &str) -> bool {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// Someone allowed to read: a valid bearer token or session cookie.
pub struct Viewer {
    pub by_token: bool,
}

impl Viewer {
    pub fn from_headers(state: &super::AppState, headers: &HeaderMap) -> Option<Viewer> {
        if require_bearer(headers, &state.token).is_ok() {
            return Some(Viewer { by_token: true });
        }
        session_cookie(headers).filter(|id| state.sessions.valid(id)).map(|_| Viewer { by_token: false })
    }
}

impl axum::extract::FromRequestParts<super::AppState> for Viewer {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        Viewer::from_headers(state, &parts.headers).ok_or(ApiError::Unauthorized)
    }
}

/// Someone allowed to change decisions: a bearer token, or a session cookie on a same-origin
/// request (the Origin header, or Sec-Fetch-Site, must say so), which stops cross-site forms.
pub struct Writer {
    /// Recorded as the author of a change.
    pub name: String,
}

pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(axum::http::header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            origin_host.is_some() && origin_host == host
        }
        None => headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|v| v == "same-origin"),
    }
}

impl axum::extract::FromRequestParts<super::AppState> for Writer {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_headers(state, &parts.headers).ok_or(ApiError::Unauthorized)?;
        if !viewer.by_token && !same_origin(&parts.headers) {
            return Err(ApiError::Forbidden("cross-origin requests may not change decisions".into()));
        }
        let name = parts
            .headers
            .get("x-flowgate-user")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(64).collect::<String>())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| if viewer.by_token { "api".into() } else { "browser".into() });
        Ok(Writer { name })
    }
}
