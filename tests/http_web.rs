//! The web application's HTTP surface in process: login, sessions (expiry, restarts, logout), the
//! login limiter, origin checks, who authored a change, the security headers, the JSON API's
//! validation and version conflicts, on a fresh database (holding the demo cluster where needed);
//! and what pages, the API and the probes answer while PostgreSQL cannot be reached.

#[path = "support/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use flowgate::store::Store;
use flowgate::web::{AppState, Clock, router, seed_demo};
use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;
use tower::ServiceExt;

const TOKEN: &str = "http-test-token-0123456789";
const W: &str = "/api/v1/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp";
const PAGE: &str = "/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp";

async fn app(pool: PgPool) -> axum::Router {
    let store = Store::from_pool(pool).await.unwrap();
    let state = AppState::new(store, TOKEN);
    seed_demo(&state, "2026-11-26T12:00:00Z".parse().unwrap()).await.unwrap();
    router(state)
}

/// A clock the test moves by hand: sessions and the login limiter read it.
#[derive(Clone)]
struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    fn new() -> TestClock {
        TestClock(Arc::new(Mutex::new("2026-12-01T08:00:00Z".parse().unwrap())))
    }
    fn clock(&self) -> Clock {
        let t = self.0.clone();
        Clock::from_fn(move || *t.lock().unwrap())
    }
    fn advance(&self, d: SignedDuration) {
        let mut t = self.0.lock().unwrap();
        *t += d;
    }
}

/// A state without the demo (for tests of login and sessions alone), on the test's clock.
async fn bare_state(pool: PgPool, clock: &TestClock) -> AppState {
    let mut state = AppState::new(Store::from_pool(pool).await.unwrap(), TOKEN);
    state.clock = clock.clock();
    state
}

