//! Browser sessions: after a login with the token, a random 256-bit id in an HttpOnly,
//! SameSite=Strict cookie (and `Secure` behind HTTPS). The store keeps only the id's SHA-256, so
//! a copy of the database logs no one in, and it keeps it across restarts. A session ends when it
//! was not used for `idle` or when it is `absolute` old, whichever comes first, or at logout.
//!
//! The expiry rules and the cookie text are pure ([`SessionPolicy`]); the functions at the end
//! apply them to the store at the web layer's clock.

use axum::http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::store::StoreError;

pub const SESSION_COOKIE: &str = "flowgate_session";

/// A working day without a click logs out.
pub const DEFAULT_IDLE: SignedDuration = SignedDuration::from_hours(12);
/// Even a session in constant use logs in again after a week.
pub const DEFAULT_ABSOLUTE: SignedDuration = SignedDuration::from_hours(7 * 24);

/// `last_seen` is written at most this often: a page and its map's requests would otherwise each
/// write a row. The idle expiry is therefore exact to within this.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_mins(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle: SignedDuration,
    pub absolute: SignedDuration,
    /// Adds `Secure` to the cookie: the browser then sends it only over HTTPS (`serve
    /// --behind-https`, for a TLS-terminating proxy in front; Flowgate itself speaks plain HTTP).
    pub secure: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy { idle: DEFAULT_IDLE, absolute: DEFAULT_ABSOLUTE, secure: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Usable; `touch` when its `last_seen` should be moved to now.
    Live {
        touch: bool,
    },
    Expired,
}

impl SessionPolicy {
    pub fn freshness(&self, created_at: Timestamp, last_seen: Timestamp, now: Timestamp) -> Freshness {
        let idle_for = now.duration_since(last_seen);
        if now.duration_since(created_at) >= self.absolute || idle_for >= self.idle {
            return Freshness::Expired;
        }
        Freshness::Live { touch: idle_for >= TOUCH_EVERY }
    }

    /// The `Set-Cookie` value for a new session: the browser drops it at the absolute expiry.
    pub fn cookie(&self, id: &str) -> String {
        self.cookie_text(id, self.absolute.as_secs())
    }

    /// The `Set-Cookie` value that removes the session cookie (logout).
    pub fn clearing_cookie(&self) -> String {
        self.cookie_text("", 0)
    }

    fn cookie_text(&self, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
    }
}

/// What the store keys a session by.
pub fn hash_id(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// A session's name as the author of its changes: a short tag of its hash, which tells sessions
/// apart in the decision history without revealing anything that logs in.
pub fn author(hash: &[u8; 32]) -> String {
    format!("browser {}", hex(&hash[..4]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh session id: 256 bits from the OS, hex.
fn new_id() -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex(&buf))
}

/// The session id a request's cookie names, if it has the shape of one (anything else is not
/// looked up).
pub fn cookie_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Starts a session; returns its `Set-Cookie` value. Expired sessions are deleted on the way, so
/// the table holds at most the sessions of the last `absolute`.
pub async fn create(state: &AppState) -> Result<String, ApiError> {
    let id = new_id().map_err(|e| ApiError::Internal(format!("reading random bytes: {e}")))?;
    let hash = hash_id(&id);
    let now = state.clock.now();
    let p = &state.sessions;
    state.store.delete_sessions_before(now - p.idle, now - p.absolute).await?;
    state.store.create_session(&hash, &author(&hash), now).await?;
    Ok(p.cookie(&id))
}

/// The author of the live session `id`, if it is one; an expired one is deleted.
pub async fn lookup(state: &AppState, id: &str) -> Result<Option<String>, StoreError> {
    let hash = hash_id(id);
    let Some(row) = state.store.session(&hash).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    match state.sessions.freshness(row.created_at, row.last_seen, now) {
        Freshness::Expired => {
            state.store.delete_session(&hash).await?;
            Ok(None)
        }
        Freshness::Live { touch } => {
            if touch {
                state.store.touch_session(&hash, now).await?;
            }
            Ok(Some(row.author))
        }
    }
}

/// Ends the session `id` (logout).
pub async fn end(state: &AppState, id: &str) -> Result<(), StoreError> {
    state.store.delete_session(&hash_id(id)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let p = SessionPolicy::default();
        let t0: Timestamp = "2026-12-01T08:00:00Z".parse().unwrap();
        let h = SignedDuration::from_hours;
        let s = SignedDuration::from_secs;
        // (since login, since last use) -> freshness
        let cases = [
            (s(0), s(0), Freshness::Live { touch: false }),
            (s(59), s(59), Freshness::Live { touch: false }),
            (s(60), s(60), Freshness::Live { touch: true }),
            (h(12) - s(1), h(12) - s(1), Freshness::Live { touch: true }),
            (h(12), h(12), Freshness::Expired),
            (h(30), h(11), Freshness::Live { touch: true }),
            (h(7 * 24) - s(1), s(0), Freshness::Live { touch: false }),
            (h(7 * 24), s(0), Freshness::Expired),
            // A clock that went back does not end a session, nor write.
            (s(0), s(-30), Freshness::Live { touch: false }),
        ];
        for (age, idle, want) in cases {
            let now = t0 + age;
            assert_eq!(p.freshness(t0, now - idle, now), want, "age {age}, idle {idle}");
        }
    }

    #[test]
    fn cookies() {
        let mut p = SessionPolicy::default();
        assert_eq!(p.cookie("ab"), "flowgate_session=ab; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800");
        p.secure = true;
        assert_eq!(p.clearing_cookie(), "flowgate_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure");

        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, new_id().unwrap());
        let mut h = HeaderMap::new();
        h.insert("cookie", format!("theme=dark; {SESSION_COOKIE}={id}").parse().unwrap());
        assert_eq!(cookie_id(&h), Some(id.as_str()));
        h.insert("cookie", format!("{SESSION_COOKIE}=../../etc").parse().unwrap());
        assert_eq!(cookie_id(&h), None);
        // SHA-256 of "abc".
        assert_eq!(hex(&hash_id("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(author(&hash_id("abc")), "browser ba7816bf");
    }
}
