//! What the browser tests share: the demo cluster behind the real router on a local port, and
//! small page helpers (a bounded wait for a condition, a script's value, an element's text).

#![allow(dead_code)]

use fantoccini::Client;
use flowgate::store::Store;
use flowgate::web::{AppState, router, seed_demo};
use serde_json::Value;
use sqlx::PgPool;

/// The demo cluster (seeded up to now) served with `token` on a local port: its base URL and the
/// store behind it.
pub async fn serve_demo(pool: PgPool, token: &str) -> (String, Store) {
    let store = Store::from_pool(pool).await.unwrap();
    let state = AppState::new(store.clone(), token);
    seed_demo(&state, jiff::Timestamp::now()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    (base, store)
}

/// Evaluates `cond` (a JS expression) in the page until it is truthy, bounded by `secs`.
pub async fn wait_for(c: &Client, cond: &str, secs: u64) -> Value {
    let script = format!(
        r#"const done = arguments[arguments.length - 1];
           const deadline = performance.now() + {ms};
           (function poll() {{
             let v; try {{ v = ({cond}); }} catch (e) {{ v = undefined; }}
             if (v) return done(v);
             if (performance.now() > deadline) return done(null);
             setTimeout(poll, 16);
           }})();"#,
        ms = secs * 1000
    );
    let v = c.execute_async(&script, vec![]).await.expect("script runs");
    assert!(!v.is_null(), "timed out after {secs} s waiting for: {cond}");
    v
}

/// A script's value (`return ...`).
pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// An element's text, whether or not its tab is showing.
pub async fn text(c: &Client, css: &str) -> String {
    let v =
        c.execute("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", vec![css.into()]);
    v.await.unwrap().as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
}