/// Logs in; returns the `name=value` of the session cookie.
async fn login(app: &axum::Router) -> String {
    let (status, headers, body) =
        send(app, Request::get(format!("/?token={TOKEN}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string()
}

fn with_cookie(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).unwrap()
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

#[sqlx::test(migrations = false)]
async fn login_sets_a_strict_session_cookie_and_pages_need_it(pool: PgPool) {
    let app = app(pool).await;
    let (status, _, body) = send(&app, Request::get("/clusters/demo").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = send(&app, Request::get("/?token=wrong").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, headers, _) =
        send(&app, Request::get(format!("/?token={TOKEN}&next=/clusters/demo")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/clusters/demo");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();

    let get = |path: &str| Request::get(path).header(header::COOKIE, &session).body(Body::empty()).unwrap();
    // Without a namespace chosen, the cluster page lists its namespaces with their workloads.
    let (status, _, body) = send(&app, get("/clusters/demo")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(
            r#"<a href="/clusters/demo?ns=example-java-app">example-java-app</a> <span class="muted">5 workloads seen"#
        ),
        "{body}"
    );
    assert!(body.contains(r#"?ns=ingress-nginx">ingress-nginx</a>"#), "{body}");
    let (status, headers, body) = send(&app, get("/clusters/demo?ns=example-java-app")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("deployment/example-java-app-javaapp"));
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    // The namespace map takes the same windows as a workload's page: 24 h unless asked.
    assert!(body.contains("/namespaces/example-java-app/graph?since=24h\""), "{body}");
    let (status, _, body) = send(&app, get("/clusters/demo?ns=example-java-app&since=7d")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Map of example-java-app (last 7d)") && body.contains("/graph?since=7d\""), "{body}");
    assert!(body.contains(r#"since=7d" aria-current="true" class="current">7d</a>"#), "{body}");
    let (status, _, body) = send(&app, get("/clusters/demo?ns=example-java-app&since=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("since: &#34;yesterday&#34; is not one of the map&#39;s windows (1h, 3h, 24h, 7d)"),
        "{body}"
    );

    // A decision from another site, even with the cookie, is refused; from this one it lands.
    let form = "version=0&peer=deployment/example-java-app/example-java-app-cassandra&allow=false";
    let post = |origin: &str| {
        Request::post(
            "/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp/decisions",
        )
        .header(header::COOKIE, &session)
        .header(header::HOST, "flowgate.local")
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap()
    };
    assert_eq!(send(&app, post("https://evil.example")).await.0, StatusCode::FORBIDDEN);
    let (status, headers, _) = send(&app, post("http://flowgate.local")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "a plain form post is redirected back to the page");
    assert!(headers[header::LOCATION].to_str().unwrap().starts_with("/clusters/demo/namespaces/example-java-app/"));
    let (_, _, body) = send(&app, get(&format!("{W}/decisions"))).await;
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["version"], 1);
    assert_eq!(d["exclude"][0], "deployment/example-java-app/example-java-app-cassandra");
    assert!(d["author"].as_str().unwrap().starts_with("browser "), "{d}");
}

#[sqlx::test(migrations = false)]
async fn the_api_validates_and_refuses_stale_versions(pool: PgPool) {
    let app = app(pool).await;
    let put = |body: &str| {
        Request::put(format!("{W}/decisions"))
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let cases = [
        (r#"{"trust":["192.229.173.7/24"]}"#, StatusCode::UNPROCESSABLE_ENTITY, "did you mean 192.229.173.0/24"),
        (r#"{"exclude":["widget/x/y"]}"#, StatusCode::UNPROCESSABLE_ENTITY, "unknown workload kind"),
        (r#"{"excludes":[]}"#, StatusCode::UNPROCESSABLE_ENTITY, "unknown field"),
        (r#"{"include_unresolved":["10.0.0.300"]}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        (r#"{"trust":["192.229.173.0/24"],"version":0}"#, StatusCode::OK, "\"version\":1"),
        (r#"{"trust":[],"version":0}"#, StatusCode::CONFLICT, "changed since version 0"),
    ];
    for (body, want, text) in cases {
        let (status, _, got) = send(&app, put(body)).await;
        assert_eq!(status, want, "{body}: {got}");
        assert!(got.contains(text), "{body}: {got}");
    }
    // Without a token nothing changes.
    let req = Request::put(format!("{W}/decisions")).body(Body::from("{}")).unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED);

    // The policy download carries the trusted range and names the file.
    let req = Request::get(format!("{W}/policy.yaml"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, yaml) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("example-java-app-example-java-app-javaapp.yaml")
    );
    assert!(yaml.contains("cidr: 192.229.173.0/24"), "{yaml}");
    assert!(yaml.contains("port: 8080"), "{yaml}");

    // The connections endpoint speaks the CLI's vocabulary.
    let req = Request::get(format!("{W}/connections?since=7d"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let peers: Vec<&str> = v["connections"].as_array().unwrap().iter().map(|r| r["peer"].as_str().unwrap()).collect();
    assert!(
        peers.contains(&"192.229.173.207") && peers.contains(&"deployment/example-java-app/example-java-app-cassandra"),
        "{peers:?}"
    );
    let unknown =
        Request::get("/api/v1/clusters/demo/namespaces/example-java-app/workloads/deployment/nope/connections")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
    assert_eq!(send(&app, unknown).await.0, StatusCode::NOT_FOUND);
}

/// `?dialect=` on the YAML endpoints: CiliumNetworkPolicy for the workload and the namespace, a
/// file name of its own, the trusted name as `toFQDNs` (the demo's flows name the external API);
/// an unknown dialect is 400 with the ones there are.
#[sqlx::test(migrations = false)]
async fn the_yaml_endpoints_speak_the_dialect_asked_for(pool: PgPool) {
    let app = app(pool).await;
    let put = Request::put(format!("{W}/decisions"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"trust_names": ["api.example.com"]}"#))
        .unwrap();
    assert_eq!(send(&app, put).await.0, StatusCode::OK);
    let (status, headers, yaml) = send(&app, bearer(&format!("{W}/policy.yaml?dialect=cilium"))).await;
    assert_eq!(status, StatusCode::OK, "{yaml}");
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("javaapp.cilium.yaml"), "{headers:?}");
    assert!(yaml.contains("kind: CiliumNetworkPolicy") && yaml.contains("matchName: api.example.com"), "{yaml}");
    assert!(!yaml.contains("kind: NetworkPolicy"), "{yaml}");
    // NetworkPolicy lists the name's address instead.
    let (_, _, knp) = send(&app, bearer(&format!("{W}/policy.yaml"))).await;
    assert!(knp.contains("kind: NetworkPolicy") && knp.contains("cidr: 192.229.173.207/32"), "{knp}");
    let ns = "/api/v1/clusters/demo/namespaces/example-java-app/policy.yaml";
    let (status, headers, yaml) = send(&app, bearer(&format!("{ns}?dialect=cilium"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("example-java-app.cilium.yaml"));
    assert!(yaml.matches("kind: CiliumNetworkPolicy").count() >= 4, "{yaml}");
    // The decisions' JSON keeps the name.
    let (_, _, d) = send(&app, bearer(&format!("{W}/decisions"))).await;
    assert!(d.contains(r#""trust_names":["api.example.com"]"#), "{d}");
    for bad in
        [format!("{W}/policy.yaml?dialect=calico"), format!("{ns}?dialect=%3Cb%3E"), format!("{PAGE}?dialect=%3Cb%3E")]
    {
        let req = if bad.starts_with("/api") { bearer(&bad) } else { with_cookie(&bad, &login(&app).await) };
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("expected kubernetes or cilium"), "{bad}: {body}");
    }
    // A bad name is refused with 422, saying why.
    let put = Request::put(format!("{W}/decisions"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"trust_names": ["*.example.com"]}"#))
        .unwrap();
    let (status, _, body) = send(&app, put).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("no wildcards"), "{body}");
}

#[sqlx::test(migrations = false)]
async fn login_redirects_only_to_paths_on_this_server(pool: PgPool) {
    let app = router(bare_state(pool, &TestClock::new()).await);
    // `next` as it appears in the login URL.
    let cases = [
        ("/clusters/demo?ns=shop", "/clusters/demo?ns=shop"),
        ("/%09/127.0.0.1:18302/", "/"),
        ("/%0B/127.0.0.1:18302/", "/"),
        ("/%00/x", "/"),
        ("/%0D%0ASet-Cookie:%20x=y", "/"),
        ("//evil.example/", "/"),
        ("/%5Cevil.example", "/"),
        ("https://evil.example/", "/"),
        ("/%252F%252Fevil.example", "/"),
    ];
    for (next, want) in cases {
        let req = Request::get(format!("/?token={TOKEN}&next={next}")).body(Body::empty()).unwrap();
        let (status, headers, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{next}: {body}");
        assert_eq!(headers[header::LOCATION], want, "{next}");
    }
}

#[sqlx::test(migrations = false)]
async fn sessions_survive_a_restart_until_logout(pool: PgPool) {
    let clock = TestClock::new();
    let first = router(bare_state(pool.clone(), &clock).await);
    let cookie = login(&first).await;
    let id = cookie.split_once('=').unwrap().1.to_string();

    // The store holds the id's SHA-256, never the id.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select id_hash from sessions").fetch_all(&pool).await.unwrap();
    let hashed: Vec<u8> =
        sqlx::query_scalar("select sha256($1::bytea)").bind(id.as_bytes()).fetch_one(&pool).await.unwrap();
    assert_eq!(stored, vec![hashed]);

    // Another server on the same database (a restart) knows the session.
    let second = router(bare_state(pool.clone(), &clock).await);
    assert_eq!(send(&second, with_cookie("/", &cookie)).await.0, StatusCode::OK);

    // Logging out takes a same-origin POST; another site's form is refused and changes nothing.
    let logout = |origin: &str| {
        Request::post("/logout")
            .header(header::COOKIE, &cookie)
            .header(header::HOST, "flowgate.local")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&second, logout("https://evil.example")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&first, with_cookie("/", &cookie)).await.0, StatusCode::OK);
    assert_eq!(
        send(&second, Request::get("/logout").body(Body::empty()).unwrap()).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let (status, headers, _) = send(&second, logout("http://flowgate.local")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/");
    let cleared = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("flowgate_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    // The session is gone for every server, even for a browser that kept the cookie.
    assert_eq!(send(&first, with_cookie("/", &cookie)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&second, with_cookie("/", &cookie)).await.0, StatusCode::UNAUTHORIZED);
    let left: i64 = sqlx::query_scalar("select count(*) from sessions").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test(migrations = false)]
async fn sessions_end_after_12_hours_idle_or_7_days(pool: PgPool) {
    let clock = TestClock::new();
    let app = router(bare_state(pool.clone(), &clock).await);
    let h = SignedDuration::from_hours;
    let m = SignedDuration::from_mins;

    // Idle: each use restarts the 12 hours.
    let cookie = login(&app).await;
    clock.advance(h(12) - m(1));
    assert_eq!(send(&app, with_cookie("/", &cookie)).await.0, StatusCode::OK);
    clock.advance(h(12) - m(1));
    assert_eq!(send(&app, with_cookie("/", &cookie)).await.0, StatusCode::OK, "used 11:59 ago");
    clock.advance(h(12));
    assert_eq!(send(&app, with_cookie("/", &cookie)).await.0, StatusCode::UNAUTHORIZED, "idle for 12 h");

    // Absolute: used every 11 hours, it still ends 7 days after the login.
    let cookie = login(&app).await;
    for _ in 0..15 {
        clock.advance(h(11));
        assert_eq!(send(&app, with_cookie("/", &cookie)).await.0, StatusCode::OK);
    }
    clock.advance(h(7 * 24 - 15 * 11) - m(1));
    assert_eq!(send(&app, with_cookie("/", &cookie)).await.0, StatusCode::OK, "6 days 23:59 old");
    clock.advance(m(1));
    assert_eq!(send(&app, with_cookie("/", &cookie)).await.0, StatusCode::UNAUTHORIZED, "7 days old");
    // Both expired sessions were deleted (the first at the next login, the second when used).
    let left: i64 = sqlx::query_scalar("select count(*) from sessions").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}

#[sqlx::test(migrations = false)]
async fn the_cookie_is_secure_behind_https(pool: PgPool) {
    let clock = TestClock::new();
    let mut state = bare_state(pool, &clock).await;
    let plain = router(state.clone());
    state.sessions.secure = true;
    let https = router(state);
    let set_cookie = |headers: &axum::http::HeaderMap| headers[header::SET_COOKIE].to_str().unwrap().to_string();
    let login_req = || Request::get(format!("/?token={TOKEN}")).body(Body::empty()).unwrap();

    let c = set_cookie(&send(&plain, login_req()).await.1);
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"), "{c}");
    let c = set_cookie(&send(&https, login_req()).await.1);
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"), "{c}");
    let logout = Request::post("/logout").body(Body::empty()).unwrap();
    let c = set_cookie(&send(&https, logout).await.1);
    assert!(c.contains("Max-Age=0") && c.ends_with("; Secure"), "{c}");
}

#[sqlx::test(migrations = false)]
async fn wrong_tokens_are_limited_per_client(pool: PgPool) {
    let clock = TestClock::new();
    let app = router(bare_state(pool, &clock).await);
    let from = |ip: &str, token: &str| {
        let mut req = Request::get(format!("/?token={token}")).body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(ip.parse().unwrap(), 40000)));
        req
    };
    let guesser = "198.51.100.7";
    for i in 0..5 {
        assert_eq!(send(&app, from(guesser, "wrong-token-0000000")).await.0, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let (status, headers, body) = send(&app, from(guesser, "wrong-token-0000000")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "10");
    assert!(body.contains("try again in 10 s"), "{body}");
    // Once out of attempts, even the right token is not looked at: guessing stays slow.
    assert_eq!(send(&app, from(guesser, TOKEN)).await.0, StatusCode::TOO_MANY_REQUESTS);
    // The API's bearer token is the same secret and counts the same way.
    let mut api = Request::get(format!("{W}/decisions"))
        .header(header::AUTHORIZATION, "Bearer wrong-token-0000000")
        .body(Body::empty())
        .unwrap();
    api.extensions_mut().insert(ConnectInfo(SocketAddr::new(guesser.parse().unwrap(), 40001)));
    let (status, headers, _) = send(&app, api).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "10");
    // Someone else is not held up.
    assert_eq!(send(&app, from("203.0.113.9", TOKEN)).await.0, StatusCode::SEE_OTHER);

    clock.advance(SignedDuration::from_secs(4));
    assert_eq!(send(&app, from(guesser, TOKEN)).await.1[header::RETRY_AFTER], "6");
    clock.advance(SignedDuration::from_secs(6));
    assert_eq!(send(&app, from(guesser, TOKEN)).await.0, StatusCode::SEE_OTHER, "one attempt back after 10 s");
    // The right token gave that attempt back; a wrong one uses it up again.
    assert_eq!(send(&app, from(guesser, "wrong-token-0000000")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&app, from(guesser, "wrong-token-0000000")).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrations = false)]
async fn the_author_is_who_logged_in_not_what_a_header_claims(pool: PgPool) {
    let app = app(pool.clone()).await;
    let cookie = login(&app).await;
    let form = "version=0&peer=deployment/example-java-app/example-java-app-cassandra&allow=false";
    let req = Request::post(format!("{PAGE}/decisions"))
        .header(header::COOKIE, &cookie)
        .header("x-flowgate-user", "mallory")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::SEE_OTHER);
    let bearer = |req: axum::http::request::Builder| {
        req.header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).header("x-flowgate-user", "mallory")
    };
    let (_, _, body) = send(&app, bearer(Request::get(format!("{W}/decisions"))).body(Body::empty()).unwrap()).await;
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = cookie.split_once('=').unwrap().1;
    let hash: Vec<u8> =
        sqlx::query_scalar("select sha256($1::bytea)").bind(id.as_bytes()).fetch_one(&pool).await.unwrap();
    let tag: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(d["author"], format!("browser {tag}"), "{d}");

    let put = bearer(Request::put(format!("{W}/decisions"))).body(Body::from(r#"{"version":1}"#)).unwrap();
    assert_eq!(send(&app, put).await.0, StatusCode::OK);
    let (_, _, body) = send(&app, bearer(Request::get(format!("{W}/decisions"))).body(Body::empty()).unwrap()).await;
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((d["version"].as_i64(), d["author"].as_str()), (Some(2), Some("api")), "{d}");
}

#[sqlx::test(migrations = false)]
async fn responses_are_not_cached_and_send_no_referrer_away(pool: PgPool) {
    let app = app(pool).await;
    let cookie = login(&app).await;
    let bearer = |path: &str| {
        Request::get(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).unwrap()
    };
    let cases = [
        ("page", with_cookie(PAGE, &cookie), "text/html"),
        ("JSON", bearer(&format!("{W}/connections")), "application/json"),
        ("YAML", bearer(&format!("{W}/policy.yaml")), "application/yaml"),
        ("namespace YAML", bearer("/api/v1/clusters/demo/namespaces/example-java-app/policy.yaml"), "application/yaml"),
        ("login page", Request::get("/").body(Body::empty()).unwrap(), "text/html"),
        ("error", bearer("/api/v1/clusters/nope/namespaces/x/policy.yaml"), "application/json"),
    ];
    for (what, req, content_type) in cases {
        let (_, headers, _) = send(&app, req).await;
        let h =
            |name: header::HeaderName| headers.get(&name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(h(header::CONTENT_TYPE).starts_with(content_type), "{what}: {headers:?}");
        assert_eq!(h(header::CACHE_CONTROL), "no-store", "{what}");
        assert_eq!(h(header::REFERRER_POLICY), "same-origin", "{what}");
        let csp = h(header::CONTENT_SECURITY_POLICY);
        for directive in ["script-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
    }
    // Static files keep their caching: the app's own revalidated by ETag, vendored ones for a year.
    let (status, headers, _) = send(&app, Request::get("/static/app.css").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{headers:?}");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    let tag = headers[header::ETAG].clone();
    let again = Request::get("/static/app.css").header(header::IF_NONE_MATCH, tag).body(Body::empty()).unwrap();
    assert_eq!(send(&app, again).await.0, StatusCode::NOT_MODIFIED);
    let vendored = Request::get("/static/vendor/htmx-2.0.11.min.js")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, vendored).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let (status, _, _) = send(&app, Request::get("/static/../Cargo.toml").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A form as htmx posts it (`hx-request`), with the token.
fn htmx_form(path: &str, form: impl Into<String>) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("hx-request", "true")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.into()))
        .unwrap()
}

fn bearer(path: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).unwrap()
}

/// What a page, an API route and the probes answer while PostgreSQL is unreachable: 503 with
/// Retry-After, an HTML page or JSON; /readyz not ready with why; /healthz ok. Within 5 s.
async fn assert_unreachable(app: &axum::Router) {
    let started = Instant::now();
    let ((page, page_headers, html), (api, api_headers, json), (ready, _, why), (health, _, ok)) =
        tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::future::join4(
                send(app, bearer(PAGE)),
                send(app, bearer(&format!("{W}/connections"))),
                send(app, bearer("/readyz")),
                send(app, bearer("/healthz")),
            ),
        )
        .await
        .expect("answered within 5 s");
    assert_eq!(page, StatusCode::SERVICE_UNAVAILABLE, "{html}");
    assert_eq!(page_headers[header::RETRY_AFTER], "5");
    assert!(page_headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"), "{page_headers:?}");
    assert!(html.contains("<h1>Database unreachable</h1>") && html.contains("the database is unreachable"), "{html}");
    assert_eq!(api, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(api_headers[header::RETRY_AFTER], "5");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["error"], "the database is unreachable; try again in a few seconds");
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{why}");
    assert!(why.starts_with("not ready: database: "), "{why}");
    assert_eq!((health, ok.as_str()), (StatusCode::OK, "ok\n"));
    eprintln!("answered in {:?}", started.elapsed());
}

/// A server whose PostgreSQL is not there at all (nothing listens on port 1): every answer within
/// the pool's 3 s acquire timeout, not sqlx's 30 s.
#[tokio::test]
async fn with_postgresql_unreachable_pages_and_api_answer_503_and_readyz_says_why() {
    let store = Store::connect_lazy("postgres://postgres@127.0.0.1:1/flowgate").unwrap();
    let app = router(AppState::new(store, TOKEN));
    assert_unreachable(&app).await;
}

/// PostgreSQL stops mid-run (a proxy in front of it drops every connection and refuses new ones)
/// and comes back: 503 meanwhile, the same pages again after, without a restart.
#[sqlx::test(migrations = false)]
async fn postgresql_stopped_mid_run_gives_503_until_it_is_back(pool: PgPool) {
    let (upstream, user, db) = proxy::upstream(&pool);
    let proxy = proxy::Proxy::start(upstream).await;
    let store = Store::connect(&proxy.url(&user, &db)).await.unwrap();
    let state = AppState::new(store.clone(), TOKEN);
    seed_demo(&state, "2026-11-26T12:00:00Z".parse().unwrap()).await.unwrap();
    let app = router(state);
    let (status, _, body) = send(&app, bearer(PAGE)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(send(&app, bearer("/readyz")).await.2, "ready\n");

    proxy.cut();
    assert_unreachable(&app).await;

    proxy.restore();
    let (status, _, body) = send(&app, bearer(PAGE)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("example-java-app-javaapp"));
    let (status, _, ready) = send(&app, bearer("/readyz")).await;
    assert_eq!((status, ready.as_str()), (StatusCode::OK, "ready\n"));
    store.pool.close().await;
}

/// Pages and the API are answered 503 once the request timeout passes, whatever they wait for
/// (here a database that accepts connections and never answers, which the pool would wait 3 s for).
#[tokio::test]
async fn a_page_that_takes_too_long_is_answered_503_at_the_request_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("postgres://postgres@{}/flowgate", silent.local_addr().unwrap());
    let mut state = AppState::new(Store::connect_lazy(&url).unwrap(), TOKEN);
    state.limits.request_timeout = Duration::from_millis(300);
    let app = router(state);
    let started = Instant::now();
    let (status, _, _) = send(&app, bearer(PAGE)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < flowgate::store::ACQUIRE_TIMEOUT, "{took:?}");
    drop(silent);
}

/// A connection as an older version might have stored it, in both aggregates (a window reads
/// whole days from the daily one): the demo's day, inside the pages' default window (its newest
/// flow is at 12:00), on a port the demo does not use.
async fn insert_conn(pool: &PgPool, src: &str, dst: &str, protocol: &str, processes: &[&str]) {
    for (table, bucket) in [("conn_hourly", "2026-11-26T10:00:00Z"), ("conn_daily", "2026-11-26T00:00:00Z")] {
        let sql = format!(
            "insert into {table} (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace,
                                  port, protocol, flows, dropped, first_seen, last_seen, processes, services)
             select id, timestamptz '{bucket}', $1, $2, 'example-java-app', 'example-java-app', 18080, $3,
                    1, 0, timestamptz '2026-11-26T10:00:00Z', timestamptz '2026-11-26T10:00:00Z', $4, '{{}}'
             from clusters where name = 'demo'"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(src)
            .bind(dst)
            .bind(protocol)
            .bind(processes)
            .execute(pool)
            .await
            .unwrap();
    }
}

const JAVAAPP: &str = "deployment/example-java-app/example-java-app-javaapp";

/// Keys an older version stored unchecked (a Deployment named against the rules, a pod named
/// like markup, a protocol no policy has), the Deployment itself, labels learned for it and a
/// decision naming it: each costs its row, and every page of the workload still answers.
#[sqlx::test(migrations = false)]
async fn stored_names_this_version_cannot_read_cost_only_their_rows(pool: PgPool) {
    let app = app(pool.clone()).await;
    let paths = [
        PAGE.to_string(),
        format!("{W}/graph"),
        format!("{W}/connections"),
        format!("{W}/policy.yaml"),
        "/api/v1/clusters/demo/namespaces/example-java-app/policy.yaml".to_string(),
        "/api/v1/clusters/demo/namespaces/example-java-app/graph".to_string(),
        "/clusters/demo?ns=example-java-app".to_string(),
    ];
    let mut before = Vec::new();
    for p in &paths {
        let (status, _, body) = send(&app, bearer(p)).await;
        assert_eq!(status, StatusCode::OK, "{p}: {body}");
        before.push(body);
    }

    insert_conn(&pool, "deployment/example-java-app/UPPER_case", JAVAAPP, "TCP", &[]).await;
    insert_conn(&pool, JAVAAPP, "pod/example-java-app/<img src=x onerror=alert(1)>", "TCP", &[]).await;
    insert_conn(&pool, "deployment/example-java-app/example-java-app-jclient", JAVAAPP, "ICMP", &[]).await;
    let body = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "UPPER_case", "namespace": "example-java-app"},
        "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "<img src=x onerror=alert(1)>"}}}}});
    sqlx::query(
        "insert into k8s_objects (cluster_id, kind, namespace, name, uid, body, valid_from)
         select id, 'Deployment', 'example-java-app', 'UPPER_case', 'u', $1, timestamptz '2026-11-20T00:00:00Z'
         from clusters where name = 'demo'",
    )
    .bind(&body)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into observed_workloads (cluster_id, workload, labels, last_seen)
         select id, 'deployment/example-java-app/UPPER_case', '{\"app\": \"x\"}', now() from clusters where name = 'demo'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into decisions (cluster_id, workload, version, exclude, trust, include_unresolved, author)
         select id, $1, 1, '{deployment/example-java-app/UPPER_case}', '{}', '{}', 'old' from clusters where name = 'demo'",
    )
    .bind(JAVAAPP)
    .execute(&pool)
    .await
    .unwrap();

    for (p, before) in paths.iter().zip(&before) {
        let (status, _, body) = send(&app, bearer(p)).await;
        assert_eq!(status, StatusCode::OK, "{p}: {body}");
        assert!(!body.contains("UPPER_case") && !body.contains("img src"), "{p}: {body}");
        if p.ends_with("policy.yaml") {
            assert_eq!(&body, before, "{p}: the unreadable rows change nothing");
        }
    }
    // The decisions read back without the value that cannot be read, at their version.
    let (status, _, body) = send(&app, bearer(&format!("{W}/decisions"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((d["version"].as_i64(), d["exclude"].as_array().map(Vec::len)), (Some(1), Some(0)), "{d}");
}

/// Text from flows and the cluster that would reorder or hide what is around it (U+202E, U+200B,
/// ...) is spelled out in the pages and in the map's JSON; markup is escaped.
#[sqlx::test(migrations = false)]
async fn bidi_and_zero_width_characters_are_shown_as_escapes(pool: PgPool) {
    let app = app(pool.clone()).await;
    let process = "evil\u{202e}gpj.exe <img src=x onerror=alert(1)> zero\u{200b}width\u{feff}";
    insert_conn(&pool, "deployment/example-java-app/example-java-app-jclient", JAVAAPP, "TCP", &[process]).await;
    insert_conn(&pool, "node/n\u{2066}ode\u{2069}/172.18.0.9", JAVAAPP, "TCP", &[]).await;
    let (status, _, page) = send(&app, bearer(PAGE)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, _, graph) = send(&app, bearer(&format!("{W}/graph"))).await;
    assert_eq!(status, StatusCode::OK, "{graph}");
    // The key a row's form sends back stays exact (it is never shown).
    let shown: String = page
        .split(r#"<input type="hidden" name="peer" value=""#)
        .enumerate()
        .map(|(i, part)| if i == 0 { part } else { part.split_once('"').map_or(part, |(_, rest)| rest) })
        .collect();
    for hidden in ['\u{202e}', '\u{200b}', '\u{feff}', '\u{2066}', '\u{2069}'] {
        assert!(!shown.contains(hidden), "{hidden:?} raw in the page");
        assert!(!graph.contains(hidden), "{hidden:?} raw in the graph");
    }
    assert!(
        page.contains(r"evil\u{202e}gpj.exe &#60;img src=x onerror=alert(1)&#62; zero\u{200b}width\u{feff}"),
        "{page}"
    );
    assert!(page.contains(r"node/n\u{2066}ode\u{2069} (172.18.0.9)"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    let graph: serde_json::Value = serde_json::from_str(&graph).unwrap();
    let texts = graph.to_string();
    assert!(texts.contains(r"evil\\u{202e}gpj.exe"), "{texts}");
    assert!(texts.contains(r"node n\\u{2066}ode\\u{2069}"), "{texts}");
}

/// Names no Kubernetes object can have are refused where the URL names them, with a short
/// message; nothing reaches the store.
#[sqlx::test(migrations = false)]
async fn bad_names_in_urls_are_refused_with_400(pool: PgPool) {
    let app = app(pool).await;
    let long = "a".repeat(300);
    let cases = [
        "/clusters/UPPER_case".to_string(),
        "/clusters/demo/namespaces/Bad_NS/workloads/deployment/x".to_string(),
        "/clusters/demo/namespaces/example-java-app/workloads/deployment/%3Cimg%3E".to_string(),
        "/clusters/demo/namespaces/example-java-app/workloads/statefulset/a.b".to_string(),
        format!("/api/v1/clusters/demo/namespaces/example-java-app/workloads/deployment/{long}/graph"),
        "/api/v1/clusters/demo/namespaces/a%2Fb/policy.yaml".to_string(),
        "/api/v1/clusters/demo/namespaces/x%E2%80%AE/graph".to_string(),
        "/api/v1/clusters/de%20mo/namespaces/example-java-app/policy.yaml".to_string(),
    ];
    for path in cases {
        let (status, _, body) = send(&app, bearer(&path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        // A short message (an HTML page for page routes), never the input echoed whole or raw.
        assert!(body.len() < 4_000 && !body.contains(&long) && !body.contains('\u{202e}'), "{path}: {body}");
    }
}

/// An ingest for a fresh cluster `big` holding the hostile fixture's good objects (`client`,
/// 10.244.0.20, and `deployment/web`, 10.244.0.10), at a fixed now.
async fn big_cluster(pool: &PgPool, flows: String) -> (axum::Router, flowgate::ingest::IngestReport) {
    let store = Store::from_pool(pool.clone()).await.unwrap();
    let id = store.cluster_id("big", true).await.unwrap();
    let loaded = flowgate::inventory::parse_text(include_str!("fixtures/hostile/inventory.json"), "hostile");
    store.import(id, &loaded.objects, "2026-11-25T00:00:00Z".parse().unwrap()).await.unwrap();
    let inv = std::sync::Arc::new(store.load_inventory(id).await.unwrap());
    let options = flowgate::ingest::Options {
        format: flowgate::flows::FlowFormat::Ndjson,
        threads: 2,
        retention: flowgate::retention::Retention::default(),
        now: "2026-11-25T12:00:00Z".parse().unwrap(),
        write: Default::default(),
    };
    let source = flowgate::ingest::Source::Bytes { name: "big".into(), bytes: flows.into_bytes() };
    let report = flowgate::ingest::ingest_sources(&store, id, inv, vec![source], &options).await.unwrap();
    (router(AppState::new(store, TOKEN)), report)
}

fn line(i: usize, port: usize, process: &str) -> String {
    format!(
        r#"{{"time":"2026-11-25T10:{:02}:{:02}Z","src_ip":"10.244.0.20","src_port":{},"dst_ip":"10.244.0.10","dst_port":{port},"protocol":"TCP","process":"{process}"}}"#,
        i / 60,
        i % 60,
        40000 + i
    ) + "\n"
}

const WEB_PAGE: &str = "/clusters/big/namespaces/shop/workloads/deployment/web";
const WEB_API: &str = "/api/v1/clusters/big/namespaces/shop/workloads/deployment/web";

/// 96 flows, each to its own port with a process name of a megabyte (records may be up to a MiB):
/// what is stored and shown
/// is cut to 256 bytes, and the review page stays small (it was 96 MB).
#[sqlx::test(migrations = false)]
async fn megabyte_process_names_are_cut_and_the_page_stays_small(pool: PgPool) {
    let flows: String = (0..96).map(|i| line(i, 8000 + i, &format!("{i:02}{}", "p".repeat(1_000_000)))).collect();
    let (app, report) = big_cluster(&pool, flows).await;
    assert_eq!((report.accepted, report.cleaned, report.rejected), (96, 96, 0), "{report}");
    let longest: i32 = sqlx::query_scalar("select max(octet_length(p)) from conn_hourly, unnest(processes) p")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(longest, 256);

    let (status, _, page) = send(&app, bearer(WEB_PAGE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<tr class=").count(), 96, "one row per connection");
    // About 3.3 KB a row (the cut name in the table and the map, the decision, what applying the
    // policy does and why, the map edge's explanation of both ends, the row's key in the table and
    // on its edge, its activity strip): the page grows with rows, not with the names' megabytes.
    assert!(page.len() < 96 * 3_500, "the page is {} bytes", page.len());
    let (status, _, body) = send(&app, bearer(&format!("{WEB_API}/connections"))).await;
    assert_eq!(status, StatusCode::OK);
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    for row in rows["connections"].as_array().unwrap() {
        for p in row["processes"].as_array().unwrap() {
            let p = p.as_str().unwrap();
            assert!(p.len() <= 256 && p.ends_with('…'), "{} bytes", p.len());
        }
    }
    let (status, _, graph) = send(&app, bearer(&format!("{WEB_API}/graph"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(graph.len() < 200_000, "the graph is {} bytes", graph.len());
}

/// A table longer than the page renders shows its first rows and says how many more there are.
#[sqlx::test(migrations = false)]
async fn long_tables_show_their_first_rows_and_say_how_many_more(pool: PgPool) {
    let n = flowgate::web::pages::MAX_TABLE_ROWS + 25;
    let flows: String = (0..n).map(|i| line(i % 3600, 20000 + i, "curl")).collect();
    let (app, report) = big_cluster(&pool, flows).await;
    assert_eq!(report.accepted as usize, n, "{report}");
    let (status, _, page) = send(&app, bearer(WEB_PAGE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<tr class=").count(), flowgate::web::pages::MAX_TABLE_ROWS);
    assert!(page.contains("25 more ingress connections not shown (the first 1000 are)"), "{page}");
    let (_, _, body) = send(&app, bearer(&format!("{WEB_API}/connections"))).await;
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows["connections"].as_array().map(Vec::len), Some(n), "the API lists them all");
}

/// A page load is one review, and so is a decision: the page carries its map's graph and the
/// partial a decision returns carries the new one, so map.js asks for neither.
#[sqlx::test(migrations = false)]
async fn a_page_and_a_decision_cost_one_review_each(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let state = AppState::new(store.clone(), TOKEN);
    seed_demo(&state, "2026-11-26T12:00:00Z".parse().unwrap()).await.unwrap();
    let app = router(state);
    let reviews = || store.reviews.load(std::sync::atomic::Ordering::Relaxed);
    let before = reviews();
    let (status, _, page) = send(&app, bearer(PAGE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reviews() - before, 1, "the page");
    // The embedded graph is the graph endpoint's, and safe inside its element.
    let start = page.find(r#"<script type="application/json" id="map-graph">"#).expect("the page carries its graph");
    let json = &page[start..];
    let json = &json[json.find('>').unwrap() + 1..json.find("</script>").unwrap()];
    let embedded: serde_json::Value = serde_json::from_str(json).unwrap();
    let (_, _, fetched) = send(&app, bearer(&format!("{W}/graph?since=24h"))).await;
    assert_eq!(embedded, serde_json::from_str::<serde_json::Value>(&fetched).unwrap());

    let before = reviews();
    let form = "version=0&peer=deployment/example-java-app/example-java-app-cassandra&allow=false";
    let req = Request::post(format!("{PAGE}/decisions"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("hx-request", "true")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, headers, partial) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert_eq!(reviews() - before, 1, "the decision");
    assert!(partial.contains(r#"id="map-graph""#));
    assert_eq!(headers["hx-trigger-after-swap"], "flowgate:decisions-changed");

    // Without a token or a session nothing is reviewed: the review context authenticates first.
    let before = reviews();
    for path in [PAGE.to_string(), format!("{W}/graph"), format!("{W}/connections"), format!("{W}/policy.yaml")] {
        let (status, _, _) = send(&app, Request::get(path.as_str()).body(Body::empty()).unwrap()).await;
        assert!(matches!(status, StatusCode::UNAUTHORIZED | StatusCode::SEE_OTHER), "{path}: {status}");
    }
    assert_eq!(reviews() - before, 0, "unauthenticated requests");
}

/// `GET .../simulation`: what applying the workload's proposed policy would do to each connection,
/// and a decision changes it (trusting the external API's range stops it being broken).
#[sqlx::test(migrations = false)]
async fn the_simulation_api_lists_what_the_policy_would_break(pool: PgPool) {
    let app = app(pool).await;
    let sim = |app: axum::Router| async move {
        let (status, _, body) = send(&app, bearer(&format!("{W}/simulation?since=24h"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let v = sim(app.clone()).await;
    let broken = |v: &serde_json::Value| -> Vec<String> {
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["effect"] == "would_break")
            .map(|r| format!("{}:{}", r["dst"]["ip"].as_str().unwrap_or("?"), r["port"]))
            .collect()
    };
    assert_eq!(broken(&v), ["192.229.173.207:443", "10.244.200.9:8125"], "{v}");
    assert_eq!(v["would_break"], 2);
    let api = v["connections"].as_array().unwrap().iter().find(|r| r["port"] == 443).unwrap();
    assert_eq!(
        api["reason"],
        "blocked by the default deny of example-java-app/example-java-app-javaapp (egress: no rule allows it)"
    );
    assert!(v["connections"].as_array().unwrap().iter().any(|r| r["effect"] == "allowed"));

    let req = Request::put(format!("{W}/decisions"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"trust":["192.229.173.0/24"]}"#))
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
    let v = sim(app.clone()).await;
    assert_eq!(broken(&v), ["10.244.200.9:8125"], "{v}");
}

/// Safety warnings above the YAML: the demo's ingress controller sits behind a LoadBalancer and
/// nothing came from outside in the window, so its policy (ingress isolated, no rule from outside)
/// is said loudly; javaapp's cassandra dependency, last seen 20 h ago, is marked stale.
#[sqlx::test(migrations = false)]
async fn exposed_and_stale_are_said_above_the_yaml(pool: PgPool) {
    let app = app(pool).await;
    let (status, _, page) =
        send(&app, bearer("/clusters/demo/namespaces/ingress-nginx/workloads/deployment/ingress-nginx-controller"))
            .await;
    assert_eq!(status, StatusCode::OK);
    let start = page.find(r#"<ul id="safety">"#).expect("safety warnings on the page");
    let safety = &page[start..start + page[start..].find("</ul>").unwrap()];
    assert!(
        safety.contains(r#"class="error""#)
            && safety.contains(
                "reachable from outside the cluster (LoadBalancer Service ingress-nginx/ingress-nginx-controller)"
            ),
        "{safety}"
    );
    let (_, _, page) = send(&app, bearer(PAGE)).await;
    // The window as resolved: the last 24 h, counted back from the newest flow (the demo's last
    // backfilled one, 10 minutes before its seed at 12:00).
    assert!(
        page.contains(r#"<p class="muted" id="window-resolved">Showing 2026-11-25 11:50 – 2026-11-26 11:50 UTC (the newest flow)</p>"#),
        "{}",
        &page[..page.len().min(3000)]
    );
    let start = page.find(r#"<ul id="safety">"#).expect("javaapp's warnings");
    let safety = &page[start..start + page[start..].find("</ul>").unwrap()];
    assert!(safety.contains("example-java-app-cassandra:9042/TCP: allowed, but last seen"), "{safety}");
    assert!(!safety.contains("reachable from outside"), "{safety}");
    // javaapp is an Ingress backend (by the Service port's name, to a named container port), and
    // its policy admits the controller's observed requests on 8080: nothing to say.
    assert!(!safety.contains("backend of Ingress"), "{safety}");
    // Grafana is one too, but nothing came through the controller in the window: said loudly.
    let (_, _, grafana) = send(&app, bearer("/clusters/demo/namespaces/monitoring/workloads/deployment/grafana")).await;
    let start = grafana.find(r#"<ul id="safety">"#).expect("grafana's warnings");
    let warned = &grafana[start..start + grafana[start..].find("</ul>").unwrap()];
    assert!(
        warned.contains(r#"class="error""#)
            && warned.contains("deployment/monitoring/grafana is a backend of Ingress monitoring/grafana (Service grafana:80, pod port 3000/TCP), but its policy admits nothing on 3000/TCP"),
        "{warned}"
    );
    // The rows say which Service a client used: jclient reached javaapp through its Service's
    // port 80, and the pod's port 8080 is what the row (and the rule) names.
    let jclient = page
        .split("<tr class=")
        .skip(1)
        .map(|row| &row[..row.find("</tr>").unwrap_or(row.len())])
        .find(|row| row.contains("deployment/example-java-app/example-java-app-jclient") && row.contains("8080/TCP"))
        .expect("jclient's ingress row");
    assert!(jclient.contains("via Service example-java-app/example-java-app-javaapp:80</span>"), "{jclient}");
    // In the tables, the stale row carries the mark, and only it.
    let stale_rows: Vec<&str> = page.split("<tr class=").filter(|row| row.contains(r#"class="badge stale""#)).collect();
    assert_eq!(stale_rows.len(), 1, "{stale_rows:?}");
    assert!(stale_rows[0].contains("deployment/example-java-app/example-java-app-cassandra"), "{}", stale_rows[0]);
    // So does its edge on the map, whose details explain both ends as `flowgate explain` does.
    let (_, _, graph) = send(&app, bearer(&format!("{W}/graph?since=24h"))).await;
    let graph: serde_json::Value = serde_json::from_str(&graph).unwrap();
    let edges = graph["edges"].as_array().unwrap();
    let stale: Vec<&serde_json::Value> = edges.iter().filter(|e| e["detail"]["Stale"].is_string()).collect();
    assert!(!stale.is_empty() && stale.iter().all(|e| e["label"] == "9042/TCP"), "{stale:?}");
    let api = edges.iter().find(|e| e["target"] == "ip:192.229.173.207").expect("the external API's edge");
    assert_eq!(
        api["detail"]["Source's egress"],
        "today: not isolated: no policy selects it for egress; if applied: isolated for egress by example-java-app/example-java-app-javaapp and no rule of theirs allows it (their default deny)",
        "{api}"
    );
    assert_eq!(api["detail"]["Destination's ingress"], "today and if applied: not a pod: no policy applies", "{api}");
    // The semantic diff against today's policies (the demo has none): the external API and the
    // unresolved statsd address are newly blocked, the rest unchanged.
    let start = page.find(r#"<p id="compared">"#).expect("the comparison");
    let compared = &page[start..start + page[start..].find("</p>").unwrap()];
    assert!(
        compared.contains(
            "Against no policy (nothing isolates these pods today): 0 connections newly allowed, 2 newly blocked,"
        ),
        "{compared}"
    );
}

/// Errors on pages are pages: a bad or reversed window, an unknown workload, a deep link without a
/// session (which offers the login form and comes back to the link after it); the API keeps JSON.
#[sqlx::test(migrations = false)]
async fn page_errors_are_pages_with_a_way_on(pool: PgPool) {
    let app = app(pool).await;
    let html = |h: &axum::http::HeaderMap| h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html");
    // A window the page cannot read is said beside its fields (which keep what was typed, and
    // are marked invalid), over the default window's review: a page, no JSON.
    for (query, says, since_invalid, until_invalid) in [
        ("since=yesterday", "since: ", true, false),
        ("since=24h&until=tomorrow", "until: ", false, true),
        ("since=2026-11-26T12:00:00Z&until=2026-11-25T00:00:00Z", "swap since and until", true, true),
        ("since=2026-11-26T12:00:00Z&until=2026-11-26T12:00:00Z", "the window is empty", true, true),
    ] {
        let (status, headers, body) = send(&app, bearer(&format!("{PAGE}?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(html(&headers), "{query}: {headers:?}");
        let start = body.find(r#"<p class="error field-error" id="window-error" role="alert">"#).expect(query);
        let error = &body[start..start + body[start..].find("</p>").unwrap()];
        assert!(error.contains(says), "{query}: {error}");
        assert!(!body.contains(r#"{"error""#), "{query}");
        let field = |id: &str| {
            let at = body.find(&format!(r#"<input id="{id}""#)).unwrap();
            body[at..at + body[at..].find('>').unwrap()].to_string()
        };
        assert_eq!(field("since").contains(r#"aria-invalid="true""#), since_invalid, "{query}: {}", field("since"));
        assert_eq!(field("until").contains(r#"aria-invalid="true""#), until_invalid, "{query}: {}", field("until"));
        // What was typed stays in the field; the tables show the default window meanwhile.
        let typed = query.split('&').next().unwrap().trim_start_matches("since=");
        assert!(field("since").contains(&format!(r#"value="{typed}""#)), "{}", field("since"));
        assert!(body.contains("until the window above is mended") && body.contains("<tr class="), "{query}");
    }
    let cases = [(
        "/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javapp".to_string(),
        StatusCode::NOT_FOUND,
        "no workload deployment/example-java-app/example-java-app-javapp",
    )];
    for (path, want, says) in cases {
        let (status, headers, body) = send(&app, bearer(&path)).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(html(&headers), "{path}: {headers:?}");
        assert!(body.contains(says) && body.contains(r#"<a href="/">Back to the clusters</a>"#), "{path}: {body}");
    }
    // The API answers the same mistakes in JSON.
    let (status, headers, body) = send(&app, bearer(&format!("{W}/connections?since=yesterday"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!html(&headers) && body.starts_with("{\"error\":"), "{body}");

    let (status, headers, body) =
        send(&app, Request::get(format!("{PAGE}?since=3h")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html(&headers), "{headers:?}");
    let login = format!("/?next={PAGE}%3Fsince%3D3h");
    assert!(body.contains(&format!(r#"<a href="{login}">Log in"#)), "{body}");
    let (status, _, form) = send(&app, Request::get(login.as_str()).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(form.contains(&format!(r#"<input type="hidden" name="next" value="{PAGE}?since=3h">"#)), "{form}");
    let (status, headers, _) =
        send(&app, Request::get(format!("/?token={TOKEN}&next={PAGE}%3Fsince%3D3h")).body(Body::empty()).unwrap())
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], format!("{PAGE}?since=3h"));
}

/// `GET .../drift`: the downloaded revision against the traffic seen since it was recorded: a new
/// dependency (an external API the app started calling) is one it would block.
#[sqlx::test(migrations = false)]
async fn drift_lists_what_the_downloaded_revision_would_block_since(pool: PgPool) {
    let app = app(pool).await;
    let drift = |app: axum::Router| async move {
        let (status, _, body) = send(&app, bearer(&format!("{W}/drift"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let v = drift(app.clone()).await;
    assert_eq!(v["revision"], serde_json::Value::Null, "{v}");
    let (_, _, body) = send(&app, bearer("/clusters/demo")).await;
    assert!(!body.contains(r#"<section id="drift">"#), "nothing downloaded yet: {body}");
    let (status, _, _) = send(&app, bearer(&format!("{W}/policy.yaml"))).await;
    assert_eq!(status, StatusCode::OK);
    let v = drift(app.clone()).await;
    assert_eq!((v["revision"].as_i64(), v["would_block"].as_array().map(Vec::len)), (Some(1), Some(0)), "{v}");
    // Every rule of the revision admitted something in the last 7 days (the default)...
    assert_eq!(v["rules"].as_array().map(Vec::len), Some(5), "{v}");
    assert_eq!(v["unused_rules"], serde_json::json!([]), "{v}");
    assert!(v["rules"].as_array().unwrap().iter().all(|r| !r["connections"].as_array().unwrap().is_empty()), "{v}");
    // ...but cassandra, last seen 20 h before the newest flow, not in the last 12 h: its rule is a
    // candidate to remove.
    let (status, _, body) = send(&app, bearer(&format!("{W}/drift?unused_for=12h"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["unused_rules"],
        serde_json::json!([{"policy": "example-java-app/example-java-app-javaapp", "direction": "egress", "rule": 0}]),
        "{v}"
    );
    let (status, _, body) = send(&app, bearer(&format!("{W}/drift?unused_for=yesterday"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("unused_for"), "{body}");

    // After the download, javaapp starts calling a new external API.
    let now = jiff::Timestamp::now().to_string();
    let flow = format!(
        r#"{{"time":"{now}","src_ip":"10.244.0.11","src_port":41000,"dst_ip":"203.0.113.5","dst_port":443,"protocol":"TCP","process":"java"}}"#
    );
    let req = Request::post("/api/v1/clusters/demo/flows?format=ndjson")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(flow + "\n"))
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = drift(app.clone()).await;
    let blocked = v["would_block"].as_array().unwrap();
    assert_eq!(blocked.len(), 1, "{v}");
    assert_eq!(blocked[0]["dst"]["ip"], "203.0.113.5");
    assert_eq!(blocked[0]["effect"], "would_break");
    assert!(blocked[0]["reason"].as_str().unwrap().contains("example-java-app/example-java-app-javaapp"), "{v}");
    // The cluster page lists the same, for the namespace and for the whole cluster.
    for page in ["/clusters/demo", "/clusters/demo?ns=example-java-app"] {
        let (status, _, body) = send(&app, bearer(page)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let start = body.find(r#"<section id="drift">"#).unwrap_or_else(|| panic!("{page}: no drift section"));
        let section = &body[start..start + body[start..].find("</section>").unwrap()];
        assert!(section.contains("deployment/example-java-app/example-java-app-javaapp"), "{section}");
        assert!(section.contains("203.0.113.5 (external) 443/TCP"), "{section}");
        assert!(section.contains(&format!(r#"<a href="{W}/drift">1</a>"#)), "{section}");
    }
    // Another namespace has no downloaded revision.
    let (_, _, body) = send(&app, bearer("/clusters/demo?ns=ingress-nginx")).await;
    assert!(!body.contains(r#"<section id="drift">"#), "{body}");
}

/// `GET .../explain`: one connection, explained as `flowgate explain` does, today (the demo has no
/// policies) and with the workload's proposed policy applied; the allowing rule is named by its
/// place in the proposed YAML, and that place holds the rule for that peer.
#[sqlx::test(migrations = false)]
async fn the_explain_api_names_the_deciding_rule(pool: PgPool) {
    let app = app(pool).await;
    let javaapp = "deployment/example-java-app/example-java-app-javaapp";
    let explain = |q: String| {
        let app = app.clone();
        async move {
            let (status, _, body) = send(&app, bearer(&format!("{W}/explain?since=24h&{q}"))).await;
            (status, body)
        }
    };
    let cassandra = "deployment/example-java-app/example-java-app-cassandra";
    let (status, body) = explain(format!("src={javaapp}&dst={cassandra}&port=9042/TCP")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["today"]["allowed"], true, "{v}");
    assert_eq!(v["today"]["reason"], "allowed: no policy isolates either end", "{v}");
    assert_eq!(v["if_applied"]["allowed"], true, "{v}");
    assert_eq!(v["observed"]["processes"], serde_json::json!(["java"]), "{v}");
    let egress = v["if_applied"]["egress"].as_str().unwrap();
    let prefix = "allowed by example-java-app/example-java-app-javaapp spec.egress[";
    let index: usize = egress
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("{egress}"));
    // That rule of the proposed policy is the one naming cassandra on 9042.
    let (_, _, yaml) = send(&app, bearer(&format!("{W}/policy.yaml?since=24h"))).await;
    let policy: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    let rule = &policy["spec"]["egress"][index];
    assert_eq!(rule["ports"], serde_json::json!([{"port": 9042, "protocol": "TCP"}]), "{rule}");
    assert!(rule["to"].to_string().contains("example-java-app-cassandra"), "{rule}");
    // Under the YAML, that rule expands to the connection that justifies it.
    let (_, _, page) = send(&app, bearer(&format!("{PAGE}?since=24h"))).await;
    let summary = format!(
        "<code>spec.egress[{index}]</code> of example-java-app/example-java-app-javaapp: 1 connection</summary>"
    );
    let start = page.find(&summary).unwrap_or_else(|| panic!("no {summary} in the page"));
    let rule_html = &page[start..start + page[start..].find("</details>").unwrap()];
    assert!(rule_html.contains("deployment/example-java-app/example-java-app-cassandra 9042/TCP: "), "{rule_html}");
    assert!(rule_html.contains("process java"), "{rule_html}");

    // The external API: open today, cut off by the proposal's egress isolation.
    let (status, body) = explain(format!("src={javaapp}&dst=192.229.173.207&port=443/TCP")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["today"]["allowed"].as_bool(), v["if_applied"]["allowed"].as_bool()), (Some(true), Some(false)));
    assert_eq!(
        v["if_applied"]["reason"],
        "blocked by the default deny of example-java-app/example-java-app-javaapp (egress: no rule allows it)"
    );
    assert_eq!(v["if_applied"]["ingress"], "not a pod: no policy applies", "{v}");
    // A connection never seen is explained too, with nothing observed.
    let (status, body) = explain(format!("src={javaapp}&dst=198.51.100.7&port=25/TCP")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""observed":null"#), "{body}");

    // Mistakes are 400 and say which field.
    let cases = [
        (format!("src={javaapp}&dst={cassandra}&port=9042"), "port: "),
        (format!("src={javaapp}&port=9042/TCP"), "dst: missing"),
        (format!("src={javaapp}&dst=10.0.0.0/8&port=53/UDP"), "not a range"),
        (format!("src=deployment/x&dst={cassandra}&port=1/TCP"), "src: "),
        (
            format!("src={javaapp}&dst=statefulset/example-java-app/example-java-app-cassandra&port=9042/TCP"),
            "dst: no workload statefulset/example-java-app/example-java-app-cassandra in this cluster",
        ),
        (format!("src={cassandra}&dst=192.229.173.207&port=443/TCP"), "neither src nor dst is"),
    ];
    for (q, says) in cases {
        let (status, body) = explain(q.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body.contains(says), "{q}: {body}");
    }
    // Nobody unauthenticated gets an explanation.
    let req = Request::get(format!("{W}/explain?src={javaapp}&dst={cassandra}&port=9042/TCP")).body(Body::empty());
    assert_eq!(send(&app, req.unwrap()).await.0, StatusCode::UNAUTHORIZED);
}

/// Reset: a workload's decisions go back to the defaults in one step, as a new version.
#[sqlx::test(migrations = false)]
async fn decisions_reset_to_the_defaults(pool: PgPool) {
    let app = app(pool).await;
    let post = |form: &'static str| htmx_form(&format!("{PAGE}/decisions"), form);
    let (status, _, partial) =
        send(&app, post("version=0&peer=deployment/example-java-app/example-java-app-cassandra&allow=false")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(partial.contains("Reset this workload"), "a changed workload offers the reset");
    let (status, _, _) = send(&app, post("version=1&trust_cidr=192.229.173.0%2F24")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, partial) = send(&app, post("version=2&reset=1")).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    let (_, _, body) = send(&app, bearer(&format!("{W}/decisions"))).await;
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (d["version"].as_i64(), d["exclude"].as_array().map(Vec::len), d["trust"].as_array().map(Vec::len)),
        (Some(3), Some(0), Some(0)),
        "{d}"
    );
    assert!(partial.contains("example-java-app-cassandra") && partial.contains("Reset this workload"));
}

/// Leaving a direction out: the ingress controller is exposed (a LoadBalancer) and nothing came
/// from outside in the window, so its page offers leaving Ingress out; taken, the policy isolates
/// Egress only (in both dialects), the Ingress rows say so, the loud warning is gone, and it can
/// be undone. Both directions at once is refused.
#[sqlx::test(migrations = false)]
async fn ingress_can_be_left_out_of_an_exposed_workloads_policy(pool: PgPool) {
    let app = app(pool).await;
    const NGINX: &str = "/clusters/demo/namespaces/ingress-nginx/workloads/deployment/ingress-nginx-controller";
    const NGINX_API: &str =
        "/api/v1/clusters/demo/namespaces/ingress-nginx/workloads/deployment/ingress-nginx-controller";
    let post = |form: String| htmx_form(&format!("{NGINX}/decisions"), form);
    let yaml = |app: axum::Router, dialect: &'static str| async move {
        let (status, _, yaml) = send(&app, bearer(&format!("{NGINX_API}/policy.yaml?dialect={dialect}"))).await;
        assert_eq!(status, StatusCode::OK, "{yaml}");
        serde_saphyr::from_str::<serde_json::Value>(&yaml).unwrap()
    };
    let (_, _, page) = send(&app, bearer(NGINX)).await;
    let start = page.find(r#"<ul id="safety">"#).expect("the exposed warning");
    let safety = &page[start..start + page[start..].find("</ul>").unwrap()];
    assert!(safety.contains(r#"<button type="submit" name="leave_out" value="ingress">"#), "{safety}");
    let before = yaml(app.clone(), "kubernetes").await;
    assert_eq!(before["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]), "{before}");

    let (status, _, partial) = send(&app, post("version=0&leave_out=ingress".into())).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert!(partial.contains("Ingress is left out of this policy"), "{partial}");
    assert!(partial.contains(r#"name="isolate" value="ingress""#), "{partial}");
    assert!(!partial.contains("reachable from outside the cluster"), "the warning is answered: {partial}");
    assert!(partial.contains(" 0 mismatches."), "{partial}");
    let after = yaml(app.clone(), "kubernetes").await;
    assert_eq!(after["spec"]["policyTypes"], serde_json::json!(["Egress"]), "{after}");
    assert!(after["spec"]["ingress"].is_null(), "{after}");
    assert_eq!(after["spec"]["egress"], before["spec"]["egress"], "egress is as it was");
    let cilium = yaml(app.clone(), "cilium").await;
    assert!(cilium["spec"]["ingress"].is_null() && cilium["spec"]["egress"].is_array(), "{cilium}");
    let (_, _, body) = send(&app, bearer(&format!("{NGINX_API}/connections?since=24h"))).await;
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ingress: Vec<&serde_json::Value> =
        rows["connections"].as_array().unwrap().iter().filter(|r| r["direction"] == "ingress").collect();
    assert!(ingress.iter().all(|r| r["status"] == "left_out" && r["editable"] == false), "{ingress:?}");
    let (_, _, body) = send(&app, bearer(&format!("{NGINX_API}/decisions"))).await;
    assert!(body.contains(r#""leave_out":["ingress"]"#), "{body}");

    // Not both: a policy with no type would isolate Ingress.
    let (status, _, body) = send(&app, post("version=1&leave_out=egress".into())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let req = Request::put(format!("{NGINX_API}/decisions"))
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"leave_out":["ingress","egress"]}"#))
        .unwrap();
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("leave_out"), "{body}");
    let (status, _, body) = send(&app, post("version=1&leave_out=sideways".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // And undone.
    let (status, _, partial) = send(&app, post("version=1&isolate=ingress".into())).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert!(partial.contains("reachable from outside the cluster"), "{partial}");
    assert_eq!(yaml(app.clone(), "kubernetes").await, before);
}

/// The proposal beside the policies selecting the same pods today, rule by rule and as YAML:
/// the demo with the simulation tests' policies in force (a namespace default deny, another
/// team's policy on redis that lets only the monitoring namespace in).
#[sqlx::test(migrations = false)]
async fn the_proposal_is_diffed_against_the_policies_selecting_its_pods(pool: PgPool) {
    let store = Store::from_pool(pool).await.unwrap();
    let state = AppState::new(store, TOKEN);
    let seeded: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
    let id = seed_demo(&state, seeded).await.unwrap();
    let mut objects = flowgate::inventory::parse_text(flowgate::web::demo::INVENTORY, "demo").objects;
    let existing = std::fs::read_to_string("tests/fixtures/java-app-extra/existing-policies.yaml").unwrap();
    objects.extend(flowgate::inventory::parse_text(&existing, "existing").objects);
    state.store.import(id, &objects, seeded - SignedDuration::from_hours(24)).await.unwrap();
    let app = router(state);
    const REDIS: &str = "/api/v1/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-redis";
    let (status, _, body) = send(&app, bearer(&format!("{REDIS}/diff?since=24h"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["today"],
        serde_json::json!(["example-java-app/default-deny-ingress", "example-java-app/redis-from-monitoring"]),
        "{v}"
    );
    let ingress = &v["directions"][0];
    assert_eq!((ingress["direction"].as_str(), ingress["isolated_today"].as_bool()), (Some("ingress"), Some(true)));
    // The whole monitoring namespace goes; the two clients seen (javaapp, and prometheus in
    // monitoring) come in, each on 6379 only.
    assert_eq!(
        ingress["removed"],
        serde_json::json!(["pods all in namespaces kubernetes.io/metadata.name=monitoring on 6379/TCP"]),
        "{v}"
    );
    let added: Vec<&str> = ingress["added"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(added.iter().all(|e| e.ends_with(" on 6379/TCP")) && added.len() == 2, "{added:?}");
    assert!(added.iter().any(|e| e.contains("example-java-app-javaapp")), "{added:?}");
    // Egress was open (neither policy has the type); the proposal isolates it.
    let egress = &v["directions"][1];
    assert_eq!((egress["isolated_today"].as_bool(), egress["isolated_proposed"].as_bool()), (Some(false), Some(true)));
    let lines = v["yaml_diff"].as_array().unwrap();
    assert!(lines.iter().any(|l| l["op"] == "-" && l["text"] == "  name: redis-from-monitoring"), "{v}");
    assert!(lines.iter().any(|l| l["op"] == "+" && l["text"] == "  name: example-java-app-redis"), "{v}");
    assert!(lines.iter().any(|l| l["op"] == " "), "{v}");

    // The page shows the same, under the simulation.
    let (_, _, page) =
        send(&app, bearer("/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-redis"))
            .await;
    let start = page.find(r#"<details id="policy-diff">"#).expect("the diff on the page");
    let section = &page[start..];
    assert!(
        section.contains(
            "Rule by rule against example-java-app/default-deny-ingress, example-java-app/redis-from-monitoring"
        ),
        "{section}"
    );
    assert!(section.contains(r#"<li class="removed"><span class="op">−</span> pods all in namespaces kubernetes.io/metadata.name=monitoring on 6379/TCP</li>"#), "{section}");
    assert!(section.contains(r#"<details id="yaml-diff">"#), "{section}");
    // Where nothing selects the pods today, every rule is new and there is no YAML diff.
    let (_, _, page) = send(&app, bearer("/clusters/demo/namespaces/monitoring/workloads/deployment/grafana")).await;
    assert!(page.contains("no policy selects these pods: every rule is new"), "grafana");
    assert!(!page.contains(r#"<details id="yaml-diff">"#));
}

/// Undo: the decisions go back to the version before the current one, as a new version (the
/// history keeps everything, and undoing twice undoes the undo); each saved change says its
/// version.
#[sqlx::test(migrations = false)]
async fn the_last_decision_can_be_undone(pool: PgPool) {
    let app = app(pool).await;
    let post = |form: &'static str| htmx_form(&format!("{PAGE}/decisions"), form);
    let decisions = |app: axum::Router| async move {
        let (_, _, body) = send(&app, bearer(&format!("{W}/decisions"))).await;
        let d: serde_json::Value = serde_json::from_str(&body).unwrap();
        (d["version"].as_i64().unwrap(), d["exclude"].clone(), d["trust"].clone())
    };
    let (status, _, body) = send(&app, post("version=0&undo=1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "nothing to undo yet: {body}");
    let (status, _, partial) =
        send(&app, post("version=0&peer=deployment/example-java-app/example-java-app-cassandra&allow=false")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(partial.contains("Saved as version 1."), "{partial}");
    assert!(partial.contains(r#"name="undo""#), "a changed workload offers undo");
    let (_, _, partial) = send(&app, post("version=1&trust_cidr=192.229.173.0%2F24")).await;
    assert!(partial.contains("Saved as version 2."), "{partial}");
    let cassandra = serde_json::json!(["deployment/example-java-app/example-java-app-cassandra"]);
    assert_eq!(decisions(app.clone()).await, (2, cassandra.clone(), serde_json::json!(["192.229.173.0/24"])));

    let (status, _, partial) = send(&app, post("version=2&undo=1")).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert!(partial.contains("Undone: version 3 has the decisions of version 1 again."), "{partial}");
    assert_eq!(decisions(app.clone()).await, (3, cassandra, serde_json::json!([])));
    // The button says where it goes; pressed again it goes back to the version before the
    // current one, which is version 2's decisions: the undo undone.
    assert!(partial.contains("Undo the last change (back to version 2)"), "{partial}");
    let (_, _, _) = send(&app, post("version=3&undo=1")).await;
    assert_eq!(decisions(app.clone()).await, (4, cassandra_and_trust().0, cassandra_and_trust().1));
    // A stale form is refused as every change is.
    let (status, _, partial) = send(&app, post("version=3&undo=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(partial.contains("Someone else changed these decisions"), "{partial}");
}

fn cassandra_and_trust() -> (serde_json::Value, serde_json::Value) {
    (
        serde_json::json!(["deployment/example-java-app/example-java-app-cassandra"]),
        serde_json::json!(["192.229.173.0/24"]),
    )
}

/// The cluster's guardrails page: the demo's namespace pairs, a Deny that changes the YAML in both
/// API versions and is kept (versioned: a stale form is refused), bad input refused with why.
#[sqlx::test(migrations = false)]
async fn guardrails_are_reviewed_per_namespace_pair(pool: PgPool) {
    let app = app(pool).await;
    let (status, _, page) = send(&app, bearer("/clusters/demo/guardrails")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<td>monitoring</td><td>example-java-app</td>"), "{page}");
    assert!(page.contains("<td>ingress-nginx</td><td>example-java-app</td>"), "{page}");
    assert!(page.contains("kind: ClusterNetworkPolicy"), "{page}");
    assert!(page.contains("verified: every connection between namespaces"), "{page}");
    let (_, _, cluster) = send(&app, bearer("/clusters/demo")).await;
    assert!(cluster.contains("/clusters/demo/guardrails"), "{cluster}");

    let post = |form: &str| {
        Request::post("/clusters/demo/guardrails")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap()
    };
    let yaml = |api: &'static str| {
        let app = app.clone();
        async move {
            let (status, headers, body) =
                send(&app, bearer(&format!("/api/v1/clusters/demo/guardrails.yaml?api={api}"))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains(&format!("guardrails-demo.{api}.yaml"))
            );
            body
        }
    };
    // Before: example-java-app accepts from monitoring.
    let before = yaml("v1alpha1").await;
    assert!(before.contains("kind: AdminNetworkPolicy"), "{before}");
    let isolate =
        |y: &str| y.split("---").find(|d| d.contains("name: flowgate-isolate-example-java-app")).unwrap().to_string();
    assert!(isolate(&before).contains("- monitoring"), "{before}");

    let (status, headers, body) =
        send(&app, post("from=monitoring&to=example-java-app&allow=false&version=0&since=7d&api=v1alpha1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], "/clusters/demo/guardrails?since=7d&api=v1alpha1");
    let after = yaml("v1alpha1").await;
    assert!(!isolate(&after).contains("- monitoring"), "{after}");
    let v2 = yaml("v1alpha2").await;
    let baseline = v2.split("---").find(|d| d.contains("name: flowgate-baseline-example-java-app")).unwrap();
    assert!(!baseline.contains("monitoring"), "{v2}");
    let (_, _, page) = send(&app, bearer("/clusters/demo/guardrails")).await;
    assert!(page.contains(r#"aria-label="Allow monitoring to example-java-app""#), "{page}");
    assert!(page.contains("verified: every connection"), "{page}");

    // A form from before that change is refused, and nothing changes.
    let (status, _, body) = send(&app, post("from=monitoring&to=example-java-app&allow=true&version=0")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(yaml("v1alpha1").await, after);
    for (form, why) in [
        ("from=Bad&to=x&allow=true&version=1", "from: "),
        ("from=a&to=a&allow=true&version=1", "one namespace"),
        ("from=a&to=b&allow=maybe&version=1", "allow: "),
    ] {
        let (status, _, body) = send(&app, post(form)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form}: {body}");
        assert!(body.contains(why), "{form}: {body}");
    }
    let (status, _, body) = send(&app, bearer("/api/v1/clusters/demo/guardrails.yaml?api=v2")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Without a token, nothing.
    let (status, _, _) =
        send(&app, Request::get("/api/v1/clusters/demo/guardrails.yaml").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The landing page sums up each cluster: flows, the newest flow, namespaces, workloads seen, the
/// ones nobody reviewed yet (linked), and the reviewed ones whose policy would break the last
/// day's traffic (linked, with how many connections).
#[sqlx::test(migrations = false)]
async fn the_landing_page_sums_up_each_cluster(pool: PgPool) {
    let app = app(pool).await;
    let figure = |body: &str, name: &str| -> String {
        let at = body.find(&format!("<dt>{name}</dt>")).unwrap_or_else(|| panic!("no {name}: {body}"));
        let dd = &body[at + body[at..].find("<dd").unwrap()..];
        let dd = &dd[dd.find('>').unwrap() + 1..];
        dd[..dd.find("</dd>").unwrap()].to_string()
    };
    let (status, _, body) = send(&app, bearer("/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"<a href="/clusters/demo">demo</a>"#), "{body}");
    assert!(figure(&body, "Newest flow").contains("2026-11-26"), "{}", figure(&body, "Newest flow"));
    let seen: usize = figure(&body, "Workloads seen").parse().unwrap();
    assert!(seen >= 8, "{seen}");
    // Nobody decided anything yet: every workload seen is unreviewed, none simulated.
    assert_eq!(figure(&body, "Not reviewed yet"), seen.to_string());
    assert_eq!(figure(&body, "Would break"), "0");
    assert!(
        body.contains(&format!(r#"<a href="{PAGE}">deployment/example-java-app/example-java-app-javaapp</a>"#)),
        "{body}"
    );

    // Untick cassandra for javaapp: it is reviewed now, and its policy blocks the external API,
    // the unresolved statsd address and cassandra (stale, but seen within the day).
    let form = "version=0&peer=deployment/example-java-app/example-java-app-cassandra&allow=false";
    let (status, _, _) = send(&app, htmx_form(&format!("{PAGE}/decisions"), form)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, body) = send(&app, bearer("/")).await;
    assert_eq!(figure(&body, "Not reviewed yet"), (seen - 1).to_string());
    assert!(!body.contains(&format!(r#"<a href="{PAGE}">"#)), "javaapp is reviewed");
    let broken = figure(&body, "Would break");
    assert!(broken.starts_with("1 ") && broken.contains("of 1 reviewed"), "{broken}");
    let listed = &body[body.find(r#"<ul class="would-break-list">"#).expect("the list")..];
    let listed = &listed[..listed.find("</ul>").unwrap()];
    assert!(
        listed.contains(&format!(
            r##"<a href="{PAGE}#tab-policy">deployment/example-java-app/example-java-app-javaapp</a>: "##
        )),
        "{listed}"
    );
    let n: usize = listed.split("</a>: ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2, "{listed}");
}

/// A Service as the unit: the cluster page's owner kind Service lists Services (each linking to
/// its page), the page resolves the named target port per backend, lists the backends and the
/// clients seen through it with the backend's decision, and shows the backends' policies; a
/// workload URL of kind service leads there; an unknown Service is a 404 page.
#[sqlx::test(migrations = false)]
async fn a_service_is_shown_as_the_unit(pool: PgPool) {
    let app = app(pool).await;
    let svc = "/clusters/demo/namespaces/example-java-app/services/example-java-app-javaapp";
    let (status, _, body) = send(&app, bearer("/clusters/demo?ns=example-java-app&kind=service")).await;
    assert_eq!(status, StatusCode::OK);
    let list = &body[body.find(r#"<ul class="picklist" id="services">"#).expect("the Services")..];
    let list = &list[..list.find("</ul>").unwrap()];
    assert!(list.contains(&format!(r#"<a href="{svc}">service/example-java-app-javaapp</a>"#)), "{list}");
    assert!(list.contains(&format!(r#"<a href="{PAGE}">deployment/example-java-app-javaapp</a>"#)), "{list}");

    let (status, _, page) = send(&app, bearer(svc)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // Port 80 targets the port named "http": 8080 on javaapp's containers.
    let ports = &page[page.find(r#"id="service-ports""#).unwrap()..];
    let ports = &ports[..ports.find("</table>").unwrap()];
    assert!(ports.contains("80/TCP (p80)") && ports.contains("the port named &#34;http&#34;"), "{ports}");
    assert!(
        ports.contains("deployment/example-java-app/example-java-app-javaapp: <strong>8080/TCP</strong>"),
        "{ports}"
    );
    assert!(page.contains(&format!(r#"<a href="{PAGE}">deployment/example-java-app/example-java-app-javaapp</a>"#)));
    // Its clients through it: jclient and the ingress controller, on the pod port, allowed.
    let clients = &page[page.find(r#"id="service-clients""#).expect("clients")..];
    let clients = &clients[..clients.find("</table>").unwrap()];
    for client in
        ["deployment/example-java-app/example-java-app-jclient", "deployment/ingress-nginx/ingress-nginx-controller"]
    {
        let row = clients.split("<tr").find(|r| r.contains(client)).unwrap_or_else(|| panic!("{client}: {clients}"));
        assert!(row.contains("example-java-app/example-java-app-javaapp:80") && row.contains("8080/TCP"), "{row}");
        assert!(row.contains("allowed"), "{row}");
    }
    // The prometheus scrape goes to the pod directly, not through the Service.
    assert!(!clients.contains("prometheus"), "{clients}");
    assert!(page.contains("kind: NetworkPolicy") && page.contains("port: 8080"), "{page}");

    let (status, headers, _) =
        send(&app, bearer("/clusters/demo/namespaces/example-java-app/workloads/service/example-java-app-javaapp"))
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], svc);
    let (status, _, body) = send(&app, bearer("/clusters/demo/namespaces/example-java-app/services/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no Service example-java-app/nope") && body.contains("<!doctype html>"), "{body}");
    let (status, _, _) = send(&app, Request::get(svc).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
