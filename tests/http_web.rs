//! The web application's HTTP surface in process: login, sessions, origin checks, the JSON API's
//! validation and version conflicts, on a fresh database holding the demo cluster.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flowgate::store::Store;
use flowgate::web::{AppState, router, seed_demo};
use sqlx::PgPool;
use tower::ServiceExt;

const TOKEN: &str = "http-test-token-0123456789";
const W: &str = "/api/v1/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp";

async fn app(pool: PgPool) -> axum::Router {
    let store = Store::from_pool(pool).await.unwrap();
    let state = AppState::new(store, TOKEN);
    seed_demo(&state, "2026-11-26T12:00:00Z".parse().unwrap()).await.unwrap();
    router(state)
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
    assert_eq!(d["author"], "browser");
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

const PAGE: &str = "/clusters/demo/namespaces/example-java-app/workloads/deployment/example-java-app-javaapp";

fn bearer(path: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).unwrap()
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
        assert!(body.len() < 400 && !body.contains('\u{202e}'), "{path}: {body}");
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
    let longest: (i32, i32) = sqlx::query_as(
        "select (select max(octet_length(process)) from flows),
                (select max(octet_length(p)) from conn_hourly, unnest(processes) p)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(longest, (256, 256));

    let (status, _, page) = send(&app, bearer(WEB_PAGE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<tr class=").count(), 96, "one row per connection");
    assert!(page.len() < 200_000, "the page is {} bytes", page.len());
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
    let n = flowgate::web::view::MAX_TABLE_ROWS + 25;
    let flows: String = (0..n).map(|i| line(i % 3600, 20000 + i, "curl")).collect();
    let (app, report) = big_cluster(&pool, flows).await;
    assert_eq!(report.accepted as usize, n, "{report}");
    let (status, _, page) = send(&app, bearer(WEB_PAGE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<tr class=").count(), flowgate::web::view::MAX_TABLE_ROWS);
    assert!(page.contains("25 more ingress connections not shown (the first 1000 are)"), "{page}");
    let (_, _, body) = send(&app, bearer(&format!("{WEB_API}/connections"))).await;
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows["connections"].as_array().map(Vec::len), Some(n), "the API lists them all");
}
