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

#[cfg(test)]
mod tests {
    use super::*;

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
