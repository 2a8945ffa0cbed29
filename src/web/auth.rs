//! Who may read and who may change things: a bearer token (the API, recorded as "api") or a
//! browser session obtained by logging in with the token (recorded as that session). Token
//! comparisons run in constant time, and every attempt with a token goes through the login
//! limiter first ([`super::limit`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::{AppState, limit, session};

/// Compares without an early exit, so the time taken does not reveal how much of a guess matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A fresh random token (128 bits from the OS, hex).
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The address the request came from, when the server knows it (`serve` records it for every
/// connection; a router called in process does not).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(parts))
    }
}

impl ClientIp {
    fn of(parts: &Parts) -> ClientIp {
        ClientIp(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
    }
}

/// Checks a token someone sent, through the login limiter: 429 when this client has used up its
/// attempts (before comparing), 401 when the token is wrong.
pub fn check_token(state: &AppState, client: Option<IpAddr>, given: &str) -> Result<(), ApiError> {
    let now = state.clock.now();
    let mut limiter = state.login_limit.lock().unwrap_or_else(|p| p.into_inner());
    limiter.take(client, now).map_err(|wait| ApiError::TooManyAttempts(limit::retry_after_secs(wait)))?;
    if constant_time_eq(given.as_bytes(), state.token.as_bytes()) {
        limiter.give_back(client, now);
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
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

/// A right bearer token, and nothing else: flows are posted by collectors, never by a browser.
pub struct ApiToken;

impl FromRequestParts<AppState> for ApiToken {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let given = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        check_token(state, ClientIp::of(parts).0, given)?;
        Ok(ApiToken)
    }
}

/// Someone allowed to read: a right bearer token or a live session. `Option<Viewer>` extracts
/// `None` for a request with neither; a wrong bearer token is refused either way.
pub struct Viewer {
    pub by_token: bool,
    /// Recorded as the author of a change: "api" for the token, else the session's name.
    pub author: String,
}

impl Viewer {
    async fn from_parts(parts: &Parts, state: &AppState) -> Result<Option<Viewer>, ApiError> {
        if let Some(given) = bearer(&parts.headers) {
            let ClientIp(client) = ClientIp::of(parts);
            check_token(state, client, given)?;
            return Ok(Some(Viewer { by_token: true, author: "api".into() }));
        }
        let Some(id) = session::cookie_id(&parts.headers) else {
            return Ok(None);
        };
        Ok(session::lookup(state, id).await?.map(|author| Viewer { by_token: false, author }))
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Viewer::from_parts(parts, state).await?.ok_or(ApiError::Unauthorized)
    }
}

impl OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Viewer::from_parts(parts, state).await
    }
}

/// Whether a browser says the request comes from one of this server's own pages: the Origin
/// header names this host, or (without Origin) Sec-Fetch-Site says same-origin. Requests from
/// other clients carry neither and pass.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            origin_host.is_some() && origin_host == host
        }
        None => headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|v| v == "same-origin"),
    }
}

/// Someone allowed to change decisions: a bearer token, or a session on a same-origin request,
/// which stops cross-site forms. The author is who authenticated, never something the request
/// claims about itself.
pub struct Writer {
    /// Recorded as the author of a change.
    pub name: String,
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_parts(parts, state).await?.ok_or(ApiError::Unauthorized)?;
        if !viewer.by_token && !same_origin(&parts.headers) {
            return Err(ApiError::Forbidden("cross-origin requests may not change decisions".into()));
        }
        Ok(Writer { name: viewer.author })
    }
}

/// `POST /logout`: ends the session and removes its cookie, then back to the login page. Only
/// from this server's pages, so another site cannot log its visitors out.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden("cross-origin requests may not log out".into()));
    }
    if let Some(id) = session::cookie_id(&headers) {
        session::end(&state, id).await?;
    }
    Ok(([(header::SET_COOKIE, state.sessions.clearing_cookie())], Redirect::to("/")).into_response())
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
    fn tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer secret".parse().unwrap());
        assert_eq!(bearer(&h), Some("secret"));
        h.insert("authorization", "bearer  secret ".parse().unwrap());
        assert_eq!(bearer(&h), Some("secret"));
        h.insert("authorization", "Basic secret".parse().unwrap());
        assert_eq!(bearer(&h), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        let t = generate_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, generate_token().unwrap());
    }

    #[test]
    fn same_origin_requests() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("host", "flowgate.local"), ("origin", "http://flowgate.local")], true),
            (&[("host", "flowgate.local"), ("origin", "https://evil.example")], false),
            (&[("host", "flowgate.local"), ("origin", "null")], false),
            (&[("host", "flowgate.local"), ("sec-fetch-site", "same-origin")], true),
            (&[("host", "flowgate.local"), ("sec-fetch-site", "cross-site")], false),
            // curl and friends send neither.
            (&[("host", "flowgate.local")], true),
        ];
        for (headers, want) in cases {
            let mut h = HeaderMap::new();
            for (k, v) in *headers {
                h.insert(*k, v.parse().unwrap());
            }
            assert_eq!(same_origin(&h), *want, "{headers:?}");
        }
    }
}
